/* utf8.h -- strict UTF-8 validation for every text a visitor can get stored.
 *
 * Strict as RFC 3629 says: the shortest form only (no overlong sequences
 * such as C0 AF for '/'), no UTF-16 surrogates (ED A0 80 .. ED BF BF), no
 * code point over U+10FFFF, no lone or truncated continuation bytes. NUL is
 * valid UTF-8; callers that refuse control characters do so themselves.
 */
#ifndef FAIRSTAT_UTF8_H
#define FAIRSTAT_UTF8_H

#include <stddef.h>

/* 1 when the len bytes at s are valid UTF-8, else 0. Never reads past len. */
int utf8_valid(const char *s, size_t len);

/* 1 when every \uXXXX escape in the JSON text at s (len bytes) is a code
 * point of its own: a high surrogate \uD800-\uDBFF followed at once by a low
 * one \uDC00-\uDFFF, no low surrogate alone. JSON parsers differ on lone
 * surrogates (yajl turns a lone high one into '?' and glues a high one to
 * whatever \u follows), so we refuse them before parsing. Escapes are found
 * by their backslash, which JSON allows only inside strings. */
int utf8_json_escapes_valid(const char *s, size_t len);

#endif
