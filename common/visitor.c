/* visitor.c -- computes the daily visitor hash described in visitor.h. */
#include "visitor.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <stdlib.h>
#include <string.h>

static void to_hex(const unsigned char *mac, char out[VISITOR_HEX_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < VISITOR_HEX_LEN / 2; i++) {
        out[2 * i] = hex[mac[i] >> 4];
        out[2 * i + 1] = hex[mac[i] & 15];
    }
    out[VISITOR_HEX_LEN] = '\0';
}

int visitor_hash(const void *salt, size_t saltlen, const char *site, size_t sitelen,
                 const char *receipt, size_t receiptlen, char out[VISITOR_HEX_LEN + 1])
{
    unsigned char msg[512], mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    if (sitelen + 1 + receiptlen > sizeof msg) return -1;
    memcpy(msg, site, sitelen);
    msg[sitelen] = '\n';
    memcpy(msg + sitelen + 1, receipt, receiptlen);
    if (!HMAC(EVP_sha256(), salt, (int)saltlen, msg, sitelen + 1 + receiptlen, mac, &maclen))
        return -1;
    to_hex(mac, out);
    return 0;
}

struct visitor_key {
    EVP_MAC *mac;
    EVP_MAC_CTX *ctx;
};

struct visitor_key *visitor_key_new(const void *salt, size_t saltlen)
{
    struct visitor_key *k = calloc(1, sizeof *k);
    if (!k) return NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    if (!(k->mac = EVP_MAC_fetch(NULL, "HMAC", NULL)) || !(k->ctx = EVP_MAC_CTX_new(k->mac)) ||
        !EVP_MAC_init(k->ctx, salt, saltlen, params)) {
        visitor_key_free(k);
        return NULL;
    }
    return k;
}

void visitor_key_free(struct visitor_key *k)
{
    if (!k) return;
    EVP_MAC_CTX_free(k->ctx);
    EVP_MAC_free(k->mac);
    free(k);
}

int visitor_key_hash(struct visitor_key *k, const char *site, size_t sitelen,
                     const char *receipt, size_t receiptlen, char out[VISITOR_HEX_LEN + 1])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t maclen = 0;
    /* NULL key: the same key again, without redoing its schedule. */
    if (!EVP_MAC_init(k->ctx, NULL, 0, NULL) ||
        !EVP_MAC_update(k->ctx, (const unsigned char *)site, sitelen) ||
        !EVP_MAC_update(k->ctx, (const unsigned char *)"\n", 1) ||
        !EVP_MAC_update(k->ctx, (const unsigned char *)receipt, receiptlen) ||
        !EVP_MAC_final(k->ctx, mac, &maclen, sizeof mac))
        return -1;
    to_hex(mac, out);
    return 0;
}
