// A program's own progress lines (pg_checksums --progress, pg_basebackup --progress), shown on
// one line of the terminal, each overwriting the last. Used as Command::on_stderr, only when
// the run is interactive (not --json, not without a terminal).
#pragma once

#include <string>
#include <string_view>

namespace pgforge {

class ProgressLine {
  public:
    explicit ProgressLine(std::string label) : label_(std::move(label)) {}
    void operator()(std::string_view piece);

  private:
    std::string label_;
    std::string pending_;
};

}  // namespace pgforge
