/* The INT8 GEMM of the CPU engine on x86 CPUs with AVX2 but no VNNI (Zen 1-3, Haswell ..
 * Skylake client): C = A B^T with u8 activations, s8 weights and exact int32 sums.
 *
 * Why our own: there the only 8-bit multiply is vpmaddubsw (u8 x s8, adjacent products added
 * in int16 with saturation), then vpmaddwd by 1 widens the pairs to int32. That is 32
 * multiply-adds per two multiplier-pipe instructions against 16 for an fp32 FMA: twice the fp32
 * rate. oneDNN 2.6's AVX2 s8 GEMM reached about half of it on the all-MiniLM-L6-v2 shapes
 * (measured on a 2-core Zen 3: 193 G ops/s against 136 GFLOP/s for its fp32 GEMM), which left
 * INT8 1.4x faster than fp32 in the GEMMs; this kernel is the same instruction sequence in a
 * register-blocked loop (measured: README, "INT8 and FP8 quantization").
 *
 * The int16 pair sums are exact only when |a0 b0 + a1 b1| <= 32767: with a in 0..255 the
 * weights must stay within +-63 (7 bits), as the engine quantizes them for this ISA (and as
 * oneDNN's own guide advises for AVX2 int8). With VNNI (vpdpbusd sums in int32) the engine
 * uses oneDNN instead. */
#ifndef AKE_ENGINE_CPU_GEMM_U8S8_H
#define AKE_ENGINE_CPU_GEMM_U8S8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* B [n, k] (a Linear layer's s8 weight, row-major) packed for the kernel: blocks of 16
 * output channels, each [ceil(k/4)][16][4] bytes (4 consecutive k of one channel side by
 * side), zero-padded in n and k. */
typedef struct {
    int32_t n, k;       /* logical shape */
    int32_t k4;         /* ceil(k / 4) */
    int8_t *packed;     /* owned: [ceil(n/16)][k4][16][4] */
} ake_u8s8_weights;

/* Whether this build and CPU run the kernel (compiled with AVX2 and the CPU has it). */
bool ake_u8s8_available(void);

/* Packs b [n, k] (|b| <= 63, see above). Returns false when out of memory. Free with
 * ake_u8s8_free. */
bool ake_u8s8_pack(ake_u8s8_weights *w, const int8_t *b, int32_t n, int32_t k);
/* Bytes of w's packed weights (0 when none). */
size_t ake_u8s8_bytes(const ake_u8s8_weights *w);
void ake_u8s8_free(ake_u8s8_weights *w);

/* C[m, c] = sum_k A[m, k] B[c, k] for m < M, c < n, exact in int32. A: [M, k] u8 row-major;
 * its rows may be read up to 3 bytes past k (the last row too: callers allocate that slack),
 * those bytes meet zero weights. C: [M, n] int32 row-major. Threads: the caller's OpenMP team,
 * over tasks of 64 rows x 64 output channels. */
void ake_u8s8_gemm(const ake_u8s8_weights *w, const uint8_t *A, int32_t M, int32_t *C);

#endif
