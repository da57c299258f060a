# cmake -P frozen.cmake: fails when a released SDK's frozen headers (tests/abi/sdk-MAJOR.MINOR)
# differ from what was released. A release adds its files here when it is released.
set(released
  # SDK 1.0 as `cmake --install` installed it (commit be4cffd).
  "sdk-1.0/pgforge/descriptor.h c9eb9b29d51b14919dc4e5f8afe082158d77d12799f921f2ce66176a35a47433"
  "sdk-1.0/pgforge/plugin.hpp 4252ed71d8ac1b7153b3cc2905a8cdd70ad4679371cde3d2bd24cf61e6e3c4ea")
set(failed "")
foreach(entry IN LISTS released)
  string(REPLACE " " ";" parts "${entry}")
  list(GET parts 0 file)
  list(GET parts 1 expected)
  if(NOT EXISTS ${CMAKE_CURRENT_LIST_DIR}/${file})
    string(APPEND failed "tests/abi/${file} is missing\n")
    continue()
  endif()
  file(SHA256 ${CMAKE_CURRENT_LIST_DIR}/${file} actual)
  if(NOT actual STREQUAL expected)
    string(APPEND failed "tests/abi/${file} was edited after its release (a released copy is "
      "never edited: the ABI test runs a plugin built against it)\n")
  endif()
endforeach()
if(failed)
  message(FATAL_ERROR "${failed}")
endif()
