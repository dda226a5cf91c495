/* `ddkv snapshot restore`: a data dir for a member of a new cluster, built from
 * a backup file (kv/backup_file.h).
 *
 * The data dir is what a member of a cluster that took a Raft snapshot at the
 * backup's index would hold: the state machine is the image (installed with
 * the crash-safe installer of kv/snapshot.c), the Raft log is empty and
 * compacted up to that index, whose snapshot metadata carries the new
 * membership as the configuration, and the hard state is at the backup's
 * term. Every member of the new cluster is restored from the same file with
 * its own --name and the same --cluster, so they all start with the same
 * state, log position and configuration, and elect a leader in a later term;
 * the log continues at index + 1, so revisions keep growing and lease ids and
 * fencing tokens (log indexes) never repeat.
 *
 * What changes: the address book (meta m/ID, which travels in snapshots) names
 * the new members, and the cluster id is new: derived from the new --cluster
 * and --cluster-token with the backup's SHA-256 mixed in (the "seed", stored
 * in the data dir), so even a cluster restored onto the same names and
 * addresses as its source never accepts a member of the source. The image
 * Raft sends to members added later is written again from the installed
 * state, so it holds the new address book. */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kv/backup_file.h"
#include "kv/raftlog.h"
#include "kv/sm.h"
#include "kv/snapshot.h"
#include "kv/store.h"
#include "node/cluster.h"
#include "node/node.h"
#include "util/buf.h"
#include "util/file.h"

/* 1 if dir exists and holds anything, 0 if it exists empty, -1 if absent
 * (errno set: ENOENT, or why it cannot be read). */
static int restore_dir_state(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int full = 0;
    struct dirent *de;
    while (!full && (de = readdir(d)) != NULL)
        full = strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    closedir(d);
    return full;
}

static int restore_rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* Remove what restore put in dir: the whole dir if it made it, else its
 * contents (it was empty). */
static void restore_undo(const char *dir, bool made_dir)
{
    nftw(dir, restore_rm_one, 16, FTW_DEPTH | FTW_PHYS);
    if (!made_dir)
        mkdir(dir, 0700); /* nftw removed dir itself too: leave it as found, empty */
}

/* Install the image, with the new cluster's Raft state and identity in the
 * installer's first synced write; then the new address book and the image
 * members added later will be sent. */
static int restore_build(struct store *st, const struct restore_config *rc, const struct backup_header *h,
                         const struct member *m, size_t nm, uint64_t cluster_id, uint64_t seed,
                         struct errbuf *eb)
{
    char snapdir[4096], img[4200], fresh[4200];
    snprintf(snapdir, sizeof snapdir, "%s/snap", rc->data_dir);
    int r = file_mkdir_durable(snapdir, 0700, eb);
    if (r)
        return r;
    snprintf(img, sizeof img, "%s/restore.img", snapdir);
    if ((r = backup_extract_image(rc->file, h, img, eb)))
        return r;
    struct raft_snap_meta meta = {.index = h->index, .term = h->term, .conf = {.n = (uint32_t)nm}};
    for (size_t i = 0; i < nm; i++)
        meta.conf.ids[i] = m[i].id;
    struct raft_hard_state hs = {.term = h->term, .vote = 0, .commit = h->index};
    struct store_batch *b = store_batch_new(st);
    raftlog_stage_snapshot(b, &meta);
    raftlog_stage_hard_state(b, &hs);
    cluster_stage_identity(b, cluster_node_id(rc->name), cluster_id, seed, cluster_token_fp(rc->cluster_token));
    r = snap_install(st, img, b, eb);
    store_batch_free(b);
    if (!r)
        r = cluster_replace_book(st, m, nm, eb);
    if (!r && (r = snap_path(fresh, sizeof fresh, snapdir, h->index, h->term, "snap", eb)) == ERR_OK)
        r = snap_write(st, fresh, h->index, h->term, eb);
    unlink(img);
    return r;
}

int node_restore(const struct restore_config *rc, struct restore_result *out, struct errbuf *eb)
{
    memset(out, 0, sizeof *out);
    struct backup_header h;
    uint8_t sha[BACKUP_SHA_BYTES];
    /* Nothing is written until the file has proved whole. */
    int r = backup_verify(rc->file, &h, sha, eb);
    if (r)
        return r;
    if (!rc->name || !*rc->name || strchr(rc->name, '=') || strchr(rc->name, ',') || strlen(rc->name) >= 64)
        return errf(eb, ERR_BAD_INPUT, "--name must be a member name (no '=' or ',', under 64 bytes)");
    struct member m[RAFT_MAX_NODES];
    size_t nm = 0;
    if (rc->cluster && *rc->cluster) {
        if ((r = cluster_parse(rc->cluster, m, &nm, eb)))
            return r;
    } else {
        /* A one-node cluster, as `ddkv serve --data-dir DIR` without --cluster founds. */
        memset(&m[0], 0, sizeof m[0]);
        snprintf(m[0].name, sizeof m[0].name, "%s", rc->name);
        m[0].id = cluster_node_id(rc->name);
        nm = 1;
    }
    uint64_t self = cluster_node_id(rc->name);
    bool found = false;
    for (size_t i = 0; i < nm; i++)
        found |= m[i].id == self;
    if (!found)
        return errf(eb, ERR_BAD_INPUT, "--name %s is not one of the --cluster members", rc->name);
    int state = restore_dir_state(rc->data_dir);
    if (state > 0)
        return errf(eb, ERR_BAD_INPUT, "data dir %s is not empty: restore builds a new one (give a new path)",
                    rc->data_dir);
    if (state < 0 && errno != ENOENT)
        return errf(eb, ERR_IO, "cannot read %s: %s", rc->data_dir, strerror(errno));
    bool made_dir = state < 0;
    if (made_dir && (r = file_mkdir_durable(rc->data_dir, 0700, eb)))
        return r;

    uint64_t seed = get_be64(sha);
    if (seed == 0)
        seed = 1; /* 0 means "not restored" */
    uint64_t cluster_id = cluster_derive_id(m, nm, rc->cluster_token, seed);
    struct store *st = NULL;
    struct store_options so = {0};
    if ((r = store_open(&st, rc->data_dir, &so, eb)) == ERR_OK) {
        r = restore_build(st, rc, &h, m, nm, cluster_id, seed, eb);
        store_close(st);
    }
    if (r) {
        restore_undo(rc->data_dir, made_dir);
        return r;
    }
    out->index = h.index;
    out->term = h.term;
    out->revision = h.revision;
    out->lamport = h.lamport;
    out->keys = h.keys;
    out->source_cluster_id = h.cluster_id;
    out->cluster_id = cluster_id;
    backup_hex(sha, out->sha256);
    return ERR_OK;
}
