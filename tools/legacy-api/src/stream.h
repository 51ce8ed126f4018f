/* The streamed GET /users body: one libmicrohttpd content-reader callback per request.
 *
 * A stream owns one fixed 64 KiB buffer (allocated once per request) that records are formatted
 * into; memory does not depend on the record count. Rate limiting sleeps inside the callback,
 * which is correct because the daemon runs one thread per connection. A drop ends the response
 * with MHD_CONTENT_READER_END_WITH_ERROR: the connection is closed without the terminating
 * zero-length chunk, right after the first half of the next record, so a client sees an
 * incomplete body, never a clean end.
 *
 * Ownership: stream_new returns a stream owned by the MHD response created from it;
 * stream_free (the response's free callback) releases it and the in-flight slot. */
#ifndef LEGACY_STREAM_H
#define LEGACY_STREAM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "knobs.h"
#include "svc/log.h"

/* State shared by all requests of one server. The atomics are the only cross-thread mutable
 * state: `aborting` is set once at shutdown, `inflight` counts /users requests being served. */
struct sim_runtime {
    atomic_bool stopping;   /* SIGTERM received: new /users requests get 503 */
    atomic_bool aborting;   /* grace period over: running streams end with an error */
    atomic_int inflight;
    struct svc_logger log;  /* read-only after start */
};

struct stream;

/* drop_at: number of complete records before the connection is cut, or UINT64_MAX for none.
 * Takes over one `inflight` slot from the caller (released by stream_free). NULL on ENOMEM. */
struct stream *stream_new(struct sim_runtime *rt, const struct sim_knobs *k, bool ndjson, uint64_t drop_at);

/* MHD_ContentReaderCallback and MHD_ContentReaderFreeCallback. */
ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max);
void stream_free(void *cls);

#endif
