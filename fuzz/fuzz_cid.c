/* Correlation ids and UUIDs (shared/src/cid.c): X-Correlation-ID / X-Request-ID come from
 * clients and end up in response headers and every log line, and ids in paths are checked with
 * svc_uuid_is_valid before they reach SQL.
 *
 * Properties: svc_cid_is_sane accepts exactly 1..128 bytes of [A-Za-z0-9._:-] and
 * svc_uuid_is_valid exactly the 8-4-4-4-12 hex form (both against definitions written here);
 * a version-7 UUID built from any random bytes is a valid UUID and a sane correlation id with its
 * version and variant bits set. */
#include "fuzz.h"

#include "svc/cid.h"

static bool cid_char(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == ':' || c == '-';
}

static bool hex_char(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Byte i (0..15) of a UUID's text form. */
static unsigned uuid_byte(const char *id, int i) {
    int at = 2 * i + (i >= 4) + (i >= 6) + (i >= 8) + (i >= 10);
    unsigned v = 0;
    for (int k = 0; k < 2; k++) {
        char c = id[at + k];
        v = v << 4 | (unsigned)(c <= '9' ? c - '0' : c - 'a' + 10);
    }
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *s = fuzz_strndup(data, size);
    size_t n = strlen(s);

    bool sane = n >= 1 && n <= SVC_CID_MAX;
    for (size_t i = 0; sane && i < n; i++) sane = cid_char((unsigned char)s[i]);
    FUZZ_CHECK(svc_cid_is_sane(s) == sane, "svc_cid_is_sane(\"%.200s\") = %d, expected %d", s, !sane, sane);

    bool uuid = n == SVC_UUID_LEN;
    for (size_t i = 0; uuid && i < n; i++)
        uuid = (i == 8 || i == 13 || i == 18 || i == 23) ? s[i] == '-' : hex_char((unsigned char)s[i]);
    FUZZ_CHECK(svc_uuid_is_valid(s) == uuid, "svc_uuid_is_valid(\"%.200s\") = %d, expected %d", s, !uuid, uuid);
    /* a valid UUID is always a sane correlation id (services echo one as the other) */
    FUZZ_CHECK(!uuid || sane, "UUID \"%s\" is not a sane correlation id", s);

    unsigned char rnd[SVC_UUID7_RANDOM_BYTES] = {0};
    memcpy(rnd, data, size < sizeof rnd ? size : sizeof rnd);
    char id[SVC_UUID_LEN + 1];
    memset(id, 'x', sizeof id);
    svc_uuid7_from(rnd, id);
    FUZZ_CHECK(id[SVC_UUID_LEN] == '\0' && strlen(id) == SVC_UUID_LEN, "uuid7 not terminated");
    FUZZ_CHECK(svc_uuid_is_valid(id) && svc_cid_is_sane(id), "uuid7 \"%s\" is not valid", id);
    FUZZ_CHECK(id[14] == '7', "uuid7 \"%s\" has version %c", id, id[14]);
    FUZZ_CHECK(strchr("89ab", id[19]) != NULL, "uuid7 \"%s\" has variant %c", id, id[19]);
    for (size_t i = 0; i < SVC_UUID_LEN; i++)
        FUZZ_CHECK(id[i] == '-' || (hex_char((unsigned char)id[i]) && !(id[i] >= 'A' && id[i] <= 'F')),
                   "uuid7 \"%s\" is not lower-case hex", id);
    /* the caller's random bytes are kept, but for the version and variant bits */
    for (int i = 0; i < SVC_UUID7_RANDOM_BYTES; i++) {
        unsigned keep = i == 0 ? 0x0f : i == 2 ? 0x3f : 0xff;
        FUZZ_CHECK((uuid_byte(id, 6 + i) & keep) == (rnd[i] & keep), "uuid7 \"%s\" lost random byte %d", id, i);
    }

    free(s);
    return 0;
}
