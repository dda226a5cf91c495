/* node_io_event's work pool (pool.c): the production side of node_io.h's
 * pool_start, pool_submit and pool_stop. */
#ifndef DDKV_NODE_POOL_H
#define DDKV_NODE_POOL_H

#include "node/node_io.h"

struct node_pool *pool_start(struct node *n, unsigned nthreads, const unsigned *lanes, const int *nice,
                             struct errbuf *eb);
void pool_submit(struct node *n, struct node_pool *p, struct node_work *w);
void pool_stop(struct node *n, struct node_pool *p, void (*drop)(struct node_work *w));

#endif
