/* Deterministic even spread of scheduled jobs (see erp_jitter.h). */
#include "erp_jitter.h"

#define GOLDEN 0x9E3779B97F4A7C15ULL   /* 2^64 × (√5 − 1) / 2 */

int64_t erp_jitter_offset_ms(int64_t seq, int64_t window_ms, int64_t step_ms) {
    if (window_ms < 1) return 0;
    if (step_ms < 1) step_ms = 1;
    uint64_t u = (uint64_t)seq * GOLDEN;                 /* frac(seq × φ⁻¹) in 64-bit fixed point */
    uint64_t slots = (uint64_t)(window_ms / step_ms) + 1;
    uint64_t index = (uint64_t)(((unsigned __int128)u * slots) >> 64);
    int64_t off = (int64_t)index * step_ms;
    return off > window_ms ? window_ms : off;
}
