/* PostgreSQL COPY text format, field escaping: the one encoder of the data the services COPY
 * (customers' bulk upsert, sync-service's TSV batches sent to it).
 *
 * In a field, backslash, tab, newline and carriage return become \\ \t \n \r; every other byte
 * (UTF-8 included) passes as is, so the text \N or \. stays data, and a NULL field is written \N.
 * (The decoder of this format is the TSV reader of the bulk upsert, customers-service/src/bulk_tsv.c.)
 * Pure functions on caller-owned memory; safe from any thread. */
#ifndef SVC_COPY_TEXT_H
#define SVC_COPY_TEXT_H

#include <stddef.h>

#include "svc/buf.h"

/* The most bytes n bytes of text escape to. */
#define SVC_COPY_TEXT_MAX(n) (2 * (n))

/* Appends s escaped (NULL: \N). Check b->oom once at the end. */
void svc_copy_text_append(struct svc_buf *b, const char *s);
/* Appends the n bytes at s escaped. */
void svc_copy_text_append_n(struct svc_buf *b, const char *s, size_t n);
/* Writes the n bytes at s escaped into dst (room for SVC_COPY_TEXT_MAX(n) bytes, not
 * terminated); returns the bytes written. dst may overlap s when s >= dst + n (escaping in place
 * from text decoded into the far end of the same buffer). */
size_t svc_copy_text_escape(char *dst, const char *s, size_t n);

#endif
