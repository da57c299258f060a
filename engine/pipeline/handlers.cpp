#include "engine/pipeline/handlers.hpp"

#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>

#include "engine/core/error.hpp"
#include "engine/core/log.hpp"
#include "engine/core/process.hpp"
#include "engine/core/safe_fs.hpp"
#include "engine/core/text.hpp"
#include "engine/pipeline/context.hpp"
#include "engine/pipeline/plugin_host.hpp"

namespace fs = std::filesystem;

namespace pgforge {
namespace {

// run-parts' idea of a file to run: no hidden files, editor backups or package leftovers.
bool runnable_name(const std::string& name) {
    if (name.empty() || name[0] == '.' || name.back() == '~') return false;
    for (const char* suffix : {".dpkg-old", ".dpkg-new", ".dpkg-dist", ".dpkg-tmp", ".rpmnew",
                               ".rpmsave", ".disabled", ".swp"}) {
        std::string s = suffix;
        if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0)
            return false;
    }
    return std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
    });
}

}  // namespace

std::vector<fs::path> find_site_hooks(const Settings& settings, sdk::HookPoint point) {
    std::vector<std::pair<std::string, fs::path>> found;
    std::error_code ec;
    for (const fs::path& dir : settings.hook_search_path()) {
        fs::path d = dir / (std::string(sdk::to_string(point)) + ".d");
        if (!fs::is_directory(d, ec)) continue;
        if (auto why = safe_fs::unsafe_reason(d); !why.empty())
            throw Error(Exit::failure, "site hooks refused: " + why,
                        "make it owned by root (or you) and not writable by group or others");
        for (const auto& e : fs::directory_iterator(d, ec)) {
            std::string name = e.path().filename().string();
            if (!runnable_name(name) || e.is_directory(ec)) continue;
            if (auto why = safe_fs::unsafe_reason(e.path()); !why.empty())
                throw Error(Exit::failure, "site hook refused: " + why,
                            "make it owned by root (or you) and not writable by group or others");
            if (::access(e.path().c_str(), X_OK) != 0) {
                log::warn("site hook " + e.path().string() + " is not executable: skipped");
                continue;
            }
            found.emplace_back(name, e.path());
        }
    }
    std::stable_sort(found.begin(), found.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<fs::path> out;
    for (auto& f : found) out.push_back(std::move(f.second));
    return out;
}

std::vector<HookHandler> handlers_at(Context& ctx, sdk::HookPoint point) {
    std::vector<HookHandler> hs;
    if (ctx.plugins_wanted()) {
        ctx.plugins().check_point(point);  // fail closed on a broken plugin
        for (LoadedPlugin* p : ctx.plugins().loaded()) {
            const PluginManifest& m = p->manifest();
            auto it = m.priorities.find(point);
            if (it == m.priorities.end()) continue;
            HookHandler h{it->second, p->name(), p, {}, {}, {}};
            if (auto order = m.order.find(point); order != m.order.end()) {
                h.after = order->second.after;
                h.before = order->second.before;
            }
            hs.push_back(std::move(h));
        }
    }
    // Site hooks come in name order (they share one priority), which order_handlers keeps.
    for (const auto& file : find_site_hooks(ctx.settings(), point))
        hs.push_back(
            {ctx.settings().hook_priority,
             "hooks/" + std::string(sdk::to_string(point)) + ".d/" + file.filename().string(),
             nullptr,
             file,
             {},
             {}});
    order_handlers(hs, point);
    return hs;
}

void order_handlers(std::vector<HookHandler>& hs, sdk::HookPoint point) {
    const size_t n = hs.size();
    // The tie-break among handlers free to go: priority, plugins before site hooks, plugins by
    // name, site hooks as given.
    auto goes_first = [&](size_t a, size_t b) {
        const HookHandler& x = hs[a];
        const HookHandler& y = hs[b];
        if (x.priority != y.priority) return x.priority < y.priority;
        if ((x.plugin == nullptr) != (y.plugin == nullptr)) return x.plugin != nullptr;
        if (x.plugin && x.name != y.name) return x.name < y.name;
        return a < b;
    };
    // Edges "runs before": from a handler to those that must wait for it.
    std::map<std::string, size_t> plugin_at;
    for (size_t i = 0; i < n; ++i)
        if (hs[i].plugin) plugin_at[hs[i].name] = i;
    std::vector<std::set<size_t>> next(n), previous(n);
    auto edge = [&](size_t first, size_t then) {
        if (first == then) return;
        next[first].insert(then);
        previous[then].insert(first);
    };
    for (size_t i = 0; i < n; ++i) {
        for (const auto& name : hs[i].after)
            if (auto it = plugin_at.find(name); it != plugin_at.end()) edge(it->second, i);
        for (const auto& name : hs[i].before)
            if (auto it = plugin_at.find(name); it != plugin_at.end()) edge(i, it->second);
    }
    // Kahn's algorithm, taking the first by the tie-break among those whose predecessors ran.
    std::vector<size_t> waiting(n);
    std::set<size_t, decltype(goes_first)> ready(goes_first);
    for (size_t i = 0; i < n; ++i)
        if ((waiting[i] = previous[i].size()) == 0) ready.insert(i);
    std::vector<size_t> order;
    while (!ready.empty()) {
        size_t i = *ready.begin();
        ready.erase(ready.begin());
        order.push_back(i);
        for (size_t j : next[i])
            if (--waiting[j] == 0) ready.insert(j);
    }
    if (order.size() < n) {
        // Every handler left waits for another one left: walking back from any of them comes
        // round to a cycle.
        size_t at = 0;
        while (waiting[at] == 0) ++at;
        std::vector<size_t> walk;
        std::vector<bool> seen(n, false);
        while (!seen[at]) {
            seen[at] = true;
            walk.push_back(at);
            for (size_t p : previous[at])
                if (waiting[p] > 0) {
                    at = p;
                    break;
                }
        }
        auto start = std::find(walk.begin(), walk.end(), at);
        std::vector<size_t> cycle(start, walk.end());
        // Said from the first name on: "a runs after b, b runs after a".
        std::rotate(cycle.begin(),
                    std::min_element(cycle.begin(), cycle.end(),
                                     [&](size_t a, size_t b) { return hs[a].name < hs[b].name; }),
                    cycle.end());
        std::string names, chain;
        for (size_t k = 0; k < cycle.size(); ++k) {
            names += (k ? ", " : "") + hs[cycle[k]].name;
            chain += (k ? ", " : "") + hs[cycle[k]].name + " runs after " +
                     hs[cycle[(k + 1) % cycle.size()]].name;
        }
        throw Error(Exit::failure,
                    "the order constraints of plugins " + names + " at " + sdk::to_string(point) +
                        " form a cycle: " + chain,
                    "disable one of them, or have its authors drop the after=/before= that "
                    "closes the cycle (pgforge plugin show NAME lists them)");
    }
    std::vector<HookHandler> sorted;
    sorted.reserve(n);
    for (size_t i : order) sorted.push_back(std::move(hs[i]));
    hs = std::move(sorted);
}

sdk::Result run_site_hook(const Settings& settings, const HookHandler& h, sdk::HookPoint point,
                          const std::string& operation, const Instance& i,
                          const sdk::Outcome& outcome) {
    // The file is opened once and checked through its descriptor over its whole path; that
    // descriptor is what runs, whatever its name points to by then.
    std::string why;
    auto file = safe_fs::open_trusted(h.executable, false, why);
    if (!file) return sdk::Result::refuse("refused: " + why);
    Command c;
    c.argv = {h.executable.string()};
    c.exec_fd = file->fd.get();
    OsUser owner;
    if (running_as_root() && !i.owner.empty()) {
        owner = lookup_os_user(i.owner);
        c.as = &owner;
    }
    c.env = {"PGFORGE_HOOK=" + std::string(sdk::to_string(point)),
             "PGFORGE_OPERATION=" + operation,
             "PGFORGE_INSTANCE=" + i.qualified_name(),
             "PGFORGE_VERSION=" + i.version,
             "PGDATA=" + i.data_dir.string(),
             "PGPORT=" + std::to_string(i.port),
             "PGHOST=" + i.socket_dir.string(),
             "PGUSER=" + i.superuser};
    if (!sdk::is_pre(point))
        c.env.push_back("PGFORGE_OUTCOME=" + std::string(outcome.ok ? "ok" : "failed"));
    c.timeout = settings.hook_timeout;
    try {
        ProcessResult p = run_process(c);
        if (p.timed_out)
            return sdk::Result::refuse("timed out after " +
                                       std::to_string(static_cast<int>(c.timeout)) + " s (killed)");
        if (p.ok()) return sdk::Result::proceed();
        std::string why = tail_text(p.err, 2000);
        if (why.empty()) why = tail_text(p.out, 2000);
        return sdk::Result::refuse("exited with status " + std::to_string(p.status) +
                                   (why.empty() ? "" : ": " + why));
    } catch (const Error& e) {
        if (e.code() == Exit::interrupted) throw;  // the operation stops, not only the hook
        return sdk::Result::refuse(e.what());
    } catch (const std::exception& e) {
        return sdk::Result::refuse(e.what());
    }
}

}  // namespace pgforge
