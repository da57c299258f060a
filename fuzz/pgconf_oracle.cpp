// Prints how pgforge reads a postgresql.conf-format file, in the shape of the server's
// pg_file_settings view, for pgconf_differential.py: "line<TAB>name<TAB>hex(value)" per
// setting, or "error<TAB>line" for a syntax error.
#include <cstdio>
#include <iostream>
#include <string>

#include "engine/conf/pgconf.hpp"
#include "engine/core/error.hpp"

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: pgconf_oracle FILE\n";
        return 2;
    }
    try {
        auto doc = pgforge::conf::ConfDocument::read(argv[1]);
        for (const auto& e : doc.entries()) {
            std::string hex;
            char buf[3];
            for (unsigned char c : e.value) {
                std::snprintf(buf, sizeof buf, "%02x", c);
                hex += buf;
            }
            std::cout << e.line << '\t' << e.name << '\t' << hex << '\n';
        }
    } catch (const pgforge::Error& e) {
        std::string what = e.what();
        // "<file>:<line>: syntax error ..."
        size_t colon = what.find(": syntax error");
        size_t start = what.rfind(':', colon - 1);
        std::cout << "error\t" << what.substr(start + 1, colon - start - 1) << '\n';
    }
    return 0;
}
