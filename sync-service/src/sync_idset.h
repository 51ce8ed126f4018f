/* A compact exact set of legacy user ids, used to count duplicates in a stream.
 *
 * A duplicate is a valid record repeating the legacy id of an earlier valid record of the same
 * stream attempt (a legacy user keeps its id; a repeat is a newer version of the user). Counting
 * them exactly needs every id seen so far; a hash set of 64-bit keys would cost ~16 bytes per
 * record and make the importer's memory grow with N. Legacy ids are dense integers, so this is a
 * two-level bitmap in the style of roaring bitmaps: ids are grouped by their high 48 bits into
 * chunks of 65,536; a chunk holds a sorted array of 16-bit low halves until it has 4,096 of them,
 * then an 8 KiB bitmap. A million dense ids take ~128 KiB; sparse ids at most ~2 bytes each plus
 * a small per-chunk header.
 *
 * Ownership: the set owns everything it allocates (idset_free). Not thread-safe. */
#ifndef SYNC_IDSET_H
#define SYNC_IDSET_H

#include <stddef.h>
#include <stdint.h>

struct sync_idset;

/* NULL when out of memory. */
struct sync_idset *idset_new(void);
void idset_free(struct sync_idset *s);
/* 1 when id was added, 0 when already present, -1 when out of memory (the set is unchanged). */
int idset_add(struct sync_idset *s, uint64_t id);
/* 1 when present, 0 otherwise. */
int idset_contains(const struct sync_idset *s, uint64_t id);
/* Empties the set and releases its chunks. */
void idset_clear(struct sync_idset *s);
/* Ids in the set, and bytes currently allocated for them. */
uint64_t idset_count(const struct sync_idset *s);
size_t idset_bytes(const struct sync_idset *s);

#endif
