/* TLS contexts from PEM files, host and common-name checks, and OpenSSL's errors as text. */
#include "util/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* OpenSSL's reason for the oldest error in this thread's queue, then clear it. */
static void tls_queue_text(char *out, size_t cap)
{
    unsigned long e = ERR_peek_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    if (r)
        snprintf(out, cap, "%s", r);
    else if (e)
        ERR_error_string_n(e, out, cap);
    else
        snprintf(out, cap, "unknown error");
    ERR_clear_error();
}

static int tls_fail(SSL_CTX *ctx, struct errbuf *eb, const char *what, const char *file)
{
    char why[160];
    tls_queue_text(why, sizeof why);
    SSL_CTX_free(ctx);
    return errf(eb, ERR_BAD_INPUT, "%s %s: %s", what, file, why);
}

/* Settings every context shares (see tls.h). */
static SSL_CTX *tls_ctx_new(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    if (!ctx)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* A peer that closes without close_notify is an ordinary EOF: the node
     * never sends one either (it frees connections), and nothing here relies
     * on it to detect truncation (every message is a length-prefixed frame). */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
    /* Idle connections (clients pool them) give their record buffers back. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    return ctx;
}

static int tls_load_identity(SSL_CTX *ctx, const char *cert, const char *key, struct errbuf *eb)
{
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
        return tls_fail(ctx, eb, "cannot load the certificate", cert);
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
        return tls_fail(ctx, eb, "cannot load the private key", key);
    if (SSL_CTX_check_private_key(ctx) != 1)
        return tls_fail(ctx, eb, "the private key does not match the certificate", cert);
    return ERR_OK;
}

int tls_server_ctx(SSL_CTX **out, const char *cert, const char *key, const char *ca,
                   enum tls_peer_cert peer_cert, struct errbuf *eb)
{
    *out = NULL;
    ASSERT(cert && key);
    if (!ca && peer_cert != TLS_PEER_CERT_NONE)
        return errf(eb, ERR_BAD_INPUT, "checking certificates of the other side needs a CA file");
    SSL_CTX *ctx = tls_ctx_new();
    if (!ctx)
        return errf(eb, ERR_NOMEM, "out of memory for a TLS context");
    int rc = tls_load_identity(ctx, cert, key, eb);
    if (rc)
        return rc;
    if (ca && SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)
        return tls_fail(ctx, eb, "cannot load the CA file", ca);
    int mode = SSL_VERIFY_NONE;
    if (peer_cert == TLS_PEER_CERT_OPTIONAL)
        mode = SSL_VERIFY_PEER;
    else if (peer_cert == TLS_PEER_CERT_REQUIRED)
        mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ctx, mode, NULL);
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    *out = ctx;
    return ERR_OK;
}

int tls_client_ctx(SSL_CTX **out, const char *ca, const char *cert, const char *key, struct errbuf *eb)
{
    *out = NULL;
    if (!ca || !*ca)
        return errf(eb, ERR_BAD_INPUT, "TLS needs a CA file to check the server's certificate");
    if (!cert != !key)
        return errf(eb, ERR_BAD_INPUT, "a client certificate needs both the certificate and its key file");
    SSL_CTX *ctx = tls_ctx_new();
    if (!ctx)
        return errf(eb, ERR_NOMEM, "out of memory for a TLS context");
    if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)
        return tls_fail(ctx, eb, "cannot load the CA file", ca);
    if (cert) {
        int rc = tls_load_identity(ctx, cert, key, eb);
        if (rc)
            return rc;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    *out = ctx;
    return ERR_OK;
}

int tls_expect_host(SSL *ssl, const char *host)
{
    unsigned char addr[16];
    bool ip = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
    if (ip)
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1 ? ERR_OK : ERR_NOMEM;
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (SSL_set1_host(ssl, host) != 1 || SSL_set_tlsext_host_name(ssl, host) != 1)
        return ERR_NOMEM;
    return ERR_OK;
}

/* --- a socket BIO that never raises SIGPIPE --- */

static BIO_METHOD *tls_sock_method;
static pthread_once_t tls_sock_once = PTHREAD_ONCE_INIT;

static int tls_sock_fd(BIO *b)
{
    return (int)(intptr_t)BIO_get_data(b);
}

static int tls_sock_retry(BIO *b, ssize_t n, bool writing)
{
    BIO_clear_retry_flags(b);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        if (writing)
            BIO_set_retry_write(b);
        else
            BIO_set_retry_read(b);
    }
    return n < 0 ? -1 : (int)n;
}

static int tls_sock_write(BIO *b, const char *data, int len)
{
    ssize_t n = send(tls_sock_fd(b), data, (size_t)len, MSG_NOSIGNAL);
    return tls_sock_retry(b, n, true);
}

static int tls_sock_read(BIO *b, char *data, int len)
{
    ssize_t n = recv(tls_sock_fd(b), data, (size_t)len, 0);
    return tls_sock_retry(b, n, false);
}

static long tls_sock_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0; /* nothing is buffered here */
}

static int tls_sock_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static void tls_sock_method_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
                                 "ddkv socket");
    if (m && (BIO_meth_set_write(m, tls_sock_write) != 1 || BIO_meth_set_read(m, tls_sock_read) != 1 ||
              BIO_meth_set_ctrl(m, tls_sock_ctrl) != 1 || BIO_meth_set_create(m, tls_sock_create) != 1)) {
        BIO_meth_free(m);
        m = NULL;
    }
    tls_sock_method = m;
}

int tls_set_socket(SSL *ssl, int fd)
{
    pthread_once(&tls_sock_once, tls_sock_method_init);
    BIO *b = tls_sock_method ? BIO_new(tls_sock_method) : NULL;
    if (!b)
        return ERR_NOMEM;
    BIO_set_data(b, (void *)(intptr_t)fd);
    SSL_set_bio(ssl, b, b); /* ssl owns b */
    return ERR_OK;
}

size_t tls_peer_cn(SSL *ssl, char *out, size_t cap)
{
    ASSERT(cap > 0);
    out[0] = 0;
    if (SSL_get_verify_result(ssl) != X509_V_OK)
        return 0;
    X509 *x = SSL_get1_peer_certificate(ssl);
    if (!x)
        return 0;
    size_t n = 0;
    X509_NAME *name = X509_get_subject_name(x);
    int at = name ? X509_NAME_get_index_by_NID(name, NID_commonName, -1) : -1;
    X509_NAME_ENTRY *e = at >= 0 ? X509_NAME_get_entry(name, at) : NULL;
    unsigned char *utf8 = NULL;
    int len = e ? ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e)) : -1;
    if (len > 0 && (size_t)len < cap && !memchr(utf8, 0, (size_t)len)) {
        memcpy(out, utf8, (size_t)len);
        out[len] = 0;
        n = (size_t)len;
    }
    OPENSSL_free(utf8);
    X509_free(x);
    return n;
}

void tls_error_text(SSL *ssl, const unsigned long *codes, size_t ncodes, const char *what, char *out,
                    size_t cap)
{
    long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    if (v != X509_V_OK) {
        snprintf(out, cap, "certificate verify failed: %s", X509_verify_cert_error_string(v));
        ERR_clear_error();
        return;
    }
    for (size_t i = 0; i < ncodes; i++) {
        const char *r = codes[i] ? ERR_reason_error_string(codes[i]) : NULL;
        if (r) {
            snprintf(out, cap, "%s", r);
            ERR_clear_error();
            return;
        }
    }
    if (ERR_peek_error())
        tls_queue_text(out, cap);
    else
        snprintf(out, cap, "%s", what);
}

bool tls_codes_not_tls(const unsigned long *codes, size_t ncodes)
{
    for (size_t i = 0; i < ncodes; i++) {
        if (ERR_GET_LIB(codes[i]) != ERR_LIB_SSL)
            continue;
        switch (ERR_GET_REASON(codes[i])) {
        case SSL_R_WRONG_VERSION_NUMBER:
        case SSL_R_HTTP_REQUEST:
        case SSL_R_HTTPS_PROXY_REQUEST:
        case SSL_R_PACKET_LENGTH_TOO_LONG:
        case SSL_R_UNKNOWN_PROTOCOL:
        case SSL_R_RECORD_LENGTH_MISMATCH:
            return true;
        default:
            break;
        }
    }
    return false;
}

bool tls_queue_peer_alert(void)
{
    unsigned long e = ERR_peek_error();
    return e && ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) >= SSL_AD_REASON_OFFSET;
}

bool tls_looks_like_record(const uint8_t *p, size_t n)
{
    /* ContentType alert (21) or handshake (22), then ProtocolVersion 3.x. */
    return n >= 3 && (p[0] == 21 || p[0] == 22) && p[1] == 3 && p[2] <= 4;
}
