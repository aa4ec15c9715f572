// SHA-256 block compression with the x86 SHA extensions (SHA-NI), chosen at run time.
// Used by Editor's SHA256 for checksums of whole checkpoints; its Swift code stays the reference
// and the fallback on CPUs without the extensions.
#ifndef CSHA256_H
#define CSHA256_H
#include <stddef.h>
#include <stdint.h>

/// The 64 round constants K of SHA-256.
extern const uint32_t csha256_k[64];

/// 1 when this CPU has the SHA extensions (and SSSE3/SSE4.1), else 0.
int csha256_has_shani(void);

/// Compresses `blocks` 64-byte blocks of `data` into `state` (the eight 32-bit words h0..h7).
/// Call only when csha256_has_shani() returned 1.
void csha256_shani_blocks(uint32_t state[8], const uint8_t *data, size_t blocks);

#endif
