/* One page of an ERP answer (the ERP contract, docs/operations.md) → validated COPY rows.
 *
 * The page is untrusted input (OWASP API10): it is parsed by a strict JSON reader of our own
 * (RFC 8259: no trailing commas, no comments, no bare words, escapes and UTF-8 checked, depth
 * bounded) that walks the page once and writes each valid record straight into the COPY text of
 * a batch, without building a tree (a page of 500 records is ~90 KB; a million records go
 * through here in a benchmark run).
 *
 * The page must be an object with "data" (array of objects) and "has_more" (boolean); "page"
 * and "per_page", when present, must be integers. Anything else about the page is malformed
 * (the job retries: a malformed page is a transient failure of that ERP). Fields a record or
 * the page has beyond the contract are ignored (the ERP may add some).
 *
 * A record is valid when:
 *   id          string, 1-128 bytes, no control characters (Unicode Cc: U+0000-001F, DEL U+007F and
 *               C1 U+0080-009F, raw or escaped; the same for email, document and sku)
 *   updated_at  string, RFC 3339 date-time (offset or Z, optional fraction)
 *   deleted     boolean
 *   customers:  name string (≤ 512 bytes) ; email, document string or null (≤ 320 / ≤ 64 bytes)
 *   products:   name string (≤ 512) ; sku string or null (≤ 128) ; price a decimal string
 *               (-?digits{1,12}(.digits{1,4})?) ; stock an integer (64-bit)
 * An invalid record is counted and skipped; it never fails the page.
 *
 * Row layout (COPY text format, one line per record, columns in the order of the COPY lists in
 * erp_repo.c): tenant_id, external_id, then
 *   customers: name, email, document, source_updated_at, deleted
 *   products:  sku, name, price, stock, source_updated_at, deleted
 *
 * Ownership: struct erp_batch owns its buffer (erp_batch_free). Pure functions otherwise. */
#ifndef ERP_PAGE_H
#define ERP_PAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "svc/buf.h"

enum erp_kind { ERP_CUSTOMERS = 0, ERP_PRODUCTS = 1 };

const char *erp_kind_name(enum erp_kind k);   /* "customers" / "products" */
/* 0 and *out, or -1 for anything else. */
int erp_kind_parse(const char *s, enum erp_kind *out);

struct erp_batch {
    struct svc_buf rows;       /* COPY text lines */
    long records;              /* lines in rows */
    int64_t max_updated_us;    /* newest updated_at among the rows (µs since the epoch), 0: none */
};

void erp_batch_init(struct erp_batch *b);
void erp_batch_reset(struct erp_batch *b);
void erp_batch_free(struct erp_batch *b);

struct erp_page_info {
    long records;      /* objects in "data" */
    long invalid;      /* of those, skipped as invalid */
    bool has_more;
};

/* Parses one page for a kind and tenant, appending the valid records to b. Returns 0, or -1 with
 * a short reason (static string; never quotes the content) when the page is malformed; b is then
 * left as it was before the call. */
int erp_page_parse(const char *body, size_t len, enum erp_kind kind, const char *tenant_id, struct erp_batch *b,
                   struct erp_page_info *info, const char **why);

/* RFC 3339 date-time → µs since the epoch. 0, or -1. Exposed for tests. */
int erp_parse_rfc3339(const char *s, size_t n, int64_t *us);

#endif
