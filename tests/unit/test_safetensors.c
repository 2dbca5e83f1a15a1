/* safetensors reader/writer: the real model file, write/read round trips, and a table
 * of hostile files, each of which must fail with the right status and a message that
 * names the file and, where there is one, the tensor. */
#include "test_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/safetensors.h"

#define LABEL "bad.safetensors"

/* ---- helpers -------------------------------------------------------------------------- */

/* u64 LE length | header | data_len bytes of 0xAB. Caller frees. */
static unsigned char *make_file(const char *header, uint64_t declared, size_t data_len, size_t *len) {
    size_t hn = strlen(header);
    *len = 8 + hn + data_len;
    unsigned char *b = malloc(*len ? *len : 1);
    assert_non_null(b);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(declared >> (8 * i));
    memcpy(b + 8, header, hn);
    memset(b + 8 + hn, 0xAB, data_len);
    return b;
}

/* A file whose declared length is the real header length. */
static unsigned char *make_ok(const char *header, size_t data_len, size_t *len) {
    return make_file(header, strlen(header), data_len, len);
}

static void expect_parse_fail(const unsigned char *b, size_t len, ake_status want, const char *needle1,
                              const char *needle2) {
    ake_safetensors *st = (ake_safetensors *)0x1;
    char err[512] = "";
    ake_status rc = ake_safetensors_parse(b, len, LABEL, &st, err, sizeof err);
    if (rc != want || !strstr(err, LABEL) || (needle1 && !strstr(err, needle1)) || (needle2 && !strstr(err, needle2)))
        fail_msg("want status %d with '%s' and '%s', got %d: %s", want, needle1 ? needle1 : "",
                 needle2 ? needle2 : "", rc, err);
    assert_null(st);
    assert_true(err[strlen(err) - 1] == '.'); /* one sentence */
}

static void expect_header_fail(const char *header, size_t data_len, ake_status want, const char *n1, const char *n2) {
    size_t len;
    unsigned char *b = make_ok(header, data_len, &len);
    expect_parse_fail(b, len, want, n1, n2);
    free(b);
}

/* ---- the real model ------------------------------------------------------------------- */

static void test_real_model_file(void **state) {
    (void)state;
    char path[1024], err[512] = "";
    snprintf(path, sizeof path, "%s/model.safetensors", test_model_dir());
    ake_safetensors *st = NULL;
    ake_status rc = ake_safetensors_open(path, &st, err, sizeof err);
    if (rc != AKE_OK) fail_msg("open %s: %s", path, err);
    assert_string_equal(ake_safetensors_label(st), path);
    assert_true(ake_safetensors_count(st) >= 6 + 16 * 6);
    const ake_tensor *w = ake_safetensors_find(st, "embeddings.word_embeddings.weight");
    assert_non_null(w);
    assert_int_equal(w->dtype, AKE_DT_F32);
    assert_int_equal(w->ndim, 2);
    assert_int_equal(w->shape[0], 30522);
    assert_int_equal(w->shape[1], 384);
    assert_int_equal(w->numel, 30522 * 384);
    assert_int_equal(w->nbytes, 30522u * 384u * 4u);
    assert_int_equal((uintptr_t)w->data % 4, 0);
    const ake_tensor *pid = ake_safetensors_find(st, "embeddings.position_ids");
    assert_non_null(pid);
    assert_int_equal(pid->dtype, AKE_DT_I64);
    int64_t p7;
    memcpy(&p7, (const char *)pid->data + 7 * 8, 8);
    assert_int_equal(p7, 7);
    assert_non_null(ake_safetensors_find(st, "encoder.layer.5.output.LayerNorm.bias"));
    assert_null(ake_safetensors_find(st, "encoder.layer.6.output.LayerNorm.bias"));
    assert_null(ake_safetensors_find(st, "__metadata__"));
    assert_null(ake_safetensors_find(st, ""));
    assert_string_equal(ake_safetensors_metadata(st, "format"), "pt");
    assert_null(ake_safetensors_metadata(st, "nope"));
    /* Every tensor is reachable by find() under its own name. */
    for (int i = 0; i < ake_safetensors_count(st); i++) {
        const ake_tensor *t = ake_safetensors_at(st, i);
        assert_ptr_equal(ake_safetensors_find(st, t->name), t);
    }
    ake_safetensors_close(st);
}

/* ---- valid buffers -------------------------------------------------------------------- */

static void test_parse_small_valid(void **state) {
    (void)state;
    const char *hdr = "{\"__metadata__\":{\"format\":\"pt\",\"k\":\"v\"},"
                      "\"b\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[16,24]},"
                      "\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
                      "\"z\":{\"dtype\":\"BF16\",\"shape\":[0,7],\"data_offsets\":[24,24]},"
                      "\"s\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[24,25]}}   ";
    size_t len;
    unsigned char *b = make_ok(hdr, 25, &len);
    ake_safetensors *st = NULL;
    char err[512] = "";
    ake_status rc = ake_safetensors_parse(b, len, "small", &st, err, sizeof err);
    if (rc != AKE_OK) fail_msg("%s", err);
    assert_int_equal(ake_safetensors_count(st), 4);
    assert_string_equal(ake_safetensors_at(st, 0)->name, "b"); /* header order */
    assert_string_equal(ake_safetensors_at(st, 1)->name, "a");
    const ake_tensor *a = ake_safetensors_find(st, "a");
    assert_ptr_equal(a->data, b + 8 + strlen(hdr));
    assert_int_equal(a->numel, 4);
    assert_int_equal(a->nbytes, 16);
    const ake_tensor *z = ake_safetensors_find(st, "z");
    assert_int_equal(z->numel, 0);
    assert_int_equal(z->nbytes, 0);
    const ake_tensor *s = ake_safetensors_find(st, "s");
    assert_int_equal(s->ndim, 0);
    assert_int_equal(s->numel, 1);
    assert_string_equal(ake_safetensors_metadata(st, "k"), "v");
    assert_null(ake_safetensors_find(st, "c"));
    ake_safetensors_close(st);
    free(b);

    /* Numbers are values: 2.0 and 2e0 are the integer 2 (json-c reads them as doubles). An
     * escaped name is its decoded text. */
    b = make_ok("{\"\\u0077\\\"\":{\"dtype\":\"U8\",\"shape\":[2.0],\"data_offsets\":[0,2e0]}}", 2, &len);
    rc = ake_safetensors_parse(b, len, "doubles", &st, err, sizeof err);
    if (rc != AKE_OK) fail_msg("%s", err);
    assert_int_equal(ake_safetensors_find(st, "w\"")->numel, 2);
    ake_safetensors_close(st);
    free(b);

    /* No tensors at all, no data: valid. */
    b = make_ok("{}", 0, &len);
    assert_int_equal(ake_safetensors_parse(b, len, "empty", &st, err, sizeof err), AKE_OK);
    assert_int_equal(ake_safetensors_count(st), 0);
    assert_null(ake_safetensors_find(st, "a"));
    ake_safetensors_close(st);
    free(b);
    ake_safetensors_close(NULL);
}

/* ---- hostile buffers ------------------------------------------------------------------ */

typedef struct {
    const char *what;
    const char *header;
    size_t data_len;
    ake_status want;
    const char *needle1, *needle2; /* must appear in the error message */
} bad_case;

#define T(name, dtype, shape, offs) "\"" name "\":{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":" offs "}"

static const bad_case bad_headers[] = {
    {"non-object JSON (array)", "[1,2,3]", 0, AKE_EFORMAT, "not an object", NULL},
    {"non-object JSON (string)", "\"hello\"", 0, AKE_EFORMAT, "not an object", NULL},
    {"non-object JSON (null)", "null", 0, AKE_EFORMAT, "not an object", NULL},
    {"invalid JSON", "{\"a\":{\"dtype\":\"F32\",", 0, AKE_EFORMAT, "not valid JSON", NULL},
    {"trailing garbage after JSON", "{} x", 0, AKE_EFORMAT, "not valid JSON", NULL},
    {"entry not an object", "{\"w\":[1,2]}", 0, AKE_EFORMAT, "'w'", "not described by a JSON object"},
    {"unknown dtype", "{" T("enc.w", "Q4_K", "[2]", "[0,2]") "}", 2, AKE_EUNSUPPORTED, "'enc.w'", "'Q4_K'"},
    {"lowercase dtype", "{" T("w", "f32", "[1]", "[0,4]") "}", 4, AKE_EUNSUPPORTED, "'w'", "'f32'"},
    {"dtype not a string", "{\"w\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, AKE_EFORMAT, "'w'",
     "dtype"},
    {"missing dtype", "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, AKE_EFORMAT, "'w'", "dtype"},
    {"missing shape", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, AKE_EFORMAT, "'w'", "shape"},
    {"missing offsets", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, AKE_EFORMAT, "'w'", "data_offsets"},
    {"shape not an array", "{" T("w", "F32", "4", "[0,16]") "}", 16, AKE_EFORMAT, "'w'", "shape"},
    {"offsets not a pair", "{" T("w", "F32", "[1]", "[0,4,8]") "}", 8, AKE_EFORMAT, "'w'", "data_offsets"},
    {"shape/offset mismatch", "{" T("w", "F32", "[2,2]", "[0,12]") "}", 12, AKE_EFORMAT, "'w'", "need 16 bytes"},
    {"shape/offset mismatch by dtype", "{" T("w", "F16", "[4]", "[0,16]") "}", 16, AKE_EFORMAT, "'w'",
     "need 8 bytes"},
    {"overlapping tensors",
     "{" T("a", "F32", "[4]", "[0,16]") "," T("b", "F32", "[4]", "[8,24]") "}", 24, AKE_EFORMAT, "overlaps", "'a'"},
    {"identical ranges", "{" T("a", "F32", "[4]", "[0,16]") "," T("b", "F32", "[4]", "[0,16]") "}", 16, AKE_EFORMAT,
     "overlaps", NULL},
    {"gap between tensors",
     "{" T("a", "F32", "[4]", "[0,16]") "," T("b", "F32", "[2]", "[20,28]") "}", 28, AKE_EFORMAT, "gap", "'b'"},
    {"gap at the start", "{" T("a", "F32", "[1]", "[4,8]") "}", 8, AKE_EFORMAT, "gap", "'a'"},
    {"bytes after the last tensor", "{" T("a", "F32", "[1]", "[0,4]") "}", 12, AKE_EFORMAT, "belong to no tensor",
     NULL},
    {"data but no tensors", "{}", 4, AKE_EFORMAT, "belong to no tensor", NULL},
    {"end past the data", "{" T("w", "F32", "[4]", "[0,16]") "}", 8, AKE_EFORMAT, "'w'", "past"},
    {"huge end offset", "{" T("w", "F32", "[4]", "[4503599627370496,4503599627370512]") "}", 16, AKE_EFORMAT, "'w'",
     "past"},
    {"begin after end", "{" T("w", "F32", "[0]", "[8,0]") "}", 8, AKE_EFORMAT, "'w'", "begin after end"},
    {"duplicate names", "{" T("w", "F32", "[1]", "[0,4]") "," T("w", "F32", "[1]", "[4,8]") "}", 8, AKE_EFORMAT,
     "'w'", "twice"},
    {"shape product overflow", "{" T("w", "F32", "[4294967296,4294967296]", "[0,4]") "}", 4, AKE_EFORMAT, "'w'",
     "overflows"},
    {"shape bytes overflow", "{" T("w", "F64", "[4503599627370495,4096]", "[0,4]") "}", 4, AKE_EFORMAT, "'w'",
     "overflows"},
    {"shape product overflow with a zero dim", "{" T("w", "F32", "[4294967296,4294967296,0]", "[0,0]") "}", 0,
     AKE_EFORMAT, "'w'", "overflows"},
    {"too many dims", "{" T("w", "U8", "[1,1,1,1,1,1,1,1,1]", "[0,1]") "}", 1, AKE_EFORMAT, "'w'", "dimensions"},
    {"negative dim", "{" T("w", "F32", "[-1]", "[0,4]") "}", 4, AKE_EFORMAT, "'w'", "negative"},
    {"fractional dim", "{" T("w", "F32", "[1.5]", "[0,6]") "}", 6, AKE_EFORMAT, "'w'", "not an integer"},
    {"dim 2^53", "{" T("w", "U8", "[9007199254740992]", "[0,1]") "}", 1, AKE_EFORMAT, "'w'", "2^53"},
    {"dim 1e300", "{" T("w", "U8", "[1e300]", "[0,1]") "}", 1, AKE_EFORMAT, "'w'", "2^53"},
    {"dim as string", "{" T("w", "U8", "[\"1\"]", "[0,1]") "}", 1, AKE_EFORMAT, "'w'", "not a number"},
    {"negative offset", "{" T("w", "F32", "[1]", "[-4,0]") "}", 4, AKE_EFORMAT, "'w'", "negative"},
    {"fractional offset", "{" T("w", "U8", "[1]", "[0,1.25]") "}", 1, AKE_EFORMAT, "'w'", "not an integer"},
    {"metadata not an object", "{\"__metadata__\":[1]}", 0, AKE_EFORMAT, "__metadata__", NULL},
    {"metadata value not a string", "{\"__metadata__\":{\"format\":1}}", 0, AKE_EFORMAT, "'format'",
     "not a string"},
    {"metadata key twice", "{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", 0, AKE_EFORMAT, "'k'", "twice"},
    {"metadata twice", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, AKE_EFORMAT, "__metadata__", "twice"},
    /* json-c keeps the last of two equal keys: the text itself is checked, keys decoded */
    {"duplicate names, one escaped", "{" T("w", "F32", "[1]", "[0,4]") "," T("\\u0077", "F32", "[1]", "[0,4]") "}", 4,
     AKE_EFORMAT, "'w'", "twice"},
    {"names equal up to an escaped NUL", "{" T("w\\u0000a", "U8", "[1]", "[0,1]") "," T("w\\u0000b", "U8", "[1]", "[1,2]")
     "}", 2, AKE_EFORMAT, "'w'", "twice"},
    {"tensor field twice", "{\"w\":{\"dtype\":\"F32\",\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4,
     AKE_EFORMAT, "'w'", "'dtype' twice"},
    {"dtype with an escaped NUL", "{" T("w", "F32\\u0000x", "[1]", "[0,4]") "}", 4, AKE_EUNSUPPORTED, "'w'", "dtype"},
};

static void test_bad_headers(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof bad_headers / sizeof bad_headers[0]; i++) {
        const bad_case *c = &bad_headers[i];
        print_message("case: %s\n", c->what);
        expect_header_fail(c->header, c->data_len, c->want, c->needle1, c->needle2);
    }
}

static const char *good_hdr = "{" T("a", "F32", "[2,2]", "[0,16]") "," T("b", "F16", "[4]", "[16,24]") "}";

static void test_truncated(void **state) {
    (void)state;
    size_t len;
    unsigned char *b = make_ok(good_hdr, 24, &len);
    size_t hend = 8 + strlen(good_hdr);
    /* The whole file parses; every proper prefix fails. */
    ake_safetensors *st = NULL;
    char err[512];
    assert_int_equal(ake_safetensors_parse(b, len, LABEL, &st, err, sizeof err), AKE_OK);
    ake_safetensors_close(st);
    const size_t cuts[] = {0, 1, 7, 8, 9, hend / 2, hend - 1, hend, hend + 1, hend + 16, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        size_t cut = cuts[i];
        print_message("cut at %zu of %zu\n", cut, len);
        unsigned char *p = malloc(cut ? cut : 1);
        memcpy(p, b, cut);
        if (cut < 8) expect_parse_fail(p, cut, AKE_EFORMAT, "too short", NULL);
        else if (cut < hend) expect_parse_fail(p, cut, AKE_EFORMAT, "truncated", NULL);
        else expect_parse_fail(p, cut, AKE_EFORMAT, "past", NULL);
        free(p);
    }
    /* Every cut point, whatever the message, fails cleanly. */
    for (size_t cut = 0; cut < len; cut++) {
        unsigned char *p = malloc(cut ? cut : 1);
        memcpy(p, b, cut);
        assert_int_not_equal(ake_safetensors_parse(p, cut, LABEL, &st, err, sizeof err), AKE_OK);
        assert_null(st);
        free(p);
    }
    expect_parse_fail(NULL, 0, AKE_EFORMAT, "too short", NULL);
    free(b);
}

static void test_header_length(void **state) {
    (void)state;
    size_t len;
    unsigned char *b;
    b = make_file("{}", 0, 0, &len);
    expect_parse_fail(b, len, AKE_EFORMAT, "0-byte", NULL);
    free(b);
    b = make_file("{}", (uint64_t)200 << 20, 0, &len);
    expect_parse_fail(b, len, AKE_ETOOLONG, "limit", NULL);
    free(b);
    b = make_file("{}", UINT64_MAX, 0, &len);
    expect_parse_fail(b, len, AKE_ETOOLONG, "limit", NULL);
    free(b);
    b = make_file("{}", 3, 0, &len); /* one byte past the end */
    expect_parse_fail(b, len, AKE_EFORMAT, "truncated", NULL);
    free(b);
    b = make_file("{}", 1000, 0, &len);
    expect_parse_fail(b, len, AKE_EFORMAT, "truncated", NULL);
    free(b);
    b = make_file("{}  ", 2, 2, &len); /* header shorter than its JSON: trailing bytes become data */
    expect_parse_fail(b, len, AKE_EFORMAT, "belong to no tensor", NULL);
    free(b);
    b = make_file("{}", 1, 1, &len); /* header cut inside the JSON */
    expect_parse_fail(b, len, AKE_EFORMAT, "not valid JSON", NULL);
    free(b);
}

static void test_corrupted_bytes(void **state) {
    (void)state;
    size_t len;
    unsigned char *b = make_ok(good_hdr, 24, &len);
    size_t hn = strlen(good_hdr);
    struct {
        size_t at;
        unsigned char byte;
        const char *needle;
    } flips[] = {
        {8, 'X', "not valid JSON"},         /* the opening brace */
        {8 + hn - 1, ']', "not valid JSON"}, /* the closing brace */
        {8 + 5, 0xFF, "UTF-8"},             /* inside a name */
        {8 + 5, 0xC0, "UTF-8"},             /* overlong lead byte */
        {8 + 5, 0x00, "NUL"},
        {8 + 1, 'x', "not valid JSON"}, /* the first name's opening quote */
    };
    for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
        unsigned char *p = malloc(len);
        memcpy(p, b, len);
        p[flips[i].at] = flips[i].byte;
        print_message("flip byte %zu to 0x%02x\n", flips[i].at, flips[i].byte);
        expect_parse_fail(p, len, AKE_EFORMAT, flips[i].needle, NULL);
        free(p);
    }
    /* Any single-byte corruption of the header either fails cleanly or still describes
     * a consistent file (e.g. a renamed tensor): never a crash, never a leak. */
    for (size_t at = 0; at < 8 + hn; at++) {
        for (int v = 0; v < 256; v += 37) {
            unsigned char *p = malloc(len);
            memcpy(p, b, len);
            p[at] ^= (unsigned char)(v | 1);
            ake_safetensors *st = NULL;
            char err[512];
            if (ake_safetensors_parse(p, len, LABEL, &st, err, sizeof err) == AKE_OK) ake_safetensors_close(st);
            else assert_null(st);
            free(p);
        }
    }
    free(b);
}

/* ---- writer --------------------------------------------------------------------------- */

static void test_round_trip(void **state) {
    (void)state;
    char *dir = test_tmp_dir();
    char path[256], err[512] = "";
    snprintf(path, sizeof path, "%s/rt.safetensors", dir);

    float f32[12];
    for (int i = 0; i < 12; i++) f32[i] = (float)i * 0.5f - 1.0f;
    uint16_t f16[5] = {0x3C00, 0x4000, 0xBC00, 0x0001, 0x7BFF};
    int64_t i64[2] = {-5, INT64_MAX};
    double f64 = 3.25;
    uint8_t u8[3] = {1, 2, 3};
    ake_tensor ts[] = {
        {.name = "layer.weight", .dtype = AKE_DT_F32, .ndim = 2, .shape = {3, 4}, .data = f32, .nbytes = sizeof f32},
        {.name = "half", .dtype = AKE_DT_F16, .ndim = 1, .shape = {5}, .data = f16, .nbytes = sizeof f16},
        {.name = "we\"ird\\name\n\xc3\xa9", .dtype = AKE_DT_U8, .ndim = 1, .shape = {3}, .data = u8, .nbytes = 3},
        {.name = "ids", .dtype = AKE_DT_I64, .ndim = 1, .shape = {2}, .data = i64, .nbytes = sizeof i64},
        {.name = "empty", .dtype = AKE_DT_BOOL, .ndim = 2, .shape = {0, 9}, .data = NULL, .nbytes = 0},
        {.name = "scalar", .dtype = AKE_DT_F64, .ndim = 0, .data = &f64, .nbytes = 8},
    };
    int n = (int)(sizeof ts / sizeof ts[0]);
    ake_status rc = ake_safetensors_write(path, ts, n, err, sizeof err);
    if (rc != AKE_OK) fail_msg("%s", err);

    size_t len = 0;
    char *raw = test_read_file(path, &len);
    assert_non_null(raw);
    uint64_t hn = 0;
    for (int i = 7; i >= 0; i--) hn = (hn << 8) | (unsigned char)raw[i];
    assert_int_equal(hn % 8, 0);        /* padded so the data buffer is 8-byte aligned */
    assert_int_equal(raw[8], '{');
    assert_true(raw[8 + hn - 1] == ' ' || raw[8 + hn - 1] == '}');

    ake_safetensors *st = NULL;
    rc = ake_safetensors_open(path, &st, err, sizeof err);
    if (rc != AKE_OK) fail_msg("%s", err);
    assert_int_equal(ake_safetensors_count(st), n);
    for (int i = 0; i < n; i++) {
        const ake_tensor *t = ake_safetensors_at(st, i);
        assert_string_equal(t->name, ts[i].name); /* order kept */
        assert_ptr_equal(ake_safetensors_find(st, ts[i].name), t);
        assert_int_equal(t->dtype, ts[i].dtype);
        assert_int_equal(t->ndim, ts[i].ndim);
        for (int d = 0; d < t->ndim; d++) assert_int_equal(t->shape[d], ts[i].shape[d]);
        assert_int_equal(t->nbytes, ts[i].nbytes);
        if (t->nbytes) assert_memory_equal(t->data, ts[i].data, t->nbytes);
    }
    assert_int_equal((uintptr_t)ake_safetensors_find(st, "layer.weight")->data % 8, 0);
    ake_safetensors_close(st);

    /* The same bytes through parse(). */
    rc = ake_safetensors_parse(raw, len, "mem", &st, err, sizeof err);
    assert_int_equal(rc, AKE_OK);
    assert_int_equal(ake_safetensors_count(st), n);
    ake_safetensors_close(st);
    free(raw);

    /* Zero tensors. */
    assert_int_equal(ake_safetensors_write(path, NULL, 0, err, sizeof err), AKE_OK);
    assert_int_equal(ake_safetensors_open(path, &st, err, sizeof err), AKE_OK);
    assert_int_equal(ake_safetensors_count(st), 0);
    ake_safetensors_close(st);

    test_rm_rf(dir);
    free(dir);
}

static ake_status fill_ramp(void *ctx, int i, void *dst, size_t nbytes, char *err, size_t errlen) {
    int *calls = ctx;
    (*calls)++;
    if (i == 99) return ake_errf(err, errlen, AKE_EIO, "fill failed on purpose.");
    for (size_t k = 0; k < nbytes; k++) ((unsigned char *)dst)[k] = (unsigned char)(i * 16 + (int)k);
    return AKE_OK;
}

static void test_write_fill(void **state) {
    (void)state;
    char *dir = test_tmp_dir();
    char path[256], err[512] = "";
    snprintf(path, sizeof path, "%s/fill.safetensors", dir);
    ake_tensor ts[] = {
        {.name = "x", .dtype = AKE_DT_U8, .ndim = 1, .shape = {5}, .nbytes = 5},
        {.name = "y", .dtype = AKE_DT_I16, .ndim = 2, .shape = {2, 3}, .nbytes = 12},
    };
    int calls = 0;
    assert_int_equal(ake_safetensors_write_fill(path, ts, 2, fill_ramp, &calls, err, sizeof err), AKE_OK);
    assert_int_equal(calls, 2);
    ake_safetensors *st = NULL;
    assert_int_equal(ake_safetensors_open(path, &st, err, sizeof err), AKE_OK);
    const ake_tensor *y = ake_safetensors_find(st, "y");
    assert_non_null(y);
    assert_int_equal(((const unsigned char *)y->data)[3], 16 + 3);
    ake_safetensors_close(st);
    test_rm_rf(dir);
    free(dir);
}

static void test_write_rejects(void **state) {
    (void)state;
    char *dir = test_tmp_dir();
    char path[256], err[512] = "";
    snprintf(path, sizeof path, "%s/bad.safetensors", dir);
    float v[4] = {0};
    ake_tensor dup[] = {
        {.name = "w", .dtype = AKE_DT_F32, .ndim = 1, .shape = {4}, .data = v, .nbytes = 16},
        {.name = "w", .dtype = AKE_DT_F32, .ndim = 1, .shape = {4}, .data = v, .nbytes = 16},
    };
    assert_int_equal(ake_safetensors_write(path, dup, 2, err, sizeof err), AKE_EINVAL);
    assert_non_null(strstr(err, "'w'"));
    ake_tensor wrong = {.name = "w", .dtype = AKE_DT_F32, .ndim = 1, .shape = {4}, .data = v, .nbytes = 12};
    assert_int_equal(ake_safetensors_write(path, &wrong, 1, err, sizeof err), AKE_EINVAL);
    assert_non_null(strstr(err, "nbytes"));
    ake_tensor meta = {.name = "__metadata__", .dtype = AKE_DT_F32, .ndim = 1, .shape = {4}, .data = v, .nbytes = 16};
    assert_int_equal(ake_safetensors_write(path, &meta, 1, err, sizeof err), AKE_EINVAL);
    ake_tensor neg = {.name = "n", .dtype = AKE_DT_F32, .ndim = 1, .shape = {-4}, .data = v, .nbytes = 16};
    assert_int_equal(ake_safetensors_write(path, &neg, 1, err, sizeof err), AKE_EINVAL);
    ake_tensor nodata = {.name = "n", .dtype = AKE_DT_F32, .ndim = 1, .shape = {4}, .data = NULL, .nbytes = 16};
    assert_int_equal(ake_safetensors_write(path, &nodata, 1, err, sizeof err), AKE_EINVAL);
    /* A failing fill leaves no file behind, not even the temporary. */
    ake_tensor one = {.name = "x", .dtype = AKE_DT_U8, .ndim = 1, .shape = {100}, .nbytes = 100};
    ake_tensor many[100];
    for (int i = 0; i < 100; i++) many[i] = one;
    char names[100][16];
    for (int i = 0; i < 100; i++) {
        snprintf(names[i], sizeof names[i], "t%d", i);
        many[i].name = names[i];
    }
    int calls = 0;
    assert_int_equal(ake_safetensors_write_fill(path, many, 100, fill_ramp, &calls, err, sizeof err), AKE_EIO);
    assert_string_equal(err, "fill failed on purpose.");
    struct stat sb;
    assert_int_not_equal(stat(path, &sb), 0);
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s/bad.safetensors.tmp.%ld", dir, (long)getpid());
    assert_int_not_equal(stat(tmp, &sb), 0);
    /* Unwritable destination. */
    snprintf(path, sizeof path, "%s/no/such/dir/x.safetensors", dir);
    assert_int_equal(ake_safetensors_write(path, dup, 1, err, sizeof err), AKE_EIO);
    assert_non_null(strstr(err, "no/such/dir"));
    test_rm_rf(dir);
    free(dir);
}

/* ---- open() --------------------------------------------------------------------------- */

static void write_bytes(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

static void test_open_errors(void **state) {
    (void)state;
    char *dir = test_tmp_dir();
    char path[256], err[512] = "";
    ake_safetensors *st = (ake_safetensors *)0x1;
    snprintf(path, sizeof path, "%s/missing.safetensors", dir);
    assert_int_equal(ake_safetensors_open(path, &st, err, sizeof err), AKE_ENOTFOUND);
    assert_non_null(strstr(err, path));
    assert_null(st);
    assert_int_equal(ake_safetensors_open(dir, &st, err, sizeof err), AKE_EIO);
    assert_non_null(strstr(err, dir));
    snprintf(path, sizeof path, "%s/empty.safetensors", dir);
    write_bytes(path, "", 0);
    assert_int_equal(ake_safetensors_open(path, &st, err, sizeof err), AKE_EFORMAT);
    assert_non_null(strstr(err, path));
    /* Truncated on disk. */
    size_t len;
    unsigned char *b = make_ok(good_hdr, 24, &len);
    snprintf(path, sizeof path, "%s/trunc.safetensors", dir);
    write_bytes(path, b, len - 3);
    assert_int_equal(ake_safetensors_open(path, &st, err, sizeof err), AKE_EFORMAT);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "past"));
    free(b);
    test_rm_rf(dir);
    free(dir);
}

/* A header whose length is not a multiple of 8 would leave the data misaligned in a
 * mapping; open() must still hand out 8-byte-aligned data. */
static void test_open_unaligned_header(void **state) {
    (void)state;
    char *dir = test_tmp_dir();
    char path[256], err[512] = "";
    const char *hdr = "{" T("d", "F64", "[2]", "[0,16]") "}";
    assert_int_not_equal(strlen(hdr) % 8, 0);
    size_t len;
    unsigned char *b = make_ok(hdr, 0, &len);
    double vals[2] = {1.5, -2.25};
    unsigned char *full = malloc(len + 16);
    memcpy(full, b, len);
    memcpy(full + len, vals, 16);
    snprintf(path, sizeof path, "%s/odd.safetensors", dir);
    write_bytes(path, full, len + 16);
    ake_safetensors *st = NULL;
    ake_status rc = ake_safetensors_open(path, &st, err, sizeof err);
    if (rc != AKE_OK) fail_msg("%s", err);
    const ake_tensor *d = ake_safetensors_find(st, "d");
    assert_int_equal((uintptr_t)d->data % 8, 0);
    assert_true(((const double *)d->data)[1] == -2.25);
    ake_safetensors_close(st);
    free(full);
    free(b);
    test_rm_rf(dir);
    free(dir);
}

static void test_dtype_names(void **state) {
    (void)state;
    for (int i = 0; i < AKE_DT_COUNT; i++) {
        ake_dtype dt;
        assert_int_equal(ake_dtype_parse(ake_dtype_name((ake_dtype)i), &dt), 0);
        assert_int_equal(dt, i);
        assert_true(ake_dtype_size((ake_dtype)i) >= 1);
    }
    ake_dtype dt;
    assert_int_equal(ake_dtype_parse("f16", &dt), 0);
    assert_int_equal(dt, AKE_DT_F16);
    assert_int_equal(ake_dtype_parse("bf16", &dt), 0);
    assert_int_equal(dt, AKE_DT_BF16);
    assert_int_equal(ake_dtype_parse("f8", &dt), -1);
    assert_int_equal(ake_dtype_parse(NULL, &dt), -1);
    assert_int_equal(ake_dtype_size(AKE_DT_F32), 4);
    assert_int_equal(ake_dtype_size(AKE_DT_I64), 8);
    assert_int_equal(ake_dtype_size(AKE_DT_F8_E4M3), 1);
    assert_int_equal(ake_dtype_size(AKE_DT_COUNT), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_model_file),   cmocka_unit_test(test_parse_small_valid),
        cmocka_unit_test(test_bad_headers),       cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_header_length),     cmocka_unit_test(test_corrupted_bytes),
        cmocka_unit_test(test_round_trip),        cmocka_unit_test(test_write_fill),
        cmocka_unit_test(test_write_rejects),     cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_open_unaligned_header), cmocka_unit_test(test_dtype_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
