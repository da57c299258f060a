# pgforge_add_plugin(NAME [SOURCES] source...
#                    VERSION version SUMMARY text
#                    [HOOKS point:priority[:after=PLUGIN,...][:before=PLUGIN,...] ...]
#                    [COMMANDS family=summary ...] [STEPS step=summary ...]
#                    [OPTIONS key=type[=default]:description ...]
#                    [OUTPUT_DIRECTORY dir] [INSTALL_DESTINATION dir | NO_INSTALL])
#
# A loadable pgforge plugin: a MODULE library NAME.so built against pgforge::sdk with hidden
# visibility and a version script (it exports its descriptor only), -z defs (no undefined
# symbols), and its
# manifest NAME.plugin next to it. Both are installed into INSTALL_DESTINATION (default:
# lib/pgforge/plugins under the install prefix).
#
# The plugin is declared here, once. The manifest is generated from NAME, VERSION, SUMMARY, HOOKS
# and COMMANDS; the sources are compiled with PGFORGE_PLUGIN_NAME, PGFORGE_PLUGIN_VERSION and
# PGFORGE_PLUGIN_HOOKS defined from the same arguments, which PGFORGE_PLUGIN(Class) puts in the
# descriptor (and pgforge::sdk::declared<HookPoint::x>() checks at compile time). The engine
# refuses a library whose descriptor and manifest disagree. The definitions are also on the
# INTERFACE target NAME_declaration, for a unit test that compiles the plugin's sources into an
# executable of its own.
#
# HOOKS: one item per hook point the plugin handles, "post_start:950:after=backup" (priority 950,
# and after the handler of plugin backup at post_start when backup is loaded); COMMANDS: the CLI
# families it adds, "backup=Backups of an instance"; STEPS: the steps it provides in place of the
# engine's driver (pgforge/steps.hpp), "start=Patroni starts the server", "stop=...";
# OPTIONS (SDK 1.2): the per-instance options it accepts (pgforge/options.hpp), each a key
# (a-z, 0-9, _), a type (string, integer, boolean), maybe a default, and a one-line description:
# "stanza=string:the pgBackRest stanza", "port=integer=9187:the exporter's port".
# The hook points pre_promote and post_promote are SDK 1.3's (instance promote): a plugin
# declaring them is built, and its manifest written, for SDK 1.3 or later.
#
# Without VERSION (SDK 1.0): the hand-written manifest NAME.plugin beside the sources (or MANIFEST
# file) is copied next to the library, and nothing is defined for the sources.
function(pgforge_add_plugin name)
  cmake_parse_arguments(PLUGIN "NO_INSTALL"
    "MANIFEST;OUTPUT_DIRECTORY;INSTALL_DESTINATION;VERSION;SUMMARY"
    "SOURCES;HOOKS;COMMANDS;STEPS;OPTIONS"
    ${ARGN})
  set(sources ${PLUGIN_SOURCES} ${PLUGIN_UNPARSED_ARGUMENTS})
  if(NOT sources)
    message(FATAL_ERROR "pgforge_add_plugin(${name}): no sources")
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
  if(DEFINED PLUGIN_VERSION)
    if(PLUGIN_MANIFEST)
      message(FATAL_ERROR "pgforge_add_plugin(${name}): MANIFEST and VERSION exclude each other "
        "(VERSION generates the manifest)")
    endif()
    _pgforge_plugin_manifest(${name} "${PLUGIN_VERSION}" "${PLUGIN_SUMMARY}" "${PLUGIN_HOOKS}"
      "${PLUGIN_COMMANDS}" "${PLUGIN_STEPS}" "${PLUGIN_OPTIONS}"
      ${PLUGIN_OUTPUT_DIRECTORY}/${name}.plugin)
  else()
    if(PLUGIN_HOOKS OR PLUGIN_COMMANDS OR PLUGIN_STEPS OR PLUGIN_OPTIONS OR PLUGIN_SUMMARY)
      message(FATAL_ERROR "pgforge_add_plugin(${name}): HOOKS, COMMANDS, STEPS, OPTIONS and "
        "SUMMARY need VERSION")
    endif()
    if(NOT PLUGIN_MANIFEST)
      set(PLUGIN_MANIFEST ${CMAKE_CURRENT_SOURCE_DIR}/${name}.plugin)
    endif()
    configure_file(${PLUGIN_MANIFEST} ${PLUGIN_OUTPUT_DIRECTORY}/${name}.plugin COPYONLY)
  endif()
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

# The manifest `file` of plugin `name` and the definitions its sources see, from the arguments of
# pgforge_add_plugin; every mistake is a configure error naming the plugin and the item.
function(_pgforge_plugin_manifest name version summary hooks commands steps options file)
  set(where "pgforge_add_plugin(${name})")
  if(NOT name MATCHES "^[a-z0-9_-]+$")
    message(FATAL_ERROR "${where}: a plugin name is 1 to 63 characters of a-z, 0-9, _ and -")
  endif()
  if(NOT version MATCHES "^[0-9A-Za-z.+~_-]+$")
    message(FATAL_ERROR "${where}: VERSION '${version}' is empty or has characters other than "
      "letters, digits and . + ~ _ -")
  endif()
  if(summary MATCHES "[\n\r]")
    message(FATAL_ERROR "${where}: SUMMARY is one line")
  endif()
  if(DEFINED PGFORGE_SDK_VERSION)
    set(sdk ${PGFORGE_SDK_VERSION})
  else()
    set(sdk ${pgforge_VERSION_MAJOR}.${pgforge_VERSION_MINOR})
  endif()
  # SDK 1.3 appended pre_promote and post_promote.
  set(points pre_init post_init pre_configure post_configure pre_start post_start pre_stop
    post_stop pre_drop post_drop pre_promote post_promote)
  set(seen "")
  set(hooks_ini "")
  set(hooks_code "")
  foreach(hook IN LISTS hooks)
    if(NOT hook MATCHES "^([a-z_]+):(-?[0-9]+)((:(after|before)=[a-z0-9_-]+(,[a-z0-9_-]+)*)*)$")
      message(FATAL_ERROR "${where}: HOOKS item '${hook}' is not "
        "point:priority[:after=PLUGIN,...][:before=PLUGIN,...]")
    endif()
    set(point ${CMAKE_MATCH_1})
    set(priority ${CMAKE_MATCH_2})
    set(order ${CMAKE_MATCH_3})
    if(NOT point IN_LIST points)
      list(JOIN points ", " known)
      message(FATAL_ERROR "${where}: unknown hook point '${point}' (one of: ${known})")
    endif()
    if(point IN_LIST seen)
      message(FATAL_ERROR "${where}: hook point ${point} is listed twice")
    endif()
    list(APPEND seen ${point})
    string(REPLACE ":" " " order_ini "${order}")
    string(APPEND hooks_ini "${point} = ${priority}${order_ini}\n")
    if(hooks_code)
      string(APPEND hooks_code " ")
    endif()
    string(APPEND hooks_code "${hook}")
  endforeach()
  set(commands_ini "")
  foreach(command IN LISTS commands)
    if(NOT command MATCHES "^([a-z0-9_-]+)=([^\n\r]*)$")
      message(FATAL_ERROR "${where}: COMMANDS item '${command}' is not family=summary")
    endif()
    string(APPEND commands_ini "${CMAKE_MATCH_1} = ${CMAKE_MATCH_2}\n")
  endforeach()
  set(steps_ini "")
  foreach(step IN LISTS steps)
    if(NOT step MATCHES "^(start|stop)=([^\n\r]*)$")
      message(FATAL_ERROR "${where}: STEPS item '${step}' is not start=summary or stop=summary")
    endif()
    string(APPEND steps_ini "${CMAKE_MATCH_1} = ${CMAKE_MATCH_2}\n")
  endforeach()
  if(steps_ini)
    set(steps_ini "\n[steps]\n${steps_ini}")
  endif()
  set(options_ini "")
  set(option_keys "")
  foreach(option IN LISTS options)
    if(NOT option MATCHES "^([a-z][a-z0-9_]*)=([a-z]+)(=([^:#\n\r]*))?:([^#\n\r]*)$")
      message(FATAL_ERROR "${where}: OPTIONS item '${option}' is not "
        "key=type[=default]:description (a key of a-z, 0-9 and _; no # in the description)")
    endif()
    set(key ${CMAKE_MATCH_1})
    set(type ${CMAKE_MATCH_2})
    set(has_default "${CMAKE_MATCH_3}")
    set(default "${CMAKE_MATCH_4}")
    string(STRIP "${CMAKE_MATCH_5}" description)
    if(NOT type MATCHES "^(string|integer|boolean)$")
      message(FATAL_ERROR "${where}: option ${key}: unknown type '${type}' (one of: string, "
        "integer, boolean)")
    endif()
    if(key IN_LIST option_keys)
      message(FATAL_ERROR "${where}: option ${key} is listed twice")
    endif()
    list(APPEND option_keys ${key})
    if(has_default)
      if(type STREQUAL "integer" AND NOT default MATCHES "^-?[0-9]+$")
        message(FATAL_ERROR "${where}: option ${key}: default '${default}' is not an integer")
      elseif(type STREQUAL "boolean" AND NOT default MATCHES "^(true|false)$")
        message(FATAL_ERROR "${where}: option ${key}: default '${default}' is not true or false")
      elseif(default STREQUAL "")
        message(FATAL_ERROR "${where}: option ${key}: an empty default (leave it out)")
      endif()
      string(APPEND options_ini "${key} = ${type}=${default}: ${description}\n")
    else()
      string(APPEND options_ini "${key} = ${type}: ${description}\n")
    endif()
  endforeach()
  if(options_ini)
    set(options_ini "\n[options]\n${options_ini}")
  endif()
  file(GENERATE OUTPUT ${file} CONTENT
"# Generated by pgforge_add_plugin() from the plugin's CMakeLists.txt: change it there.
name = ${name}
version = ${version}
sdk = ${sdk}
library = ${name}.so
summary = ${summary}

[hooks]
${hooks_ini}
[commands]
${commands_ini}${steps_ini}${options_ini}")
  # The definitions, on a target of their own that a unit test compiling the plugin's sources
  # links too (target_link_libraries(my_test PRIVATE NAME_declaration)).
  add_library(${name}_declaration INTERFACE)
  target_compile_definitions(${name}_declaration INTERFACE
    "PGFORGE_PLUGIN_NAME=\"${name}\""
    "PGFORGE_PLUGIN_VERSION=\"${version}\""
    "PGFORGE_PLUGIN_HOOKS=\"${hooks_code}\"")
  target_link_libraries(${name} PRIVATE ${name}_declaration)
endfunction()
