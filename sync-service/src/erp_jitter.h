/* When, within a slot's spread window, a tenant's scheduled job starts: a deterministic, even
 * offset, so 1,000 tenants do not all call their ERPs (and our database) in the same minute.
 *
 * The offset is a hash of the tenant's creation sequence number (sync.tenants.seq): Fibonacci
 * hashing, u = frac(seq × (√5 − 1) / 2), then offset = floor(u × (window / step + 1)) × step,
 * at most the window. The same tenant gets the same offset on every instance and after every
 * restart (a pure function of stored data), and the offsets of consecutive sequence numbers are
 * a golden-ratio sequence, which fills an interval more evenly than any random choice can: 1,000
 * tenants over a one-hour window put at most 18 starts in any minute (1.08× the average of 16.7),
 * where hashing the tenant's UUID (uniform random offsets) puts ~29 (1.7×) in its busiest one.
 * Tenants deleted or made inactive leave gaps, so the spread is as even as the remaining set
 * allows.
 *
 * Pure functions, thread-safe. */
#ifndef ERP_JITTER_H
#define ERP_JITTER_H

#include <stdint.h>

/* Offset in [0, window_ms], a multiple of step_ms (step_ms < 1 means 1; window_ms < 1: 0). */
int64_t erp_jitter_offset_ms(int64_t seq, int64_t window_ms, int64_t step_ms);

#endif
