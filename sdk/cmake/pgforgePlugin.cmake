# pgforge_add_plugin(NAME SOURCES... [MANIFEST file] [OUTPUT_DIRECTORY dir]
#                    [INSTALL_DESTINATION dir | NO_INSTALL])
#
# A loadable pgforge plugin: a MODULE library NAME.so built against pgforge::sdk with hidden
# visibility and a version script (it exports its descriptor only), -z defs, and its
# manifest (NAME.plugin beside the sources unless MANIFEST says) copied next to it. Both are
# installed into INSTALL_DESTINATION (default: lib/pgforge/plugins under the install prefix).
function(pgforge_add_plugin name)
  cmake_parse_arguments(PLUGIN "NO_INSTALL" "MANIFEST;OUTPUT_DIRECTORY;INSTALL_DESTINATION"
    "SOURCES" ${ARGN})
  set(sources ${PLUGIN_SOURCES} ${PLUGIN_UNPARSED_ARGUMENTS})
  if(NOT sources)
    message(FATAL_ERROR "pgforge_add_plugin(${name}): no sources")
  endif()
  if(NOT PLUGIN_MANIFEST)
    set(PLUGIN_MANIFEST ${CMAKE_CURRENT_SOURCE_DIR}/${name}.plugin)
  endif()
  if(NOT PLUGIN_OUTPUT_DIRECTORY)
    set(PLUGIN_OUTPUT_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
  endif()
  add_library(${name} MODULE ${sources})
  target_link_libraries(${name} PRIVATE pgforge::sdk)
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    CXX_STANDARD 20
    CXX_STANDARD_REQUIRED ON
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    LIBRARY_OUTPUT_DIRECTORY ${PLUGIN_OUTPUT_DIRECTORY})
  target_link_options(${name} PRIVATE "LINKER:-z,defs")
  # Only the descriptor is exported: the rest (inline functions, templates, the runtime's
  # weak symbols) stays local, whatever visibility the sources ask for.
  set(exports ${CMAKE_BINARY_DIR}/pgforge_plugin_exports.map)
  file(CONFIGURE OUTPUT ${exports} CONTENT "{\n  global: pgforge_plugin_descriptor_v1;\n  local: *;\n};\n")
  target_link_options(${name} PRIVATE "LINKER:--version-script=${exports}")
  set_property(TARGET ${name} APPEND PROPERTY LINK_DEPENDS ${exports})
  set_property(GLOBAL APPEND PROPERTY PGFORGE_PLUGIN_TARGETS ${name})
  configure_file(${PLUGIN_MANIFEST} ${PLUGIN_OUTPUT_DIRECTORY}/${name}.plugin COPYONLY)
  if(NOT PLUGIN_NO_INSTALL)
    if(NOT PLUGIN_INSTALL_DESTINATION)
      include(GNUInstallDirs)
      set(PLUGIN_INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/pgforge/plugins)
    endif()
    install(TARGETS ${name} LIBRARY DESTINATION ${PLUGIN_INSTALL_DESTINATION})
    install(FILES ${PLUGIN_OUTPUT_DIRECTORY}/${name}.plugin
      DESTINATION ${PLUGIN_INSTALL_DESTINATION})
  endif()
endfunction()
