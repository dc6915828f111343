/* geo.h -- country and region of a client address, from a MaxMind DB file.
 *
 * The collector looks the address up once per accepted hit and then forgets it:
 * only the two codes below are stored. Any failure (no database, address not
 * in it, unexpected record layout, corrupt data) answers "unknown" (""): a
 * lookup never fails a hit.
 *
 * The record paths are configurable because databases differ: GeoIP2/GeoLite2
 * keep the country at "country.iso_code" and the region at
 * "subdivisions.0.iso_code"; ip-location-db's country files keep a top-level
 * "country_code". Components are separated by '.', and a component made of
 * digits indexes an array.
 */
#ifndef FAIRSTAT_GEO_H
#define FAIRSTAT_GEO_H

#include <sys/socket.h>

struct geo;

/* Opens the database at path (memory-mapped, read-only). path "" or NULL gives
 * a geo that answers unknown to everything. country_path / region_path NULL
 * or "" mean "do not look that up". Returns NULL and a message in err when the
 * file cannot be opened, is not a valid database, or a path is malformed (an
 * empty component, too many components). Free with geo_close(). */
struct geo *geo_open(const char *path, const char *country_path, const char *region_path,
                     char *err, size_t errlen);

/* Unmaps the database and frees g. NULL is allowed. */
void geo_close(struct geo *g);

/* Looks up an AF_INET or AF_INET6 address (IPv4-mapped IPv6 is looked up as
 * IPv4). Fills country with two upper-case ASCII letters or "", region with
 * "CC-SUB" (e.g. "GB-ENG", ASCII letters, digits and '-') or "". Thread-safe:
 * g is read-only after geo_open(). The outputs are the caller's; nothing in
 * them points into the database. */
void geo_lookup(const struct geo *g, const struct sockaddr *sa, char country[3],
                char region[16]);

#endif
