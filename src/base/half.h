/* IEEE binary16 and bfloat16 <-> float32 conversions (scalar, exact for the
 * widening direction; round-to-nearest-even for narrowing). */
#ifndef AKE_BASE_HALF_H
#define AKE_BASE_HALF_H

#include <stdint.h>
#include <string.h>

static inline float ake_bits_to_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t ake_f32_to_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static inline float ake_bf16_to_f32(uint16_t h) { return ake_bits_to_f32((uint32_t)h << 16); }

static inline uint16_t ake_f32_to_bf16(float f) {
    uint32_t u = ake_f32_to_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline float ake_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (exp == 0x1f) return ake_bits_to_f32(sign | 0x7f800000u | (man << 13)); /* inf / NaN */
    if (exp == 0) {
        if (man == 0) return ake_bits_to_f32(sign);
        float f = (float)man * (1.0f / 16777216.0f); /* subnormal: man * 2^-24 */
        return sign ? -f : f;
    }
    return ake_bits_to_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

static inline uint16_t ake_f32_to_f16(float f) {
    uint32_t u = ake_f32_to_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00u;              /* NaN */
    if (a >= 0x477ff000u) return sign | 0x7c00u;             /* overflow (>= 65520) -> inf */
    if (a < 0x38800000u) {                                   /* below 2^-14: subnormal or zero */
        float v = ake_bits_to_f32(a) * 16777216.0f;         /* in units of 2^-24 */
        uint32_t m = (uint32_t)v;
        float rem = v - (float)m;
        if (rem > 0.5f || (rem == 0.5f && (m & 1u))) m++;
        return sign | (uint16_t)m;
    }
    uint32_t r = a + 0xfffu + ((a >> 13) & 1u);              /* round to nearest even at bit 13 */
    return sign | (uint16_t)((r - 0x38000000u) >> 13);
}

#endif
