#include "engine/cli/cli.hpp"

int main(int argc, char** argv) {
    return pgforge::cli::main(argc, argv);
}
