#include "engine/pipeline/hba_records.hpp"

#include "engine/conf/pgconf.hpp"
#include "engine/core/error.hpp"

namespace pgforge {

namespace {

std::vector<sdk::HbaName> names(const std::vector<std::string>& texts,
                                const std::vector<bool>& quoted) {
    std::vector<sdk::HbaName> out;
    for (size_t k = 0; k < texts.size(); ++k)
        out.push_back({texts[k], k < quoted.size() && quoted[k]});
    return out;
}

void unnames(const std::vector<sdk::HbaName>& from, std::vector<std::string>& texts,
             std::vector<bool>& quoted) {
    for (const auto& n : from) {
        texts.push_back(n.text);
        quoted.push_back(n.quoted);
    }
}

}  // namespace

sdk::HbaRecord to_sdk(const conf::HbaRecord& r) {
    sdk::HbaRecord out;
    out.type = r.type;
    out.databases = names(r.databases, r.databases_quoted);
    out.users = names(r.users, r.users_quoted);
    out.address = {r.address, r.address_quoted};
    out.mask = r.mask;
    out.method = r.method;
    out.options = r.options;
    out.line = r.line;
    return out;
}

conf::HbaRecord from_sdk(const sdk::HbaRecord& r) {
    conf::HbaRecord c;
    c.type = r.type;
    unnames(r.databases, c.databases, c.databases_quoted);
    unnames(r.users, c.users, c.users_quoted);
    c.address = r.address.text;
    c.address_quoted = r.address.quoted;
    c.mask = r.mask;
    c.method = r.method;
    c.options = r.options;
    // Checked as the server checks it: written as the engine writes a new line, then read back.
    conf::HbaFile probe;
    probe.insert(0, c);
    c = probe.records().at(0);
    c.line = 0;
    return c;
}

bool InstanceHbaReader::read_hba(std::vector<sdk::HbaRecord>& records,
                                 std::vector<sdk::HbaProblem>& problems, std::string& error) {
    try {
        // The file hba_file names, read with the rights of whoever controls the file naming it.
        auto files = conf::auth_file_paths(instance_.data_dir);
        conf::HbaReading read =
            conf::read_hba_records(conf::read_auth_file(files.hba, files.hba_named_by));
        for (const auto& r : read.records) records.push_back(to_sdk(r));
        for (const auto& [line, message] : read.invalid) problems.push_back({line, message});
        return true;
    } catch (const std::exception& e) {
        error = e.what();
        return false;
    }
}

}  // namespace pgforge
