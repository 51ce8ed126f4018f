/* Record generation and page formatting for the ERP simulator (see data.h). Formatting is done by
 * hand into one buffer (no JSON library): a page of 500 records is ~90 KB and the benchmark reads
 * a million records through here. */
#define _GNU_SOURCE /* timegm */
#include "data.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t data_hash(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
    uint64_t x = seed ^ 0x9e3779b97f4a7c15ULL;
    uint64_t in[3] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        x += in[i] * 0xbf58476d1ce4e5b9ULL + 0x9e3779b97f4a7c15ULL;
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
        x ^= x >> 31;
    }
    return x;
}

static double unit(uint64_t h) { return (double)(h >> 11) * 0x1p-53; }

/* Salts keep the independent decisions about one record apart. */
enum { SALT_CHANGE = 1, SALT_DELETE, SALT_FIRST, SALT_LAST, SALT_DOC, SALT_ADJ, SALT_NOUN, SALT_PRICE,
       SALT_STOCK, SALT_QUOTE };

void data_meta(const struct data_set *d, enum data_kind kind, uint32_t i, struct data_record_meta *out) {
    out->version = 0;
    out->deleted = false;
    out->updated_at = DATA_V0_BASE + (int64_t)i;
    for (int k = d->advances; k >= 1; k--) {
        if (unit(data_hash(d->seed, ((uint64_t)kind << 32) | i, (uint64_t)k, SALT_CHANGE)) < d->share[k]) {
            out->version = k;
            out->updated_at = DATA_T0 + (int64_t)k * 86400 + (int64_t)(i % 3600);
            out->deleted = unit(data_hash(d->seed, ((uint64_t)kind << 32) | i, (uint64_t)k, SALT_DELETE)) <
                           d->delete_share[k];
            return;
        }
    }
}

void data_ts(int64_t t, char out[24]) {
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 24, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static bool digits(const char *s, int n) {
    for (int i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i])) return false;
    return true;
}

static int num(const char *s, int n) {
    int v = 0;
    for (int i = 0; i < n; i++) v = v * 10 + (s[i] - '0');
    return v;
}

int data_parse_ts(const char *s, int64_t *out) {
    /* YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM) */
    if (strlen(s) < 20 || !digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' || !digits(s + 8, 2) ||
        (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2) || s[13] != ':' || !digits(s + 14, 2) || s[16] != ':' ||
        !digits(s + 17, 2))
        return -1;
    struct tm tm = {.tm_year = num(s, 4) - 1900, .tm_mon = num(s + 5, 2) - 1, .tm_mday = num(s + 8, 2),
                    .tm_hour = num(s + 11, 2), .tm_min = num(s + 14, 2), .tm_sec = num(s + 17, 2)};
    if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
        tm.tm_sec > 60)
        return -1;
    const char *p = s + 19;
    bool frac = false;
    if (*p == '.') {
        p++;
        const char *f = p;
        while (isdigit((unsigned char)*p)) {
            if (*p != '0') frac = true;
            p++;
        }
        if (p == f) return -1;
    }
    int offset = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if ((*p == '+' || *p == '-') && digits(p + 1, 2) && p[3] == ':' && digits(p + 4, 2)) {
        int h = num(p + 1, 2), m = num(p + 4, 2);
        if (h > 23 || m > 59) return -1;
        offset = (h * 60 + m) * 60 * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return -1;
    }
    if (*p) return -1;
    struct tm check = tm;
    time_t t = timegm(&tm);
    if (t == (time_t)-1 || tm.tm_mday != check.tm_mday || tm.tm_mon != check.tm_mon) return -1;  /* 31 Feb */
    *out = (int64_t)t - offset + (frac ? 1 : 0);
    return 0;
}

/* ---- content ---- */

/* Parallel tables: display form (UTF-8, may need JSON escaping) and an ASCII form for emails. */
static const char *const FIRST[][2] = {
    {"Ana", "ana"}, {"Bruno", "bruno"}, {"Carla", "carla"}, {"Diego", "diego"}, {"Elena", "elena"},
    {"Fábio", "fabio"}, {"Gabriela", "gabriela"}, {"Hugo", "hugo"}, {"Inês", "ines"}, {"João", "joao"},
    {"Karin", "karin"}, {"Łukasz", "lukasz"}, {"María", "maria"}, {"Nuno", "nuno"}, {"Olga", "olga"},
    {"Paulo", "paulo"}, {"Quentin", "quentin"}, {"Rafaela", "rafaela"}, {"Søren", "soren"}, {"Tomás", "tomas"},
    {"Ursula", "ursula"}, {"Vítor", "vitor"}, {"Wen", "wen"}, {"Xavier", "xavier"}, {"Yuki", "yuki"},
    {"Zoë", "zoe"}, {"D'Arcy", "darcy"}, {"Amélie", "amelie"}, {"Björn", "bjorn"}, {"Chloé", "chloe"},
    {"美咲", "misaki"}, {"Omar", "omar"},
};
static const char *const LAST[][2] = {
    {"Silva", "silva"}, {"Santos", "santos"}, {"Oliveira", "oliveira"}, {"Souza", "souza"}, {"Müller", "muller"},
    {"O'Brien", "obrien"}, {"Nguyễn", "nguyen"}, {"García", "garcia"}, {"Kowalski", "kowalski"},
    {"Dvořák", "dvorak"}, {"Rossi", "rossi"}, {"Dubois", "dubois"}, {"Jensen", "jensen"}, {"Yamada", "yamada"},
    {"Costa", "costa"}, {"Pereira", "pereira"}, {"Almeida", "almeida"}, {"Fernández", "fernandez"},
    {"Novak", "novak"}, {"Andersson", "andersson"}, {"Schmidt", "schmidt"}, {"Bianchi", "bianchi"},
    {"Ribeiro", "ribeiro"}, {"Lopes", "lopes"}, {"Martins", "martins"}, {"Carvalho", "carvalho"},
    {"Gomes", "gomes"}, {"Teixeira", "teixeira"}, {"Moreira", "moreira"}, {"Lima", "lima"}, {"Barbosa", "barbosa"},
    {"Öztürk", "ozturk"},
};
static const char *const ADJ[] = {"Red", "Blue", "Large", "Small", "Classic", "Premium", "Eco", "Smart",
                                   "Compact", "Deluxe", "Basic", "Ultra", "Mini", "Pro", "Soft", "Heavy"};
static const char *const NOUN[] = {"Chair", "Lamp", "Table", "Mug", "Backpack", "Keyboard", "Bottle", "Notebook",
                                    "Pen", "Cable", "Speaker", "Jacket", "Shoe", "Watch", "Plate", "Pillow"};
#define NFIRST (sizeof FIRST / sizeof FIRST[0])
#define NLAST (sizeof LAST / sizeof LAST[0])
#define NADJ (sizeof ADJ / sizeof ADJ[0])
#define NNOUN (sizeof NOUN / sizeof NOUN[0])

/* Appends s as a JSON string (quotes included). */
static void json_str(struct svc_buf *b, const char *s) {
    svc_buf_append(b, "\"", 1);
    const char *run = s;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch != '"' && ch != '\\' && ch >= 0x20) continue;
        svc_buf_append(b, run, (size_t)(s - run));
        if (ch == '"') svc_buf_append(b, "\\\"", 2);
        else if (ch == '\\') svc_buf_append(b, "\\\\", 2);
        else svc_buf_printf(b, "\\u%04x", ch);
        run = s + 1;
    }
    svc_buf_append(b, run, (size_t)(s - run));
    svc_buf_append(b, "\"", 1);
}

static void format_customer(const struct data_set *d, uint32_t i, const struct data_record_meta *m,
                            struct svc_buf *b) {
    uint64_t key = ((uint64_t)DATA_CUSTOMERS << 32) | i;
    size_t f = data_hash(d->seed, key, 0, SALT_FIRST) % NFIRST;
    size_t l = data_hash(d->seed, key, (uint64_t)m->version, SALT_LAST) % NLAST;
    uint64_t doc = data_hash(d->seed, key, 0, SALT_DOC) % 100000000000ULL;
    char name[160], ts[24];
    /* One record in ~500 has a nickname in quotes and a backslash: importers must unescape. */
    if (data_hash(d->seed, key, (uint64_t)m->version, SALT_QUOTE) % 500 == 0)
        snprintf(name, sizeof name, "%s \"%s\\%s\" %s", FIRST[f][0], FIRST[f][1], LAST[l][1], LAST[l][0]);
    else
        snprintf(name, sizeof name, "%s %s", FIRST[f][0], LAST[l][0]);
    data_ts(m->updated_at, ts);
    svc_buf_printf(b, "{\"id\":\"C%06u\",\"name\":", i + 1);
    json_str(b, name);
    svc_buf_printf(b, ",\"email\":\"%s.%s.%u@example.com\",\"document\":\"%011llu\",\"updated_at\":\"%s\","
                      "\"deleted\":%s}",
                   FIRST[f][1], LAST[l][1], i + 1, (unsigned long long)doc, ts, m->deleted ? "true" : "false");
}

static void format_product(const struct data_set *d, uint32_t i, const struct data_record_meta *m, struct svc_buf *b) {
    uint64_t key = ((uint64_t)DATA_PRODUCTS << 32) | i;
    size_t a = data_hash(d->seed, key, (uint64_t)m->version, SALT_ADJ) % NADJ;
    size_t n = data_hash(d->seed, key, 0, SALT_NOUN) % NNOUN;
    uint64_t cents = 99 + data_hash(d->seed, key, (uint64_t)m->version, SALT_PRICE) % 99900;
    uint64_t stock = data_hash(d->seed, key, (uint64_t)m->version, SALT_STOCK) % 10000;
    char ts[24];
    data_ts(m->updated_at, ts);
    svc_buf_printf(b, "{\"id\":\"P%06u\",\"sku\":\"SKU-%07u\",\"name\":\"%s %s %u\",\"price\":\"%llu.%02llu\","
                      "\"stock\":%llu,\"updated_at\":\"%s\",\"deleted\":%s}",
                   i + 1, i + 1, ADJ[a], NOUN[n], i + 1, (unsigned long long)(cents / 100),
                   (unsigned long long)(cents % 100), (unsigned long long)stock, ts, m->deleted ? "true" : "false");
}

void data_format(const struct data_set *d, enum data_kind kind, uint32_t i, struct svc_buf *out) {
    struct data_record_meta m;
    data_meta(d, kind, i, &m);
    if (kind == DATA_CUSTOMERS) format_customer(d, i, &m, out);
    else format_product(d, i, &m, out);
}

int data_page(const struct data_set *d, enum data_kind kind, uint32_t page, uint32_t per_page, int64_t since,
              struct svc_buf *out) {
    uint32_t n = d->count[kind];
    uint64_t skip = (uint64_t)(page - 1) * per_page;
    int emitted = 0;
    bool more = false;
    svc_buf_puts(out, "{\"data\":[");
    struct data_record_meta m;
    if (since < 0) {
        for (uint64_t i = skip; i < n && emitted < (int)per_page; i++) {
            if (emitted) svc_buf_append(out, ",", 1);
            data_format(d, kind, (uint32_t)i, out);
            emitted++;
        }
        more = skip + (uint64_t)emitted < n;
    } else {
        uint64_t seen = 0;
        for (uint32_t i = 0; i < n; i++) {
            data_meta(d, kind, i, &m);
            if (m.updated_at < since) continue;
            if (seen++ < skip) continue;
            if (emitted == (int)per_page) {
                more = true;
                break;
            }
            if (emitted) svc_buf_append(out, ",", 1);
            if (kind == DATA_CUSTOMERS) format_customer(d, i, &m, out);
            else format_product(d, i, &m, out);
            emitted++;
        }
    }
    svc_buf_printf(out, "],\"page\":%u,\"per_page\":%u,\"has_more\":%s}", page, per_page, more ? "true" : "false");
    return emitted;
}

void data_summary(const struct data_set *d, enum data_kind kind, int64_t since, struct data_summary *out) {
    memset(out, 0, sizeof *out);
    struct data_record_meta m;
    for (uint32_t i = 0; i < d->count[kind]; i++) {
        data_meta(d, kind, i, &m);
        out->total++;
        if (m.deleted) out->deleted++;
        if (since < 0 || m.updated_at >= since) out->matching++;
        if (m.updated_at > out->max_updated_at) out->max_updated_at = m.updated_at;
    }
}

int data_advance(struct data_set *d, double share, double delete_share) {
    if (d->advances >= DATA_MAX_ADVANCES) return -1;
    int k = ++d->advances;
    d->share[k] = share;
    d->delete_share[k] = delete_share;
    return k;
}
