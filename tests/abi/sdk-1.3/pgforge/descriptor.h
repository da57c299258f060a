/* The plain C descriptor every pgforge plugin exports. The engine reads and checks it before it
 * calls anything else in the library, so its layout never changes within a major version:
 * fields are only ever appended, and struct_size says how many the plugin knows. */
#ifndef PGFORGE_DESCRIPTOR_H
#define PGFORGE_DESCRIPTOR_H

#include <stdint.h>

#define PGFORGE_SDK_VERSION_MAJOR 1
#define PGFORGE_SDK_VERSION_MINOR 3

/* The name under which a plugin exports its descriptor (BOOST_DLL_ALIAS). */
#define PGFORGE_DESCRIPTOR_SYMBOL pgforge_plugin_descriptor_v1

#ifdef __cplusplus
extern "C" {
#endif

/* SDK 1.1: what the engine offers a plugin beyond the 1.0 classes. The engine hands its table to
 * the plugin at load, before create(), and keeps it valid until the library is unloaded; the
 * table, too, only grows at its end (struct_size). */
struct pgforge_host {
    uint32_t struct_size; /* sizeof(struct pgforge_host) as the engine saw it */
    /* The interface NAME at VERSION of `object` (a context or configuration the engine handed
     * to the plugin, as the address of its SDK class), or null when the engine does not offer it
     * there. Never throws. */
    void* (*find_interface)(void* object, const char* name, uint32_t version);
};

struct pgforge_plugin_descriptor {
    /* SDK 1.0 */
    uint32_t sdk_major;   /* PGFORGE_SDK_VERSION_MAJOR the plugin was built with */
    uint32_t sdk_minor;   /* PGFORGE_SDK_VERSION_MINOR the plugin was built with */
    uint32_t struct_size; /* sizeof(struct pgforge_plugin_descriptor) as the plugin saw it */
    const char* name;     /* the plugin's name, as in its manifest */
    const char* version;  /* the plugin's own version */
    /* Makes the plugin object (a pgforge::sdk::Plugin*); never throws, returns null on failure. */
    void* (*create)(void);
    /* Destroys what create returned; never throws. */
    void (*destroy)(void*);
    /* SDK 1.1 */
    /* Where the engine puts its host table before create() (the plugin's own variable). */
    const struct pgforge_host** host;
    /* The hook points the plugin handles, with their priorities and order constraints,
     * in the syntax of pgforge_add_plugin(HOOKS ...): "pre_drop:900 post_start:950:after=backup"
     * (empty: none). The engine refuses the plugin when its manifest says otherwise. Null: the
     * manifest alone says (a plugin built without pgforge_add_plugin(... VERSION ...)). */
    const char* hooks;
};

#ifdef __cplusplus
}
#endif

#endif
