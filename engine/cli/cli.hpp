// The pgforge command line: a table of commands over the library.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace pgforge::cli {

// Runs one command line (without the program name); returns the exit status.
int run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

int main(int argc, char** argv);

}  // namespace pgforge::cli
