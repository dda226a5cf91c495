/* Writes the committed seed corpora test/fuzz/corpus/{frame,msg}: valid messages of every wire.h type plus known-evil inputs.
 *
 * Usage: fuzz_gen_corpus DIR   (DIR/frame and DIR/msg must exist). Regenerate with
 *   cmake --build BUILD --target fuzz_gen_corpus && BUILD/test/fuzz/fuzz_gen_corpus test/fuzz/corpus
 * Files are named after what they hold, so a regenerated corpus diffs cleanly. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddkv/wire.h"
#include "proto/msg.h"
#include "util/buf.h"
#include "util/err.h"

static const char *outdir;

static void write_file(const char *sub, const char *name, const void *p, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/%s", outdir, sub, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

/* All valid frames, concatenated, for the frame corpus. */
static struct buf all_frames = BUF_INIT;

/* Save a finished frame: its body to msg/, the whole frame to the stream. */
static void save_valid(const char *name, struct buf *b)
{
    if (b->len < 4 || get_be32(b->data) != b->len - 4) {
        fprintf(stderr, "%s: bad frame\n", name);
        exit(1);
    }
    write_file("msg", name, b->data + 4, b->len - 4);
    if (buf_append(&all_frames, b->data, b->len) != ERR_OK)
        exit(1);
    buf_free(b);
}

static void end(struct msg_writer *w)
{
    if (msg_end(w) != ERR_OK)
        exit(1);
}

static void valid_messages(void)
{
    struct buf b = BUF_INIT;
    struct msg_writer w;

    if (msg_encode_error(&b, 40, 7, DDKV_WERR_NOT_LEADER, "not the leader", "127.0.0.1:7002"))
        exit(1);
    save_valid("valid-error-not-leader", &b);
    if (msg_encode_error(&b, 41, 8, DDKV_WERR_NOT_FOUND, "not found", NULL))
        exit(1);
    save_valid("valid-error-not-found", &b);

    msg_begin(&w, &b, DDKV_MSG_PING, 1, 1, 0);
    end(&w);
    save_valid("valid-ping", &b);

    msg_begin(&w, &b, DDKV_MSG_PONG, 2, 1, 3);
    mw_str(&w, "n1");
    mw_str(&w, "n2");
    mw_u64(&w, 5);
    end(&w);
    save_valid("valid-pong", &b);
    msg_begin(&w, &b, DDKV_MSG_PONG, 2, 1, 3);
    mw_str(&w, "n1");
    mw_nil(&w);
    mw_u64(&w, 0);
    end(&w);
    save_valid("valid-pong-no-leader", &b);

    msg_begin(&w, &b, DDKV_MSG_READ, 3, 2, 3);
    mw_str(&w, "user/42");
    mw_u64(&w, DDKV_CONSISTENCY_CAUSAL);
    mw_u64(&w, 1000);
    end(&w);
    save_valid("valid-read", &b);

    msg_begin(&w, &b, DDKV_MSG_VALUE, 4, 2, 6);
    mw_str(&w, "user/42");
    mw_bin(&w, "\x00\xff\xc1value", 8);
    mw_u64(&w, 10);
    mw_u64(&w, 12);
    mw_u64(&w, 3);
    mw_u64(&w, 1001);
    end(&w);
    save_valid("valid-value", &b);

    msg_begin(&w, &b, DDKV_MSG_WRITE, 5, 3, 5);
    mw_str(&w, "user/42");
    mw_bin(&w, "hello", 5);
    mw_u64(&w, 0);
    mw_u64(&w, UINT64_C(0x1122334455667788));
    mw_u64(&w, 17);
    end(&w);
    save_valid("valid-write", &b);

    msg_begin(&w, &b, DDKV_MSG_WRITTEN_AT, 6, 3, 2);
    mw_u64(&w, 1002);
    mw_u64(&w, 13);
    end(&w);
    save_valid("valid-written-at", &b);

    msg_begin(&w, &b, DDKV_MSG_DELETE, 7, 4, 3);
    mw_str(&w, "user/42");
    mw_u64(&w, UINT64_C(0x1122334455667788));
    mw_u64(&w, 18);
    end(&w);
    save_valid("valid-delete", &b);

    msg_begin(&w, &b, DDKV_MSG_DELETED, 8, 4, 2);
    mw_u64(&w, 1003);
    mw_u64(&w, 14);
    end(&w);
    save_valid("valid-deleted", &b);

    msg_begin(&w, &b, DDKV_MSG_LIST, 9, 5, 3);
    mw_str(&w, "user/");
    mw_str(&w, "");
    mw_u64(&w, DDKV_DEFAULT_LIST_LIMIT);
    end(&w);
    save_valid("valid-list", &b);

    msg_begin(&w, &b, DDKV_MSG_LIST_RESULT, 10, 5, 3);
    mw_array(&w, 3);
    for (int i = 0; i < 3; i++) {
        char key[16];
        snprintf(key, sizeof key, "user/%d", i);
        mw_array(&w, 6);
        mw_str(&w, key);
        mw_bin(&w, "v", 1);
        mw_u64(&w, 1);
        mw_u64(&w, 2 + (uint64_t)i);
        mw_u64(&w, 1);
        mw_u64(&w, 900 + (uint64_t)i);
    }
    mw_bool(&w, true);
    mw_u64(&w, 14);
    end(&w);
    save_valid("valid-list-result", &b);

    msg_begin(&w, &b, DDKV_MSG_STATUS, 11, 6, 0);
    end(&w);
    save_valid("valid-status", &b);

    msg_begin(&w, &b, DDKV_MSG_STATUS_RESULT, 12, 6, 1);
    mw_map(&w, 8);
    mw_str(&w, "name");
    mw_str(&w, "n1");
    mw_str(&w, "role");
    mw_str(&w, "leader");
    mw_str(&w, "term");
    mw_u64(&w, 5);
    mw_str(&w, "leader");
    mw_str(&w, "n1");
    mw_str(&w, "commit");
    mw_u64(&w, 100);
    mw_str(&w, "applied");
    mw_u64(&w, 99);
    mw_str(&w, "lamport");
    mw_u64(&w, 1004);
    mw_str(&w, "members");
    mw_array(&w, 2);
    mw_str(&w, "n1=127.0.0.1:7101");
    mw_str(&w, "n2=127.0.0.1:7102");
    end(&w);
    save_valid("valid-status-result", &b);

    /* Unknown but in-range type with fields of every msgpack kind mw_* cannot write. */
    static const uint8_t exotic[] = {0x98, 0xcc, 0xc8, 0x01, 0x02, 0xff, 0xd0, 0x80, 0xca, 0x3f, 0xc0,
                                     0x00, 0x00, 0xd4, 0x01, 0x02, 0x82, 0x01, 0x02, 0xa1, 'k', 0xc3};
    write_file("msg", "valid-exotic-fields", exotic, sizeof exotic);
    /* Duplicate and non-string map keys. */
    static const uint8_t dupmap[] = {0x94, 0x0d, 0x00, 0x00, 0x84, 0xa1, 'a', 0x01, 0xa1, 'a', 0x02,
                                     0xc4, 0x01, 'a', 0x03, 0x05, 0x06};
    write_file("msg", "valid-duplicate-keys", dupmap, sizeof dupmap);
}

static void evil_messages(void)
{
#define EVIL(name, ...)                                                                            \
    do {                                                                                           \
        static const uint8_t b_[] = {__VA_ARGS__};                                                 \
        write_file("msg", name, b_, sizeof b_);                                                    \
    } while (0)
    /* DEPENDENCIES.md: msgpack-c allocates for these declared sizes. */
    EVIL("evil-map32-16m", 0xdf, 0x01, 0x00, 0x00, 0x00);
    EVIL("evil-array32-4g", 0xdd, 0xff, 0xff, 0xff, 0xff);
    EVIL("evil-array16-64k", 0xdc, 0xff, 0xff);
    EVIL("evil-map32-in-field", 0x94, 0x06, 0x00, 0x00, 0xdf, 0x01, 0x00, 0x00, 0x00);
    EVIL("evil-array32-in-list", 0x94, 0x0b, 0x00, 0x00, 0x91, 0xdd, 0x00, 0xff, 0xff, 0xff, 0xc0);
    EVIL("evil-str32-past-end", 0x95, 0x06, 0x01, 0x02, 0xa1, 'k', 0xdb, 0x7f, 0xff, 0xff, 0xff, 'v');
    EVIL("evil-bin32-past-end", 0x95, 0x06, 0x01, 0x02, 0xa1, 'k', 0xc6, 0x00, 0x10, 0x00, 0x00, 'v');
    EVIL("evil-ext32-past-end", 0x94, 0x06, 0x01, 0x02, 0xc9, 0x7f, 0xff, 0xff, 0xff, 0x01);
    EVIL("evil-ext8-no-type", 0x94, 0x06, 0x01, 0x02, 0xc7, 0x00);
    EVIL("evil-reserved-c1", 0x94, 0x02, 0x00, 0x00, 0xc1);
    EVIL("evil-trailing-byte", 0x93, 0x02, 0x00, 0x00, 0x00);
    EVIL("evil-truncated-uint64", 0x94, 0x07, 0x00, 0x00, 0xcf, 0x00, 0x00);
    EVIL("evil-type-0", 0x93, 0x00, 0x00, 0x00);
    EVIL("evil-type-256", 0x93, 0xcd, 0x01, 0x00, 0x00, 0x00);
    EVIL("evil-type-2pow32-plus-2", 0x93, 0xcf, 0, 0, 0, 1, 0, 0, 0, 2, 0x00, 0x00);
    EVIL("evil-type-negative", 0x93, 0xff, 0x00, 0x00);
    EVIL("evil-type-string", 0x93, 0xa1, '2', 0x00, 0x00);
    EVIL("evil-two-element-header", 0x92, 0x02, 0x00);
    EVIL("evil-not-an-array", 0x83, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00);
    EVIL("evil-nested-9-deep", 0x94, 0x02, 0x00, 0x00, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91,
         0xc0);
    EVIL("evil-nested-40-deep", 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91,
         0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91,
         0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0xc0);
#undef EVIL
    /* 5000 fields: over the request object limit, inside the reply limit. */
    size_t n = 5000;
    uint8_t *many = malloc(8 + n);
    if (!many)
        exit(1);
    const uint8_t hdr[] = {0xdd, 0x00, 0x00, (uint8_t)((n + 3) >> 8), (uint8_t)(n + 3), 0x0d, 0x00, 0x00};
    memcpy(many, hdr, sizeof hdr);
    memset(many + sizeof hdr, 0xc0, n);
    write_file("msg", "evil-5000-fields", many, sizeof hdr + n);
    free(many);
}

/* Frame corpus file: [max_frame be16][k][k piece sizes][stream]. */
static void write_frame_case(const char *name, uint16_t max_frame, const uint8_t *ctrl, size_t k,
                             const void *stream, size_t n)
{
    struct buf b = BUF_INIT;
    uint8_t hdr[3] = {(uint8_t)(max_frame >> 8), (uint8_t)max_frame, (uint8_t)k};
    if (buf_append(&b, hdr, 3) || buf_append(&b, ctrl, k) || buf_append(&b, stream, n))
        exit(1);
    write_file("frame", name, b.data, b.len);
    buf_free(&b);
}

static void frame_cases(void)
{
    const uint16_t dflt = 0xffff;
    static const uint8_t one[] = {1};
    static const uint8_t mixed[] = {7, 13, 0x85, 3, 0};
    static const uint8_t queued[] = {0xc1, 0xc3, 5, 0x81};
    write_frame_case("all-types-one-read", dflt, NULL, 0, all_frames.data, all_frames.len);
    write_frame_case("all-types-byte-reads", dflt, one, 1, all_frames.data, all_frames.len);
    write_frame_case("all-types-mixed-reads", dflt, mixed, sizeof mixed, all_frames.data, all_frames.len);
    write_frame_case("all-types-queued", dflt, queued, sizeof queued, all_frames.data, all_frames.len);

    /* A limit of 64 with the stream above: refused at the first frame over 64 bytes. */
    write_frame_case("small-limit-refusal", 64, mixed, sizeof mixed, all_frames.data, all_frames.len);

    /* Exactly at the limit, then one over. */
    uint8_t at[4 + 16 + 4 + 17];
    memset(at, 'x', sizeof at);
    at[0] = 0, at[1] = 0, at[2] = 0, at[3] = 16;
    at[20] = 0, at[21] = 0, at[22] = 0, at[23] = 17;
    write_frame_case("at-limit-then-over", 16, mixed, sizeof mixed, at, sizeof at);

    /* A good PING, then a 2 GiB announcement and junk. */
    uint8_t huge[8 + 4 + 512];
    static const uint8_t ping[] = {0, 0, 0, 4, 0x93, 0x02, 0x01, 0x01};
    memcpy(huge, ping, sizeof ping);
    huge[8] = 0x80, huge[9] = 0, huge[10] = 0, huge[11] = 0;
    memset(huge + 12, 0xab, 512);
    static const uint8_t huge_ctrl[] = {5, 0x90};
    write_frame_case("2gib-header-then-junk", dflt, huge_ctrl, sizeof huge_ctrl, huge, sizeof huge);

    /* Ten empty frames, and a stream cut in the middle of a frame. */
    uint8_t zeros[40] = {0};
    write_frame_case("zero-length-frames", dflt, one, 1, zeros, sizeof zeros);
    write_frame_case("partial-at-end", dflt, mixed, sizeof mixed, all_frames.data, all_frames.len - 3);

    /* Frames whose bodies are evil msgpack: the frame layer passes them, msg_decode refuses. */
    static const uint8_t evil[] = {0, 0, 0, 5, 0xdf, 0x01, 0x00, 0x00, 0x00,
                                   0, 0, 0, 5, 0xdd, 0xff, 0xff, 0xff, 0xff,
                                   0, 0, 0, 3, 0xdc, 0xff, 0xff,
                                   0, 0, 0, 4, 0x93, 0x00, 0x00, 0x00};
    write_frame_case("evil-bodies", dflt, one, 1, evil, sizeof evil);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    outdir = argv[1];
    valid_messages();
    evil_messages();
    frame_cases();
    buf_free(&all_frames);
    return 0;
}
