/* Memory of staged communicator calls: which kind a pointer is, allocation and copies on either side.
 * Without CUDA in the build every buffer is host memory. With it, the kind comes from the driver's
 * cuPointerGetAttribute looked up in an already loaded libcuda (dlopen RTLD_NOLOAD): a process that never
 * touched CUDA (the cpu backend) holds no device memory, and the query must not create a context there
 * (hundreds of MiB of GPU memory per rank). */
#include "comm-impl.h"

#include <stdlib.h>

#ifdef GV_HAVE_CUDA
#include <dlfcn.h>
#include <stdint.h>
#include <string.h>

#include <cuda_runtime_api.h>

/* The driver API's values (cuda.h), so this file needs no libcuda at link time. */
#define GV_CU_POINTER_ATTRIBUTE_MEMORY_TYPE 2
#define GV_CU_POINTER_ATTRIBUTE_IS_MANAGED 8
#define GV_CU_MEMORYTYPE_DEVICE 2

typedef int (*gv_cu_ptr_attr_fn)(void *data, int attribute, uintptr_t ptr);

static gv_cu_ptr_attr_fn gv_cu_ptr_attr(void) {
    static gv_cu_ptr_attr_fn fn = NULL;
    if (fn) return fn;
    void *lib = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_NOLOAD);
    if (!lib) return NULL; /* CUDA not loaded: no device memory in this process yet */
    fn = (gv_cu_ptr_attr_fn)dlsym(lib, "cuPointerGetAttribute");
    return fn;
}

gv_mem_kind gv_mem_kind_of(const void *p) {
    gv_cu_ptr_attr_fn fn = gv_cu_ptr_attr();
    if (!fn || !p) return GV_MEM_HOST;
    unsigned int type = 0, managed = 0;
    if (fn(&type, GV_CU_POINTER_ATTRIBUTE_MEMORY_TYPE, (uintptr_t)p) != 0)
        return GV_MEM_HOST; /* plain host */
    if (fn(&managed, GV_CU_POINTER_ATTRIBUTE_IS_MANAGED, (uintptr_t)p) == 0 && managed) return GV_MEM_MANAGED;
    return type == GV_CU_MEMORYTYPE_DEVICE ? GV_MEM_DEVICE : GV_MEM_HOST;
}

gv_status gv_mem_alloc(void **p, size_t bytes, int device) {
    *p = NULL;
    if (!device) {
        *p = malloc(bytes ? bytes : 1);
        return *p ? GV_OK : gv_fail(GV_ERR_NOMEM, "comm staging: out of host memory (%zu bytes)", bytes);
    }
    cudaError_t e = cudaMalloc(p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        *p = NULL;
        return gv_fail(GV_ERR_NOMEM, "comm staging: cudaMalloc of %zu bytes: %s", bytes,
                       cudaGetErrorString(e));
    }
    return GV_OK;
}

void gv_mem_free(void *p, int device) {
    if (!p) return;
    if (device)
        cudaFree(p);
    else
        free(p);
}

gv_status gv_mem_copy(void *dst, const void *src, size_t bytes) {
    if (!bytes) return GV_OK;
    if (gv_mem_kind_of(dst) == GV_MEM_HOST && gv_mem_kind_of(src) == GV_MEM_HOST) {
        memmove(dst, src, bytes); /* no CUDA call: the cpu backend of a cuda build may have no driver */
        return GV_OK;
    }
    cudaError_t e = cudaMemcpy(dst, src, bytes, cudaMemcpyDefault);
    if (e != cudaSuccess)
        return gv_fail(GV_ERR_BACKEND, "comm staging: copy of %zu bytes: %s", bytes, cudaGetErrorString(e));
    return GV_OK;
}

gv_status gv_mem_device_sync(void) {
    if (!gv_cu_ptr_attr()) return GV_OK;
    cudaError_t e = cudaDeviceSynchronize();
    if (e != cudaSuccess)
        return gv_fail(GV_ERR_BACKEND, "comm staging: device sync: %s", cudaGetErrorString(e));
    return GV_OK;
}

#else /* host only */
#include <string.h>

gv_mem_kind gv_mem_kind_of(const void *p) {
    (void)p;
    return GV_MEM_HOST;
}

gv_status gv_mem_alloc(void **p, size_t bytes, int device) {
    *p = NULL;
    if (device) return gv_fail(GV_ERR_UNSUPPORTED, "comm staging: device memory without CUDA in the build");
    *p = malloc(bytes ? bytes : 1);
    return *p ? GV_OK : gv_fail(GV_ERR_NOMEM, "comm staging: out of host memory (%zu bytes)", bytes);
}

void gv_mem_free(void *p, int device) {
    (void)device;
    free(p);
}

gv_status gv_mem_copy(void *dst, const void *src, size_t bytes) {
    memmove(dst, src, bytes);
    return GV_OK;
}

gv_status gv_mem_device_sync(void) {
    return GV_OK;
}
#endif
