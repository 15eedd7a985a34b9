/* TURN REST credentials (coturn's use-auth-secret): time-limited, derived from a shared secret. */
#include "turn.h"

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

int sb_turn_credentials(const char *secret, size_t secret_len, const char *peer, uint64_t expiry,
                        char username[SB_TURN_USERNAME_MAX],
                        char credential[SB_TURN_CREDENTIAL_MAX], const char **err)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    int n = snprintf(username, SB_TURN_USERNAME_MAX, "%llu:%s", (unsigned long long)expiry, peer);
    if (n < 0 || n >= SB_TURN_USERNAME_MAX) {
        if (err)
            *err = "peer ID too long";
        return -1;
    }
    if (HMAC(EVP_sha1(), secret, (int)secret_len, (const unsigned char *)username, (size_t)n, mac,
             &mac_len) == NULL ||
        mac_len != 20) {
        if (err)
            *err = "HMAC-SHA1 failed";
        return -1;
    }
    EVP_EncodeBlock((unsigned char *)credential, mac, 20); /* 28 characters and a NUL */
    return 0;
}
