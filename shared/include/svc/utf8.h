/* UTF-8 text: the one place that decides whether bytes are well-formed UTF-8, how many characters
 * (code points) they hold, and whether they are free text a person could have typed.
 *
 * Well-formed is RFC 3629: no stray continuation bytes, no overlong forms, no UTF-16 surrogates
 * (U+D800-U+DFFF), nothing past U+10FFFF. jansson hands out only well-formed strings, but the
 * readers of raw bodies (TSV, the legacy JSON stream) check bytes themselves with svc_utf8_seq.
 *
 * Free text refuses every control character (Unicode general category Cc): C0 U+0000-U+001F,
 * DEL U+007F and C1 U+0080-U+009F (e.g. U+0085 NEXT LINE, which some consoles and log viewers
 * treat as a line break), except tab and newline where the field allows them. In UTF-8 a C1
 * character is the two bytes C2 80..C2 9F, which is why a byte-wise "< 0x20 or 0x7F" test let
 * them through.
 *
 * Pure functions of their arguments: thread-safe, nothing allocated. */
#ifndef SVC_UTF8_H
#define SVC_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Length in bytes of the well-formed sequence starting at p (requires p < end): 1 for an ASCII
 * byte (NUL included), 2-4 for a multi-byte character, 0 when the bytes there are not one. */
size_t svc_utf8_seq(const unsigned char *p, const unsigned char *end);

/* Characters in s[0..len) when it is well-formed UTF-8, else -1. */
long svc_utf8_count(const char *s, size_t len);

/* What svc_text_check allows besides printable characters. */
#define SVC_TEXT_TAB 0x1u       /* U+0009 */
#define SVC_TEXT_NEWLINE 0x2u   /* U+000A (not CR) */

enum svc_text_verdict {
    SVC_TEXT_OK,
    SVC_TEXT_NOT_UTF8,      /* not well-formed UTF-8 */
    SVC_TEXT_CONTROL,       /* well-formed, holds a control character the flags do not allow */
};

/* Checks s[0..len) as free text. *chars (may be NULL) receives the number of characters whenever
 * the text is well-formed (also for SVC_TEXT_CONTROL), so a caller can report the length first. */
enum svc_text_verdict svc_text_check(const char *s, size_t len, unsigned allow, size_t *chars);

/* The reason a validation error gives for a verdict other than SVC_TEXT_OK (static text). */
const char *svc_text_reason(enum svc_text_verdict v);

#endif
