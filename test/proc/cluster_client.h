/* Shared by the cluster process tests: the cluster under test (killed by PID
 * after each test) and libddkv clients for all of it or one member. */
#ifndef DDKV_TEST_CLUSTER_CLIENT_H
#define DDKV_TEST_CLUSTER_CLIENT_H

#include <criterion/criterion.h>
#include <stdio.h>

#include "ddkv/ddkv.h"
#include "harness.h"

static struct proc_cluster pc;

static void stop_all(void)
{
    pc_cleanup(&pc);
}

static ddkv_client *client_for(const char *endpoints, uint32_t timeout_ms)
{
    struct ddkv_options o;
    ddkv_options_init(&o);
    o.endpoints = endpoints;
    o.timeout_ms = timeout_ms;
    ddkv_client *c = NULL;
    char err[256];
    cr_assert_eq(ddkv_client_new(&o, &c, err, sizeof err), DDKV_OK, "%s", err);
    return c;
}

/* A client of member i only. */
static inline ddkv_client *client_node(int i, uint32_t timeout_ms)
{
    char ep[64];
    snprintf(ep, sizeof ep, "127.0.0.1:%d", pc.nodes[i].port);
    return client_for(ep, timeout_ms);
}

#endif
