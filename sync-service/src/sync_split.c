/* Incremental JSON-array / NDJSON splitter (see sync_split.h).
 *
 * The JSON-array side is a small state machine over four phases; inside an element only string
 * state, escape state and nesting depth are tracked, so a piece is scanned once, byte by byte, and
 * string bodies (most of the bytes) go through a tight inner loop that only looks for '"' and '\'.
 * The NDJSON side finds line ends with memchr. In both, an element that ends inside the piece it
 * started in is handed over in place; only an element cut by a piece boundary is copied into the
 * element buffer (at most max_element bytes of it). */
#include "sync_split.h"

#include <stdlib.h>
#include <string.h>

enum { PH_BEFORE = 0, PH_EXPECT, PH_ELEM, PH_AFTER };

static bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

int split_init(struct sync_split *s, enum split_format format, size_t max_element, split_element_fn fn, void *arg) {
    memset(s, 0, sizeof *s);
    if (max_element < 16) max_element = 16;
    s->format = format;
    s->max_element = max_element;
    s->fn = fn;
    s->arg = arg;
    s->buf = malloc(max_element);
    if (!s->buf) {
        s->error = SPLIT_ERR_NOMEM;
        return SPLIT_ERR_NOMEM;
    }
    return SPLIT_OK;
}

void split_free(struct sync_split *s) {
    free(s->buf);
    s->buf = NULL;
}

/* Adds part of the current element to the buffer (bounded; the excess only counts). */
static void buffer_part(struct sync_split *s, const char *p, size_t n) {
    s->elem_len += n;
    if (s->oversized) return;
    if (s->len + n > s->max_element) {
        size_t room = s->max_element - s->len;
        memcpy(s->buf + s->len, p, room);
        s->len += room;
        s->oversized = true;
        return;
    }
    memcpy(s->buf + s->len, p, n);
    s->len += n;
}

/* Hands over the element made of the buffered part plus p[0..n) and resets element state. */
static int emit(struct sync_split *s, const char *p, size_t n) {
    const char *data;
    size_t len;
    bool truncated;
    if (s->buffering) {
        buffer_part(s, p, n);
        data = s->buf;
        len = s->len;
        truncated = s->oversized;
    } else {
        data = p;
        len = n;
        truncated = n > s->max_element;
        if (truncated) len = s->max_element;
    }
    if (!truncated) {
        while (len > 0 && is_blank(data[len - 1])) len--;
        while (len > 0 && is_blank(data[0])) {
            data++;
            len--;
        }
    }
    s->buffering = false;
    s->oversized = false;
    s->nonblank = false;
    s->len = 0;
    s->elem_len = 0;
    uint64_t pos = s->position++;
    return s->fn(s->arg, data, len, pos, truncated);
}

/* Scans an element from d[i]; returns the index of the delimiter that ends it (',' or ']' at
 * depth 0, outside strings) or n when the piece ends first. */
static size_t scan_element(struct sync_split *s, const char *d, size_t i, size_t n) {
    bool in_string = s->in_string, escape = s->escape;
    uint32_t depth = s->depth;
    while (i < n) {
        if (in_string) {
            if (escape) {
                escape = false;
                i++;
                continue;
            }
            /* string body: skip to the next quote or backslash */
            while (i < n && d[i] != '"' && d[i] != '\\') i++;
            if (i == n) break;
            if (d[i] == '\\') escape = true;
            else in_string = false;
            i++;
            continue;
        }
        char c = d[i];
        if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}') {
            if (depth > 0) depth--;
        } else if (c == ']') {
            if (depth == 0) break;
            depth--;
        } else if (c == ',') {
            if (depth == 0) break;
        }
        i++;
    }
    s->in_string = in_string;
    s->escape = escape;
    s->depth = depth;
    return i;
}

static int feed_array(struct sync_split *s, const char *d, size_t n) {
    size_t i = 0;
    while (i < n) {
        switch (s->phase) {
        case PH_BEFORE:
            while (i < n && is_blank(d[i])) i++;
            if (i == n) return SPLIT_OK;
            if (d[i] != '[') return s->error = SPLIT_ERR_FRAMING;
            s->phase = PH_EXPECT;
            s->after_comma = false;
            i++;
            break;
        case PH_EXPECT:
            while (i < n && is_blank(d[i])) i++;
            if (i == n) return SPLIT_OK;
            if (d[i] == ']') {
                i++;
                s->phase = PH_AFTER;
                if (s->after_comma) {
                    int rc = emit(s, d, 0);
                    if (rc) return rc;
                }
            } else if (d[i] == ',') {
                i++;
                s->after_comma = true;
                int rc = emit(s, d, 0);
                if (rc) return rc;
            } else {
                s->phase = PH_ELEM;
                s->in_string = s->escape = false;
                s->depth = 0;
            }
            break;
        case PH_ELEM: {
            size_t start = i;
            size_t end = scan_element(s, d, i, n);
            if (end == n) {
                buffer_part(s, d + start, n - start);
                s->buffering = true;
                return SPLIT_OK;
            }
            bool closes = d[end] == ']';
            int rc = emit(s, d + start, end - start);
            i = end + 1;
            s->phase = closes ? PH_AFTER : PH_EXPECT;
            s->after_comma = !closes;
            if (rc) return rc;
            break;
        }
        default: /* PH_AFTER */
            while (i < n && is_blank(d[i])) i++;
            if (i < n) return s->error = SPLIT_ERR_FRAMING;
            return SPLIT_OK;
        }
    }
    return SPLIT_OK;
}

static bool all_blank(const char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!is_blank(p[i])) return false;
    return true;
}

static int feed_ndjson(struct sync_split *s, const char *d, size_t n) {
    size_t i = 0;
    while (i < n) {
        const char *nl = memchr(d + i, '\n', n - i);
        if (!nl) {
            if (!s->nonblank) s->nonblank = !all_blank(d + i, n - i);
            buffer_part(s, d + i, n - i);
            s->buffering = true;
            return SPLIT_OK;
        }
        size_t end = (size_t)(nl - d);
        bool blank = !(s->buffering && s->nonblank) && all_blank(d + i, end - i);
        if (blank) {
            s->buffering = false;
            s->oversized = false;
            s->nonblank = false;
            s->len = 0;
            s->elem_len = 0;
        } else {
            int rc = emit(s, d + i, end - i);
            if (rc) return rc;
        }
        i = end + 1;
    }
    return SPLIT_OK;
}

int split_feed(struct sync_split *s, const char *data, size_t len) {
    if (s->error) return s->error;
    if (len == 0) return SPLIT_OK;
    return s->format == SPLIT_NDJSON ? feed_ndjson(s, data, len) : feed_array(s, data, len);
}

int split_finish(struct sync_split *s) {
    if (s->error) return s->error;
    if (s->format == SPLIT_NDJSON) {
        if (s->buffering && s->nonblank) return emit(s, "", 0);
        s->buffering = false;
        s->oversized = false;
        s->len = 0;
        return SPLIT_OK;
    }
    return s->phase == PH_AFTER ? SPLIT_OK : SPLIT_ERR_TRUNCATED;
}
