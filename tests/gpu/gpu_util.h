/* Helpers shared by the GPU tests (plain C over the CUDA runtime API). */
#ifndef AKE_TESTS_GPU_UTIL_H
#define AKE_TESTS_GPU_UTIL_H

#include <cuda_runtime_api.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/half.h"
#include "model/safetensors.h"

#define GPU_CHECK(x)                                                                                 \
    do {                                                                                             \
        cudaError_t e_ = (x);                                                                        \
        if (e_ != cudaSuccess) {                                                                     \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_));      \
            exit(1);                                                                                 \
        }                                                                                            \
    } while (0)

/* Fresh inputs every run: seeded from the clock unless AKE_TEST_SEED is set (printed, so a
 * failure can be replayed). */
static uint64_t g_rng;
static inline void rng_seed_from_env(void) {
    const char *s = getenv("AKE_TEST_SEED");
    g_rng = s && *s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL) * 2654435761u;
    printf("seed %llu (AKE_TEST_SEED to replay)\n", (unsigned long long)g_rng);
}
static inline uint64_t rng_u64(void) {
    uint64_t z = (g_rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static inline float rng_uniform(float lo, float hi) { return lo + (hi - lo) * (float)((rng_u64() >> 40) * 0x1p-24); }
static inline int32_t rng_int(int32_t lo, int32_t hi) { return lo + (int32_t)(rng_u64() % (uint64_t)(hi - lo + 1)); }

/* 16-bit storage of dt. */
static inline uint16_t to16(float v, ake_dtype dt) { return dt == AKE_DT_F16 ? ake_f32_to_f16(v) : ake_f32_to_bf16(v); }
static inline float from16(uint16_t h, ake_dtype dt) { return dt == AKE_DT_F16 ? ake_f16_to_f32(h) : ake_bf16_to_f32(h); }
static inline const char *dt_name(ake_dtype dt) { return dt == AKE_DT_F16 ? "fp16" : "bf16"; }

/* Random values of dt in [lo, hi): h16 gets the bits, ref the exact float values they hold. */
static inline void fill16(uint16_t *h16, float *ref, size_t n, float lo, float hi, ake_dtype dt) {
    for (size_t i = 0; i < n; i++) {
        h16[i] = to16(rng_uniform(lo, hi), dt);
        ref[i] = from16(h16[i], dt);
    }
}

static inline void *dev_copy(const void *h, size_t bytes) {
    void *d = NULL;
    GPU_CHECK(cudaMalloc(&d, bytes ? bytes : 16));
    if (bytes) GPU_CHECK(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice));
    return d;
}
static inline void *dev_poisoned(size_t bytes) { /* 0xFF bytes: NaN in fp32, fp16 and bf16 */
    void *d = NULL;
    GPU_CHECK(cudaMalloc(&d, bytes ? bytes : 16));
    GPU_CHECK(cudaMemset(d, 0xFF, bytes ? bytes : 16));
    return d;
}

#endif
