/* Helpers shared by the libFuzzer harnesses in fuzz/ (one harness per parser of outside bytes;
 * see docs/operations.md, "Fuzzing").
 *
 * A harness asserts properties of what the parser returns, not only that it survives: a broken
 * property is reported with FUZZ_CHECK, which prints the property and aborts, so libFuzzer
 * saves the input as a crash artifact exactly as for a sanitizer report.
 *
 * Inputs that carry several strings separate them with NUL bytes (fuzz_split); a missing part is
 * NULL, which harnesses use for "absent" (an absent query parameter, no header). Everything a
 * helper returns is owned by the caller (free). */
#ifndef FUZZ_H
#define FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond, ...)                                                                   \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            fprintf(stderr, "\nfuzz: property failed at %s:%d: %s\n  ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                                       \
            fprintf(stderr, "\n");                                                              \
            abort();                                                                            \
        }                                                                                       \
    } while (0)

/* A NUL-terminated copy of data[0..n) (which may itself contain NUL bytes). */
static inline char *fuzz_strndup(const uint8_t *data, size_t n) {
    char *s = malloc(n + 1);
    if (!s) abort();
    if (n) memcpy(s, data, n);
    s[n] = '\0';
    return s;
}

/* Cuts data at NUL bytes into at most max parts ("a\0" is "a" and ""; bytes after the max-th
 * part are ignored). parts[i] gets a new string, or NULL when the input has fewer parts;
 * returns the number of parts present. Free with fuzz_free_parts. */
static inline int fuzz_split(const uint8_t *data, size_t size, char **parts, int max) {
    int n = 0;
    size_t i = 0;
    for (; n < max; n++) {
        if (i > size) break;
        const uint8_t *nul = memchr(data + i, 0, size - i);
        size_t len = nul ? (size_t)(nul - (data + i)) : size - i;
        parts[n] = fuzz_strndup(data + i, len);
        i += len + 1;
    }
    for (int k = n; k < max; k++) parts[k] = NULL;
    return n;
}

static inline void fuzz_free_parts(char **parts, int max) {
    for (int i = 0; i < max; i++) free(parts[i]);
}

/* splitmix64: a deterministic generator seeded from the input (chunk sizes, choices). */
static inline uint64_t fuzz_rand(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline uint64_t fuzz_seed(const uint8_t *data, size_t size) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < size; i++) h = (h ^ data[i]) * 1099511628211ull;
    return h;
}

/* Whether s[0..n) is well-formed UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF), written here independently of the parsers under test. */
static inline bool fuzz_utf8_ok(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        unsigned c = *p;
        size_t k;
        uint32_t cp;
        if (c < 0x80) { p++; continue; }
        if ((c & 0xE0) == 0xC0) { k = 2; cp = c & 0x1F; }
        else if ((c & 0xF0) == 0xE0) { k = 3; cp = c & 0x0F; }
        else if ((c & 0xF8) == 0xF0) { k = 4; cp = c & 0x07; }
        else return false;
        if ((size_t)(end - p) < k) return false;
        for (size_t i = 1; i < k; i++) {
            if ((p[i] & 0xC0) != 0x80) return false;
            cp = cp << 6 | (p[i] & 0x3F);
        }
        if ((k == 2 && cp < 0x80) || (k == 3 && cp < 0x800) || (k == 4 && cp < 0x10000)) return false;
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        p += k;
    }
    return true;
}

#endif
