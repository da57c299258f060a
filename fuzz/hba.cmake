# The pg_hba.conf / pg_ident.conf fuzz target (engine/conf/hba). fuzz/CMakeLists.txt includes
# every fuzz/*.cmake; this file also works from any clang++ project that includes it:
#
#   cmake -S fuzz -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ && cmake --build build-fuzz --target hba_fuzz
#   mkdir -p build-fuzz/corpus-hba
#   build-fuzz/hba_fuzz -max_total_time=60 build-fuzz/corpus-hba tests/data/hba
#
# hba.cpp needs no other engine source (read() and write() are inline in hba.hpp).
get_filename_component(PGFORGE_FUZZ_HBA_ROOT "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
set(PGFORGE_FUZZ_HBA_SOURCES ${CMAKE_CURRENT_LIST_DIR}/hba_fuzz.cpp
                             ${PGFORGE_FUZZ_HBA_ROOT}/engine/conf/hba.cpp)
if(COMMAND pgforge_add_fuzzer)
  pgforge_add_fuzzer(hba_fuzz ${PGFORGE_FUZZ_HBA_SOURCES})
else()
  add_executable(hba_fuzz ${PGFORGE_FUZZ_HBA_SOURCES})
  target_compile_features(hba_fuzz PRIVATE cxx_std_20)
  target_include_directories(hba_fuzz PRIVATE ${PGFORGE_FUZZ_HBA_ROOT})
  target_compile_options(hba_fuzz PRIVATE -Wall -Wextra -Wpedantic -fno-omit-frame-pointer
                                          -fsanitize=fuzzer,address,undefined)
  target_link_options(hba_fuzz PRIVATE -fsanitize=fuzzer,address,undefined)
endif()
