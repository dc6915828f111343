/* auth.h -- who may read which site's statistics: Bearer tokens, dashboard
 * sessions, share links.
 *
 * Tokens are never stored, only their SHA-256 (serve.tokens, "sha256:HEX" for
 * every site, "sha256:HEX@SITE" for one, comma-separated, or file:PATH of a
 * file listing them, read once at start); a presented token is hashed and
 * compared with each listed hash in constant time (CRYPTO_memcmp, every entry
 * compared whatever matched). A dashboard login trades a token for a session:
 * 32 random bytes, kept in this process's memory with an expiry and the
 * token's scope, sent as a cookie in hex. The cookie is not the token, and a
 * restart logs everyone out. A site's share link ([site] share = sha256:HEX
 * of a secret) opens a session scoped to that site.
 *
 * A scope is a site name, or NULL for every site. Scopes returned point into
 * the struct auth (tokens) or its sessions, and live until the session is
 * ended or expires -- copy one to keep it past the request.
 */
#ifndef FAIRSTAT_AUTH_H
#define FAIRSTAT_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "cfg.h"

#define AUTH_SESSION_MAX 4096       /* at most this many live sessions; the oldest go first */
#define AUTH_COOKIE "fs_session"
#define AUTH_TOKEN_BYTES 32

struct auth;

/* The tokens of cfg->serve.tokens (or of its file). NULL with a
 * reason in err. cfg is borrowed and must outlive the result. */
struct auth *auth_new(const struct cfg *cfg, char *err, size_t errlen);
void auth_free(struct auth *a);

/* Is tok[0..n) a listed token? 1 with *scope set, or 0. */
int auth_token(const struct auth *a, const char *tok, size_t n, const char **scope);

/* The value of an "Authorization: Bearer X" header: X, or NULL when the
 * header is absent or not Bearer. */
const char *auth_bearer(const char *hdr, size_t n, size_t *len);

/* Is secret[0..n) the share secret of site? 1 or 0 (no share configured: 0). */
int auth_share(const struct auth *a, const char *site, const char *secret, size_t n);

/* A new session for scope (copied) until now_ms + serve.session_ttl; its
 * cookie value (64 hex digits, NUL-terminated) in value. 0, or -1 when out of
 * memory or randomness. */
int auth_session_new(struct auth *a, const char *scope, int64_t now_ms, char value[65]);
/* The session named by the AUTH_COOKIE cookie in a Cookie header: 1 with
 * *scope set, or 0 (none, unknown, expired). */
int auth_session_find(struct auth *a, const char *cookie, size_t n, int64_t now_ms, const char **scope);
/* Ends the session named in a Cookie header, if any. */
void auth_session_end(struct auth *a, const char *cookie, size_t n);

/* May scope read site? */
int auth_allows(const char *scope, const char *site);

/* A new random token (AUTH_TOKEN_BYTES from the OS, base64url, no padding)
 * and the SHA-256 of it in hex. 0, or -1 when the OS gives no randomness. */
int auth_token_generate(char token[64], char sha_hex[65]);

#endif
