// What applying a description did to one object (or, in check mode, would do): the "result" of
// `database apply`, `role apply` and `instance apply` alike.
#pragma once

namespace pgforge {

enum class Change { created, changed, dropped, unchanged };

// "created", "changed", "dropped", "unchanged".
constexpr const char* to_string(Change change) {
    switch (change) {
        case Change::created:
            return "created";
        case Change::changed:
            return "changed";
        case Change::dropped:
            return "dropped";
        case Change::unchanged:
            return "unchanged";
    }
    return "unchanged";
}

}  // namespace pgforge
