/* Backup files (kv/backup_file.c) around a real snapshot image: written through the
 * checksumming writer they verify and extract byte for byte; any one flipped
 * byte anywhere in the file, a truncation, or extra bytes are refused as
 * corrupt; a writer fed a damaged or short image leaves no file. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "kv/backup_file.h"
#include "kv/sm.h"
#include "kv/snapshot.h"
#include "kv/store.h"

static char dir[256], img[512], bak[512], copy[512];
static uint8_t *image;
static size_t image_len;
static struct backup_header hdr;

static uint8_t *slurp(const char *p, size_t *n)
{
    FILE *f = fopen(p, "rb");
    cr_assert(f != NULL, "open %s", p);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)len + 1);
    cr_assert(b != NULL);
    cr_assert_eq(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

static void spill(const char *p, const uint8_t *b, size_t n)
{
    FILE *f = fopen(p, "wb");
    cr_assert(f != NULL);
    cr_assert_eq(fwrite(b, 1, n, f), n);
    fclose(f);
}

/* A store with a few hundred keys, imaged at its applied index (term 4). */
static void setup(void)
{
    struct errbuf eb;
    struct store *st;
    struct sm sm;
    cr_assert_eq(harness_tmpdir(dir, sizeof dir, "backup"), 0);
    char sdir[300];
    snprintf(sdir, sizeof sdir, "%s/db", dir);
    cr_assert_eq(store_open(&st, sdir, NULL, &eb), ERR_OK, "%s", eb.msg);
    cr_assert_eq(sm_open(&sm, st, &eb), ERR_OK, "%s", eb.msg);
    for (int i = 0; i < 300; i++) {
        char k[32], v[64];
        snprintf(k, sizeof k, "key/%04d", i);
        snprintf(v, sizeof v, "value %d with some length to it", i);
        struct sm_op op = {.kind = SM_OP_PUT, .key = (const uint8_t *)k, .klen = strlen(k),
                           .val = (const uint8_t *)v, .vlen = strlen(v)};
        struct sm_result r;
        cr_assert_eq(sm_stage(&sm, sm.st_index + 1, sm.st_lamport + 1, &op, &r, &eb), ERR_OK, "%s", eb.msg);
    }
    cr_assert_eq(sm_commit(&sm, false, &eb), ERR_OK, "%s", eb.msg);
    snprintf(img, sizeof img, "%s/image", dir);
    snprintf(bak, sizeof bak, "%s/backup.ddkv", dir);
    snprintf(copy, sizeof copy, "%s/copy.ddkv", dir);
    cr_assert_eq(snap_write(st, img, sm.applied_index, 4, &eb), ERR_OK, "%s", eb.msg);
    hdr = (struct backup_header){.cluster_id = 0x1234abcd5678ef90ULL, .index = sm.applied_index, .term = 4,
                                 .revision = sm.revision, .lamport = sm.applied_lamport, .keys = sm.keys,
                                 .created_ms = 1700000000000ULL};
    snprintf(hdr.members, sizeof hdr.members, "n1=127.0.0.1:1,n2=127.0.0.1:2");
    sm_close(&sm);
    store_close(st);
    image = slurp(img, &image_len);
    hdr.image_bytes = image_len;
}

static void teardown(void)
{
    free(image);
    harness_rmrf(dir);
}

/* Write the backup through the writer, in uneven pieces. */
static int write_backup(const uint8_t *im, size_t n, struct errbuf *eb)
{
    struct backup_writer *w;
    int rc = backup_writer_open(bak, &hdr, &w, eb);
    if (rc)
        return rc;
    for (size_t off = 0, step = 1; off < n; off += step, step = step * 3 + 7) {
        size_t k = n - off < step ? n - off : step;
        if ((rc = backup_writer_append(w, im + off, k, eb))) {
            backup_writer_abort(w);
            return rc;
        }
    }
    return backup_writer_finish(w, NULL, eb);
}

TestSuite(backup, .init = setup, .fini = teardown, .timeout = 120);

Test(backup, a_written_backup_verifies_and_gives_back_the_image_byte_for_byte)
{
    struct errbuf eb;
    cr_assert_eq(write_backup(image, image_len, &eb), ERR_OK, "%s", eb.msg);
    struct stat sb;
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", bak);
    cr_assert_neq(stat(tmp, &sb), 0, "the .tmp file stayed");
    struct backup_header h;
    cr_assert_eq(backup_verify(bak, &h, NULL, &eb), ERR_OK, "%s", eb.msg);
    cr_assert_eq(h.index, hdr.index);
    cr_assert_eq(h.term, 4);
    cr_assert_eq(h.cluster_id, hdr.cluster_id);
    cr_assert_eq(h.keys, 300);
    cr_assert_str_eq(h.members, hdr.members);
    char out[600];
    snprintf(out, sizeof out, "%s/extracted", dir);
    cr_assert_eq(backup_extract_image(bak, &h, out, &eb), ERR_OK, "%s", eb.msg);
    size_t n;
    uint8_t *got = slurp(out, &n);
    cr_assert(n == image_len && memcmp(got, image, n) == 0, "the extracted image differs");
    free(got);
    cr_assert_eq(snap_verify(out, NULL, NULL, NULL, &eb), ERR_OK, "%s", eb.msg);
}

Test(backup, every_flipped_byte_truncation_and_extra_byte_is_refused)
{
    struct errbuf eb;
    cr_assert_eq(write_backup(image, image_len, &eb), ERR_OK, "%s", eb.msg);
    size_t n;
    uint8_t *good = slurp(bak, &n);
    /* Every byte of the header, a spread through the image, every byte of the SHA. */
    size_t tried = 0;
    for (size_t at = 0; at < n; at += at < 120 || at + 40 > n ? 1 : 97) {
        good[at] ^= 0x20;
        spill(copy, good, n);
        good[at] ^= 0x20;
        struct backup_header h;
        cr_assert_eq(backup_verify(copy, &h, NULL, &eb), ERR_CORRUPT, "a flip at %zu of %zu was accepted", at, n);
        tried++;
    }
    size_t cuts[] = {0, 10, 81, 82 + 10, n / 2, n - 33, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        spill(copy, good, cuts[i]);
        cr_assert_eq(backup_verify(copy, &hdr, NULL, &eb), ERR_CORRUPT, "a cut at %zu was accepted", cuts[i]);
    }
    uint8_t *longer = malloc(n + 1);
    memcpy(longer, good, n);
    longer[n] = 0;
    spill(copy, longer, n + 1);
    cr_assert_eq(backup_verify(copy, &hdr, NULL, &eb), ERR_CORRUPT, "an extra byte was accepted");
    cr_log_info("%zu flipped bytes, %zu truncations and an extra byte refused", tried, sizeof cuts / sizeof cuts[0]);
    free(longer);
    free(good);
}

Test(backup, a_writer_fed_a_damaged_or_short_image_leaves_no_file)
{
    struct errbuf eb;
    struct stat sb;
    uint8_t *bad = malloc(image_len);
    memcpy(bad, image, image_len);
    bad[image_len / 2] ^= 1;
    cr_assert_eq(write_backup(bad, image_len, &eb), ERR_CORRUPT, "a damaged image was saved");
    cr_assert_neq(stat(bak, &sb), 0);
    cr_assert_eq(write_backup(image, image_len - 5, &eb), ERR_CORRUPT, "a short image was saved");
    cr_assert_neq(stat(bak, &sb), 0);
    hdr.index++; /* the image is at another index than the header says */
    cr_assert_eq(write_backup(image, image_len, &eb), ERR_CORRUPT, "a mislabelled image was saved");
    cr_assert_neq(stat(bak, &sb), 0);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", bak);
    cr_assert_neq(stat(tmp, &sb), 0, "a .tmp file stayed");
    free(bad);
}
