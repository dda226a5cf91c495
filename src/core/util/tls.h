/* TLS contexts and certificate checks on OpenSSL, shared by the node (client
 * and peer ports), libddkv and ddkv bench.
 *
 * Nothing here does I/O: the node drives OpenSSL through libevent's
 * bufferevent_openssl, libddkv through its own non-blocking socket and poll
 * deadlines. A context is built once from PEM files and shared by every
 * connection; SSL_CTX is reference-counted by OpenSSL and safe to use from
 * several threads once built (the hub's worker threads share one).
 *
 * Policy, in one place: TLS 1.2 or newer, OpenSSL's default cipher suites,
 * no session tickets on the node (connections are long-lived; tickets only
 * cost bytes), and a peer certificate, when one is asked for, must chain to
 * the CA file given (the system's CAs are never trusted implicitly). */
#ifndef DDKV_UTIL_TLS_H
#define DDKV_UTIL_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

/* The longest common name kept from a certificate (RFC 5280's ub-common-name). */
#define TLS_CN_MAX 64

/* What a listening side asks of the connecting side's certificate. */
enum tls_peer_cert {
    TLS_PEER_CERT_NONE,     /* not asked for (server authentication only) */
    TLS_PEER_CERT_OPTIONAL, /* asked for; none is fine, a bad one fails the handshake */
    TLS_PEER_CERT_REQUIRED, /* must be presented and chain to the CA */
};

/* A context for a node's listening port, or for both ends of the peer
 * transport (one context dials and accepts: TLS_PEER_CERT_REQUIRED verifies the
 * server when dialling and demands a client certificate when accepting).
 * cert and key are PEM files (cert may hold the chain); ca is the CA file that
 * peer certificates must chain to (NULL allowed only with
 * TLS_PEER_CERT_NONE). Returns ERR_OK and *out (SSL_CTX_free it), or
 * ERR_BAD_INPUT with eb naming the file and OpenSSL's reason. */
int tls_server_ctx(SSL_CTX **out, const char *cert, const char *key, const char *ca,
                   enum tls_peer_cert peer_cert, struct errbuf *eb);

/* A context for a client: the server's certificate must chain to ca; cert and
 * key (both or neither) are the client's own certificate. */
int tls_client_ctx(SSL_CTX **out, const char *ca, const char *cert, const char *key, struct errbuf *eb);

/* Make the handshake on ssl (a client's) also check that the server's
 * certificate names host: a SAN IP entry when host is an IP address, a SAN
 * DNS entry (or the CN) otherwise; a DNS name is also sent as SNI. Returns
 * ERR_OK or ERR_NOMEM. */
int tls_expect_host(SSL *ssl, const char *host);

/* Attach a connected socket to ssl, like SSL_set_fd, but write with
 * MSG_NOSIGNAL: a library must not raise SIGPIPE in its caller's process when
 * the other end has gone. The fd stays the caller's to close. ERR_OK or
 * ERR_NOMEM. */
int tls_set_socket(SSL *ssl, int fd);

/* The common name of the certificate the other end presented and OpenSSL
 * verified, into out (NUL-terminated): its length, or 0 when there is none (no
 * certificate, not verified, no CN, a CN with a NUL, or longer than cap - 1). */
size_t tls_peer_cn(SSL *ssl, char *out, size_t cap);

/* Why a handshake or a read/write on ssl failed, as text into out: the
 * certificate check's verdict when that is what failed ("certificate verify
 * failed: unable to get local issuer certificate"), else the first error of
 * OpenSSL's queue, or of the codes given (libevent collects them per
 * bufferevent: bufferevent_get_openssl_error), else what. Clears OpenSSL's
 * error queue of this thread. ssl may be NULL. */
void tls_error_text(SSL *ssl, const unsigned long *codes, size_t ncodes, const char *what, char *out,
                    size_t cap);

/* True when one of the codes (bufferevent_get_openssl_error's) says the other
 * side did not speak TLS at all (a plain frame, an HTTP request, garbage), as
 * opposed to a TLS peer that failed a check. */
bool tls_codes_not_tls(const unsigned long *codes, size_t ncodes);

/* True when OpenSSL's oldest queued error (not removed) is a fatal alert the
 * other side sent: with TLS 1.3 a server that refuses the client's
 * certificate says so after the client's handshake has completed, on the
 * first read. */
bool tls_queue_peer_alert(void);

/* True when p[0..n) starts like a TLS record (handshake or alert, version
 * 3.x): what a TLS server sends a client that spoke plain TCP to it, and what
 * a TLS client sends a plain port. Needs 3 bytes. */
bool tls_looks_like_record(const uint8_t *p, size_t n);

#endif
