# cmake -P frozen.cmake: fails when a released SDK's frozen headers (tests/abi/sdk-MAJOR.MINOR)
# differ from what was released. A release adds its files here when it is released.
set(released
  # SDK 1.0 as `cmake --install` installed it (commit be4cffd).
  "sdk-1.0/pgforge/descriptor.h c9eb9b29d51b14919dc4e5f8afe082158d77d12799f921f2ce66176a35a47433"
  "sdk-1.0/pgforge/plugin.hpp 4252ed71d8ac1b7153b3cc2905a8cdd70ad4679371cde3d2bd24cf61e6e3c4ea"
  # SDK 1.1 as released: versioned interfaces (EngineInfo, Contributions, HbaConfiguration,
  # HbaFileReader, Helpers), step providers, the plugin's declaration in its descriptor.
  "sdk-1.1/pgforge/descriptor.h 5defd96105a6a8116a804b739b42ce71fc7652504c8baea6e86f00fc00f5ee94"
  "sdk-1.1/pgforge/plugin.hpp 07ab5319f1b713982c2242a74b27bc2bd2b8154bf53176b2d66d74941f1dd180"
  "sdk-1.1/pgforge/hba.hpp 1422c32b9a2a01a2c0e9c81bcf4247cab7f8d7b54d201c23b402052135eba7cb"
  "sdk-1.1/pgforge/steps.hpp d5687f6dccb275c6f329ce1a0d44f97a4f64674ded623f83cd9d1cf17f9c9041"
  "sdk-1.1/pgforge/helpers.hpp 7c647e038f44452a959ede63403543d1f49337957ed262c8822598dbce65c9eb"
  # SDK 1.2 as released: per-instance options (the manifest's [options], InstanceOptions).
  "sdk-1.2/pgforge/descriptor.h 1360da3f856344fcca75f0e7c11e22106d028f081d64b29508f47e7b318882df"
  "sdk-1.2/pgforge/plugin.hpp ded35bbdb8522b30f67c9eb6d5f7407a84306c4857bba89bbd3d5b80666806f4"
  "sdk-1.2/pgforge/hba.hpp 1422c32b9a2a01a2c0e9c81bcf4247cab7f8d7b54d201c23b402052135eba7cb"
  "sdk-1.2/pgforge/steps.hpp d5687f6dccb275c6f329ce1a0d44f97a4f64674ded623f83cd9d1cf17f9c9041"
  "sdk-1.2/pgforge/helpers.hpp 7c647e038f44452a959ede63403543d1f49337957ed262c8822598dbce65c9eb"
  "sdk-1.2/pgforge/options.hpp 2daed7e1f612f7483db4f8a5e44c1f27bbb8c0fa84e53a02e725f0ba1cc79ab7"
  # SDK 1.3 as released: the hook points pre_promote and post_promote.
  "sdk-1.3/pgforge/descriptor.h 74cbf203500c9bfd7be4c7f5dec76c6083776ec1f40732f9d4366d8639d35925"
  "sdk-1.3/pgforge/plugin.hpp 8332079dc7ed7ec78ba2b492a12e5c8d74e0dbfa0177a096cd49ec4eccf66280"
  "sdk-1.3/pgforge/hba.hpp 1422c32b9a2a01a2c0e9c81bcf4247cab7f8d7b54d201c23b402052135eba7cb"
  "sdk-1.3/pgforge/steps.hpp d5687f6dccb275c6f329ce1a0d44f97a4f64674ded623f83cd9d1cf17f9c9041"
  "sdk-1.3/pgforge/helpers.hpp 7c647e038f44452a959ede63403543d1f49337957ed262c8822598dbce65c9eb"
  "sdk-1.3/pgforge/options.hpp 2daed7e1f612f7483db4f8a5e44c1f27bbb8c0fa84e53a02e725f0ba1cc79ab7")
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
