/* PostgreSQL array literals ('{"a","b",NULL}') for passing many values as one text parameter
 * (tx_repo.c's batch statement unnests them). Every element is double-quoted with '"' and '\'
 * escaped, so any text round-trips, including empty strings, commas, braces and the word NULL;
 * a NULL pointer is the SQL NULL element. Pure; the buffer is the caller's. */
#ifndef TX_PG_ARRAY_H
#define TX_PG_ARRAY_H

#include "svc/buf.h"

/* Appends the literal of v[0..n-1] (n >= 0) to b. */
void pg_array_append(struct svc_buf *b, const char *const *v, int n);

#endif
