// SHA-256 (FIPS 180-4) compression with the x86 SHA extensions.
//
// The instructions keep the working variables as two vectors, "ABEF" and "CDGH" (lane 3 down to
// lane 0: A B E F and C D G H). sha256rnds2(cdgh, abef, wk) runs two rounds with the two round
// constants + schedule words in the low lanes of wk and returns the new ABEF; the old ABEF is
// then the new CDGH, so four rounds are two calls with the roles swapped. The schedule for rounds
// 16..63, four words at a time (group j holds W[4j..4j+3]):
//   sha256msg1(w[j-4], w[j-3])          -> W[t-16] + s0(W[t-15])
//   + alignr(w[j-1], w[j-2], 4 bytes)   -> + W[t-7]
//   sha256msg2(that, w[j-1])            -> + s1(W[t-2]), the last two lanes from the first two.
#include "csha256.h"

// FIPS 180-4 section 4.2.2 (the first 32 bits of the fractional parts of the cube roots of the
// first 64 primes); the Swift code uses this table too.
const uint32_t csha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>

int csha256_has_shani(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int ssse3 = (c >> 9) & 1, sse41 = (c >> 19) & 1;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    int sha = (b >> 29) & 1;
    return ssse3 && sse41 && sha;
}


__attribute__((target("sha,sse4.1,ssse3")))
void csha256_shani_blocks(uint32_t state[8], const uint8_t *data, size_t blocks) {
    // Big-endian message words: reverse the bytes of each 32-bit lane.
    const __m128i swap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    __m128i dcba = _mm_loadu_si128((const __m128i *)&state[0]);   // lanes a b c d (0..3)
    __m128i hgfe = _mm_loadu_si128((const __m128i *)&state[4]);   // lanes e f g h
    __m128i badc = _mm_shuffle_epi32(dcba, 0xB1);                  // lanes b a d c
    __m128i efgh = _mm_shuffle_epi32(hgfe, 0x1B);                  // lanes h g f e
    __m128i abef = _mm_alignr_epi8(badc, efgh, 8);                 // lanes f e b a
    __m128i cdgh = _mm_blend_epi16(efgh, badc, 0xF0);              // lanes h g d c

    for (size_t blk = 0; blk < blocks; blk++, data += 64) {
        const __m128i abef0 = abef, cdgh0 = cdgh;
        __m128i w[16];
        for (int j = 0; j < 4; j++) w[j] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 16 * j)), swap);
        for (int j = 4; j < 16; j++) {
            __m128i m = _mm_sha256msg1_epu32(w[j - 4], w[j - 3]);
            m = _mm_add_epi32(m, _mm_alignr_epi8(w[j - 1], w[j - 2], 4));
            w[j] = _mm_sha256msg2_epu32(m, w[j - 1]);
        }
        for (int j = 0; j < 16; j++) {
            __m128i wk = _mm_add_epi32(w[j], _mm_loadu_si128((const __m128i *)&csha256_k[4 * j]));
            cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);      // rounds 4j, 4j+1: new ABEF in cdgh
            wk = _mm_shuffle_epi32(wk, 0x0E);                  // lanes 2, 3 down
            abef = _mm_sha256rnds2_epu32(abef, cdgh, wk);      // rounds 4j+2, 4j+3
        }
        abef = _mm_add_epi32(abef, abef0);
        cdgh = _mm_add_epi32(cdgh, cdgh0);
    }

    __m128i feba = _mm_shuffle_epi32(abef, 0x1B);                  // lanes a b e f
    __m128i ghcd = _mm_shuffle_epi32(cdgh, 0xB1);                  // lanes g h c d
    _mm_storeu_si128((__m128i *)&state[0], _mm_blend_epi16(feba, ghcd, 0xF0)); // a b c d
    _mm_storeu_si128((__m128i *)&state[4], _mm_alignr_epi8(ghcd, feba, 8));    // e f g h
}

#else
int csha256_has_shani(void) { return 0; }
void csha256_shani_blocks(uint32_t state[8], const uint8_t *data, size_t blocks) { (void)state; (void)data; (void)blocks; }
#endif
