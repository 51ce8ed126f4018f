/* Event ingestion (POST /api/events): the names every events_* file shares — the event types,
 * the settings, and the Redis keys of the stream.
 *
 * The pipeline in one paragraph (docs/architecture.md, "sync-service: event ingestion", has the
 * long form): a handler validates an event (events_validate.c), encodes it once as the line
 * PostgreSQL's COPY will read (events_codec.c) and appends it to one Redis stream
 * (events_stream.c); the 202 goes out only after Redis answered the XADD. Consumer threads in
 * every instance read the stream through one consumer group, buffer lines until EVENTS_BATCH_MAX
 * events or EVENTS_FLUSH_MS (events_batcher.c), write the batch with one COPY
 * (events_repo.c, events_writer.c: retries, split on failure, dead letters) and acknowledge the
 * entries only after the COMMIT (events_consumer.c).
 *
 * Settings are read once at start (main.c) and read-only afterwards. */
#ifndef EVENTS_H
#define EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "svc/backoff.h"

/* The event types, in the order of events_type_names (an index is stored nowhere: the table
 * holds the name). */
enum { EVENTS_NTYPES = 7 };
extern const char *const events_type_names[EVENTS_NTYPES];
/* The index of a type name, or -1. */
int events_type_index(const char *name);

/* Redis keys. They share the hash tag {events}, so they sit in one Redis Cluster slot. */
#define EVENTS_STREAM_KEY "ev:{events}:stream"      /* accepted, not yet written events */
#define EVENTS_GROUP "writers"                      /* the consumer group of every instance */
#define EVENTS_STATS_KEY "ev:{events}:stats"        /* hash of counters (events_stats.c) */
#define EVENTS_RATE_KEY_PREFIX "ev:{events}:acc:"   /* + Unix second: events accepted then */
#define EVENTS_RATE_KEY_TTL_S 120

#define EVENTS_BATCH_CAP 500          /* events in one POST /api/events/batch */
#define EVENTS_BODY_MAX (64 * 1024)   /* bytes of one POST /api/events */
#define EVENTS_BATCH_BODY_MAX (1024 * 1024)
#define EVENTS_DATA_MAX (16 * 1024)   /* bytes of eventData, compact JSON */
#define EVENTS_TEXT_MAX 128           /* characters of sessionId and userId */
#define EVENTS_MAX_FUTURE_MS (24LL * 3600 * 1000)

struct events_settings {
    long batch_max;            /* EVENTS_BATCH_MAX: a batch is written at this many events */
    long flush_ms;             /* EVENTS_FLUSH_MS: ... or this long after its first event */
    long read_gather_ms;       /* EVENTS_READ_GATHER_MS: pause after a read that left the batch open */
    long max_retries;          /* EVENTS_MAX_RETRIES: data errors retried before splitting */
    struct svc_backoff_policy retry_backoff;  /* EVENTS_RETRY_BASE_MS / EVENTS_RETRY_CAP_MS */
    long consumers;            /* EVENTS_CONSUMERS: consumer threads per instance (0: none) */
    long visibility_ms;        /* EVENTS_VISIBILITY_MS: a dead consumer's events are taken over */
    long retention_days;       /* EVENTS_RETENTION_DAYS */
    long partitions_ahead;     /* EVENTS_PARTITIONS_AHEAD_DAYS */
    long maintenance_s;        /* EVENTS_MAINTENANCE_INTERVAL_S: partitions created / dropped */
    long queue_high_water;     /* EVENTS_QUEUE_HIGH_WATER: stream length that answers 503 */
    long long memory_high_water; /* EVENTS_REDIS_MEMORY_HIGH_WATER: used_memory bytes (0: 90 % of
                                  * maxmemory when Redis has one, else off) */
    long busy_retry_after_s;   /* EVENTS_BUSY_RETRY_AFTER_S: Retry-After over a high-water mark */
    long rate_per_s;           /* EVENTS_RATE_PER_S: per client (token subject), per instance */
    long rate_burst;           /* EVENTS_RATE_BURST */
    long write_timeout_ms;     /* EVENTS_WRITE_TIMEOUT_MS: statement timeout of the writers */
    long append_batch_max;     /* EVENTS_APPEND_BATCH_MAX: requests combined into one Redis pipeline */
    long append_leaders;       /* EVENTS_APPEND_LEADERS: such pipelines in flight at once */
};

#endif
