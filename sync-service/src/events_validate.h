/* Validation of one event of POST /api/events and /api/events/batch: JSON in, a checked record
 * out, or the reasons it is refused. No HTTP, no I/O.
 *
 * Rules (docs/openapi.yaml, Event): eventType one of events_type_names; eventData a JSON object
 * of at most EVENTS_DATA_MAX bytes as compact JSON (absent or null: {}); sessionId 1..128
 * characters, required; userId 1..128 characters, default the token's subject, another user's
 * only with an admin or service token (else SVC_FORBIDDEN); eventId a UUID (absent: a UUIDv7 is
 * made here); occurredAt RFC 3339 with a time zone, at most 24 h ahead and not older than the
 * retention window (its UTC day must be one of the last retention_days days; absent: the time of
 * receipt). Strings may not hold control characters (C0, DEL, C1: svc/utf8.h), so no field ever
 * carries a tab or a line break (which keeps the COPY line simple and logs safe). Unknown fields
 * are refused.
 *
 * Times are kept to the millisecond, the precision of every time the platform answers with.
 *
 * Ownership: rec borrows its strings from the event object and the principal (both must outlive
 * it), except data, which rec owns (events_rec_clear frees it). *fields is a new object the caller
 * owns. */
#ifndef EVENTS_VALIDATE_H
#define EVENTS_VALIDATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "events.h"
#include "svc/auth.h"
#include "svc/cid.h"
#include "svc/status.h"

struct event_rec {
    char id[SVC_UUID_LEN + 1];   /* lower case */
    bool client_id;              /* the client chose the id: a retry may repeat it */
    bool client_time;            /* occurredAt came from the client */
    int type;                    /* index into events_type_names */
    const char *user_id;
    const char *session_id;
    char *data;                  /* compact JSON of eventData, NUL-terminated; owned */
    size_t data_len;
    int64_t occurred_ms;         /* Unix time, ms */
    int64_t received_ms;
};

struct events_rules {
    int64_t now_ms;              /* the time of receipt (Unix ms) */
    long retention_days;
    size_t max_data_bytes;       /* EVENTS_DATA_MAX */
};

/* SVC_OK: rec filled (events_rec_clear it). SVC_UNPROCESSABLE: *fields = {"<field>": reason, …}.
 * SVC_FORBIDDEN: userId names another user and who may not do that. SVC_INTERNAL: out of memory. */
svc_status events_validate(const json_t *ev, const struct svc_principal *who, const struct events_rules *rules,
                           struct event_rec *rec, json_t **fields);
void events_rec_clear(struct event_rec *rec);

/* RFC 3339 date-time ("2026-12-07T13:14:26.123Z", "…+02:00"; T/Z in either case; any number of
 * fraction digits, kept to the millisecond) → Unix ms, years 1970..9999. False when malformed. */
bool events_parse_time(const char *s, int64_t *ms);
/* Days since 1970-01-01 of a Unix ms time (UTC). */
int64_t events_day_of(int64_t ms);

#endif
