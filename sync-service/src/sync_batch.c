/* Batch payload encoding and decoding (see sync_batch.h). */
#include "sync_batch.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sync_batch_init(struct sync_batch *b) {
    memset(b, 0, sizeof *b);
    svc_buf_init(&b->buf);
    svc_buf_init(&b->pos);
    sync_batch_reset(b);
}

void sync_batch_free(struct sync_batch *b) {
    svc_buf_free(&b->buf);
    svc_buf_free(&b->pos);
}

void sync_batch_reset(struct sync_batch *b) {
    svc_buf_reset(&b->buf);
    svc_buf_reset(&b->pos);
    /* a failed reserve sets buf.oom, which sync_batch_finish reports */
    if (svc_buf_reserve(&b->buf, SYNC_BATCH_HEADER_ROOM)) {
        memset(b->buf.data, ' ', SYNC_BATCH_HEADER_ROOM);
        b->buf.len = SYNC_BATCH_HEADER_ROOM;
        b->buf.data[b->buf.len] = '\0';
    }
    b->count = 0;
    b->run_len = 0;
    b->payload_off = 0;
    b->digest = 0;
    b->finished = false;
}

static void close_run(struct sync_batch *b) {
    if (b->run_len == 0) return;
    char tmp[48];
    int n = snprintf(tmp, sizeof tmp, "%s%" PRIu64 "+%" PRIu64, b->pos.len ? "," : "", b->run_start, b->run_len);
    svc_buf_append(&b->pos, tmp, (size_t)n);
    b->run_len = 0;
}

void sync_batch_add(struct sync_batch *b, const struct sync_record *r, uint64_t pos) {
    if (b->count == 0) b->first_position = pos;
    sync_record_append_tsv(&b->buf, r);
    if (b->run_len > 0 && pos == b->run_start + b->run_len) {
        b->run_len++;
    } else {
        close_run(b);
        b->run_start = pos;
        b->run_len = 1;
    }
    b->count++;
}

size_t sync_batch_body_bytes(const struct sync_batch *b) {
    return b->buf.len > SYNC_BATCH_HEADER_ROOM ? b->buf.len - SYNC_BATCH_HEADER_ROOM : 0;
}

static inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

uint64_t sync_digest(const void *data, size_t len, uint64_t seed) {
    const unsigned char *p = data;
    const uint64_t k1 = 0x9E3779B97F4A7C15ull, k2 = 0xC2B2AE3D27D4EB4Full;
    uint64_t h = seed ^ (len * k2);
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = rotl(h ^ (w * k2), 31) * k1;
        p += 8;
        len -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, p, len);
    h = rotl(h ^ (w * k2), 31) * k1;
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDull;
    h ^= h >> 33;
    h *= 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 33;
    return h;
}

int sync_batch_finish(struct sync_batch *b, const char *run_id, uint32_t seq, const char *cid) {
    if (b->finished) return 0;
    close_run(b);
    if (b->buf.oom || b->pos.oom || !b->pos.data) return -1;
    size_t body_len = b->buf.len - SYNC_BATCH_HEADER_ROOM;
    /* positions follow the body in the same buffer */
    svc_buf_append(&b->buf, b->pos.data, b->pos.len);
    if (b->buf.oom) return -1;
    const char *body = b->buf.data + SYNC_BATCH_HEADER_ROOM;
    b->digest = sync_digest(body, body_len + b->pos.len, 0x5359);
    char hdr[SYNC_BATCH_HEADER_ROOM + 1];
    int n = snprintf(hdr, sizeof hdr, "SB2 %s %" PRIu32 " %" PRIu32 " %016" PRIx64 " %zu %zu %s\n", run_id, seq,
                     b->count, b->digest, body_len, b->pos.len, cid);
    if (n < 0 || (size_t)n > SYNC_BATCH_HEADER_ROOM) return -1;
    b->payload_off = SYNC_BATCH_HEADER_ROOM - (size_t)n;
    memcpy(b->buf.data + b->payload_off, hdr, (size_t)n);
    b->finished = true;
    return 0;
}

const char *sync_batch_payload(const struct sync_batch *b, size_t *len) {
    *len = b->buf.len - b->payload_off;
    return b->buf.data + b->payload_off;
}

/* Reads an unsigned decimal field ended by a space; advances *p. */
static int read_u64(const char **p, const char *end, uint64_t *out, int base) {
    const char *s = *p;
    uint64_t v = 0;
    int nd = 0;
    while (s < end && *s != ' ') {
        int d;
        if (*s >= '0' && *s <= '9') d = *s - '0';
        else if (base == 16 && *s >= 'a' && *s <= 'f') d = *s - 'a' + 10;
        else return -1;
        if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base) return -1;
        v = v * (uint64_t)base + (uint64_t)d;
        s++;
        nd++;
    }
    if (nd == 0 || s >= end) return -1;
    *out = v;
    *p = s + 1;
    return 0;
}

int sync_batch_decode(const void *payload, size_t len, struct sync_batch_view *v) {
    const char *p = payload, *end = p + len;
    memset(v, 0, sizeof *v);
    const char *nl = memchr(p, '\n', len < SYNC_BATCH_HEADER_ROOM ? len : SYNC_BATCH_HEADER_ROOM);
    if (!nl || len < 4) return -1;
    if (!memcmp(p, "SB2 ", 4)) v->content_type = SYNC_BATCH_TSV;
    else if (!memcmp(p, "SB1 ", 4)) v->content_type = SYNC_BATCH_JSON;   /* queued before the TSV form */
    else return -1;
    p += 4;
    if (nl - p < SVC_UUID_LEN + 1 || p[SVC_UUID_LEN] != ' ') return -1;
    memcpy(v->run_id, p, SVC_UUID_LEN);
    v->run_id[SVC_UUID_LEN] = 0;
    if (!svc_uuid_is_valid(v->run_id)) return -1;
    p += SVC_UUID_LEN + 1;
    uint64_t seq, count, digest, body_len, pos_len;
    if (read_u64(&p, nl, &seq, 10) || read_u64(&p, nl, &count, 10) || read_u64(&p, nl, &digest, 16) ||
        read_u64(&p, nl, &body_len, 10) || read_u64(&p, nl, &pos_len, 10))
        return -1;
    if (seq > UINT32_MAX || count == 0 || count > UINT32_MAX) return -1;
    size_t cid_len = (size_t)(nl - p);
    if (cid_len == 0 || cid_len > SVC_CID_MAX) return -1;
    memcpy(v->cid, p, cid_len);
    v->cid[cid_len] = 0;
    if (!svc_cid_is_sane(v->cid)) return -1;
    const char *body = nl + 1;
    if ((uint64_t)(end - body) != body_len + pos_len) return -1;
    if (sync_digest(body, (size_t)(body_len + pos_len), 0x5359) != digest) return -1;
    v->seq = (uint32_t)seq;
    v->count = (uint32_t)count;
    v->digest = digest;
    snprintf(v->digest_hex, sizeof v->digest_hex, "%016" PRIx64, digest);
    v->body = body;
    v->body_len = (size_t)body_len;
    v->positions = body + body_len;
    v->positions_len = (size_t)pos_len;
    return 0;
}

int64_t sync_batch_position(const struct sync_batch_view *v, uint32_t index) {
    const char *p = v->positions, *end = p + v->positions_len;
    uint64_t seen = 0;
    while (p < end) {
        uint64_t start = 0, n = 0;
        while (p < end && *p >= '0' && *p <= '9') start = start * 10 + (uint64_t)(*p++ - '0');
        if (p >= end || *p != '+') return -1;
        p++;
        while (p < end && *p >= '0' && *p <= '9') n = n * 10 + (uint64_t)(*p++ - '0');
        if (index < seen + n) return (int64_t)(start + (index - seen));
        seen += n;
        if (p < end) {
            if (*p != ',') return -1;
            p++;
        }
    }
    return -1;
}
