// A plugin that handles pre_start and post_start and does nothing: the benchmark enables ten of
// them to measure what the pipeline itself costs.
#include <pgforge/plugin.hpp>

namespace {

class Noop final : public pgforge::sdk::Plugin {};

}  // namespace

PGFORGE_PLUGIN(Noop);
