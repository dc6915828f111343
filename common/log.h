/* log.h -- one-line log messages on stderr.
 *
 * Never pass request data (IPs, User-Agents, URLs, cookies, bodies) to these:
 * a refused hit must leave no trace, and an accepted one is only in Redis.
 */
#ifndef FAIRSTAT_LOG_H
#define FAIRSTAT_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level level);
void log_set_name(const char *program);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
