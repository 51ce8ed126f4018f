/* Two-level id set (see sync_idset.h): an open-addressing table of chunks keyed by id >> 16;
 * each chunk is a sorted uint16 array (<= ARRAY_MAX entries) or a 65,536-bit bitmap. */
#include "sync_idset.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define ARRAY_MAX 4096
#define BITMAP_WORDS (65536 / 64)

struct chunk {
    uint64_t key;        /* id >> 16 */
    uint16_t *arr;       /* sorted, when bits == NULL */
    uint32_t n;          /* entries */
    uint32_t cap;
    uint64_t *bits;
    bool used;
};

struct sync_idset {
    struct chunk *slots;
    size_t nslots;       /* power of two */
    size_t nchunks;
    uint64_t count;
    size_t bytes;
};

struct sync_idset *idset_new(void) {
    struct sync_idset *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->nslots = 64;
    s->slots = calloc(s->nslots, sizeof *s->slots);
    if (!s->slots) {
        free(s);
        return NULL;
    }
    s->bytes = s->nslots * sizeof *s->slots;
    return s;
}

static void chunk_release(struct chunk *c) {
    free(c->arr);
    free(c->bits);
    memset(c, 0, sizeof *c);
}

void idset_clear(struct sync_idset *s) {
    if (!s) return;
    for (size_t i = 0; i < s->nslots; i++)
        if (s->slots[i].used) chunk_release(&s->slots[i]);
    s->nchunks = 0;
    s->count = 0;
    s->bytes = s->nslots * sizeof *s->slots;
}

void idset_free(struct sync_idset *s) {
    if (!s) return;
    idset_clear(s);
    free(s->slots);
    free(s);
}

static size_t slot_of(uint64_t key, size_t nslots) {
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 32) & (nslots - 1);
}

static struct chunk *find(const struct sync_idset *s, uint64_t key) {
    for (size_t i = slot_of(key, s->nslots);; i = (i + 1) & (s->nslots - 1)) {
        struct chunk *c = &s->slots[i];
        if (!c->used) return NULL;
        if (c->key == key) return c;
    }
}

static int grow(struct sync_idset *s) {
    size_t n = s->nslots * 2;
    struct chunk *slots = calloc(n, sizeof *slots);
    if (!slots) return -1;
    for (size_t i = 0; i < s->nslots; i++) {
        if (!s->slots[i].used) continue;
        size_t j = slot_of(s->slots[i].key, n);
        while (slots[j].used) j = (j + 1) & (n - 1);
        slots[j] = s->slots[i];
    }
    free(s->slots);
    s->bytes += (n - s->nslots) * sizeof *slots;
    s->slots = slots;
    s->nslots = n;
    return 0;
}

static struct chunk *find_or_add(struct sync_idset *s, uint64_t key) {
    struct chunk *c = find(s, key);
    if (c) return c;
    if ((s->nchunks + 1) * 4 > s->nslots * 3 && grow(s) != 0) return NULL;
    size_t i = slot_of(key, s->nslots);
    while (s->slots[i].used) i = (i + 1) & (s->nslots - 1);
    c = &s->slots[i];
    c->used = true;
    c->key = key;
    s->nchunks++;
    return c;
}

/* Index of the first entry >= v. */
static uint32_t lower_bound(const uint16_t *a, uint32_t n, uint16_t v) {
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (a[mid] < v) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static int to_bitmap(struct sync_idset *s, struct chunk *c) {
    uint64_t *bits = calloc(BITMAP_WORDS, sizeof *bits);
    if (!bits) return -1;
    for (uint32_t i = 0; i < c->n; i++) bits[c->arr[i] >> 6] |= 1ull << (c->arr[i] & 63);
    s->bytes += BITMAP_WORDS * sizeof *bits;
    s->bytes -= c->cap * sizeof *c->arr;
    free(c->arr);
    c->arr = NULL;
    c->cap = 0;
    c->bits = bits;
    return 0;
}

int idset_add(struct sync_idset *s, uint64_t id) {
    struct chunk *c = find_or_add(s, id >> 16);
    if (!c) return -1;
    uint16_t low = (uint16_t)(id & 0xFFFF);
    if (c->bits) {
        uint64_t m = 1ull << (low & 63);
        if (c->bits[low >> 6] & m) return 0;
        c->bits[low >> 6] |= m;
        c->n++;
        s->count++;
        return 1;
    }
    uint32_t at = (c->n > 0 && c->arr[c->n - 1] < low) ? c->n : lower_bound(c->arr, c->n, low);
    if (at < c->n && c->arr[at] == low) return 0;
    if (c->n == ARRAY_MAX) {
        if (to_bitmap(s, c) != 0) return -1;
        return idset_add(s, id);
    }
    if (c->n == c->cap) {
        uint32_t cap = c->cap ? c->cap * 2 : 16;
        if (cap > ARRAY_MAX) cap = ARRAY_MAX;
        uint16_t *a = realloc(c->arr, cap * sizeof *a);
        if (!a) return -1;
        s->bytes += (cap - c->cap) * sizeof *a;
        c->arr = a;
        c->cap = cap;
    }
    memmove(c->arr + at + 1, c->arr + at, (c->n - at) * sizeof *c->arr);
    c->arr[at] = low;
    c->n++;
    s->count++;
    return 1;
}

int idset_contains(const struct sync_idset *s, uint64_t id) {
    const struct chunk *c = find(s, id >> 16);
    if (!c) return 0;
    uint16_t low = (uint16_t)(id & 0xFFFF);
    if (c->bits) return (c->bits[low >> 6] >> (low & 63)) & 1;
    uint32_t at = lower_bound(c->arr, c->n, low);
    return at < c->n && c->arr[at] == low;
}

uint64_t idset_count(const struct sync_idset *s) { return s->count; }
size_t idset_bytes(const struct sync_idset *s) { return s->bytes; }
