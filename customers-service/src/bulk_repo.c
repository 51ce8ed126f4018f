/* SQL for the legacy bulk upsert; see bulk_repo.h.
 *
 * Decisions a reader would otherwise reverse-engineer:
 *  - Lookups of users by a staged row go through LATERAL (… LIMIT 1) subqueries. They cannot be
 *    flattened into a join, so each staged row costs one probe of a unique index whatever the
 *    planner thinks of a freshly filled, never analysed temp table (a hash join would read the
 *    whole users table for every batch).
 *  - One triage statement looks every staged row up once by lower(user_name) and deletes from the
 *    staging table what the upsert must not see: rows not newer than the stored user (they count
 *    as unchanged; left in, ON CONFLICT would still lock and so dirty each of their rows), and
 *    email conflicts. Only rows that will really be written are checked for email: a row loses
 *    when another stored user holds its email, or when an earlier staged row (lower request
 *    index) wants the same email, so a stale record never counts as a conflict.
 *  - Concurrent bulk upserts run side by side under a shared advisory lock: the check and the
 *    insert of two batches can then race for one email (or deadlock on each other's rows), and
 *    the loser fails with 23505/40P01. Its retry takes the lock exclusively, which waits for the
 *    running batches and keeps new ones out, so the retry sees every committed owner. Measured:
 *    an exclusive lock on every batch serialised the heavy INSERT and made two workers slower
 *    than one; emails collide across concurrent batches rarely in real imports.
 *    A registration racing us is handled the same way (23505 → exclusive retry).
 *  - The counts come from RETURNING: xmax = 0 marks a freshly inserted row, and deleted_at =
 *    now() (the transaction's start time) marks a row this statement soft-deleted, because the
 *    update keeps an earlier deleted_at. Rows the WHERE clause skipped are not rewritten at all,
 *    so re-applying a batch leaves no dead tuples. */
#include "bulk_repo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svc/cid.h"
#include "svc/copy_text.h"
#include "svc/pg.h"

#define COPY_CHUNK (256u * 1024u)

static const char SQL_STAGE[] =
    "CREATE TEMP TABLE bulk_stage ("
    " idx integer NOT NULL, user_name text NOT NULL, email text, name text NOT NULL,"
    " legacy_id bigint NOT NULL, deleted boolean NOT NULL, updated_at timestamptz NOT NULL"
    ") ON COMMIT DROP";

static const char SQL_COPY[] =
    "COPY pg_temp.bulk_stage (idx, user_name, email, name, legacy_id, deleted, updated_at) FROM STDIN";

static const char SQL_COPY_NEW[] =
    "COPY customers.users (id, user_name, email, name, source, legacy_id, source_updated_at, deleted, deleted_at)"
    " FROM STDIN";

/* Concurrent bulk upserts share the lock; a retry after a conflict takes it exclusively. */
static const char SQL_LOCK_SHARED[] = "SELECT pg_advisory_xact_lock_shared(hashtext('customers:bulk-upsert'))";
static const char SQL_LOCK_EXCLUSIVE[] = "SELECT pg_advisory_xact_lock(hashtext('customers:bulk-upsert'))";

/* Drops every staged row the upsert must not see and returns the email conflicts:
 *  - stale rows (not newer than the stored user): unchanged, and not locked by ON CONFLICT;
 *  - rows whose email another stored user holds, and rows whose email an earlier applying row
 *    of the batch claims: email_taken. */
static const char SQL_TRIAGE[] =
    "WITH s AS MATERIALIZED ("
    "  SELECT st.idx, lower(st.user_name) AS un, lower(st.email) AS em,"
    "         (cur.found IS NULL OR cur.source_updated_at IS NULL OR st.updated_at > cur.source_updated_at) AS applies"
    "  FROM pg_temp.bulk_stage st LEFT JOIN LATERAL ("
    "    SELECT u.source_updated_at, true AS found FROM customers.users u"
    "    WHERE lower(u.user_name) = lower(st.user_name) LIMIT 1) cur ON true"
    "), held AS ("
    "  SELECT s.idx FROM s CROSS JOIN LATERAL ("
    "    SELECT 1 FROM customers.users o"
    "    WHERE o.email IS NOT NULL AND lower(o.email) = s.em AND lower(o.user_name) <> s.un LIMIT 1) o"
    "  WHERE s.applies AND s.em IS NOT NULL"
    "), shared AS ("
    "  SELECT em FROM s WHERE applies AND em IS NOT NULL GROUP BY em HAVING count(*) > 1"
    "), dup AS ("
    "  SELECT idx FROM ("
    "    SELECT s.idx, row_number() OVER (PARTITION BY s.em ORDER BY s.idx) AS rn FROM s"
    "    WHERE s.applies AND s.em IN (SELECT em FROM shared) AND s.idx NOT IN (SELECT idx FROM held)) r"
    "  WHERE rn > 1"
    "), dropped AS ("
    "  SELECT idx, false AS taken FROM s WHERE NOT applies"
    "  UNION ALL SELECT idx, true FROM held"
    "  UNION ALL SELECT idx, true FROM dup"
    "), del AS ("
    "  DELETE FROM pg_temp.bulk_stage d USING dropped x WHERE d.idx = x.idx RETURNING d.idx, x.taken"
    ")"
    " SELECT idx FROM del WHERE taken ORDER BY idx";

static const char SQL_UPSERT[] =
    "INSERT INTO customers.users AS u"
    " (user_name, email, name, source, legacy_id, source_updated_at, deleted, deleted_at)"
    " SELECT s.user_name, s.email, s.name, 'legacy', s.legacy_id, s.updated_at, s.deleted,"
    "        CASE WHEN s.deleted THEN now() END"
    " FROM pg_temp.bulk_stage s"
    " ON CONFLICT ((lower(user_name))) DO UPDATE SET"
    "  email = excluded.email,"
    "  name = excluded.name,"
    "  legacy_id = excluded.legacy_id,"
    "  source_updated_at = excluded.source_updated_at,"
    "  deleted = excluded.deleted,"
    "  deleted_at = CASE WHEN NOT excluded.deleted THEN NULL WHEN u.deleted THEN u.deleted_at ELSE now() END,"
    "  updated_at = now()"
    " WHERE u.source_updated_at IS NULL OR excluded.source_updated_at > u.source_updated_at"
    " RETURNING (u.xmax = 0) AS inserted,"
    "  (u.deleted AND u.deleted_at = now()) AS newly_deleted,"
    "  CASE WHEN u.xmax <> 0 THEN u.id END AS id,"
    "  CASE WHEN u.xmax <> 0 THEN lower(u.user_name) END AS user_name_lower,"
    "  (u.password_hash IS NOT NULL) AS has_password";

void bulk_outcome_free(struct bulk_outcome *o) {
    free(o->email_taken);
    free(o->touched);
    o->email_taken = NULL;
    o->touched = NULL;
    o->n_email_taken = 0;
    o->n_touched = 0;
}

/* ---- COPY text encoding (fields escaped by svc/copy_text.h) ---- */

/* Proleptic Gregorian date from days since 1970-01-01 (era-based, exact for any int64 day). */
static void civil_from_days(int64_t z, int *y, int *m, int *d) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

static char *put_digits(char *w, int64_t v, int n) {
    for (int i = n - 1; i >= 0; i--) {
        w[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return w + n;
}

void bulk_repo_format_timestamp(int64_t us, char *out) {
    int64_t secs = us / 1000000, frac = us % 1000000;
    if (frac < 0) { frac += 1000000; secs -= 1; }
    int64_t days = secs / 86400, sod = secs % 86400;
    if (sod < 0) { sod += 86400; days -= 1; }
    int y, m, d;
    civil_from_days(days, &y, &m, &d);
    if (y < 1 || y > 9999) y = y < 1 ? 1 : 9999; /* outside the documented range: clamp, never overflow */
    char *w = put_digits(out, y, 4);
    *w++ = '-';
    w = put_digits(w, m, 2);
    *w++ = '-';
    w = put_digits(w, d, 2);
    *w++ = ' ';
    w = put_digits(w, sod / 3600, 2);
    *w++ = ':';
    w = put_digits(w, sod / 60 % 60, 2);
    *w++ = ':';
    w = put_digits(w, sod % 60, 2);
    *w++ = '.';
    w = put_digits(w, frac, 6);
    memcpy(w, "+00", 4);
}

void bulk_repo_encode_rows(struct svc_buf *b, const struct bulk_row *const *rows, size_t n) {
    char num[32], ts[32];
    for (size_t i = 0; i < n; i++) {
        const struct bulk_row *r = rows[i];
        int k = snprintf(num, sizeof num, "%d\t", r->index);
        svc_buf_append(b, num, (size_t)k);
        svc_copy_text_append(b, r->user_name);
        svc_buf_append(b, "\t", 1);
        svc_copy_text_append(b, r->email);
        svc_buf_append(b, "\t", 1);
        svc_copy_text_append(b, r->name);
        k = snprintf(num, sizeof num, "\t%lld\t%c\t", r->legacy_id, r->deleted ? 't' : 'f');
        svc_buf_append(b, num, (size_t)k);
        bulk_repo_format_timestamp(r->updated_us, ts);
        svc_buf_puts(b, ts);
        svc_buf_append(b, "\n", 1);
    }
}

void bulk_repo_encode_new_users(struct svc_buf *b, const struct bulk_row *const *rows, size_t n,
                                const char *now_text) {
    char id[SVC_UUID_LEN + 1], num[48], ts[32];
    unsigned char rnd[64 * SVC_UUID7_RANDOM_BYTES];
    for (size_t i = 0; i < n; i++) {
        const struct bulk_row *r = rows[i];
        size_t slot = i % 64;
        if (slot == 0 && svc_random_bytes(rnd, sizeof rnd) != 0) {
            b->oom = true;   /* no randomness: refuse rather than make guessable or equal ids */
            return;
        }
        svc_uuid7_from(rnd + slot * SVC_UUID7_RANDOM_BYTES, id);
        svc_buf_append(b, id, SVC_UUID_LEN);
        svc_buf_append(b, "\t", 1);
        svc_copy_text_append(b, r->user_name);
        svc_buf_append(b, "\t", 1);
        svc_copy_text_append(b, r->email);
        svc_buf_append(b, "\t", 1);
        svc_copy_text_append(b, r->name);
        int k = snprintf(num, sizeof num, "\tlegacy\t%lld\t", r->legacy_id);
        svc_buf_append(b, num, (size_t)k);
        bulk_repo_format_timestamp(r->updated_us, ts);
        svc_buf_puts(b, ts);
        svc_buf_puts(b, r->deleted ? "\tt\t" : "\tf\t\\N\n");
        if (r->deleted) {
            svc_buf_puts(b, now_text);
            svc_buf_append(b, "\n", 1);
        }
    }
}

/* ---- transaction ---- */

static svc_status fail(PGconn *c, PGresult *res, struct bulk_outcome *out, const char *step) {
    struct svc_pg_error e;
    svc_status st = svc_pg_status(c, res, &e);   /* SVC_CONFLICT: the caller retries under the lock */
    memcpy(out->sqlstate, e.sqlstate, sizeof out->sqlstate);
    out->step = step;
    PQclear(res);
    if (st == SVC_INVALID) st = SVC_INTERNAL;    /* rows were validated before: a bad value here is a bug */
    if (PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) != PQTRANS_IDLE) {
        PGresult *rb = PQexec(c, "ROLLBACK");
        PQclear(rb); /* if even ROLLBACK fails, the pool rolls back or drops the connection on release */
    }
    return st;
}

/* One statement through the extended protocol (never several statements in one string). */
static PGresult *run(PGconn *c, const char *sql) {
    return PQexecParams(c, sql, 0, NULL, NULL, NULL, NULL, 0);
}

static bool ok(PGresult *res, ExecStatusType want) { return res && PQresultStatus(res) == want; }

static svc_status send_copy(PGconn *c, const char *sql, const char *data, size_t len, struct bulk_outcome *out) {
    PGresult *res = PQexec(c, sql);
    if (!ok(res, PGRES_COPY_IN)) return fail(c, res, out, "copy_start");
    PQclear(res);
    bool sent = true;
    for (size_t off = 0; off < len && sent; off += COPY_CHUNK) {
        size_t n = len - off < COPY_CHUNK ? len - off : COPY_CHUNK;
        sent = PQputCopyData(c, data + off, (int)n) == 1;
    }
    int end = PQputCopyEnd(c, sent ? NULL : "client failed to send COPY data");
    res = PQgetResult(c);
    bool copied = sent && end == 1 && ok(res, PGRES_COMMAND_OK);
    /* drain: the protocol requires reading results until NULL before the next command */
    PGresult *extra;
    while ((extra = PQgetResult(c)) != NULL) PQclear(extra);
    if (!copied) return fail(c, res, out, "copy");
    PQclear(res);
    return SVC_OK;
}

static svc_status read_email_taken(PGresult *res, struct bulk_outcome *out) {
    int n = PQntuples(res);
    if (n == 0) return SVC_OK;
    out->email_taken = malloc((size_t)n * sizeof *out->email_taken);
    if (!out->email_taken) return SVC_INTERNAL;
    for (int i = 0; i < n; i++) out->email_taken[i] = atoi(PQgetvalue(res, i, 0));
    out->n_email_taken = (size_t)n; /* ascending: ORDER BY idx */
    return SVC_OK;
}

static svc_status read_upsert(PGresult *res, struct bulk_outcome *out) {
    int n = PQntuples(res);
    size_t n_existing = 0;
    for (int i = 0; i < n; i++)
        if (PQgetvalue(res, i, 0)[0] != 't') n_existing++;
    if (n_existing) {
        out->touched = calloc(n_existing, sizeof *out->touched);
        if (!out->touched) return SVC_INTERNAL;
    }
    for (int i = 0; i < n; i++) {
        bool inserted = PQgetvalue(res, i, 0)[0] == 't';
        bool newly_deleted = PQgetvalue(res, i, 1)[0] == 't';
        if (newly_deleted) out->deleted++;
        else if (inserted) out->inserted++;
        else out->updated++;
        if (inserted) continue;
        struct bulk_touched *t = &out->touched[out->n_touched++];
        snprintf(t->id, sizeof t->id, "%s", PQgetvalue(res, i, 2));
        snprintf(t->user_name_lower, sizeof t->user_name_lower, "%s", PQgetvalue(res, i, 3));
        t->revoke_sessions = newly_deleted && PQgetvalue(res, i, 4)[0] == 't';
    }
    out->written = n;
    return SVC_OK;
}

/* First try: ONE COPY of every row straight into customers.users, inside a savepoint. It
 * succeeds when no name (and no email) is stored yet, as in a first import; otherwise a unique
 * index refuses it (23505) and the caller rolls back to the savepoint and takes the staged path,
 * having spent only the parsing of the rows COPY read before the conflict. Returns SVC_CONFLICT
 * for that case (the transaction stays usable), other failures as fail() does. */
static svc_status apply_all_new(PGconn *c, const struct bulk_row *const *rows, size_t n, struct bulk_outcome *out) {
    PGresult *res = run(c, "SAVEPOINT bulk_copy");
    if (!ok(res, PGRES_COMMAND_OK)) return fail(c, res, out, "savepoint");
    PQclear(res);
    res = run(c, "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'");
    if (!ok(res, PGRES_TUPLES_OK) || PQntuples(res) != 1) return fail(c, res, out, "now");
    char now_text[40];
    snprintf(now_text, sizeof now_text, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);

    struct svc_buf b;
    svc_buf_init(&b);
    svc_buf_reserve(&b, n * 200);
    bulk_repo_encode_new_users(&b, rows, n, now_text);
    if (b.oom) {
        svc_buf_free(&b);
        return fail(c, NULL, out, "copy_oom");
    }
    res = PQexec(c, SQL_COPY_NEW);
    if (!ok(res, PGRES_COPY_IN)) {
        svc_buf_free(&b);
        return fail(c, res, out, "copy_new_start");
    }
    PQclear(res);
    bool sent = true;
    for (size_t off = 0; off < b.len && sent; off += COPY_CHUNK) {
        size_t k = b.len - off < COPY_CHUNK ? b.len - off : COPY_CHUNK;
        sent = PQputCopyData(c, b.data + off, (int)k) == 1;
    }
    svc_buf_free(&b);
    int end = PQputCopyEnd(c, sent ? NULL : "client failed to send COPY data");
    res = PQgetResult(c);
    PGresult *extra;
    while ((extra = PQgetResult(c)) != NULL) PQclear(extra);
    if (sent && end == 1 && ok(res, PGRES_COMMAND_OK)) {
        PQclear(res);
        for (size_t i = 0; i < n; i++) {
            if (rows[i]->deleted) out->deleted++;
            else out->inserted++;
        }
        out->written = (long)n;
        return SVC_OK;
    }
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (!state || strcmp(state, "23505") != 0 || PQstatus(c) != CONNECTION_OK) return fail(c, res, out, "copy_new");
    PQclear(res);
    res = run(c, "ROLLBACK TO SAVEPOINT bulk_copy");
    if (!ok(res, PGRES_COMMAND_OK)) return fail(c, res, out, "rollback_to_savepoint");
    PQclear(res);
    return SVC_CONFLICT;
}

/* Some rows may exist: stage them all, triage, one INSERT … ON CONFLICT. */
static svc_status apply_staged(PGconn *c, const struct bulk_row *const *rows, size_t n, bool take_lock,
                               bool exclusive, struct bulk_outcome *out) {
    PGresult *res = run(c, SQL_STAGE);
    if (!ok(res, PGRES_COMMAND_OK)) return fail(c, res, out, "stage");
    PQclear(res);

    struct svc_buf copy;
    svc_buf_init(&copy);
    svc_buf_reserve(&copy, n * 160);
    bulk_repo_encode_rows(&copy, rows, n);
    if (copy.oom) {
        svc_buf_free(&copy);
        return fail(c, NULL, out, "copy_oom");
    }
    svc_status st = send_copy(c, SQL_COPY, copy.data, copy.len, out);
    svc_buf_free(&copy);
    if (st != SVC_OK) return st;

    if (take_lock) {
        res = run(c, exclusive ? SQL_LOCK_EXCLUSIVE : SQL_LOCK_SHARED);
        if (!ok(res, PGRES_TUPLES_OK)) return fail(c, res, out, "lock");
        PQclear(res);
    }

    res = run(c, SQL_TRIAGE);
    if (!ok(res, PGRES_TUPLES_OK)) return fail(c, res, out, "triage");
    st = read_email_taken(res, out);
    PQclear(res);
    if (st != SVC_OK) {
        bulk_outcome_free(out);
        return fail(c, NULL, out, "triage_oom");
    }

    res = run(c, SQL_UPSERT);
    if (!ok(res, PGRES_TUPLES_OK)) {
        bulk_outcome_free(out);
        return fail(c, res, out, "upsert");
    }
    st = read_upsert(res, out);
    PQclear(res);
    if (st != SVC_OK) {
        bulk_outcome_free(out);
        return fail(c, NULL, out, "upsert_oom");
    }
    return SVC_OK;
}

svc_status bulk_repo_apply(PGconn *c, const struct bulk_row *const *rows, size_t n, bool exclusive,
                           struct bulk_outcome *out) {
    memset(out, 0, sizeof *out);
    PGresult *res = run(c, "BEGIN");
    if (!ok(res, PGRES_COMMAND_OK)) return fail(c, res, out, "begin");
    PQclear(res);
    /* COPY text must be UTF-8 like the JSON it came from; a pooled session normally is already */
    const char *enc = PQparameterStatus(c, "client_encoding");
    if (!enc || strcmp(enc, "UTF8") != 0) {
        res = run(c, "SET LOCAL client_encoding TO 'UTF8'");
        if (!ok(res, PGRES_COMMAND_OK)) return fail(c, res, out, "client_encoding");
        PQclear(res);
    }

    svc_status st;
    if (exclusive) {
        st = apply_staged(c, rows, n, true, true, out);
    } else {
        res = run(c, SQL_LOCK_SHARED);
        if (!ok(res, PGRES_TUPLES_OK)) return fail(c, res, out, "lock");
        PQclear(res);
        st = apply_all_new(c, rows, n, out);
        if (st == SVC_CONFLICT) st = apply_staged(c, rows, n, false, false, out);
    }
    if (st != SVC_OK) return st;

    res = run(c, "COMMIT");
    if (!ok(res, PGRES_COMMAND_OK)) {
        bulk_outcome_free(out);
        return fail(c, res, out, "commit");
    }
    PQclear(res);
    return SVC_OK;
}
