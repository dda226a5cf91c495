/* snapshot save | restore: backups of a cluster's state (kv/backup_file.h) and new clusters built from them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "kv/backup_file.h"
#include "node/node.h"
#include "util/clock.h"
#include "util/err.h"

/* Reaching the leader and imaging a large state takes longer than one
 * request: the default deadline of a save, unless --timeout-ms is given. */
#define SNAPSHOT_SAVE_TIMEOUT_MS 60000u

static const struct opt_def snapshot_opts[] = {
    {"data-dir", 0, OPT_ARG, NULL, "DIR", "restore: the data dir to build (must not exist, or be empty)"},
    {"name", 0, OPT_ARG, "n1", "NAME", "restore: this member's name in the new cluster"},
    {"cluster", 0, OPT_ARG, NULL, "N=HOST:PORT,...",
     "restore: the new cluster's members, the same for every member (default: a one-node cluster)"},
    {"cluster-token", 0, OPT_ARG, NULL, "TOKEN", "restore: the new cluster's token (give serve the same one)"},
};

/* --- save --- */

struct save_sink {
    const char *path;
    struct backup_writer *w;
    char err[300]; /* why the sink stopped */
};

static int save_receive(void *ud, const struct ddkv_snapshot_meta *meta, uint64_t offset, const void *data,
                        size_t len)
{
    struct save_sink *s = ud;
    struct errbuf eb;
    (void)offset;
    if (!s->w) {
        struct backup_header h = {.cluster_id = meta->cluster_id, .index = meta->index, .term = meta->term,
                                  .revision = meta->revision, .lamport = meta->lamport, .keys = meta->keys,
                                  .image_bytes = meta->image_bytes, .created_ms = clock_wall_ms()};
        snprintf(h.members, sizeof h.members, "%s", meta->members ? meta->members : "");
        if (backup_writer_open(s->path, &h, &s->w, &eb) != ERR_OK) {
            snprintf(s->err, sizeof s->err, "%s", eb.msg);
            return -1;
        }
    }
    if (len && backup_writer_append(s->w, data, len, &eb) != ERR_OK) {
        snprintf(s->err, sizeof s->err, "%s", eb.msg);
        return -1;
    }
    return 0;
}

static int save_print(struct cli_ctx *ctx, const char *path, const struct ddkv_snapshot_meta *m, const char *sha,
                      uint64_t file_bytes)
{
    char cid[17];
    snprintf(cid, sizeof cid, "%016llx", (unsigned long long)m->cluster_id);
    if (ctx->fmt == OUT_JSON) {
        json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:s}", "file", path, "cluster_id", cid,
                              "index", (json_int_t)m->index, "term", (json_int_t)m->term, "revision",
                              (json_int_t)m->revision, "lamport", (json_int_t)m->lamport, "keys",
                              (json_int_t)m->keys, "bytes", (json_int_t)file_bytes, "sha256", sha, "members",
                              m->members ? m->members : "");
        return out_json_line(o) == 0 ? EXIT_DONE : EXIT_UNAVAILABLE;
    }
    printf("saved %s: index %llu, revision %llu, %llu keys, %llu bytes\n", path, (unsigned long long)m->index,
           (unsigned long long)m->revision, (unsigned long long)m->keys, (unsigned long long)file_bytes);
    printf("cluster %s (%s)\nsha256 %s\n", cid, m->members ? m->members : "", sha);
    return EXIT_DONE;
}

/* Given on the command line (not from the environment, which may hold what
 * `ddkv serve` uses on this machine). */
static bool snapshot_flag_given(const struct opts *o, const char *name)
{
    for (size_t i = 0; i < o->n; i++)
        if (o->src[i] == OPT_SRC_FLAG && strcmp(o->defs[i]->name, name) == 0)
            return true;
    return false;
}

static int snapshot_save(struct cli_ctx *ctx, const char *path)
{
    static const char *const restore_only[] = {"data-dir", "name", "cluster", "cluster-token"};
    for (size_t i = 0; i < sizeof restore_only / sizeof restore_only[0]; i++)
        if (snapshot_flag_given(ctx->opts, restore_only[i])) {
            out_error("snapshot save: --%s is for restore", restore_only[i]);
            return EXIT_USAGE;
        }
    if (!opts_is_set(ctx->opts, "timeout-ms") && ctx->client.timeout_ms < SNAPSHOT_SAVE_TIMEOUT_MS)
        ctx->client.timeout_ms = SNAPSHOT_SAVE_TIMEOUT_MS;
    ddkv_client *c = NULL;
    int rc = cli_client(ctx, &c);
    if (rc != EXIT_DONE)
        return rc;
    struct save_sink sink = {.path = path};
    struct ddkv_snapshot_meta meta;
    ddkv_err e = ddkv_snapshot_save(c, save_receive, &sink, &meta);
    if (e != DDKV_OK) {
        backup_writer_abort(sink.w);
        if (sink.err[0]) {
            out_error("snapshot save: cannot write %s: %s", path, sink.err);
            rc = EXIT_USAGE;
        } else {
            rc = cli_fail(c, e, "snapshot save", NULL, 0);
        }
        ddkv_client_free(c);
        return rc;
    }
    ddkv_client_free(c);
    uint8_t sha[BACKUP_SHA_BYTES];
    struct errbuf eb;
    if (backup_writer_finish(sink.w, sha, &eb) != ERR_OK) {
        out_error("snapshot save: %s (nothing was saved)", eb.msg);
        ddkv_snapshot_meta_free(&meta);
        /* The image failed its own check: it was damaged on the way. */
        return EXIT_UNAVAILABLE;
    }
    char hex[2 * BACKUP_SHA_BYTES + 1];
    backup_hex(sha, hex);
    uint64_t file_bytes = BACKUP_FIXED_BYTES + strlen(meta.members ? meta.members : "") + meta.image_bytes +
                          BACKUP_SHA_BYTES;
    rc = save_print(ctx, path, &meta, hex, file_bytes);
    ddkv_snapshot_meta_free(&meta);
    return rc;
}

/* --- restore --- */

static int restore_print(struct cli_ctx *ctx, const struct restore_config *rc, const struct restore_result *r)
{
    char src[17], cid[17];
    snprintf(src, sizeof src, "%016llx", (unsigned long long)r->source_cluster_id);
    snprintf(cid, sizeof cid, "%016llx", (unsigned long long)r->cluster_id);
    if (ctx->fmt == OUT_JSON) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:s}", "data_dir", rc->data_dir, "name",
                              rc->name, "cluster_id", cid, "source_cluster_id", src, "index",
                              (json_int_t)r->index, "term", (json_int_t)r->term, "revision",
                              (json_int_t)r->revision, "keys", (json_int_t)r->keys, "sha256", r->sha256);
        return out_json_line(o) == 0 ? EXIT_DONE : EXIT_UNAVAILABLE;
    }
    printf("restored %s into %s: index %llu, revision %llu, %llu keys (sha256 %s, from cluster %s)\n", rc->file,
           rc->data_dir, (unsigned long long)r->index, (unsigned long long)r->revision,
           (unsigned long long)r->keys, r->sha256, src);
    printf("%s is a member of the new cluster %s; start it with:\n"
           "  ddkv serve --name %s --data-dir %s%s%s%s%s\n",
           rc->name, cid, rc->name, rc->data_dir, rc->cluster ? " --cluster " : "", rc->cluster ? rc->cluster : "",
           /* The token is the peer secret: named, never printed. */
           rc->cluster_token ? " --cluster-token " : "", rc->cluster_token ? "<the same token>" : "");
    return EXIT_DONE;
}

static int snapshot_restore(struct cli_ctx *ctx, const char *path)
{
    struct restore_config rc = {.file = path,
                                .data_dir = opts_get(ctx->opts, "data-dir"),
                                .name = opts_get(ctx->opts, "name"),
                                .cluster = opts_get(ctx->opts, "cluster"),
                                .cluster_token = opts_get(ctx->opts, "cluster-token")};
    if (!rc.data_dir || !*rc.data_dir) {
        out_error("snapshot restore: --data-dir is required");
        return EXIT_USAGE;
    }
    if (rc.cluster_token && !*rc.cluster_token)
        rc.cluster_token = NULL;
    if (rc.cluster && !*rc.cluster)
        rc.cluster = NULL;
    struct restore_result res;
    struct errbuf eb;
    int r = node_restore(&rc, &res, &eb);
    if (r == ERR_CORRUPT) {
        out_error("snapshot restore: refusing %s: %s; nothing was written", path, eb.msg);
        return EXIT_USAGE;
    }
    if (r) {
        out_error("snapshot restore: %s", eb.msg);
        return EXIT_USAGE;
    }
    return restore_print(ctx, &rc, &res);
}

static int snapshot_run(struct cli_ctx *ctx)
{
    const char *verb = ctx->opts->pos[0], *path = ctx->opts->pos[1];
    if (strcmp(verb, "save") == 0)
        return snapshot_save(ctx, path);
    if (strcmp(verb, "restore") == 0)
        return snapshot_restore(ctx, path);
    out_error("snapshot: unknown action '%.64s' (save FILE | restore FILE --data-dir DIR ...)", verb);
    return EXIT_USAGE;
}

const struct cli_command cmd_snapshot_commands[] = {
    {"snapshot", "save FILE | restore FILE --data-dir DIR [--name NAME --cluster N=HOST:PORT,...]",
     "save a consistent backup from the leader (timeout 60 s), or build a new cluster's member from one",
     snapshot_opts, sizeof snapshot_opts / sizeof snapshot_opts[0], CMD_CLIENT, 2, 2, NULL, snapshot_run},
};
const size_t cmd_snapshot_count = sizeof cmd_snapshot_commands / sizeof cmd_snapshot_commands[0];
