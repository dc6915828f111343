/* visitor.c -- computes the daily visitor hash described in visitor.h. */
#include "visitor.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

int visitor_hash(const void *salt, size_t saltlen, const char *site, size_t sitelen,
                 const char *receipt, size_t receiptlen, char out[VISITOR_HEX_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char msg[512], mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    if (sitelen + 1 + receiptlen > sizeof msg) return -1;
    memcpy(msg, site, sitelen);
    msg[sitelen] = '\n';
    memcpy(msg + sitelen + 1, receipt, receiptlen);
    if (!HMAC(EVP_sha256(), salt, (int)saltlen, msg, sitelen + 1 + receiptlen, mac, &maclen))
        return -1;
    for (int i = 0; i < VISITOR_HEX_LEN / 2; i++) {
        out[2 * i] = hex[mac[i] >> 4];
        out[2 * i + 1] = hex[mac[i] & 15];
    }
    out[VISITOR_HEX_LEN] = '\0';
    return 0;
}
