/* A batch of valid legacy records: built once by the stream reader, stored as one job payload on
 * the "user-sync-batch" queue, and sent as is to customers-service by a batch worker.
 *
 * Payload layout (text, one copy of the records only):
 *   "SB2 <run-id> <seq> <count> <digest> <body-len> <positions-len> <correlation-id>\n"
 *   <body>       one TSV line per record — exactly the bulk-upsert request body in its
 *                text/tab-separated-values form, so the worker neither parses nor re-encodes
 *                2000 records: it slices the body out and POSTs it. TSV rather than JSON because
 *                customers-service reads it with a split and a copy instead of a JSON parser
 *                building a tree (the JSON parse was a large share of the import's CPU
 *                outside PostgreSQL, bench/README.md). Payloads written as "SB1" (a JSON
 *                body) by an earlier version still decode and are sent as JSON.
 *   <positions>  stream positions of the records, as runs "start+len,start+len,…" (consecutive
 *                positions collapse into one run; only invalid records break a run)
 * The header is written last into room reserved in front of the body, so finishing a batch moves
 * no record bytes. The digest (64-bit, hex) covers body and positions: the same batch read again
 * from a restarted stream has the same digest, which makes its job id and its sync.sync_batches
 * row the same, so it is sent and counted once.
 *
 * Ownership: a struct sync_batch owns its buffers (sync_batch_free); sync_batch_payload points
 * into them until the next add/reset. A struct sync_batch_view points into the payload it was
 * decoded from and is valid as long as that payload is. Not thread-safe. */
#ifndef SYNC_BATCH_H
#define SYNC_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "svc/buf.h"
#include "svc/cid.h"
#include "sync_record.h"

#define SYNC_BATCH_HEADER_ROOM 320

struct sync_batch {
    struct svc_buf buf;          /* header room + body */
    struct svc_buf pos;          /* positions text */
    uint32_t count;
    uint64_t first_position;
    uint64_t run_start, run_len; /* the open run of consecutive positions */
    size_t payload_off;          /* set by sync_batch_finish */
    uint64_t digest;
    bool finished;
};

void sync_batch_init(struct sync_batch *b);
void sync_batch_free(struct sync_batch *b);
/* Empties the batch, keeping its memory for the next one. */
void sync_batch_reset(struct sync_batch *b);
/* Appends a valid record read at stream position pos (positions must increase). */
void sync_batch_add(struct sync_batch *b, const struct sync_record *r, uint64_t pos);
/* Bytes of the body so far (to cut a batch by size as well as by count). */
size_t sync_batch_body_bytes(const struct sync_batch *b);
/* Closes the body and writes the header. run_id is a UUID, cid a sane correlation id.
 * Returns 0, or -1 (out of memory, or a field that does not fit). */
int sync_batch_finish(struct sync_batch *b, const char *run_id, uint32_t seq, const char *cid);
/* The payload of a finished batch. */
const char *sync_batch_payload(const struct sync_batch *b, size_t *len);

#define SYNC_BATCH_TSV "text/tab-separated-values"
#define SYNC_BATCH_JSON "application/json"

struct sync_batch_view {
    const char *content_type;    /* SYNC_BATCH_TSV or SYNC_BATCH_JSON: the body's media type */
    char run_id[SVC_UUID_LEN + 1];
    uint32_t seq;
    uint32_t count;
    uint64_t digest;
    char digest_hex[17];
    char cid[SVC_CID_MAX + 1];
    const char *body;
    size_t body_len;
    const char *positions;
    size_t positions_len;
};

/* Parses and checks a payload (header fields, lengths, digest). Returns 0, or -1 when malformed. */
int sync_batch_decode(const void *payload, size_t len, struct sync_batch_view *v);
/* Stream position of the index-th record of the batch, or -1 when out of range. */
int64_t sync_batch_position(const struct sync_batch_view *v, uint32_t index);
/* The 64-bit digest used above. */
uint64_t sync_digest(const void *data, size_t len, uint64_t seed);

#endif
