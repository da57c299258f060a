/* The plain C descriptor every pgforge plugin exports. The engine reads and checks it before it
 * calls anything else in the library, so its layout never changes within a major version:
 * fields are only ever appended, and struct_size says how many the plugin knows. */
#ifndef PGFORGE_DESCRIPTOR_H
#define PGFORGE_DESCRIPTOR_H

#include <stdint.h>

#define PGFORGE_SDK_VERSION_MAJOR 1
#define PGFORGE_SDK_VERSION_MINOR 0

/* The name under which a plugin exports its descriptor (BOOST_DLL_ALIAS). */
#define PGFORGE_DESCRIPTOR_SYMBOL pgforge_plugin_descriptor_v1

#ifdef __cplusplus
extern "C" {
#endif

struct pgforge_plugin_descriptor {
    uint32_t sdk_major;   /* PGFORGE_SDK_VERSION_MAJOR the plugin was built with */
    uint32_t sdk_minor;   /* PGFORGE_SDK_VERSION_MINOR the plugin was built with */
    uint32_t struct_size; /* sizeof(struct pgforge_plugin_descriptor) as the plugin saw it */
    const char* name;     /* the plugin's name, as in its manifest */
    const char* version;  /* the plugin's own version */
    /* Makes the plugin object (a pgforge::sdk::Plugin*); never throws, returns null on failure. */
    void* (*create)(void);
    /* Destroys what create returned; never throws. */
    void (*destroy)(void*);
};

#ifdef __cplusplus
}
#endif

#endif
