// What a killed operation made, undone by the next command on the instance (instances::resume):
// see Pipeline::made.
#pragma once

#include <filesystem>
#include <string>

namespace pgforge {

class Context;

// Undoes one thing a killed operation journaled with Pipeline::made (nothing that is already
// gone is an error): removes the inventory entry, the directory (after ending the initdb or
// server processes still working in it), the directory if it is empty, or stops the server of
// a data directory. Unknown kinds and markers do nothing.
void undo_made(Context& ctx, const std::string& kind, const std::string& target);

// Removes a directory tree pgforge made, even while a program it started there (an initdb cut
// short, a server) may still be writing into it: those are ended first.
void remove_made_tree(const std::filesystem::path& dir);

// Stops the server of a data directory (immediate shutdown, then SIGKILL after `timeout`
// seconds); false when none runs.
bool stop_server_at(const std::filesystem::path& data_dir, double timeout = 10);

}  // namespace pgforge
