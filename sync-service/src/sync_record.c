/* Strict reader and validator of one legacy user record (see sync_record.h).
 *
 * Two steps: a syntax pass over the whole element (any syntax error makes it broken_json, so
 * "{"id":5,…,"deleted":fals}" is never half-accepted) that remembers where the seven known fields'
 * values are, then the rules, field by field in a fixed order, so a record with one defect always
 * gets the same reason. */
#include "sync_record.h"

#include <stdlib.h>
#include <string.h>

#include "svc/copy_text.h"
#include "svc/utf8.h"

#define MAX_DEPTH 32

enum field { F_ID = 0, F_USER_NAME, F_EMAIL, F_NAME, F_CREATED_AT, F_UPDATED_AT, F_DELETED, F_COUNT };
static const char *const field_names[F_COUNT] = {"id", "userName", "email", "name", "createdAt", "updatedAt", "deleted"};

enum jtype { J_NONE = 0, J_STRING, J_NUMBER, J_TRUE, J_FALSE, J_NULL, J_OBJECT, J_ARRAY };

struct value {
    enum jtype type;
    struct sync_record_token tok;    /* strings: content; numbers: the number text */
    bool escaped;             /* string contains a backslash escape */
    bool has_nul;             /* string decodes to something containing U+0000 */
    bool integer;             /* number without fraction or exponent */
};

struct reader {
    const char *p;
    const char *end;
};

static void skip_ws(struct reader *r) {
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r')) r->p++;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool read_u4(const char *p, const char *end, unsigned *out) {
    if (end - p < 4) return false;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0) return false;
        v = (v << 4) | (unsigned)h;
    }
    *out = v;
    return true;
}

/* At the opening quote. Fills v on success and leaves r after the closing quote. */
static bool read_string(struct reader *r, struct value *v) {
    const char *p = r->p + 1, *end = r->end;
    v->type = J_STRING;
    v->escaped = false;
    v->has_nul = false;
    v->tok.p = p;
    while (p < end) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') {
            v->tok.len = (size_t)(p - v->tok.p);
            r->p = p + 1;
            return true;
        }
        if (c < 0x20) return false;
        if (c < 0x80) {
            if (c != '\\') {
                p++;
                continue;
            }
            v->escaped = true;
            if (end - p < 2) return false;
            char e = p[1];
            if (e == 'u') {
                unsigned u;
                if (!read_u4(p + 2, end, &u)) return false;
                p += 6;
                if (u == 0) v->has_nul = true;
                if (u >= 0xDC00 && u <= 0xDFFF) return false;           /* lone low surrogate */
                if (u >= 0xD800 && u <= 0xDBFF) {                       /* needs its low half */
                    unsigned lo;
                    if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || !read_u4(p + 2, end, &lo)) return false;
                    if (lo < 0xDC00 || lo > 0xDFFF) return false;
                    p += 6;
                }
                continue;
            }
            if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' && e != 'n' && e != 'r' && e != 't')
                return false;
            p += 2;
            continue;
        }
        size_t n = svc_utf8_seq((const unsigned char *)p, (const unsigned char *)end);
        if (n == 0) return false;
        p += n;
    }
    return false;
}

static bool read_number(struct reader *r, struct value *v) {
    const char *p = r->p, *end = r->end;
    v->type = J_NUMBER;
    v->tok.p = p;
    v->integer = true;
    if (p < end && *p == '-') p++;
    if (p >= end) return false;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9') p++;
    } else {
        return false;
    }
    if (p < end && *p == '.') {
        v->integer = false;
        p++;
        if (p >= end || *p < '0' || *p > '9') return false;
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        v->integer = false;
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p >= end || *p < '0' || *p > '9') return false;
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    v->tok.len = (size_t)(p - v->tok.p);
    r->p = p;
    return true;
}

static bool read_literal(struct reader *r, const char *lit, size_t n) {
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, lit, n) != 0) return false;
    r->p += n;
    return true;
}

static bool read_value(struct reader *r, struct value *v, int depth);

static bool read_container(struct reader *r, struct value *v, int depth, bool object) {
    if (depth >= MAX_DEPTH) return false;
    v->type = object ? J_OBJECT : J_ARRAY;
    char close = object ? '}' : ']';
    r->p++;
    skip_ws(r);
    if (r->p < r->end && *r->p == close) {
        r->p++;
        return true;
    }
    for (;;) {
        struct value item;
        if (object) {
            if (r->p >= r->end || *r->p != '"' || !read_string(r, &item)) return false;
            skip_ws(r);
            if (r->p >= r->end || *r->p != ':') return false;
            r->p++;
            skip_ws(r);
        }
        if (!read_value(r, &item, depth + 1)) return false;
        skip_ws(r);
        if (r->p >= r->end) return false;
        if (*r->p == ',') {
            r->p++;
            skip_ws(r);
            continue;
        }
        if (*r->p != close) return false;
        r->p++;
        return true;
    }
}

static bool read_value(struct reader *r, struct value *v, int depth) {
    if (r->p >= r->end) return false;
    switch (*r->p) {
    case '"': return read_string(r, v);
    case '{': return read_container(r, v, depth, true);
    case '[': return read_container(r, v, depth, false);
    case 't': v->type = J_TRUE; return read_literal(r, "true", 4);
    case 'f': v->type = J_FALSE; return read_literal(r, "false", 5);
    case 'n': v->type = J_NULL; return read_literal(r, "null", 4);
    default: return read_number(r, v);
    }
}

/* Decodes a verified string token into out (capacity >= tok.len, decoded text is never longer).
 * Returns the decoded length. */
static size_t unescape(const struct sync_record_token *t, char *out) {
    const char *p = t->p, *end = t->p + t->len;
    size_t o = 0;
    while (p < end) {
        if (*p != '\\') {
            out[o++] = *p++;
            continue;
        }
        char e = p[1];
        if (e != 'u') {
            static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
            out[o++] = to[strchr(from, e) - from];
            p += 2;
            continue;
        }
        unsigned u;
        read_u4(p + 2, end, &u);
        p += 6;
        if (u >= 0xD800 && u <= 0xDBFF) {
            unsigned lo;
            read_u4(p + 2, end, &lo);
            p += 6;
            u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
        }
        if (u < 0x80) {
            out[o++] = (char)u;
        } else if (u < 0x800) {
            out[o++] = (char)(0xC0 | (u >> 6));
            out[o++] = (char)(0x80 | (u & 0x3F));
        } else if (u < 0x10000) {
            out[o++] = (char)(0xE0 | (u >> 12));
            out[o++] = (char)(0x80 | ((u >> 6) & 0x3F));
            out[o++] = (char)(0x80 | (u & 0x3F));
        } else {
            out[o++] = (char)(0xF0 | (u >> 18));
            out[o++] = (char)(0x80 | ((u >> 12) & 0x3F));
            out[o++] = (char)(0x80 | ((u >> 6) & 0x3F));
            out[o++] = (char)(0x80 | (u & 0x3F));
        }
    }
    return o;
}

bool sync_record_user_name_ok(const char *s, size_t n) {
    if (n < 3 || n > 64) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-'))
            return false;
    }
    return true;
}

/* Python's str.isspace() for one code point. */
static bool is_py_space(unsigned cp) {
    return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
           cp == 0x3000;
}

/* Decodes the code point at s[*i] (valid UTF-8) and advances *i. */
static unsigned next_cp(const char *s, size_t n, size_t *i) {
    const unsigned char *u = (const unsigned char *)s + *i;
    unsigned c = u[0];
    size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (*i + len > n) len = n - *i;
    unsigned cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (size_t k = 1; k < len; k++) cp = (cp << 6) | (u[k] & 0x3F);
    *i += len;
    return cp;
}

/* ^[^@\s]+@[^@\s]+\.[^@\s]+$ : one '@', something before it, and a '.' in the domain with
 * something on both sides; no whitespace anywhere. */
bool sync_record_email_ok(const char *s, size_t n) {
    size_t at = n, i = 0;
    while (i < n) {
        size_t start = i;
        unsigned cp = next_cp(s, n, &i);
        if (cp == 0 || is_py_space(cp)) return false;
        if (cp == '@') {
            if (at != n) return false;
            at = start;
        }
    }
    if (at == n || at == 0) return false;
    size_t d = at + 1, dn = n - d;
    for (size_t k = 1; k + 1 < dn; k++)
        if (s[d + k] == '.') return true;
    return false;
}

static int digits(const char *s, int n) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

bool sync_record_timestamp_ok(const char *s, size_t n) {
    /* YYYY-MM-DDTHH:MM:SSZ */
    if (n != 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != 'Z')
        return false;
    int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
    int h = digits(s + 11, 2), mi = digits(s + 14, 2), se = digits(s + 17, 2);
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 || se > 59) return false;
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int dim = mdays[mo - 1];
    if (mo == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) dim = 29;
    return d <= dim;
}

/* Runs check on the decoded text of a string value (in place when it has no escapes). */
static bool check_string(const struct value *v, bool (*check)(const char *, size_t)) {
    if (v->has_nul) return false;
    if (!v->escaped) return check(v->tok.p, v->tok.len);
    char small[512];
    char *buf = v->tok.len <= sizeof small ? small : malloc(v->tok.len);
    if (!buf) return false;
    size_t n = unescape(&v->tok, buf);
    bool ok = check(buf, n);
    if (buf != small) free(buf);
    return ok;
}

static bool nonempty(const char *s, size_t n) {
    (void)s;
    return n > 0;
}

/* Which known field a key names (-1: none). Keys with escapes are decoded first. */
static int field_of(const struct value *key) {
    char tmp[16];
    const char *k = key->tok.p;
    size_t n = key->tok.len;
    if (key->escaped) {
        if (key->tok.len > 6 * sizeof tmp || key->has_nul) return -1;
        char dec[6 * sizeof tmp];
        n = unescape(&key->tok, dec);
        if (n > sizeof tmp) return -1;
        memcpy(tmp, dec, n);
        k = tmp;
    }
    for (int f = 0; f < F_COUNT; f++)
        if (strlen(field_names[f]) == n && memcmp(field_names[f], k, n) == 0) return f;
    return -1;
}

static bool parse_id(const struct value *v, int64_t *out) {
    if (!v->integer || v->tok.p[0] == '-') return false;
    int64_t x = 0;
    for (size_t i = 0; i < v->tok.len; i++) {
        int dgt = v->tok.p[i] - '0';
        if (x > (INT64_MAX - dgt) / 10) return false;
        x = x * 10 + dgt;
    }
    if (x < 1) return false;
    *out = x;
    return true;
}

const char *sync_record_parse(const char *text, size_t len, struct sync_record *out) {
    struct reader r = {text, text + len};
    skip_ws(&r);
    if (r.p >= r.end) return "broken_json";
    if (*r.p != '{') {
        struct value any;
        if (!read_value(&r, &any, 0)) return "broken_json";
        skip_ws(&r);
        return r.p == r.end ? "not_an_object" : "broken_json";
    }

    struct value fields[F_COUNT];
    memset(fields, 0, sizeof fields);
    bool unknown = false, duplicate = false;
    r.p++;
    skip_ws(&r);
    if (r.p < r.end && *r.p == '}') {
        r.p++;
    } else {
        for (;;) {
            struct value key, val;
            if (r.p >= r.end || *r.p != '"' || !read_string(&r, &key)) return "broken_json";
            skip_ws(&r);
            if (r.p >= r.end || *r.p != ':') return "broken_json";
            r.p++;
            skip_ws(&r);
            if (!read_value(&r, &val, 1)) return "broken_json";
            int f = field_of(&key);
            if (f < 0) unknown = true;
            else if (fields[f].type != J_NONE) duplicate = true;
            else fields[f] = val;
            skip_ws(&r);
            if (r.p >= r.end) return "broken_json";
            if (*r.p == ',') {
                r.p++;
                skip_ws(&r);
                continue;
            }
            if (*r.p != '}') return "broken_json";
            r.p++;
            break;
        }
    }
    skip_ws(&r);
    if (r.p != r.end) return "broken_json";

    if (duplicate) return "duplicate_field";
    static const char *const missing[F_COUNT] = {
        "missing_field: id",        "missing_field: userName",  "missing_field: email",  "missing_field: name",
        "missing_field: createdAt", "missing_field: updatedAt", "missing_field: deleted"};
    for (int f = 0; f < F_COUNT; f++)
        if (fields[f].type == J_NONE) return missing[f];
    if (unknown) return "unknown_field";

    const struct value *v = &fields[F_ID];
    if (v->type != J_NUMBER) return "wrong_type: id";
    if (!parse_id(v, &out->id)) return "invalid_id: id";

    v = &fields[F_USER_NAME];
    if (v->type != J_STRING) return "wrong_type: userName";
    if (!check_string(v, sync_record_user_name_ok)) return "invalid_user_name: userName";

    v = &fields[F_EMAIL];
    if (v->type != J_STRING) return "wrong_type: email";
    if (!check_string(v, sync_record_email_ok)) return "invalid_email: email";

    v = &fields[F_NAME];
    if (v->type != J_STRING) return "wrong_type: name";
    if (!check_string(v, nonempty)) return "invalid_name: name";

    v = &fields[F_CREATED_AT];
    if (v->type != J_STRING) return "wrong_type: createdAt";
    if (!check_string(v, sync_record_timestamp_ok)) return "invalid_timestamp: createdAt";

    v = &fields[F_UPDATED_AT];
    if (v->type != J_STRING) return "wrong_type: updatedAt";
    if (!check_string(v, sync_record_timestamp_ok)) return "invalid_timestamp: updatedAt";

    v = &fields[F_DELETED];
    if (v->type != J_TRUE && v->type != J_FALSE) return "wrong_type: deleted";

    out->user_name = fields[F_USER_NAME].tok;
    out->email = fields[F_EMAIL].tok;
    out->name = fields[F_NAME].tok;
    out->created_at = fields[F_CREATED_AT].tok;
    out->updated_at = fields[F_UPDATED_AT].tok;
    out->deleted = fields[F_DELETED].type == J_TRUE;
    return NULL;
}

/* Writes the decimal digits of id (>= 1, validated) at out; returns how many (at most 19). */
static int put_id(char *out, int64_t id) {
    char digs[24];
    int n = 0;
    do {
        digs[n++] = (char)('0' + id % 10);
        id /= 10;
    } while (id);
    for (int i = 0; i < n; i++) out[i] = digs[n - 1 - i];
    return n;
}

/* Appends a decoded string token as one TSV field (COPY text escapes, svc/copy_text.h).
 * A token without a backslash decodes to itself and holds no control character (JSON forbids
 * them raw), so it is copied as is; only the rare escaped one is decoded first, into the far end
 * of the room reserved for its escaped form, and escaped in place from there. */
static void append_tsv_field(struct svc_buf *b, const struct sync_record_token *t) {
    if (!memchr(t->p, '\\', t->len)) {
        svc_buf_append(b, t->p, t->len);
        return;
    }
    /* decoding never lengthens a token; escaping at most doubles the decoded text */
    if (!svc_buf_reserve(b, 3 * t->len)) return;
    char *dec = b->data + b->len + 2 * t->len;
    size_t n = unescape(t, dec);
    b->len += svc_copy_text_escape(b->data + b->len, dec, n);
    b->data[b->len] = '\0';
}

void sync_record_append_tsv(struct svc_buf *b, const struct sync_record *r) {
    if (!svc_buf_reserve(b, 40 + r->user_name.len + r->email.len + r->name.len + r->updated_at.len)) return;
    append_tsv_field(b, &r->user_name);
    svc_buf_append(b, "\t", 1);
    append_tsv_field(b, &r->email);
    svc_buf_append(b, "\t", 1);
    append_tsv_field(b, &r->name);
    char num[32];
    int k = 0;
    num[k++] = '\t';
    k += put_id(num + k, r->id);
    num[k++] = '\t';
    num[k++] = r->deleted ? 't' : 'f';
    num[k++] = '\t';
    svc_buf_append(b, num, (size_t)k);
    append_tsv_field(b, &r->updated_at);
    svc_buf_append(b, "\n", 1);
}
