#include "gv/rng.h"

#include <math.h>

uint64_t gv_hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static uint64_t gv_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t gv_rng_u64(uint64_t seed, uint64_t stream, uint64_t index) {
    /* Two rounds of mixing keep nearby (stream, index) pairs uncorrelated. */
    uint64_t k = gv_mix64(seed * 0x9e3779b97f4a7c15ull + stream);
    return gv_mix64(k + (index + 1) * 0x9e3779b97f4a7c15ull);
}

float gv_rng_uniform(uint64_t seed, uint64_t stream, uint64_t index) {
    return (float)(gv_rng_u64(seed, stream, index) >> 40) * (1.0f / 16777216.0f);
}

float gv_rng_normal(uint64_t seed, uint64_t stream, uint64_t index) {
    uint64_t r = gv_rng_u64(seed, stream, index);
    /* u1 in (0,1], u2 in [0,1) from the two halves of one draw. */
    double u1 = ((double)(r >> 32) + 1.0) / 4294967296.0;
    double u2 = (double)(r & 0xffffffffu) / 4294967296.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void gv_rng_fill_normal(float *out, int64_t n, uint64_t seed, const char *name, int64_t offset, float std) {
    uint64_t stream = gv_hash_str(name);
    for (int64_t i = 0; i < n; i++) out[i] = std * gv_rng_normal(seed, stream, (uint64_t)(offset + i));
}
