/* Macros of le_mem.h (appended by ffi/tests/headers.rs from ffi/src/le_mem_macros.h). */
#ifndef MEMPOOLS_LE_MEM_MACROS_H
#define MEMPOOLS_LE_MEM_MACROS_H

/**
 * Bytes of header in front of every object: the pool pointer and the reference count
 * (`sizeof(void *) + sizeof(size_t)`: 16 on 64-bit, 8 on 32-bit). The library asserts at
 * compile time that its header has exactly this size; this build has no guard bands.
 */
#define LE_MEM_BLOCK_OVERHEAD (sizeof(void *) + sizeof(size_t))

/**
 * Full size of a block for objects of `objSize` bytes, header included:
 * `round_up(max(objSize, sizeof(void *)) + LE_MEM_BLOCK_OVERHEAD, sizeof(size_t))`.
 * Equals `le_mem_GetObjectFullSize()` of a pool created with `objSize`. A constant expression
 * when `objSize` is one (`objSize` is evaluated more than once).
 */
#define LE_MEM_BLOCK_SIZE(objSize)                                                              \
    (((((size_t)(objSize) > sizeof(void *) ? (size_t)(objSize) : sizeof(void *)) +               \
       LE_MEM_BLOCK_OVERHEAD + sizeof(size_t) - 1) /                                             \
      sizeof(size_t)) *                                                                          \
     sizeof(size_t))

/**
 * Allocates an object from a pool with the default policy: `le_mem_ForceAlloc`, or
 * `le_mem_AssertAlloc` when `LE_MEM_ALLOC_ASSERT` is defined before this header is included
 * (Legato's `MEM_ALLOC_FORCE` / `MEM_ALLOC_ASSERT`). Never returns NULL.
 */
#ifdef LE_MEM_ALLOC_ASSERT
#define le_mem_Alloc(pool) le_mem_AssertAlloc(pool)
#define le_mem_VarAlloc(pool, size) le_mem_AssertVarAlloc((pool), (size))
#else
#define le_mem_Alloc(pool) le_mem_ForceAlloc(pool)
#define le_mem_VarAlloc(pool, size) le_mem_ForceVarAlloc((pool), (size))
#endif

/**
 * Declares, at file scope, a static pool `name` for `numObjects` objects of `objSize` bytes:
 * the pool structure `_mem_<name>Pool` (a `le_mem_Pool_t`) and its data array
 * `_mem_<name>Data`, exactly `numObjects * LE_MEM_BLOCK_SIZE(objSize)` bytes, aligned to
 * `sizeof(size_t)`. Use once per name and translation unit; `numObjects` must be at least 1.
 *
 *     LE_MEM_DEFINE_STATIC_POOL(points, 10, sizeof(Point_t));
 */
#define LE_MEM_DEFINE_STATIC_POOL(name, numObjects, objSize)                                    \
    static le_mem_Pool_t _mem_##name##Pool;                                                      \
    static size_t _mem_##name##Data[((numObjects) * LE_MEM_BLOCK_SIZE(objSize)) / sizeof(size_t)]

/**
 * Initialises the static pool `name` declared by `LE_MEM_DEFINE_STATIC_POOL` (same arguments)
 * and yields its `le_mem_PoolRef_t`. The pool is registered under the name `#name` and holds
 * `numObjects` blocks inside `_mem_<name>Data`, with no heap memory for them; it may be
 * expanded later (from the heap) like any pool. Initialising it again returns the same pool.
 * Fatal if the array is smaller than the arguments require. Thread-safe.
 *
 *     le_mem_PoolRef_t pool = le_mem_InitStaticPool(points, 10, sizeof(Point_t));
 */
#define le_mem_InitStaticPool(name, numObjects, objSize)                                        \
    _le_mem_InitStaticPool(#name, (numObjects), (objSize), &_mem_##name##Pool,                  \
                           (void *)_mem_##name##Data, sizeof(_mem_##name##Data))

#endif /* MEMPOOLS_LE_MEM_MACROS_H */
