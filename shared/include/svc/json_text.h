/* Reading a JSON text from bytes: the platform's one entry to jansson's parser for request bodies,
 * JWT parts and other services' answers.
 *
 * A raw NUL byte anywhere in the text is refused before jansson sees it. RFC 8259 allows none (a
 * control character inside a string must be escaped, and outside strings only blanks may stand),
 * but jansson 2.14 skips one right after a number: {"a":1<NUL>,"b":2} parsed as {"a":1,"b":2},
 * so the platform read a text that any strict reader in front of it (a gateway, a WAF) calls
 * malformed (found by the sync_erp_page fuzz harness). Pure function; safe from any thread.
 * Ownership: the result is a new reference (json_decref), as json_loadb's. */
#ifndef SVC_JSON_TEXT_H
#define SVC_JSON_TEXT_H

#include <jansson.h>
#include <stddef.h>

/* json_loadb(buf, len, flags, err) for a text without NUL bytes; NULL with err (may be NULL) set
 * to the first NUL's line, column, position and "NUL byte in the text" otherwise. */
json_t *svc_json_load(const void *buf, size_t len, size_t flags, json_error_t *err);

#endif
