/* The peer-message codec and the core's input checks: messages from the
 * network are validated and refused with an error, never asserted on. */
#include <criterion/criterion.h>
#include <string.h>

#include "harness.h"
#include "proto/msg.h"

TestSuite(codec);

static struct raft_msg sample(uint32_t type)
{
    static const struct raft_entry ents[3] = {
        {.term = 3, .type = RAFT_ENTRY_NORMAL, .data = (const uint8_t *)"abc", .len = 3},
        {.term = 4, .type = RAFT_ENTRY_NORMAL, .data = NULL, .len = 0},
        {.term = 4, .type = RAFT_ENTRY_CONF, .data = (const uint8_t *)"\x02\0\0\0\0\0\0\0\x09", .len = 9},
    };
    struct raft_msg m;
    memset(&m, 0, sizeof m);
    m.type = type;
    m.from = 2;
    m.to = 1;
    m.term = 4;
    m.index = 10;
    m.log_term = 3;
    m.commit = 9;
    m.reject = type == RAFT_MSG_APP_RESP;
    m.hint_index = 7;
    m.hint_term = 2;
    m.ctx = 42;
    if (type == RAFT_MSG_VOTE)
        m.flags = RAFT_MSGF_TRANSFER;
    if (type == RAFT_MSG_APP) {
        m.entries = ents;
        m.n_entries = 3;
    }
    if (type == RAFT_MSG_SNAP) {
        m.conf.n = 3;
        m.conf.ids[0] = 1;
        m.conf.ids[1] = 2;
        m.conf.ids[2] = 5;
        m.conf.learners = 4;
        m.offset = 64;
        m.data = (const uint8_t *)"chunk";
        m.len = 5;
        m.flags = RAFT_MSGF_LAST;
    }
    if (type == RAFT_MSG_SNAP_RESP)
        m.offset = 128;
    return m;
}

static int decode_frame(const struct buf *b, struct msg *wm, struct raft_msg *out)
{
    struct errbuf eb;
    if (b->len < 4)
        return ERR_BAD_INPUT;
    int rc = msg_decode(wm, b->data + 4, b->len - 4, &msg_limits_reply, &eb);
    if (rc != ERR_OK)
        return rc;
    rc = raft_msg_decode(wm, out);
    if (rc != ERR_OK)
        msg_free(wm);
    return rc;
}

Test(codec, round_trip, .description = "every peer message type survives encode and decode intact")
{
    for (uint32_t t = RAFT_MSG_TYPE_FIRST; t <= RAFT_MSG_TYPE_LAST; t++) {
        struct raft_msg m = sample(t);
        struct buf b = BUF_INIT;
        cr_assert_eq(raft_msg_encode(&m, 1234, &b), ERR_OK);
        struct msg wm;
        struct raft_msg d;
        cr_assert_eq(decode_frame(&b, &wm, &d), ERR_OK, "%s", raft_msg_type_name(t));
        cr_assert_eq(wm.lamport, 1234, "the Lamport time rides in the header");
        cr_assert_eq(d.type, t);
        cr_assert(d.from == m.from && d.to == m.to && d.term == m.term && d.index == m.index &&
                  d.log_term == m.log_term && d.commit == m.commit && d.reject == m.reject &&
                  d.hint_index == m.hint_index && d.hint_term == m.hint_term && d.ctx == m.ctx &&
                  d.flags == m.flags);
        cr_assert_eq(d.n_entries, m.n_entries);
        for (uint32_t k = 0; k < d.n_entries; k++) {
            cr_assert_eq(d.entries[k].term, m.entries[k].term);
            cr_assert_eq(d.entries[k].index, m.index + 1 + k);
            cr_assert_eq(d.entries[k].type, m.entries[k].type);
            cr_assert_eq(d.entries[k].len, m.entries[k].len);
            cr_assert(m.entries[k].len == 0 ||
                      memcmp(d.entries[k].data, m.entries[k].data, m.entries[k].len) == 0);
        }
        if (t == RAFT_MSG_SNAP) {
            cr_assert_eq(d.conf.n, 3);
            cr_assert_eq(d.conf.ids[2], 5);
            cr_assert_eq(d.conf.learners, 4);
            cr_assert_eq(d.len, 5);
            cr_assert(memcmp(d.data, "chunk", 5) == 0);
        }
        if (t == RAFT_MSG_SNAP || t == RAFT_MSG_SNAP_RESP)
            cr_assert_eq(d.offset, m.offset);
        raft_msg_release(&d);
        msg_free(&wm);
        buf_free(&b);
    }
}

/* Encode a hand-built frame (the encoder would refuse some of these). */
static void frame(struct buf *b, uint32_t type, void (*body)(struct msg_writer *))
{
    struct msg_writer w;
    msg_begin(&w, b, type, 1, 0, 13);
    body(&w);
    cr_assert_eq(msg_end(&w), ERR_OK);
}

static void head(struct msg_writer *w, uint64_t from, uint64_t to, uint64_t term, uint64_t index,
                 uint64_t log_term)
{
    mw_u64(w, from);
    mw_u64(w, to);
    mw_u64(w, term);
    mw_u64(w, index);
    mw_u64(w, log_term);
    mw_u64(w, 0);      /* commit */
    mw_bool(w, false); /* reject */
    mw_u64(w, 0);
    mw_u64(w, 0);
    mw_u64(w, 0);
    mw_u64(w, 0); /* flags */
}

static void body_falling_terms(struct msg_writer *w)
{
    head(w, 2, 1, 5, 3, 2);
    mw_array(w, 2);
    mw_array(w, 3); mw_u64(w, 4); mw_u64(w, 0); mw_bin(w, "a", 1);
    mw_array(w, 3); mw_u64(w, 3); mw_u64(w, 0); mw_bin(w, "b", 1);
    mw_nil(w);
}

static void body_term_past_message(struct msg_writer *w)
{
    head(w, 2, 1, 5, 3, 2);
    mw_array(w, 1);
    mw_array(w, 3); mw_u64(w, 6); mw_u64(w, 0); mw_bin(w, "a", 1);
    mw_nil(w);
}

static void body_bad_entry_type(struct msg_writer *w)
{
    head(w, 2, 1, 5, 3, 2);
    mw_array(w, 1);
    mw_array(w, 3); mw_u64(w, 5); mw_u64(w, 7); mw_bin(w, "a", 1);
    mw_nil(w);
}

static void body_entries_on_vote(struct msg_writer *w)
{
    head(w, 2, 1, 5, 3, 2);
    mw_array(w, 0);
    mw_nil(w);
}

static void body_from_zero(struct msg_writer *w)
{
    head(w, 0, 1, 5, 3, 2);
    mw_nil(w);
    mw_nil(w);
}

static void body_string_term(struct msg_writer *w)
{
    mw_u64(w, 2);
    mw_u64(w, 1);
    mw_str(w, "5");
    for (int k = 0; k < 3; k++)
        mw_u64(w, 0);
    mw_bool(w, false);
    for (int k = 0; k < 4; k++)
        mw_u64(w, 0);
    mw_nil(w);
    mw_nil(w);
}

static void body_snap_duplicate_ids(struct msg_writer *w)
{
    head(w, 2, 1, 5, 9, 4);
    mw_nil(w);
    mw_array(w, 3);
    mw_array(w, 2);
    mw_array(w, 2); mw_u64(w, 1); mw_u64(w, 1);
    mw_u64(w, 0);
    mw_u64(w, 0);
    mw_bin(w, "x", 1);
}

Test(codec, malformed_refused,
     .description = "a malformed peer message is refused with an error code")
{
    struct {
        uint32_t type;
        void (*body)(struct msg_writer *);
    } cases[] = {
        {RAFT_MSG_APP, body_falling_terms},   {RAFT_MSG_APP, body_term_past_message},
        {RAFT_MSG_APP, body_bad_entry_type},  {RAFT_MSG_VOTE, body_entries_on_vote},
        {RAFT_MSG_HEARTBEAT, body_from_zero}, {RAFT_MSG_HEARTBEAT, body_string_term},
        {RAFT_MSG_SNAP, body_snap_duplicate_ids},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        struct buf b = BUF_INIT;
        frame(&b, cases[k].type, cases[k].body);
        struct msg wm;
        struct raft_msg d;
        cr_assert_eq(decode_frame(&b, &wm, &d), ERR_BAD_INPUT, "case %zu", k);
        buf_free(&b);
    }
}

Test(codec, wrong_recipient_refused,
     .description = "a message addressed to another server, or from itself, is refused by the core")
{
    struct hnet net;
    h_init(&net, 3, 3, 0, NULL);
    struct raft_msg m = sample(RAFT_MSG_HEARTBEAT);
    m.to = 3;
    cr_assert_eq(raft_step(net.nd[1].r, &m), ERR_BAD_INPUT);
    m.to = 1;
    m.from = 1;
    cr_assert_eq(raft_step(net.nd[1].r, &m), ERR_BAD_INPUT);
    m.from = 2;
    m.type = 200;
    cr_assert_eq(raft_step(net.nd[1].r, &m), ERR_BAD_INPUT);
    h_free(&net);
}

Test(codec, committed_entries_never_rewritten,
     .description = "an append that claims other entries below the commit index never rewrites committed entries")
{
    struct hnet net;
    h_init(&net, 3, 3, 0, NULL);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    struct raft_entry e = {.term = 5, .type = RAFT_ENTRY_NORMAL};
    struct raft_msg m;
    memset(&m, 0, sizeof m);
    m.type = RAFT_MSG_APP;
    m.from = 3;
    m.to = 2;
    m.term = 5;
    m.index = 3; /* entry 4 (term 2) is committed; this claims term 5 there */
    m.log_term = 1;
    m.entries = &e;
    m.n_entries = 1;
    cr_assert_eq(raft_step(net.nd[2].r, &m), ERR_OK);
    uint64_t t;
    cr_assert(raft_log_term(net.nd[2].r, 4, &t) && t == 2);
    h_free(&net);
}

static uint64_t fz = 88172645463325252ull;
static uint64_t fz_next(void)
{
    fz ^= fz << 13;
    fz ^= fz >> 7;
    fz ^= fz << 17;
    return fz;
}

Test(codec, mutated_bytes_never_crash,
     .description = "bytes mutated at random are refused or handled, never a crash or an assertion")
{
    struct hnet net;
    h_init(&net, 3, 3, 0, NULL);
    cr_assert_eq(h_elect(&net, 1), RAFT_LEADER);
    h_drop_all(&net);
    size_t decoded = 0;
    for (int it = 0; it < 20000; it++) {
        uint32_t t = RAFT_MSG_TYPE_FIRST + (uint32_t)(fz_next() % (RAFT_MSG_TYPE_LAST - RAFT_MSG_TYPE_FIRST + 1));
        struct raft_msg m = sample(t);
        m.to = 1 + fz_next() % 3;
        m.from = 1 + fz_next() % 3;
        if (m.from == m.to)
            m.from = m.to % 3 + 1;
        struct buf b = BUF_INIT;
        cr_assert_eq(raft_msg_encode(&m, 1, &b), ERR_OK);
        int flips = 1 + (int)(fz_next() % 4);
        for (int f = 0; f < flips; f++) {
            size_t pos = 4 + fz_next() % (b.len - 4);
            b.data[pos] = (uint8_t)fz_next();
        }
        if (fz_next() % 4 == 0)
            b.len = 4 + fz_next() % (b.len - 4);
        struct msg wm;
        struct raft_msg d;
        if (decode_frame(&b, &wm, &d) == ERR_OK) {
            decoded++;
            int to = (int)d.to;
            if (to >= 1 && to <= 3) {
                int rc = raft_step(net.nd[to].r, &d);
                cr_assert(rc == ERR_OK || rc == ERR_BAD_INPUT);
                h_ready(&net, to);
                h_drop_all(&net);
            }
            raft_msg_release(&d);
            msg_free(&wm);
        }
        buf_free(&b);
    }
    cr_assert_gt(decoded, 0);
    h_free(&net);
}

Test(codec, corrupt_persisted_state_refused,
     .description = "a persisted log out of order or beyond its term is refused at start")
{
    struct raft_config c = h_default_cfg();
    struct raft_entry e[2] = {{.term = 2, .index = 1}, {.term = 1, .index = 2}};
    struct raft_persisted p = {.hs = {.term = 2}, .entries = e, .n_entries = 2};
    struct raft *r;
    struct errbuf eb;
    cr_assert_eq(raft_create(&c, &p, &r, &eb), ERR_CORRUPT);
    e[1].term = 3;
    cr_assert_eq(raft_create(&c, &p, &r, &eb), ERR_CORRUPT, "term above the hard state");
    e[1].term = 2;
    e[1].index = 5;
    cr_assert_eq(raft_create(&c, &p, &r, &eb), ERR_CORRUPT, "gap");
    e[1].index = 2;
    p.hs.commit = 9;
    cr_assert_eq(raft_create(&c, &p, &r, &eb), ERR_CORRUPT, "commit past the log");
    p.hs.commit = 2;
    cr_assert_eq(raft_create(&c, &p, &r, &eb), ERR_OK);
    raft_destroy(r);
}

Test(codec, bootstrap_puts_configuration_in_log,
     .description = "bootstrap writes the founding configuration as committed log entries")
{
    struct raft_conf conf = {.n = 3, .ids = {7, 8, 9}, .learners = 4};
    struct raft_bootstrap_buf bb;
    struct raft_persisted p;
    cr_assert_eq(raft_bootstrap(&conf, &bb, &p), ERR_OK);
    cr_assert_eq(p.n_entries, 3);
    cr_assert_eq(p.hs.commit, 3);
    struct raft_config c = h_default_cfg();
    c.id = 9;
    struct raft *r;
    struct errbuf eb;
    cr_assert_eq(raft_create(&c, &p, &r, &eb), ERR_OK);
    const struct raft_conf *got = raft_get_conf(r);
    cr_assert(raft_conf_is_voter(got, 7) && raft_conf_is_voter(got, 8));
    cr_assert(raft_conf_has(got, 9) && !raft_conf_is_voter(got, 9));
    raft_destroy(r);
    struct raft_persisted bad = {.snap = {.conf = conf}};
    cr_assert_eq(raft_create(&c, &bad, &r, &eb), ERR_BAD_INPUT,
                 "a configuration without a snapshot must come from the log");
}
