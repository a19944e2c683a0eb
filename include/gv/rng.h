/* Counter-based RNG: every value is a pure function of (seed, stream name, index), so any shard of any
 * plan can generate exactly its slice of the global tensor. Built on splitmix64 over a hash of the name. */
#ifndef GV_RNG_H
#define GV_RNG_H
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

uint64_t gv_hash_str(const char *s); /* FNV-1a 64 */
uint64_t gv_rng_u64(uint64_t seed, uint64_t stream, uint64_t index);
/* Uniform in [0, 1) with 24 bits. */
float gv_rng_uniform(uint64_t seed, uint64_t stream, uint64_t index);
/* Standard normal (Box-Muller on two counter draws). */
float gv_rng_normal(uint64_t seed, uint64_t stream, uint64_t index);
/* Fills out[i] = std * normal(seed, hash(name), offset + i) for i < n. */
void gv_rng_fill_normal(float *out, int64_t n, uint64_t seed, const char *name, int64_t offset, float std);

#ifdef __cplusplus
}
#endif
#endif
