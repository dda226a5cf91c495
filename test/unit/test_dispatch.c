/* The dispatcher: modules own their types, duplicates fail start-up. */
#include <criterion/criterion.h>
#include <string.h>

#include "node/dispatch.h"

static int calls_a, calls_b;

static void handler_a(void *ctx, struct conn *c, const struct msg *m)
{
    (void)c;
    (void)m;
    calls_a += *(int *)ctx;
}

static void handler_b(void *ctx, struct conn *c, const struct msg *m)
{
    (void)ctx;
    (void)c;
    (void)m;
    calls_b++;
}

Test(dispatch, a_registered_type_reaches_its_module_with_its_context)
{
    struct dispatcher d;
    dispatcher_init(&d);
    int weight = 5;
    struct errbuf eb;
    cr_assert_eq(dispatcher_register(&d, DDKV_MSG_PING, "admin", handler_a, &weight, &eb), ERR_OK);
    cr_assert_eq(dispatcher_register(&d, 100, "jobs", handler_b, NULL, &eb), ERR_OK);
    const struct dispatch_entry *e = dispatcher_lookup(&d, DDKV_MSG_PING);
    cr_assert_not_null(e);
    cr_assert_str_eq(e->module, "admin");
    calls_a = calls_b = 0;
    e->fn(e->ctx, NULL, NULL);
    cr_assert_eq(calls_a, 5);
    e = dispatcher_lookup(&d, 100);
    e->fn(e->ctx, NULL, NULL);
    cr_assert_eq(calls_b, 1);
}

Test(dispatch, an_unknown_type_has_no_handler)
{
    struct dispatcher d;
    dispatcher_init(&d);
    cr_assert_null(dispatcher_lookup(&d, DDKV_MSG_READ));
    cr_assert_null(dispatcher_lookup(&d, 0));
    cr_assert_null(dispatcher_lookup(&d, DDKV_MSG_TYPE_MAX));
    cr_assert_null(dispatcher_lookup(&d, 0xffffffffu));
}

Test(dispatch, registering_a_type_twice_is_an_error_naming_both_modules)
{
    struct dispatcher d;
    dispatcher_init(&d);
    struct errbuf eb;
    cr_assert_eq(dispatcher_register(&d, DDKV_MSG_READ, "kv", handler_a, NULL, &eb), ERR_OK);
    cr_assert_eq(dispatcher_register(&d, DDKV_MSG_READ, "cache", handler_b, NULL, &eb), ERR_EXISTS);
    cr_assert(strstr(eb.msg, "kv") && strstr(eb.msg, "cache"), "message: %s", eb.msg);
    /* The first owner keeps it. */
    cr_assert_str_eq(dispatcher_lookup(&d, DDKV_MSG_READ)->module, "kv");
}

Test(dispatch, out_of_range_types_cannot_be_registered)
{
    struct dispatcher d;
    dispatcher_init(&d);
    struct errbuf eb;
    cr_assert_eq(dispatcher_register(&d, 0, "m", handler_a, NULL, &eb), ERR_BAD_INPUT);
    cr_assert_eq(dispatcher_register(&d, DDKV_MSG_TYPE_MAX, "m", handler_a, NULL, &eb), ERR_BAD_INPUT);
    cr_assert_eq(dispatcher_register(&d, 5, "m", NULL, NULL, &eb), ERR_BAD_INPUT);
}
