/* fuzz_beacon.c -- libFuzzer target for the beacon parsers: the JSON body
 * (through collector/json.c), the pixel query string and the consent body.
 * Every output field must stay NUL-terminated within its bounds whatever
 * the input. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "beacon.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct beacon b;
    if (beacon_parse_json((const char *)data, size, &b) == BEACON_OK) {
        size_t props = strlen(b.props);
        if (strlen(b.path) > BEACON_PATH_MAX || props > BEACON_PROPS_MAX ||
            b.path[0] != '/' || !b.domain[0])
            __builtin_trap();
        /* props, written back by beacon.c, are one compact object or nothing */
        if (props && (props < 6 || b.props[0] != '{' || b.props[1] != '"' || b.props[props - 1] != '}'))
            __builtin_trap();
    }
    if (beacon_parse_query((const char *)data, size, &b) == BEACON_OK && b.path[0] != '/')
        __builtin_trap();
    char domain[BEACON_DOMAIN_MAX + 1];
    int analytics = -1;
    if (beacon_parse_consent((const char *)data, size, domain, &analytics) == BEACON_OK &&
        analytics != 0 && analytics != 1)
        __builtin_trap();
    return 0;
}
