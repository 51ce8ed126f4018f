/* PostgreSQL array literals ('{"a","b",NULL}', '{1,5,9}'): the one way the services pass many
 * values as one text parameter (unnest($1::text[]), $6::text[], …) instead of building SQL.
 *
 * Text elements are always double-quoted with '"' and '\' backslash-escaped, so any text
 * round-trips, including empty strings, commas, braces, spaces and the word NULL; a NULL pointer
 * is the SQL NULL element. A literal can be built whole (svc_pg_array_of) or element by element
 * (open, text/int…, close), e.g. while records are read. Appends to a caller-owned svc_buf (its
 * oom flag reports allocation failure); pure otherwise, safe from any thread. */
#ifndef SVC_PG_ARRAY_H
#define SVC_PG_ARRAY_H

#include <stdint.h>

#include "svc/buf.h"

/* Appends "{". */
void svc_pg_array_open(struct svc_buf *b);
/* Appends one text element (NULL: the SQL NULL), with the comma when it is not the first. */
void svc_pg_array_text(struct svc_buf *b, const char *s);
/* Appends one integer element, with the comma when it is not the first. */
void svc_pg_array_int(struct svc_buf *b, int64_t v);
/* Appends "}". */
void svc_pg_array_close(struct svc_buf *b);
/* Appends the whole literal of v[0..n-1] (n >= 0). */
void svc_pg_array_of(struct svc_buf *b, const char *const *v, int n);

#endif
