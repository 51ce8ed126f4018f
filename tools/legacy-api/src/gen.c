/* Deterministic legacy-user record generator; see gen.h for the model.
 *
 * Decisions are counter-based hashes h(seed, index, salt) (SplitMix64 finaliser), so any record
 * can be produced or inspected in O(1) (a DUP follows its chain of targets back to the FRESH
 * record that introduced the userName: O(1/(1-dup_rate)) steps on average).
 * Formatting writes each field's raw JSON value into a small slot, lets a corruption rewrite or
 * drop one slot, then joins the slots: one code path for valid and corrupt records, no malloc.
 * userNames are "<first><sep><last>_<id>" where the name slugs contain no digit and no '_', so the
 * id suffix makes every introduced userName unique (even case-insensitively). */
#include "gen.h"

#include <stdlib.h>
#include <string.h>

#define T0_UNIX 1577836800LL          /* 2020-01-01T00:00:00Z: updatedAt of record 0 (+jitter) */
#define STEP_S 60                     /* updatedAt advances by one minute per record */
#define MAX_AGE_S (3LL * 365 * 86400) /* createdAt is up to three years before the first update */
#define DUP_TRIES 8

enum {
    SALT_CORRUPT = 1, SALT_DUP, SALT_DELETE, SALT_SHAPE, SALT_NAME, SALT_TIME, SALT_CREATED,
    SALT_TARGET /* + try number: keep last */
};

struct person_name {
    const char *display;  /* UTF-8, may need JSON escaping */
    const char *slug;     /* ASCII lower-case letters only */
};

static const struct person_name FIRST[] = {
    {"Anna", "anna"},         {"José", "jose"},          {"Zoë", "zoe"},
    {"Łukasz", "lukasz"},     {"Søren", "soren"},        {"François", "francois"},
    {"Mehmet", "mehmet"},     {"Aiko", "aiko"},          {"李娜", "lina"},
    {"Олег", "oleg"},         {"Αλέξης", "alexis"},      {"Robert \"Bob\"", "robert"},
    {"Mary-Jane", "maryjane"}, {"Siobhán", "siobhan"},   {"Émilie", "emilie"},
    {"Jürgen", "jurgen"},     {"Chidi", "chidi"},        {"Priya", "priya"},
    {"Kwame", "kwame"},       {"Ingrid", "ingrid"},      {"Maya 🌸", "maya"},
    {"Björk", "bjork"},       {"Nuño", "nuno"},          {"Tomasz", "tomasz"},
};
static const struct person_name LAST[] = {
    {"Smith", "smith"},           {"Müller", "muller"},     {"García", "garcia"},
    {"Dvořák", "dvorak"},         {"O'Brien", "obrien"},    {"Nguyễn", "nguyen"},
    {"Kowalski", "kowalski"},     {"Ødegaard", "odegaard"}, {"田中", "tanaka"},
    {"Иванова", "ivanova"},       {"Papadopoulos", "papadopoulos"},
    {"Nkemelu", "nkemelu"},       {"Sharma", "sharma"},     {"Johansson", "johansson"},
    {"Le Blanc", "leblanc"},      {"van der Berg", "vanderberg"},
    {"Çelik", "celik"},           {"Ó Súilleabháin", "osullivan"},
};
#define NFIRST (sizeof FIRST / sizeof FIRST[0])
#define NLAST (sizeof LAST / sizeof LAST[0])

static const char *const DOMAINS[] = {
    "example.com", "example.org", "example.net", "mail.example.com", "legacy.example.org",
};
#define NDOMAINS (sizeof DOMAINS / sizeof DOMAINS[0])

/* ------------------------------------------------------------------ hashing */

static inline uint64_t mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t gen_hash(const struct gen_knobs *k, uint64_t i, uint64_t salt) {
    return mix64(i ^ mix64(k->seed * 0x2545f4914f6cdd1dULL + salt));
}

/* True with probability p for a uniformly distributed h. */
static inline bool gen_chance(uint64_t h, double p) {
    if (p <= 0.0) return false;
    if (p >= 1.0) return true;
    return (double)(h >> 11) * 0x1p-53 < p;
}

static inline bool gen_is_corrupt(const struct gen_knobs *k, uint64_t i) {
    return gen_chance(gen_hash(k, i, SALT_CORRUPT), k->corrupt_rate);
}

/* The earlier non-corrupt record that record i (not corrupt) repeats, or i when it is FRESH. */
static uint64_t gen_dup_target(const struct gen_knobs *k, uint64_t i) {
    if (i == 0 || !gen_chance(gen_hash(k, i, SALT_DUP), k->dup_rate)) return i;
    for (uint64_t t = 0; t < DUP_TRIES; t++) {
        uint64_t j = gen_hash(k, i, SALT_TARGET + t) % i;
        if (!gen_is_corrupt(k, j)) return j;
    }
    return i;
}

/* Offset a DUP adds to its target's last-name index: in [1, NLAST-1], so the name always changes. */
static inline uint64_t gen_name_shift(const struct gen_knobs *k, uint64_t i) {
    return 1 + gen_hash(k, i, SALT_NAME) % (NLAST - 1);
}

/* Walks from non-corrupt record i back to the FRESH record that introduced its userName.
 * *shift accumulates the last-name offsets of the DUPs on the way (addition commutes, so the
 * order of the walk does not matter). */
static uint64_t gen_chain(const struct gen_knobs *k, uint64_t i, uint64_t *shift) {
    for (;;) {
        uint64_t t = gen_dup_target(k, i);
        if (t == i) return i;
        *shift += gen_name_shift(k, i);
        i = t;
    }
}

static uint64_t gen_root(const struct gen_knobs *k, uint64_t i) {
    uint64_t shift = 0;
    return gen_chain(k, i, &shift);
}

static inline int64_t gen_updated_at(const struct gen_knobs *k, uint64_t i) {
    return T0_UNIX + (int64_t)i * STEP_S + (int64_t)(gen_hash(k, i, SALT_TIME) % STEP_S);
}

static inline bool gen_deleted(const struct gen_knobs *k, uint64_t i) {
    return gen_chance(gen_hash(k, i, SALT_DELETE), k->delete_rate);
}

void gen_record_info(const struct gen_knobs *k, uint64_t i, struct gen_record *r) {
    memset(r, 0, sizeof *r);
    r->index = i;
    r->target = i;
    r->root = i;
    uint64_t shift = 0;
    if (gen_is_corrupt(k, i)) {
        uint64_t h = gen_hash(k, i, SALT_SHAPE);
        r->kind = GEN_CORRUPT;
        r->corrupt = (gen_corrupt_kind)(h % GEN_CORRUPT_NKINDS);
        r->variant = (unsigned)((h >> 32) % 7);  /* every shape uses variant modulo its own count */
    } else {
        uint64_t t = gen_dup_target(k, i);
        if (t != i) {
            r->kind = GEN_DUP;
            r->target = t;
            r->root = gen_chain(k, i, &shift);
        }
    }
    r->last_name = (unsigned)(((gen_hash(k, r->root, SALT_NAME) >> 16) % NLAST + shift) % NLAST);
    r->id = r->root + 1;
    r->deleted = gen_deleted(k, i);
    r->updated_at = gen_updated_at(k, i);
    r->created_at = gen_updated_at(k, r->root) - (int64_t)(gen_hash(k, r->root, SALT_CREATED) % MAX_AGE_S);
}

const char *gen_corrupt_kind_name(gen_corrupt_kind c) {
    switch (c) {
    case GEN_CORRUPT_MISSING_FIELD: return "missing_field";
    case GEN_CORRUPT_WRONG_TYPE: return "wrong_type";
    case GEN_CORRUPT_INVALID_EMAIL: return "invalid_email";
    case GEN_CORRUPT_INVALID_USERNAME: return "invalid_user_name";
    case GEN_CORRUPT_INVALID_TIMESTAMP: return "invalid_timestamp";
    case GEN_CORRUPT_BROKEN_JSON: return "broken_json";
    default: return "unknown";
    }
}

/* ------------------------------------------------------------------ summary */

int gen_expected(const struct gen_knobs *k, struct gen_summary *s) {
    memset(s, 0, sizeof *s);
    s->count = k->count;
    /* Bit r = "the newest valid record of root r so far is deleted". */
    uint64_t words = (k->count + 63) / 64;
    uint64_t *last_deleted = calloc(words ? words : 1, sizeof *last_deleted);
    if (!last_deleted) return -1;
    for (uint64_t i = 0; i < k->count; i++) {
        if (gen_is_corrupt(k, i)) {
            uint64_t h = gen_hash(k, i, SALT_SHAPE);
            s->corrupt++;
            s->corrupt_by_kind[h % GEN_CORRUPT_NKINDS]++;
            continue;
        }
        uint64_t t = gen_dup_target(k, i), root = i;
        if (t == i) {
            s->distinct_user_names++;
        } else {
            root = gen_root(k, t);
            s->duplicates++;
        }
        uint64_t bit = 1ULL << (root % 64);
        if (gen_deleted(k, i))
            last_deleted[root / 64] |= bit;
        else
            last_deleted[root / 64] &= ~bit;
    }
    s->valid = s->count - s->corrupt;
    for (uint64_t w = 0; w < words; w++) s->deleted_final += (uint64_t)__builtin_popcountll(last_deleted[w]);
    free(last_deleted);
    return 0;
}

/* ------------------------------------------------------------------ formatting */

/* Bounded append cursor: an overflow sets ok=false instead of writing past end. */
struct out {
    char *p;
    char *end;
    bool ok;
};

static void out_mem(struct out *o, const char *s, size_t n) {
    if ((size_t)(o->end - o->p) < n) {
        o->ok = false;
        return;
    }
    memcpy(o->p, s, n);
    o->p += n;
}

static void out_str(struct out *o, const char *s) { out_mem(o, s, strlen(s)); }

static void out_char(struct out *o, char c) { out_mem(o, &c, 1); }

static void out_u64(struct out *o, uint64_t v) {
    char tmp[20];
    size_t n = 0;
    do {
        tmp[sizeof tmp - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    out_mem(o, tmp + sizeof tmp - n, n);
}

static void out_i64(struct out *o, int64_t v) {
    if (v < 0) {
        out_char(o, '-');
        out_u64(o, (uint64_t)0 - (uint64_t)v);
    } else {
        out_u64(o, (uint64_t)v);
    }
}

/* A JSON string literal: quotes, backslashes and control characters escaped; UTF-8 passes as is. */
static void out_json_string(struct out *o, const char *s) {
    static const char hex[] = "0123456789abcdef";
    out_char(o, '"');
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') {
            char e[2] = {'\\', (char)*c};
            out_mem(o, e, 2);
        } else if (*c < 0x20) {
            char e[6] = {'\\', 'u', '0', '0', hex[*c >> 4], hex[*c & 15]};
            out_mem(o, e, 6);
        } else {
            out_char(o, (char)*c);
        }
    }
    out_char(o, '"');
}

/* Days since 1970-01-01 → civil date (proleptic Gregorian; H. Hinnant's algorithm). */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static inline void put2(char *p, unsigned v) {
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
}

size_t gen_format_time(int64_t t, char *out) {
    int64_t days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
    int64_t sod = t - days * 86400;
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    unsigned yy = (unsigned)(y < 0 ? 0 : y > 9999 ? 9999 : y);
    put2(out, yy / 100);
    put2(out + 2, yy % 100);
    out[4] = '-';
    put2(out + 5, m);
    out[7] = '-';
    put2(out + 8, d);
    out[10] = 'T';
    put2(out + 11, (unsigned)(sod / 3600));
    out[13] = ':';
    put2(out + 14, (unsigned)(sod / 60 % 60));
    out[16] = ':';
    put2(out + 17, (unsigned)(sod % 60));
    out[19] = 'Z';
    return 20;
}

static void out_time_string(struct out *o, int64_t t) {
    char buf[22];
    buf[0] = '"';
    gen_format_time(t, buf + 1);
    buf[21] = '"';
    out_mem(o, buf, sizeof buf);
}

enum { F_ID = 0, F_USER_NAME, F_EMAIL, F_NAME, F_CREATED, F_UPDATED, F_DELETED, F_COUNT };
static const char *const FIELD_KEY[F_COUNT] = {
    "id", "userName", "email", "name", "createdAt", "updatedAt", "deleted",
};

#define SLOT_MAX 160
struct slots {
    char v[F_COUNT][SLOT_MAX];  /* raw JSON text of each value */
    size_t n[F_COUNT];
    bool omit[F_COUNT];
};

static struct out slot_begin(struct slots *s, int f) {
    return (struct out){s->v[f], s->v[f] + SLOT_MAX, true};
}

static bool slot_end(struct slots *s, int f, const struct out *o) {
    s->n[f] = (size_t)(o->p - s->v[f]);
    return o->ok;
}

/* Replaces slot f with literal raw JSON text. */
static bool slot_set(struct slots *s, int f, const char *raw) {
    struct out o = slot_begin(s, f);
    out_str(&o, raw);
    return slot_end(s, f, &o);
}

static void out_slug_cap(struct out *o, const char *slug, bool capitalise) {
    if (capitalise && *slug) {
        out_char(o, (char)(slug[0] - 'a' + 'A'));
        out_str(o, slug + 1);
    } else {
        out_str(o, slug);
    }
}

/* Writes the bare userName text (no quotes) of the user introduced by record root. */
static void out_user_name(struct out *o, const struct gen_knobs *k, uint64_t root) {
    uint64_t h = gen_hash(k, root, SALT_NAME);
    const struct person_name *f = &FIRST[h % NFIRST];
    const struct person_name *l = &LAST[(h >> 16) % NLAST];
    unsigned style = (unsigned)((h >> 32) % 5);
    static const char *const SEP[] = {".", "-", "", ".", "."};
    bool cap = style == 3;
    out_slug_cap(o, f->slug, cap);
    out_str(o, SEP[style]);
    out_slug_cap(o, l->slug, cap);
    out_char(o, '_');
    out_u64(o, root + 1);
}

/* Fills every slot with the valid value of record r. */
static bool gen_fill_slots(const struct gen_knobs *k, const struct gen_record *r, struct slots *s) {
    memset(s->omit, 0, sizeof s->omit);
    uint64_t hroot = gen_hash(k, r->root, SALT_NAME);
    const struct person_name *first = &FIRST[hroot % NFIRST];
    const struct person_name *last = &LAST[r->last_name];
    const char *domain = DOMAINS[(gen_hash(k, r->index, SALT_NAME) >> 40) % NDOMAINS];
    bool ok = true;
    struct out o;

    o = slot_begin(s, F_ID);
    out_u64(&o, r->id);
    ok &= slot_end(s, F_ID, &o);

    o = slot_begin(s, F_USER_NAME);
    out_char(&o, '"');
    out_user_name(&o, k, r->root);
    out_char(&o, '"');
    ok &= slot_end(s, F_USER_NAME, &o);

    /* The record index makes every email unique across the stream, so a DUP changes it. */
    o = slot_begin(s, F_EMAIL);
    out_char(&o, '"');
    out_str(&o, first->slug);
    out_char(&o, '.');
    out_str(&o, last->slug);
    out_char(&o, '.');
    out_u64(&o, r->index + 1);
    out_char(&o, '@');
    out_str(&o, domain);
    out_char(&o, '"');
    ok &= slot_end(s, F_EMAIL, &o);

    char name[128];
    struct out no = {name, name + sizeof name - 1, true};
    out_str(&no, first->display);
    out_char(&no, ' ');
    out_str(&no, last->display);
    *no.p = '\0';
    o = slot_begin(s, F_NAME);
    out_json_string(&o, name);
    ok &= no.ok && slot_end(s, F_NAME, &o);

    o = slot_begin(s, F_CREATED);
    out_time_string(&o, r->created_at);
    ok &= slot_end(s, F_CREATED, &o);

    o = slot_begin(s, F_UPDATED);
    out_time_string(&o, r->updated_at);
    ok &= slot_end(s, F_UPDATED, &o);

    ok &= slot_set(s, F_DELETED, r->deleted ? "true" : "false");
    return ok;
}

/* Applies the corruption of r to the slots (all shapes but BROKEN_JSON). */
static bool gen_corrupt_slots(const struct gen_knobs *k, const struct gen_record *r, struct slots *s) {
    unsigned v = r->variant;
    struct out o;
    switch (r->corrupt) {
    case GEN_CORRUPT_MISSING_FIELD:
        s->omit[v % F_COUNT] = true;
        return true;
    case GEN_CORRUPT_WRONG_TYPE:
        switch (v % 5) {
        case 0:
            o = slot_begin(s, F_ID);
            out_str(&o, "\"abc");
            out_u64(&o, r->id);
            out_char(&o, '"');
            return slot_end(s, F_ID, &o);
        case 1: return slot_set(s, F_DELETED, "\"yes\"");
        case 2:
            o = slot_begin(s, F_USER_NAME);
            out_u64(&o, r->id);
            return slot_end(s, F_USER_NAME, &o);
        case 3: return slot_set(s, F_EMAIL, "null");
        default:
            o = slot_begin(s, F_UPDATED);
            out_i64(&o, r->updated_at);
            return slot_end(s, F_UPDATED, &o);
        }
    case GEN_CORRUPT_INVALID_EMAIL: {
        static const char *const BAD[] = {
            "\"%u\"",               /* no '@' */
            "\"%u smith@example.com\"", /* whitespace */
            "\"@example.com\"",     /* empty local part */
            "\"%u@\"",              /* empty domain */
            "\"%u@@example.com\"",  /* two '@' */
            "\"%u@example\"",       /* domain without a dot */
        };
        const char *tpl = BAD[v % (sizeof BAD / sizeof BAD[0])];
        o = slot_begin(s, F_EMAIL);
        for (const char *c = tpl; *c; c++) {
            if (c[0] == '%' && c[1] == 'u') {
                out_user_name(&o, k, r->root);
                c++;
            } else {
                out_char(&o, *c);
            }
        }
        return slot_end(s, F_EMAIL, &o);
    }
    case GEN_CORRUPT_INVALID_USERNAME:
        switch (v % 5) {
        case 0: return slot_set(s, F_USER_NAME, "\"ab\"");
        case 1: return slot_set(s, F_USER_NAME, "\"\"");
        case 2:
            o = slot_begin(s, F_USER_NAME);
            out_str(&o, "\"bad name ");
            out_u64(&o, r->id);
            out_char(&o, '"');
            return slot_end(s, F_USER_NAME, &o);
        case 3:
            o = slot_begin(s, F_USER_NAME);
            out_str(&o, "\"user!");
            out_u64(&o, r->id);
            out_char(&o, '"');
            return slot_end(s, F_USER_NAME, &o);
        default:  /* 65+ characters */
            o = slot_begin(s, F_USER_NAME);
            out_char(&o, '"');
            for (int n = 0; n < 65; n++) out_char(&o, (char)('a' + n % 26));
            out_u64(&o, r->id);
            out_char(&o, '"');
            return slot_end(s, F_USER_NAME, &o);
        }
    case GEN_CORRUPT_INVALID_TIMESTAMP: {
        static const char *const BAD[] = {
            "\"not-a-date\"", "\"2024-03-01 12:00:00\"", "\"01/03/2024 12:00\"", "\"\"",
            "\"2024-13-45T25:61:61Z\"",
        };
        int f = (v & 1) ? F_CREATED : F_UPDATED;
        return slot_set(s, f, BAD[v % (sizeof BAD / sizeof BAD[0])]);
    }
    default:
        return false;
    }
}

/* Brace-balanced, quote-balanced text without '[', ']', '\\' or newlines that no JSON parser
 * accepts: an incremental splitter that tracks strings and brace depth skips it as one element. */
static void gen_broken_json(const struct gen_knobs *k, const struct gen_record *r, struct out *o) {
    switch (r->variant % 6) {
    case 0:  /* missing comma and missing value */
        out_str(o, "{\"id\":");
        out_u64(o, r->id);
        out_str(o, ",\"userName\":\"x\" \"email\":}");
        break;
    case 1:  /* doubled comma */
        out_str(o, "{\"id\":");
        out_u64(o, r->id);
        out_str(o, ",\"userName\":\"");
        out_user_name(o, k, r->root);
        out_str(o, "\",,\"deleted\":false}");
        break;
    case 2:  /* unquoted keys */
        out_str(o, "{id:");
        out_u64(o, r->id);
        out_str(o, ",userName:\"");
        out_user_name(o, k, r->root);
        out_str(o, "\"}");
        break;
    case 3:  /* misspelt literal */
        out_str(o, "{\"id\":");
        out_u64(o, r->id);
        out_str(o, ",\"userName\":\"");
        out_user_name(o, k, r->root);
        out_str(o, "\",\"deleted\":fals}");
        break;
    case 4:  /* trailing comma */
        out_str(o, "{\"id\":");
        out_u64(o, r->id);
        out_str(o, ",\"userName\":\"");
        out_user_name(o, k, r->root);
        out_str(o, "\",}");
        break;
    default: /* colon instead of comma, dangling key */
        out_str(o, "{\"id\":");
        out_u64(o, r->id);
        out_str(o, ":\"userName\"}");
        break;
    }
}

size_t gen_record_format(const struct gen_knobs *k, uint64_t i, char *out) {
    struct gen_record r;
    struct slots s;
    struct out o = {out, out + GEN_RECORD_MAX - 1, true};
    gen_record_info(k, i, &r);
    if (r.kind == GEN_CORRUPT && r.corrupt == GEN_CORRUPT_BROKEN_JSON) {
        gen_broken_json(k, &r, &o);
    } else {
        bool ok = gen_fill_slots(k, &r, &s);
        if (r.kind == GEN_CORRUPT) ok &= gen_corrupt_slots(k, &r, &s);
        if (!ok) return 0;
        bool first = true;
        out_char(&o, '{');
        for (int f = 0; f < F_COUNT; f++) {
            if (s.omit[f]) continue;
            if (!first) out_char(&o, ',');
            first = false;
            out_char(&o, '"');
            out_str(&o, FIELD_KEY[f]);
            out_str(&o, "\":");
            out_mem(&o, s.v[f], s.n[f]);
        }
        out_char(&o, '}');
    }
    if (!o.ok) return 0;
    *o.p = '\0';
    return (size_t)(o.p - out);
}
