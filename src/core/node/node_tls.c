/* The node's TLS: contexts from the --tls-* flags, client-port bufferevents, client certificate names. */
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>

#include "node/node_int.h"
#include "node/conn_int.h"
#include "util/log.h"

static const char *const node_client_cert_names[] = {"", "none", "optional", "required"};

/* Flags that cannot work together are a usage error, said before any file is read. */
static int node_tls_check(const struct node_config *cfg, struct errbuf *eb)
{
    bool cert = cfg->tls_cert && *cfg->tls_cert, key = cfg->tls_key && *cfg->tls_key;
    bool ca = cfg->tls_ca && *cfg->tls_ca;
    if (cert != key)
        return errf(eb, ERR_BAD_INPUT, "--tls-cert and --tls-key go together");
    if (!cert && ca)
        return errf(eb, ERR_BAD_INPUT, "--tls-ca needs --tls-cert and --tls-key (the node's own certificate)");
    if (!cert && cfg->peer_tls == NODE_PEER_TLS_ON)
        return errf(eb, ERR_BAD_INPUT, "--peer-tls on needs --tls-cert, --tls-key and --tls-ca");
    if (!cert && cfg->tls_client_cert > NODE_CLIENT_CERT_NONE)
        return errf(eb, ERR_BAD_INPUT, "--tls-client-cert %s needs --tls-cert, --tls-key and --tls-ca",
                    node_client_cert_names[cfg->tls_client_cert]);
    if (cert && !ca && cfg->peer_tls != NODE_PEER_TLS_OFF)
        return errf(eb, ERR_BAD_INPUT, "peers authenticate each other with the cluster CA: give --tls-ca "
                                       "(or --peer-tls off)");
    if (cert && !ca && cfg->tls_client_cert > NODE_CLIENT_CERT_NONE)
        return errf(eb, ERR_BAD_INPUT, "--tls-client-cert %s needs --tls-ca to check certificates against",
                    node_client_cert_names[cfg->tls_client_cert]);
    return ERR_OK;
}

int node_tls_init(struct node *n, struct errbuf *eb)
{
    const struct node_config *cfg = &n->cfg;
    int rc = node_tls_check(cfg, eb);
    if (rc || !cfg->tls_cert || !*cfg->tls_cert)
        return rc;
    const char *ca = cfg->tls_ca && *cfg->tls_ca ? cfg->tls_ca : NULL;
    enum node_client_cert cc = cfg->tls_client_cert;
    if (cc == NODE_CLIENT_CERT_AUTO)
        cc = ca ? NODE_CLIENT_CERT_OPTIONAL : NODE_CLIENT_CERT_NONE;
    enum tls_peer_cert want = cc == NODE_CLIENT_CERT_REQUIRED   ? TLS_PEER_CERT_REQUIRED
                              : cc == NODE_CLIENT_CERT_OPTIONAL ? TLS_PEER_CERT_OPTIONAL
                                                                : TLS_PEER_CERT_NONE;
    if ((rc = tls_server_ctx(&n->srv->tls_client, cfg->tls_cert, cfg->tls_key, ca, want, eb)))
        return rc;
    bool peers = cfg->peer_tls != NODE_PEER_TLS_OFF;
    if (peers &&
        (rc = tls_server_ctx(&n->tls_peer, cfg->tls_cert, cfg->tls_key, ca, TLS_PEER_CERT_REQUIRED, eb)))
        return rc;
    log_info("TLS on the client port (client certificates: %s); peers: %s", node_client_cert_names[cc],
             peers ? "mutual TLS with the cluster CA" : "plain TCP");
    return ERR_OK;
}

void node_tls_free(struct node *n)
{
    SSL_CTX_free(n->srv->tls_client);
    SSL_CTX_free(n->tls_peer);
    n->srv->tls_client = n->tls_peer = NULL;
}

struct bufferevent *node_tls_accept(struct node *n, struct conn *c, int fd)
{
    if (!n->srv->tls_client)
        return bufferevent_socket_new(n->base, fd, BEV_OPT_CLOSE_ON_FREE);
    SSL *ssl = SSL_new(n->srv->tls_client);
    if (!ssl)
        return NULL;
    struct bufferevent *bev =
        bufferevent_openssl_socket_new(n->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        SSL_free(ssl);
        return NULL;
    }
    /* A client that hangs up without close_notify has simply gone. */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    /* The handshake gets as long as a frame would: a client that connects and
     * says nothing is cut, as one that starts a frame and stops is. */
    uint32_t ms = n->cfg.frame_timeout_ms;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    bufferevent_set_timeouts(bev, &tv, &tv);
    c->tls_pending = true;
    return bev;
}

void node_tls_connected(struct conn *c)
{
    c->tls_pending = false;
    SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
    if (ssl)
        tls_peer_cn(ssl, c->cert_cn, sizeof c->cert_cn);
    /* Idle between frames has no deadline (clients pool connections). */
    bufferevent_set_timeouts(c->bev, NULL, NULL);
    log_debug("conn %llu from %s: TLS %s%s%s", (unsigned long long)c->id, c->peer,
              ssl ? SSL_get_version(ssl) : "?", c->cert_cn[0] ? ", client certificate " : "", c->cert_cn);
}

bool node_tls_error(struct conn *c, char *out, size_t cap)
{
    unsigned long codes[8];
    size_t n = 0;
    unsigned long e;
    while ((e = bufferevent_get_openssl_error(c->bev)) != 0)
        if (n < sizeof codes / sizeof codes[0])
            codes[n++] = e;
    tls_error_text(bufferevent_openssl_get_ssl(c->bev), codes, n,
                   "closed by the client (does it trust this node's certificate?)", out, cap);
    return tls_codes_not_tls(codes, n);
}

const char *conn_cert_cn(const struct conn *c)
{
    return c->cert_cn[0] ? c->cert_cn : NULL;
}
