/* web.h -- the files of aggregator/web/ (the dashboard page, and any .css or
 * .js beside it), compiled into the aggregator by common/build.mk
 * (embed_files) as a table ended by an entry whose name is NULL. serve.c
 * serves them; anything else printing the page (an HTML report) reads the
 * same bytes. Look a file up with embed_find(web_files, "dashboard.html", 14).
 */
#ifndef FAIRSTAT_WEB_H
#define FAIRSTAT_WEB_H

#include "embed.h"

extern const struct embed_file web_files[];

#endif
