/* Snapshots of the state machine on real RocksDB stores: an image is exactly
 * the state at its index (not the writes applied while it was written), moves
 * through chunks byte for byte, is refused when damaged or truncated without
 * touching the target, replaces whatever the target held, carries the Raft
 * side's batch durably, and an install interrupted after its marker is
 * finished by recovery. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "kv/raftlog.h"
#include "kv/sm.h"
#include "kv/snapshot.h"
#include "kv/store.h"
#include "util/buf.h"

struct node {
    char dir[256];
    struct store *st;
    struct sm sm;
};

static struct node A, B;    /* A: the source, B: the target */
static char sdir[256];      /* snapshot files */
static char path[512];      /* the image A writes */

static void node_open(struct node *n)
{
    struct errbuf eb;
    cr_assert_eq(store_open(&n->st, n->dir, NULL, &eb), ERR_OK, "%s", eb.msg);
    cr_assert_eq(sm_open(&n->sm, n->st, &eb), ERR_OK, "%s", eb.msg);
}

static void node_close(struct node *n)
{
    if (!n->st)
        return;
    sm_close(&n->sm);
    store_close(n->st);
    n->st = NULL;
}

/* Reopen the store (and the sm), as a restart would. */
static void node_restart(struct node *n)
{
    node_close(n);
    node_open(n);
}

static void setup(void)
{
    cr_assert_eq(harness_tmpdir(A.dir, sizeof A.dir, "snapA"), 0);
    cr_assert_eq(harness_tmpdir(B.dir, sizeof B.dir, "snapB"), 0);
    cr_assert_eq(harness_tmpdir(sdir, sizeof sdir, "snapfiles"), 0);
    node_open(&A);
    node_open(&B);
}

static void teardown(void)
{
    node_close(&A);
    node_close(&B);
    harness_rmrf(A.dir);
    harness_rmrf(B.dir);
    harness_rmrf(sdir);
}

static void put_n(struct node *n, const char *k, const void *v, size_t vn)
{
    struct sm_op op = {.kind = SM_OP_PUT, .key = (const uint8_t *)k, .klen = strlen(k),
                       .val = v, .vlen = vn};
    struct sm_result r;
    struct errbuf eb;
    cr_assert_eq(sm_stage(&n->sm, n->sm.st_index + 1, n->sm.st_lamport + 1, &op, &r, &eb), ERR_OK, "%s", eb.msg);
}

static void put(struct node *n, const char *k, const char *v)
{
    put_n(n, k, v, strlen(v));
}

static void del(struct node *n, const char *k)
{
    struct sm_op op = {.kind = SM_OP_DELETE, .key = (const uint8_t *)k, .klen = strlen(k)};
    struct sm_result r;
    struct errbuf eb;
    cr_assert_eq(sm_stage(&n->sm, n->sm.st_index + 1, n->sm.st_lamport + 1, &op, &r, &eb), ERR_OK, "%s", eb.msg);
}

static void commit(struct node *n)
{
    struct errbuf eb;
    cr_assert_eq(sm_commit(&n->sm, false, &eb), ERR_OK, "%s", eb.msg);
}

/* Every key and value of meta and data, in order: the whole state machine.
 * Returns how many keys that is. */
static uint64_t dump(struct store *s, struct buf *out)
{
    static const enum store_cf cfs[] = {STORE_CF_META, STORE_CF_DATA};
    uint64_t count = 0;
    buf_reset(out);
    for (int i = 0; i < 2; i++) {
        struct store_iter *it = store_iter_new(s, cfs[i], NULL, 0);
        for (store_iter_seek(it, "", 0); store_iter_valid(it); store_iter_next(it)) {
            size_t kn, vn;
            const uint8_t *k = store_iter_key(it, &kn);
            const uint8_t *v = store_iter_value(it, &vn);
            uint8_t h[9];
            h[0] = (uint8_t)cfs[i];
            put_be32(h + 1, (uint32_t)kn);
            put_be32(h + 5, (uint32_t)vn);
            buf_append(out, h, sizeof h);
            buf_append(out, k, kn);
            buf_append(out, v, vn);
            count++;
        }
        struct errbuf eb;
        cr_assert_eq(store_iter_status(it, &eb), ERR_OK, "%s", eb.msg);
        store_iter_free(it);
    }
    return count;
}

static bool same(const struct buf *a, const struct buf *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

static bool has_key(struct store *s, enum store_cf cf, const char *k)
{
    struct store_val v;
    struct errbuf eb;
    int rc = store_get(s, cf, k, strlen(k), NULL, &v, &eb);
    if (rc == ERR_NOT_FOUND)
        return false;
    cr_assert_eq(rc, ERR_OK, "%s", eb.msg);
    store_val_release(&v);
    return true;
}

static void read_file(const char *p, struct buf *out)
{
    buf_reset(out);
    FILE *f = fopen(p, "rb");
    cr_assert(f != NULL, "open %s", p);
    uint8_t b[8192];
    size_t n;
    while ((n = fread(b, 1, sizeof b, f)) > 0)
        buf_append(out, b, n);
    fclose(f);
}

static void write_file(const char *p, const void *data, size_t n)
{
    FILE *f = fopen(p, "wb");
    cr_assert(f != NULL, "create %s", p);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    cr_assert_eq(fclose(f), 0);
}

static bool exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* A small but varied state on A: puts, overwrites, deletes, a no-op. */
static void fill_small(int n)
{
    for (int i = 0; i < n; i++) {
        char k[32], v[64];
        snprintf(k, sizeof k, "key/%04d", i);
        snprintf(v, sizeof v, "value-%d-%s", i, i % 3 ? "x" : "longer value here");
        put(&A, k, v);
        if (i % 5 == 4)
            commit(&A);
    }
    put(&A, "key/0001", "overwritten");
    del(&A, "key/0002");
    del(&A, "never-existed");
    commit(&A);
}

static void write_image(uint64_t term)
{
    struct errbuf eb;
    cr_assert_eq(snap_path(path, sizeof path, sdir, A.sm.applied_index, term, "snap", &eb), ERR_OK);
    cr_assert_eq(snap_write(A.st, path, A.sm.applied_index, term, &eb), ERR_OK, "%s", eb.msg);
}

static void install(struct node *n, const char *p, struct store_batch *raft_side)
{
    struct errbuf eb;
    cr_assert_eq(snap_install(n->st, p, raft_side, &eb), ERR_OK, "%s", eb.msg);
    sm_close(&n->sm);
    cr_assert_eq(sm_open(&n->sm, n->st, &eb), ERR_OK, "%s", eb.msg);
}

static int wait_job(struct snap_job *j, struct errbuf *eb)
{
    int rc;
    for (int i = 0; i < 60000; i++) {
        if (snap_job_done(j, &rc, eb))
            return rc;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    cr_assert_fail("snapshot job did not finish in 60 s");
    return -1;
}

TestSuite(snapshot, .init = setup, .fini = teardown, .timeout = 240);

Test(snapshot, the_image_is_the_state_at_its_index_not_the_writes_applied_while_it_is_written)
{
    uint64_t seed = 42;
    uint8_t val[3500]; /* offsets up to 500, lengths up to 2999 */
    for (size_t i = 0; i < sizeof val; i++)
        val[i] = (uint8_t)test_rng(&seed);
    for (int i = 0; i < 4000; i++) {
        char k[32];
        snprintf(k, sizeof k, "k%06d", i);
        put_n(&A, k, val + i % 500, 1000 + (size_t)(test_rng(&seed) % 2000));
        if (i % 100 == 99)
            commit(&A);
    }
    del(&A, "k000010");
    commit(&A);
    /* A's own Raft state never travels. */
    struct store_batch *rb = store_batch_new(A.st);
    store_batch_put(rb, STORE_CF_RAFT_STATE, "only-on-A", 9, "x", 1);
    struct errbuf eb;
    cr_assert_eq(store_write(A.st, rb, true, &eb), ERR_OK, "%s", eb.msg);
    store_batch_free(rb);

    uint64_t index = A.sm.applied_index, revision = A.sm.revision, keys = A.sm.keys;
    uint64_t lamport = A.sm.applied_lamport;
    struct buf at_index = BUF_INIT, now = BUF_INIT, got = BUF_INIT;
    uint64_t at_index_keys = dump(A.st, &at_index);

    struct snap_job *job;
    cr_assert_eq(snap_write_start(A.st, "/nonexistent/x.snap", index + 1, 3, &job, &eb), ERR_BAD_INPUT,
                 "an index the state machine is not at is refused");
    cr_assert_eq(snap_path(path, sizeof path, sdir, index, 3, "snap", &eb), ERR_OK);
    cr_assert_eq(snap_write_start(A.st, path, index, 3, &job, &eb), ERR_OK, "%s", eb.msg);
    /* Keep applying while the worker writes: overwrite, delete, add. */
    bool overlapped = false;
    for (int i = 0; i < 300; i++) {
        char k[32];
        snprintf(k, sizeof k, "k%06d", i * 7);
        if (i % 3 == 0)
            del(&A, k);
        else
            put(&A, k, "changed after the snapshot");
        snprintf(k, sizeof k, "late%04d", i);
        put(&A, k, "late");
        commit(&A);
        int rc;
        if (i == 0 && !snap_job_done(job, &rc, NULL))
            overlapped = true;
    }
    cr_log_info("writes overlapped the image writer: %s", overlapped ? "yes" : "no");
    cr_assert_eq(wait_job(job, &eb), ERR_OK, "%s", eb.msg);
    snap_job_free(job);

    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    cr_assert_not(exists(tmp), "the temporary file is renamed away");
    uint64_t vi, vt, recs;
    cr_assert_eq(snap_verify(path, &vi, &vt, &recs, &eb), ERR_OK, "%s", eb.msg);
    cr_assert_eq(vi, index);
    cr_assert_eq(vt, 3);
    cr_assert_eq(recs, at_index_keys, "every meta and data key at the index is a record");
    cr_assert_gt(recs, keys, "meta and data");
    uint64_t fi, ft, bytes;
    cr_assert_eq(snap_file_info(path, &fi, &ft, &bytes, &eb), ERR_OK, "%s", eb.msg);
    cr_assert(fi == index && ft == 3 && bytes > 4000u * 1000u);

    dump(A.st, &now);
    cr_assert_not(same(&now, &at_index), "A moved on");

    install(&B, path, NULL);
    dump(B.st, &got);
    cr_assert(same(&got, &at_index), "B holds exactly A's state at the snapshot index");
    cr_assert_eq(B.sm.applied_index, index);
    cr_assert_eq(B.sm.revision, revision);
    cr_assert_eq(B.sm.applied_lamport, lamport);
    cr_assert_eq(B.sm.keys, keys);
    cr_assert_not(has_key(B.st, STORE_CF_DATA, "late0000"), "a write after the index is not in the image");
    cr_assert_not(has_key(B.st, STORE_CF_DATA, "k000010"), "deleted before the index");
    cr_assert(has_key(B.st, STORE_CF_DATA, "k000000"), "deleted only after the index");
    cr_assert_not(has_key(B.st, STORE_CF_RAFT_STATE, "only-on-A"), "Raft state does not travel");
    char pending[512];
    cr_assert_eq(snap_install_pending(B.st, pending, sizeof pending, &eb), ERR_NOT_FOUND);

    /* B applies on from there like A did. */
    put(&B, "after-install", "1");
    commit(&B);
    cr_assert_eq(B.sm.applied_index, index + 1);
    buf_free(&at_index);
    buf_free(&now);
    buf_free(&got);
}

Test(snapshot, chunks_of_random_sizes_reproduce_the_file_byte_for_byte)
{
    fill_small(300);
    write_image(5);
    uint64_t index = A.sm.applied_index;
    char rdir[300];
    snprintf(rdir, sizeof rdir, "%s/recv", sdir);
    cr_assert_eq(mkdir(rdir, 0755), 0);

    struct snap_recv r;
    snap_recv_init(&r);
    uint64_t seed = 7;
    uint8_t chunk[4096];
    char done[600] = "";
    uint64_t off = 0;
    int chunks = 0;
    struct errbuf eb;
    for (bool last = false; !last;) {
        size_t cap = 1 + (size_t)(test_rng(&seed) % sizeof chunk), n;
        cr_assert_eq(snap_read(path, off, chunk, cap, &n, &last, &eb), ERR_OK, "%s", eb.msg);
        cr_assert(n == cap || last, "a short read only at the end");
        cr_assert_eq(snap_recv_chunk(&r, rdir, index, 5, off, chunk, n, last, done, sizeof done, &eb), ERR_OK,
                     "%s", eb.msg);
        off += n;
        chunks++;
    }
    cr_assert_gt(chunks, 3);
    char want[600];
    snprintf(want, sizeof want, "%s/snap-%llu-5.recv", rdir, (unsigned long long)index);
    cr_assert_str_eq(done, want);
    snprintf(want, sizeof want, "%s/" SNAP_RECV_TMP, rdir);
    cr_assert_not(exists(want), "recv.tmp was renamed");
    cr_assert_eq(r.fd, -1);

    struct buf a = BUF_INIT, b = BUF_INIT, sa = BUF_INIT, sb = BUF_INIT;
    read_file(path, &a);
    read_file(done, &b);
    cr_assert_eq(a.len, off);
    cr_assert(same(&a, &b), "the received file is the sent file");

    size_t n;
    bool last;
    cr_assert_eq(snap_read(path, a.len, chunk, sizeof chunk, &n, &last, &eb), ERR_OK);
    cr_assert(n == 0 && last, "reading at the end: nothing, last");
    cr_assert_eq(snap_read(path, a.len + 1, chunk, sizeof chunk, &n, &last, &eb), ERR_BAD_INPUT);
    char gone[600];
    snprintf(gone, sizeof gone, "%s/snap-1-1.snap", sdir);
    cr_assert_eq(snap_read(gone, 0, chunk, sizeof chunk, &n, &last, &eb), ERR_NOT_FOUND);

    install(&B, done, NULL);
    dump(A.st, &sa);
    dump(B.st, &sb);
    cr_assert(same(&sa, &sb));
    buf_free(&a);
    buf_free(&b);
    buf_free(&sa);
    buf_free(&sb);
}

Test(snapshot, a_chunk_that_does_not_continue_the_transfer_is_refused_and_the_transfer_dropped)
{
    fill_small(50);
    write_image(2);
    uint64_t index = A.sm.applied_index;
    struct buf img = BUF_INIT;
    read_file(path, &img);
    cr_assert_gt(img.len, 300);
    struct snap_recv r;
    snap_recv_init(&r);
    char done[600] = "", tmp[600];
    snprintf(tmp, sizeof tmp, "%s/" SNAP_RECV_TMP, sdir);
    struct errbuf eb;

    cr_assert_eq(snap_recv_chunk(&r, sdir, index, 2, 100, img.data + 100, 50, false, done, sizeof done, &eb),
                 ERR_BAD_INPUT, "no transfer open");
    cr_assert_eq(snap_recv_chunk(&r, sdir, index, 2, 0, img.data, 100, false, done, sizeof done, &eb), ERR_OK,
                 "%s", eb.msg);
    cr_assert(exists(tmp));
    cr_assert_eq(snap_recv_chunk(&r, sdir, index, 2, 150, img.data + 150, 50, false, done, sizeof done, &eb),
                 ERR_BAD_INPUT, "a gap");
    cr_assert_eq(r.fd, -1, "the transfer was dropped");
    cr_assert_not(exists(tmp), "and its file removed");
    cr_assert_eq(snap_recv_chunk(&r, sdir, index, 2, 100, img.data + 100, 50, false, done, sizeof done, &eb),
                 ERR_BAD_INPUT, "no continuing after a gap");

    cr_assert_eq(snap_recv_chunk(&r, sdir, index, 2, 0, img.data, 100, false, done, sizeof done, &eb), ERR_OK);
    cr_assert_eq(snap_recv_chunk(&r, sdir, index, 2, 50, img.data + 50, 50, false, done, sizeof done, &eb),
                 ERR_BAD_INPUT, "an overlap");
    cr_assert_eq(snap_recv_chunk(&r, sdir, index, 2, 0, img.data, 100, false, done, sizeof done, &eb), ERR_OK);
    cr_assert_eq(snap_recv_chunk(&r, sdir, index + 1, 2, 100, img.data + 100, 50, false, done, sizeof done, &eb),
                 ERR_BAD_INPUT, "another snapshot's chunk");

    /* Chunks whose index/term are not the image's: refused at the end. */
    cr_assert_eq(snap_recv_chunk(&r, sdir, index + 1, 2, 0, img.data, img.len, true, done, sizeof done, &eb),
                 ERR_BAD_INPUT);
    cr_assert_str_eq(done, "");

    /* A restart from 0 still works, and a new offset 0 drops a half transfer. */
    cr_assert_eq(snap_recv_chunk(&r, sdir, index, 2, 0, img.data, 10, false, done, sizeof done, &eb), ERR_OK);
    cr_assert_eq(snap_recv_chunk(&r, sdir, index, 2, 0, img.data, 200, false, done, sizeof done, &eb), ERR_OK);
    cr_assert_eq(snap_recv_chunk(&r, sdir, index, 2, 200, img.data + 200, img.len - 200, true, done, sizeof done,
                                 &eb), ERR_OK, "%s", eb.msg);
    struct buf got = BUF_INIT;
    read_file(done, &got);
    cr_assert(same(&got, &img));
    cr_assert_eq(snap_verify(done, NULL, NULL, NULL, &eb), ERR_OK, "%s", eb.msg);

    /* Abandoning removes the partial file. */
    cr_assert_eq(snap_recv_chunk(&r, sdir, index, 2, 0, img.data, 10, false, done, sizeof done, &eb), ERR_OK);
    snap_recv_reset(&r, sdir);
    cr_assert_not(exists(tmp));
    buf_free(&img);
    buf_free(&got);
}

/* B holds other keys; remember its whole state and Raft side. */
static void fill_target(struct buf *before)
{
    put(&B, "b-only", "1");
    put(&B, "zzz", "2");
    commit(&B);
    dump(B.st, before);
}

Test(snapshot, a_flipped_byte_anywhere_is_refused_and_the_target_is_unchanged)
{
    fill_small(12);
    write_image(4);
    struct buf img = BUF_INIT, before = BUF_INIT, after = BUF_INIT;
    read_file(path, &img);
    fill_target(&before);
    char bad[600];
    snprintf(bad, sizeof bad, "%s/bad.snap", sdir);
    uint64_t seed = 99;
    struct store_batch *rs = store_batch_new(B.st);
    for (size_t i = 0; i < img.len; i++) {
        uint8_t flip = (uint8_t)(1 + test_rng(&seed) % 255);
        img.data[i] ^= flip;
        write_file(bad, img.data, img.len);
        img.data[i] ^= flip;
        struct errbuf eb;
        cr_assert_eq(snap_verify(bad, NULL, NULL, NULL, &eb), ERR_CORRUPT, "byte %zu of %zu", i, img.len);
        store_batch_put(rs, STORE_CF_RAFT_STATE, "raft-side", 9, "must not land", 13);
        cr_assert_eq(snap_install(B.st, bad, rs, &eb), ERR_CORRUPT, "byte %zu of %zu", i, img.len);
    }
    store_batch_free(rs);
    node_restart(&B);
    dump(B.st, &after);
    cr_assert(same(&before, &after), "nothing of B changed");
    cr_assert_not(has_key(B.st, STORE_CF_RAFT_STATE, "raft-side"), "the raft side is not written either");
    cr_assert_not(has_key(B.st, STORE_CF_RAFT_STATE, SNAP_INSTALL_MARKER));
    buf_free(&img);
    buf_free(&before);
    buf_free(&after);
}

Test(snapshot, a_truncated_or_extended_image_is_refused)
{
    fill_small(40);
    write_image(4);
    struct buf img = BUF_INIT, before = BUF_INIT, after = BUF_INIT;
    read_file(path, &img);
    fill_target(&before);
    char bad[600];
    snprintf(bad, sizeof bad, "%s/bad.snap", sdir);
    size_t cuts[] = {0, 1, 8, 23, 24, 36, 37, 40, img.len / 2, img.len - 13, img.len - 12, img.len - 1};
    struct errbuf eb;
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        write_file(bad, img.data, cuts[i]);
        cr_assert_eq(snap_install(B.st, bad, NULL, &eb), ERR_CORRUPT, "cut at %zu of %zu", cuts[i], img.len);
    }
    for (size_t extra = 1; extra <= 20; extra++) {
        struct buf longer = BUF_INIT;
        buf_append(&longer, img.data, img.len);
        for (size_t k = 0; k < extra; k++)
            buf_append(&longer, "\0", 1);
        write_file(bad, longer.data, longer.len);
        buf_free(&longer);
        cr_assert_eq(snap_install(B.st, bad, NULL, &eb), ERR_CORRUPT, "%zu zero bytes appended", extra);
    }
    char gone[600];
    snprintf(gone, sizeof gone, "%s/missing.snap", sdir);
    cr_assert_eq(snap_install(B.st, gone, NULL, &eb), ERR_NOT_FOUND);
    dump(B.st, &after);
    cr_assert(same(&before, &after), "nothing of B changed");
    buf_free(&img);
    buf_free(&before);
    buf_free(&after);
}

Test(snapshot, install_replaces_every_key_the_target_held)
{
    fill_small(30);
    write_image(1);
    /* B is ahead in places and holds keys A never had, in both families. */
    for (int i = 0; i < 200; i++) {
        char k[32];
        snprintf(k, sizeof k, "%s%03d", i % 2 ? "key/" : "b-", i);
        put(&B, k, "B's");
    }
    commit(&B);
    struct store_batch *b = store_batch_new(B.st);
    store_batch_put(b, STORE_CF_META, "session/77", 10, "old session", 11);
    store_batch_put(b, STORE_CF_DATA, "", 0, "empty key", 9);
    store_batch_put(b, STORE_CF_DATA, "\xff\xff\xff", 3, "high key", 8);
    struct errbuf eb;
    cr_assert_eq(store_write(B.st, b, true, &eb), ERR_OK, "%s", eb.msg);
    store_batch_free(b);

    install(&B, path, NULL);
    struct buf sa = BUF_INIT, sb = BUF_INIT;
    dump(A.st, &sa);
    dump(B.st, &sb);
    cr_assert(same(&sa, &sb), "B is A, nothing more");
    cr_assert_not(has_key(B.st, STORE_CF_META, "session/77"));
    cr_assert_not(has_key(B.st, STORE_CF_DATA, "b-000"));
    cr_assert_eq(B.sm.applied_index, A.sm.applied_index);
    cr_assert_eq(B.sm.keys, A.sm.keys);
    node_restart(&B);
    dump(B.st, &sb);
    cr_assert(same(&sa, &sb), "and stays so after a restart");
    buf_free(&sa);
    buf_free(&sb);
}

Test(snapshot, the_raft_side_batch_is_written_with_the_install_in_the_background)
{
    fill_small(60);
    write_image(6);
    uint64_t index = A.sm.applied_index;
    /* B has a log that the snapshot replaces. */
    struct raft_entry ents[10];
    for (int i = 0; i < 10; i++)
        ents[i] = (struct raft_entry){.index = (uint64_t)i + 1, .term = 1, .type = RAFT_ENTRY_NORMAL};
    struct store_batch *b = store_batch_new(B.st);
    raftlog_stage_entries(b, ents, 10, 0);
    struct errbuf eb;
    cr_assert_eq(store_write(B.st, b, true, &eb), ERR_OK, "%s", eb.msg);
    store_batch_clear(b);

    struct raft_snap_meta m = {.index = index, .term = 6, .conf = {.n = 3, .ids = {1, 2, 3}}};
    raftlog_stage_snapshot(b, &m);
    raftlog_stage_compact(b, 1, 10);
    struct snap_job *job;
    cr_assert_eq(snap_install_start(B.st, path, b, &job, &eb), ERR_OK, "%s", eb.msg);
    cr_assert_eq(wait_job(job, &eb), ERR_OK, "%s", eb.msg);
    snap_job_free(job);
    store_batch_free(b);

    node_restart(&B);
    struct raftlog_loaded l;
    cr_assert_eq(raftlog_load(B.st, &l, &eb), ERR_OK, "%s", eb.msg);
    cr_assert_eq(l.snap.index, index);
    cr_assert_eq(l.snap.term, 6);
    cr_assert_eq(l.snap.conf.n, 3);
    cr_assert_eq(l.snap.conf.ids[2], 3);
    cr_assert_eq(l.n_entries, 0, "the log was truncated");
    raftlog_loaded_free(&l);
    uint8_t k1[8];
    put_be64(k1, 1);
    struct store_val v;
    cr_assert_eq(store_get(B.st, STORE_CF_RAFT_LOG, k1, 8, NULL, &v, &eb), ERR_NOT_FOUND);
    cr_assert_eq(B.sm.applied_index, index);
    struct buf sa = BUF_INIT, sb = BUF_INIT;
    dump(A.st, &sa);
    dump(B.st, &sb);
    cr_assert(same(&sa, &sb));

    /* A damaged image in the background: an error, and the raft side left out. */
    char bad[600];
    snprintf(bad, sizeof bad, "%s/bad.snap", sdir);
    struct buf img = BUF_INIT;
    read_file(path, &img);
    img.data[img.len / 2] ^= 0x40;
    write_file(bad, img.data, img.len);
    b = store_batch_new(B.st);
    store_batch_put(b, STORE_CF_RAFT_STATE, "raft-side", 9, "x", 1);
    cr_assert_eq(snap_install_start(B.st, bad, b, &job, &eb), ERR_OK, "%s", eb.msg);
    cr_assert_eq(wait_job(job, &eb), ERR_CORRUPT);
    cr_assert(strstr(eb.msg, "bad.snap") != NULL, "the message names the file: %s", eb.msg);
    snap_job_free(job);
    cr_assert_eq(store_get(B.st, STORE_CF_RAFT_STATE, "raft-side", 9, b, &v, &eb), ERR_NOT_FOUND,
                 "the batch was cleared");
    store_batch_free(b);
    cr_assert_not(has_key(B.st, STORE_CF_RAFT_STATE, "raft-side"));
    dump(B.st, &sb);
    cr_assert(same(&sa, &sb));
    buf_free(&img);
    buf_free(&sa);
    buf_free(&sb);
}

Test(snapshot, recovery_finishes_an_install_interrupted_after_its_marker)
{
    fill_small(80);
    write_image(9);
    struct buf want = BUF_INIT, got = BUF_INIT;
    dump(A.st, &want);
    put(&B, "b-only", "x");
    commit(&B);
    struct errbuf eb;
    cr_assert_eq(snap_install_recover(B.st, &eb), ERR_OK, "no marker: nothing to do");

    /* Crash right after the marker: steps a and b only. */
    cr_assert_eq(snap_verify(path, NULL, NULL, NULL, &eb), ERR_OK, "%s", eb.msg);
    struct store_batch *rs = store_batch_new(B.st);
    store_batch_put(rs, STORE_CF_RAFT_STATE, "raft-side", 9, "durable", 7);
    cr_assert_eq(snap_install_mark(B.st, path, rs, &eb), ERR_OK, "%s", eb.msg);
    store_batch_free(rs);
    node_restart(&B);
    char pending[600];
    cr_assert_eq(snap_install_pending(B.st, pending, sizeof pending, &eb), ERR_OK, "%s", eb.msg);
    char *abs = realpath(path, NULL);
    cr_assert_str_eq(pending, abs, "the marker holds the image's absolute path");
    free(abs);
    cr_assert(has_key(B.st, STORE_CF_RAFT_STATE, "raft-side"), "the raft side went with the marker");
    cr_assert(has_key(B.st, STORE_CF_DATA, "b-only"), "the state machine is untouched so far");

    cr_assert_eq(snap_install_recover(B.st, &eb), ERR_OK, "%s", eb.msg);
    dump(B.st, &got);
    cr_assert(same(&want, &got), "recovery completed the install");
    cr_assert_eq(snap_install_pending(B.st, pending, sizeof pending, &eb), ERR_NOT_FOUND);
    cr_assert_eq(snap_install_recover(B.st, &eb), ERR_OK, "a second call is a no-op");
    node_restart(&B);
    dump(B.st, &got);
    cr_assert(same(&want, &got));
    cr_assert_eq(B.sm.applied_index, A.sm.applied_index);

    /* Crash in the middle of the load: part wiped, stray keys written. */
    put(&B, "after", "1");
    commit(&B);
    cr_assert_eq(snap_install_mark(B.st, path, NULL, &eb), ERR_OK, "%s", eb.msg);
    cr_assert_eq(store_wipe_cf(B.st, STORE_CF_DATA, false, &eb), ERR_OK, "%s", eb.msg);
    struct store_batch *b = store_batch_new(B.st);
    store_batch_put(b, STORE_CF_DATA, "key/0003", 8, "half-loaded", 11);
    store_batch_put(b, STORE_CF_DATA, "stray", 5, "x", 1);
    cr_assert_eq(store_write(B.st, b, false, &eb), ERR_OK, "%s", eb.msg);
    store_batch_free(b);
    node_restart(&B);
    cr_assert_eq(snap_install_recover(B.st, &eb), ERR_OK, "%s", eb.msg);
    node_restart(&B);
    dump(B.st, &got);
    cr_assert(same(&want, &got), "recovery redoes the whole load");
    cr_assert_eq(snap_install_recover(B.st, &eb), ERR_OK);

    /* The marker names a file that is gone: a clear refusal, marker kept. */
    cr_assert_eq(snap_install_mark(B.st, path, NULL, &eb), ERR_OK, "%s", eb.msg);
    cr_assert_eq(unlink(path), 0);
    node_restart(&B);
    cr_assert_eq(snap_install_recover(B.st, &eb), ERR_CORRUPT);
    cr_assert(strstr(eb.msg, "interrupted snapshot install") && strstr(eb.msg, ".snap"), "%s", eb.msg);
    cr_assert_eq(snap_install_pending(B.st, pending, sizeof pending, &eb), ERR_OK, "still pending");
    buf_free(&want);
    buf_free(&got);
}

Test(snapshot, an_empty_state_machine_round_trips)
{
    struct buf sa = BUF_INIT, sb = BUF_INIT;
    fill_target(&sb);
    struct errbuf eb;
    cr_assert_eq(A.sm.applied_index, 0);
    write_image(0);
    uint64_t index, term, recs;
    cr_assert_eq(snap_verify(path, &index, &term, &recs, &eb), ERR_OK, "%s", eb.msg);
    cr_assert_eq(index, 0);
    cr_assert_eq(recs, dump(A.st, &sa), "meta alone (format_version and the like)");
    install(&B, path, NULL);
    cr_assert_eq(B.sm.applied_index, 0);
    cr_assert_eq(B.sm.keys, 0);
    cr_assert_not(has_key(B.st, STORE_CF_DATA, "b-only"));
    dump(A.st, &sa);
    dump(B.st, &sb);
    cr_assert(same(&sa, &sb));
    put(&B, "first", "1");
    commit(&B);
    cr_assert_eq(B.sm.applied_index, 1);
    buf_free(&sa);
    buf_free(&sb);
}

Test(snapshot, freeing_a_running_write_job_leaves_either_a_whole_image_or_nothing)
{
    for (int i = 0; i < 2000; i++) {
        char k[32];
        snprintf(k, sizeof k, "k%06d", i);
        put(&A, k, "some value that takes a little room in the image file....");
    }
    commit(&A);
    struct errbuf eb;
    cr_assert_eq(snap_path(path, sizeof path, sdir, A.sm.applied_index, 1, "snap", &eb), ERR_OK);
    struct snap_job *job;
    cr_assert_eq(snap_write_start(A.st, path, A.sm.applied_index, 1, &job, &eb), ERR_OK, "%s", eb.msg);
    snap_job_free(job);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    cr_assert_not(exists(tmp));
    if (exists(path))
        cr_assert_eq(snap_verify(path, NULL, NULL, NULL, &eb), ERR_OK, "%s", eb.msg);
    snap_job_free(NULL);
}

Test(snapshot, prune_keeps_the_named_file_and_newer_ones)
{
    static const char *const names[] = {"snap-5-1.snap", "snap-7-2.recv", "snap-9-2.snap", "snap-9-1.recv",
                                        "snap-12-3.recv", "snap-3-1.snap.tmp", "snap-13-3.snap.tmp",
                                        SNAP_RECV_TMP, "other.txt", "snap-x-1.snap", "snap-4-1.snapx"};
    static const bool stays[] = {false, false, true, false, true, false, true, true, true, true, true};
    char p[600];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", sdir, names[i]);
        write_file(p, "x", 1);
    }
    struct errbuf eb;
    snprintf(p, sizeof p, "%s/snap-9-2.snap", sdir);
    cr_assert_eq(snap_prune(sdir, p, &eb), ERR_OK, "%s", eb.msg);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", sdir, names[i]);
        cr_assert_eq(exists(p), stays[i], "%s should %s", names[i], stays[i] ? "stay" : "go");
    }
    cr_assert_eq(snap_prune(sdir, "not-a-snapshot", &eb), ERR_BAD_INPUT);
}

Test(snapshot, paths_and_headers)
{
    char p[64];
    struct errbuf eb;
    cr_assert_eq(snap_path(p, sizeof p, "/d", 120, 3, "snap", &eb), ERR_OK);
    cr_assert_str_eq(p, "/d/snap-120-3.snap");
    cr_assert_eq(snap_path(p, 10, "/d", 120, 3, "snap", &eb), ERR_TOO_LARGE);
    char f[600];
    snprintf(f, sizeof f, "%s/junk", sdir);
    write_file(f, "DDKVSNP2xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 40);
    uint64_t i, t, n;
    cr_assert_eq(snap_file_info(f, &i, &t, &n, &eb), ERR_CORRUPT);
    cr_assert_eq(snap_verify(f, NULL, NULL, NULL, &eb), ERR_CORRUPT);
    snprintf(f, sizeof f, "%s/none", sdir);
    cr_assert_eq(snap_file_info(f, &i, &t, &n, &eb), ERR_NOT_FOUND);
}
