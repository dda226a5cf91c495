/* Socket address parsing shared by listeners and clients. */
#ifndef DDKV_UTIL_NET_H
#define DDKV_UTIL_NET_H

#include <sys/socket.h>

/* Parse "host:port" or "[v6]:port" (port 0 allowed: the kernel picks) into ss.
 * host may be a name (resolved with getaddrinfo, first address). Returns 0 or
 * ERR_BAD_INPUT. */
int net_parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len);
/* Format ss as "host:port" / "[v6]:port" into out. */
void net_format_addr(const struct sockaddr *sa, char *out, size_t n);
/* True for 127.0.0.0/8 and ::1. */
int net_is_loopback(const struct sockaddr *sa);

#endif
