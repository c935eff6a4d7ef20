/* Macros of area_malloc.h (appended by ffi/tests/headers.rs from ffi/src/area_malloc_macros.h:
 * cbindgen cannot export string constants). */
#ifndef MEMPOOLS_AREA_MALLOC_MACROS_H
#define MEMPOOLS_AREA_MALLOC_MACROS_H

/**
 * The name to pass to `get_module` and `put_module` for the `area_malloc` module (equal to
 * `B_AREA_MALLOC_MODULE_NAME` of the Rust module `area_malloc`, checked by its tests).
 */
#define B_AREA_MALLOC_MODULE_NAME "generic/area_malloc/v1"

#endif /* MEMPOOLS_AREA_MALLOC_MACROS_H */
