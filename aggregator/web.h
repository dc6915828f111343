/* web.h -- the dashboard page, aggregator/web/dashboard.html, embedded at
 * build time (common/build.mk, embed_file). Static, read-only, lives as long
 * as the program. `serve` answers it at GET /; `report --format html` fills
 * its data element with a report (report_html.c).
 */
#ifndef FAIRSTAT_WEB_H
#define FAIRSTAT_WEB_H

#include <stddef.h>

extern const char web_dashboard[];      /* NUL-terminated */
extern const size_t web_dashboard_len;  /* without the NUL */

#endif
