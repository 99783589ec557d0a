/* utf8.h: UTF-8 helpers for streaming text out of a tokenizer.
 * Included by engine/ and server/. */
#ifndef HP_UTF8_H
#define HP_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Length of the longest prefix of s[0..n) that does not end inside an
 * incomplete (but so far valid) UTF-8 sequence. Bytes after it (at most 3)
 * may still be completed by later bytes and should be held back. */
size_t hp_utf8_complete_prefix(const char *s, size_t n);

/* Copy s[0..n) to dst replacing every invalid byte sequence with U+FFFD
 * (EF BF BD), so the result is valid UTF-8 (as JSON needs). dst must have
 * room for 3*n bytes. Returns bytes written. An incomplete sequence at the
 * end counts as invalid: call this only on text known to be final. */
size_t hp_utf8_sanitize(const char *s, size_t n, char *dst);

/* True if s[0..n) is entirely valid UTF-8. */
bool hp_utf8_valid(const char *s, size_t n);

#endif
