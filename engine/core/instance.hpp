// What the engine knows about one managed instance: what was declared, never what is running.
#pragma once

#include <filesystem>
#include <string>

namespace pgforge {

struct Instance {
    std::string name;                  // [a-z0-9_]{1,63}
    std::string version;               // PostgreSQL major version, "15"
    std::filesystem::path base_dir;    // <prefix>/<version>/<name>: everything of the instance
    std::filesystem::path data_dir;    // PGDATA
    std::filesystem::path wal_dir;     // empty: pg_wal inside the data directory
    std::filesystem::path socket_dir;  // unix_socket_directories
    std::filesystem::path log_file;    // the server's stderr
    int port = 0;
    std::string owner;       // OS user the server runs as
    std::string superuser;   // database superuser role
    std::string created_at;  // ISO 8601 UTC
    std::string options;     // JSON object: the options `create` was given (no secrets)
    // Replication and lineage (docs/replication.md).
    std::string role = "primary";  // "primary", "standby", or "diverged": a primary whose
                                   // standby was promoted, until `instance rebuild`
    std::string upstream;  // a standby's primary: "15/main" when managed here, else its conninfo
                           // (never a password); a diverged instance: the promoted one
    std::string slot;      // the physical replication slot a standby streams from ("": none)
    std::string upgraded_from;  // "15/old": the instance `instance upgrade` made this one from

    std::string qualified_name() const { return version + "/" + name; }
};

}  // namespace pgforge
