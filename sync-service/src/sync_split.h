/* Incremental splitter of a streamed JSON array or NDJSON body into elements.
 *
 * The legacy API sends ~1M records as one long body. The splitter is fed the body in whatever
 * pieces the network delivers (one byte at a time works too) and calls back once per element with
 * that element's text, so memory stays constant whatever the number of records: at most one
 * element (max_element bytes) is ever buffered, and an element wholly inside the piece being fed is
 * handed over in place, without a copy.
 *
 * JSON array: an element runs from the first non-blank byte after '[' or ',' to the next ',' or ']'
 * outside strings (tracking "..." with backslash escapes) and outside {} / [] nesting; trailing
 * blanks are trimmed. This finds the end of a syntactically broken element exactly as for a valid
 * one, as long as its quotes and brackets balance (the legacy API's broken records do), so one bad
 * element never costs the ones after it. The splitter only frames; whether an element is a valid
 * record is sync_record.h's business. An empty element ("[1,,2]" or a trailing comma) is handed
 * over with length 0. Text before '[' or after the closing ']' other than blanks is a framing error.
 *
 * NDJSON: an element is a line ('\n'-terminated, a trailing '\r' and surrounding blanks trimmed);
 * blank lines are skipped. A last line without '\n' is an element when split_finish is called.
 *
 * Positions: elements are numbered 0, 1, 2, ... in stream order (blank NDJSON lines are not
 * elements), the same numbering whichever framing the server chose.
 *
 * Oversized elements: an element longer than max_element bytes is still delimited exactly, but
 * handed over with truncated = true and only its first max_element bytes.
 *
 * Ownership: the splitter owns its element buffer (split_free releases it). The data pointer given
 * to the callback is valid only during the callback. Not thread-safe: one splitter per stream. */
#ifndef SYNC_SPLIT_H
#define SYNC_SPLIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum split_format { SPLIT_JSON_ARRAY = 0, SPLIT_NDJSON };

/* Return 0 to continue; any other value stops the splitter, and split_feed returns that value. */
typedef int (*split_element_fn)(void *arg, const char *data, size_t len, uint64_t position, bool truncated);

enum {
    SPLIT_OK = 0,
    SPLIT_ERR_FRAMING = -1,   /* not a JSON array (bytes before '[' or after ']') */
    SPLIT_ERR_TRUNCATED = -2, /* split_finish: the array was never closed */
    SPLIT_ERR_NOMEM = -3
};

struct sync_split {
    enum split_format format;
    size_t max_element;
    split_element_fn fn;
    void *arg;
    uint64_t position;        /* next element's position */
    /* buffered part of the current element (only when it straddles pieces) */
    char *buf;
    size_t len;
    bool buffering;           /* the current element started in an earlier piece */
    bool oversized;           /* the current element went past max_element */
    bool nonblank;            /* NDJSON: the buffered part of the line has a non-blank byte (kept
                                 whatever the limit cut off, so a long blank line split across
                                 pieces is still skipped) */
    size_t elem_len;          /* bytes of the current element seen so far (trimmed at the end) */
    /* JSON array state */
    int phase;                /* see sync_split.c */
    bool in_string;
    bool escape;
    uint32_t depth;
    bool after_comma;
    int error;                /* sticky error */
};

/* Prepares s; max_element >= 16. Returns 0, or SPLIT_ERR_NOMEM. */
int split_init(struct sync_split *s, enum split_format format, size_t max_element, split_element_fn fn, void *arg);
/* Feeds the next piece of the body. Returns SPLIT_OK, a framing error (sticky), or the callback's
 * non-zero return value. */
int split_feed(struct sync_split *s, const char *data, size_t len);
/* End of body: NDJSON hands over a last unterminated line; a JSON array must have been closed.
 * Returns SPLIT_OK, SPLIT_ERR_TRUNCATED, a sticky error, or the callback's value. */
int split_finish(struct sync_split *s);
/* Elements handed over so far. */
static inline uint64_t split_count(const struct sync_split *s) { return s->position; }
void split_free(struct sync_split *s);

#endif
