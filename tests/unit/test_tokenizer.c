/* Tokenizer tests: golden ids from HF `tokenizers` (tests/golden/make_tokenizer_golden.py),
 * plus the contract of tokenizer.h: UTF-8 errors, empty text, truncation, broken or missing
 * files, the vocab.txt fallback, and concurrent use of one tokenizer. */
#include "test_util.h"

#include <json-c/json.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utf8proc.h>

#include "base/json.h"
#include "text/tokenizer.h"
#include "text/tokenizer_impl.h"

#define GOLDEN "tests/golden/tokenizer_golden.jsonl"
#define GOLDEN_ADDED "tests/golden/tokenizer_golden_added.jsonl"

/* ---- helpers ------------------------------------------------------------------------------ */

static char *model_file(const char *name) {
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", test_model_dir(), name);
    return path;
}

/* The JSON value of NUL-terminated text (fails the test if it is not JSON). */
static json_object *parse_json(const char *text) {
    json_object *v;
    size_t at;
    const char *why;
    if (ake_json_parse(text, strlen(text), &v, &at, &why)) fail_msg("bad JSON at byte %zu: %s", at, why);
    return v;
}

typedef struct {
    char *text;      /* decoded, [len] bytes */
    size_t len;
    char *literal;   /* the JSON literal as in the file, for messages */
    int32_t max_tokens;
    int32_t *ids;
    int32_t n;
} golden_case;

typedef struct {
    golden_case *c;
    size_t n;
    json_object *head; /* first line of the added-tokens file */
} golden_set;

static void golden_free(golden_set *g) {
    for (size_t i = 0; i < g->n; i++) {
        free(g->c[i].text);
        free(g->c[i].literal);
        free(g->c[i].ids);
    }
    free(g->c);
    json_object_put(g->head);
    memset(g, 0, sizeof *g);
}

/* Reads a golden file: lines {"text": "...", "max_tokens": N, "ids": [...]}, the first line
 * kept apart as `head` when it has no "text". json-c keeps an escaped U+0000 in a text. */
static void golden_load(const char *path, golden_set *g) {
    memset(g, 0, sizeof *g);
    size_t size = 0;
    char *buf = test_read_file(path, &size);
    if (!buf) fail_msg("cannot read %s (run from the repository root)", path);
    size_t cap = 0;
    for (char *line = buf, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        json_object *j;
        size_t at;
        const char *why;
        if (ake_json_parse(line, strlen(line), &j, &at, &why)) fail_msg("%s: bad JSON line (%s): %.80s", path, why, line);
        json_object *t = json_object_object_get(j, "text");
        if (!t) {
            assert_null(g->head);
            g->head = j;
            continue;
        }
        const char *lit = strstr(line, "\"text\": \"");
        assert_non_null(lit);
        lit += strlen("\"text\": ");
        if (g->n == cap) {
            cap = cap ? cap * 2 : 1024;
            g->c = realloc(g->c, cap * sizeof *g->c);
        }
        golden_case *c = &g->c[g->n++];
        memset(c, 0, sizeof *c);
        c->len = (size_t)json_object_get_string_len(t);
        c->text = malloc(c->len + 1);
        memcpy(c->text, json_object_get_string(t), c->len + 1);
        const char *end = lit + 1;
        while (*end && !(*end == '"' && end[-1] != '\\')) end++; /* good enough for messages */
        c->literal = strndup(lit, (size_t)(end - lit + 1));
        c->max_tokens = json_object_get_int(json_object_object_get(j, "max_tokens"));
        const json_object *ids = json_object_object_get(j, "ids");
        const size_t n_ids = json_object_array_length(ids);
        c->ids = malloc((n_ids + 1) * sizeof *c->ids);
        for (size_t k = 0; k < n_ids; k++) c->ids[c->n++] = json_object_get_int(json_object_array_get_idx(ids, k));
        json_object_put(j);
    }
    free(buf);
}

static void print_ids(const char *label, const int32_t *ids, int32_t n) {
    char line[8192];
    size_t o = (size_t)snprintf(line, sizeof line, "  %s [", label);
    for (int32_t i = 0; i < n && o < sizeof line - 16; i++) o += (size_t)snprintf(line + o, sizeof line - o, i ? ", %d" : "%d", ids[i]);
    print_message("%s]\n", line);
}

/* Encodes every case; prints the first mismatches and fails if there is any. */
static void check_golden(const ake_tokenizer *tok, const golden_set *g, const char *what) {
    ake_tokens out = {0};
    char err[256];
    size_t bad = 0;
    for (size_t i = 0; i < g->n; i++) {
        const golden_case *c = &g->c[i];
        ake_status st = ake_tokenizer_encode(tok, c->text, c->len, c->max_tokens, AKE_TRUNCATE_RIGHT, &out, err, sizeof err);
        bool ok = st == AKE_OK && out.n == c->n && memcmp(out.ids, c->ids, (size_t)c->n * sizeof *c->ids) == 0 &&
                  (c->max_tokens > 0 ? out.n_untruncated >= out.n : out.n_untruncated == out.n);
        if (ok) continue;
        if (++bad <= 10) {
            print_message("%s: case %zu differs from HF: text %s (max_tokens %d)\n", what, i, c->literal, c->max_tokens);
            if (st) print_message("  error: %s\n", err);
            print_ids("hf:  ", c->ids, c->n);
            print_ids("ours:", out.ids, st ? 0 : out.n);
        }
    }
    ake_tokens_release(&out);
    if (bad) fail_msg("%s: %zu of %zu golden texts differ from HF", what, bad, g->n);
    print_message("%s: %zu of %zu golden texts equal to HF\n", what, g->n, g->n);
}

static ake_tokenizer *load_ok(const char *dir) {
    ake_tokenizer *tok = NULL;
    char err[512];
    ake_status st = ake_tokenizer_load(dir, &tok, err, sizeof err);
    if (st) fail_msg("ake_tokenizer_load(%s): %s", dir, err);
    assert_non_null(tok);
    return tok;
}

static void encode_ok(const ake_tokenizer *tok, const char *s, int32_t max_tokens, ake_truncation_dir dir, ake_tokens *out) {
    char err[256];
    ake_status st = ake_tokenizer_encode(tok, s, strlen(s), max_tokens, dir, out, err, sizeof err);
    if (st) fail_msg("encode(\"%s\"): %s", s, err);
}

static void copy_model_file(const char *dir, const char *name) {
    size_t n = 0;
    char *data = test_read_file(model_file(name), &n);
    if (!data) fail_msg("cannot read %s", model_file(name));
    test_write_file(dir, name, data, n);
    free(data);
}

/* ---- golden ------------------------------------------------------------------------------- */

static void test_golden(void **state) {
    (void)state;
    golden_set g;
    golden_load(GOLDEN, &g);
    assert_true(g.n >= 2000);
    ake_tokenizer *tok = load_ok(test_model_dir());
    check_golden(tok, &g, GOLDEN);
    ake_tokenizer_free(tok);
    golden_free(&g);
}

/* Added tokens with lstrip / rstrip / single_word / normalized, appended to the model's file. */
static void test_golden_added_tokens(void **state) {
    (void)state;
    golden_set g;
    golden_load(GOLDEN_ADDED, &g);
    assert_non_null(g.head);
    char *json = test_read_file(model_file("tokenizer.json"), NULL);
    assert_non_null(json);
    json_object *spec = parse_json(json);
    free(json);
    json_object *added = json_object_object_get(spec, "added_tokens");
    const json_object *more = json_object_object_get(g.head, "added_tokens");
    for (size_t i = 0; i < json_object_array_length(more); i++)
        json_object_array_add(added, json_object_get(json_object_array_get_idx(more, i)));
    const char *text = json_object_to_json_string_ext(spec, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    char *dir = test_tmp_dir();
    test_write_file(dir, "tokenizer.json", text, strlen(text));
    ake_tokenizer *tok = load_ok(dir);
    check_golden(tok, &g, GOLDEN_ADDED);
    ake_tokenizer_free(tok);
    test_rm_rf(dir);
    free(dir);
    json_object_put(spec);
    golden_free(&g);
}

/* ---- encode contract ---------------------------------------------------------------------- */

static void test_invalid_utf8(void **state) {
    (void)state;
    ake_tokenizer *tok = load_ok(test_model_dir());
    static const struct { const char *s; size_t len, at; } bad[] = {
        {"\xff", 1, 0},                 /* never valid */
        {"abc\xc3", 4, 3},              /* truncated 2-byte sequence */
        {"ok \xc0\xaf", 5, 3},          /* overlong '/' */
        {"x\xe0\x80\xaf", 4, 1},        /* overlong 3-byte */
        {"hi\xed\xa0\x80", 5, 2},       /* UTF-16 surrogate U+D800 */
        {"\xf4\x90\x80\x80", 4, 0},     /* past U+10FFFF */
        {"caf\xc3\xa9 \x80", 7, 6},     /* lone continuation byte after valid é */
        {"[SEP]\xe2\x82", 7, 5},        /* truncated at the end, after a special token */
        {"a\xf0\x9f\x98", 4, 1},        /* truncated emoji */
    };
    ake_tokens out = {0};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[256] = "", want[64];
        ake_status st = ake_tokenizer_encode(tok, bad[i].s, bad[i].len, 0, AKE_TRUNCATE_RIGHT, &out, err, sizeof err);
        assert_int_equal(st, AKE_EINVAL);
        snprintf(want, sizeof want, "byte offset %zu", bad[i].at);
        if (!strstr(err, want)) fail_msg("case %zu: error \"%s\" does not name %s", i, err, want);
        assert_int_equal(out.n, 0);
    }
    /* valid edge cases: U+10FFFF, U+FFFF, U+0000 inside the text */
    static const char ok[] = "\xf4\x8f\xbf\xbf \xef\xbf\xbf a\0b";
    char err[256];
    assert_int_equal(ake_tokenizer_encode(tok, ok, sizeof ok - 1, 0, AKE_TRUNCATE_RIGHT, &out, err, sizeof err), AKE_OK);
    ake_tokens_release(&out);
    ake_tokenizer_free(tok);
}

static void test_empty(void **state) {
    (void)state;
    ake_tokenizer *tok = load_ok(test_model_dir());
    ake_tokens out = {0};
    char err[256];
    assert_int_equal(ake_tokenizer_encode(tok, "", 0, 0, AKE_TRUNCATE_RIGHT, &out, err, sizeof err), AKE_OK);
    assert_int_equal(out.n, 2);
    assert_int_equal(out.n_untruncated, 2);
    assert_int_equal(out.ids[0], ake_tokenizer_cls_id(tok));
    assert_int_equal(out.ids[1], ake_tokenizer_sep_id(tok));
    /* NULL with length 0 is the empty text too; whitespace and controls only normalize to it */
    assert_int_equal(ake_tokenizer_encode(tok, NULL, 0, 16, AKE_TRUNCATE_LEFT, &out, err, sizeof err), AKE_OK);
    assert_int_equal(out.n, 2);
    encode_ok(tok, " \t\n\xe3\x80\x80\xe2\x80\x8b\xef\xbb\xbf", 0, AKE_TRUNCATE_RIGHT, &out);
    assert_int_equal(out.n, 2);
    /* bad arguments */
    assert_int_equal(ake_tokenizer_encode(tok, NULL, 3, 0, AKE_TRUNCATE_RIGHT, &out, err, sizeof err), AKE_EINVAL);
    assert_int_equal(ake_tokenizer_encode(tok, "a", 1, 0, (ake_truncation_dir)7, &out, err, sizeof err), AKE_EINVAL);
    ake_tokens_release(&out);
    assert_null(out.ids);
    ake_tokens_release(&out); /* twice is fine */
    ake_tokenizer_free(tok);
}

static void test_truncation(void **state) {
    (void)state;
    ake_tokenizer *tok = load_ok(test_model_dir());
    const char *text = "The quick brown fox jumps over the lazy dog, unbelievably quickly [SEP] and again.";
    ake_tokens full = {0}, out = {0};
    encode_ok(tok, text, 0, AKE_TRUNCATE_RIGHT, &full);
    int32_t n = full.n;
    assert_true(n > 12);
    assert_int_equal(full.n_untruncated, n);
    for (int32_t max = 2; max <= n + 3; max++) {
        int32_t keep = (max < n ? max : n) - 2; /* content tokens kept */
        encode_ok(tok, text, max, AKE_TRUNCATE_RIGHT, &out);
        assert_int_equal(out.n, keep + 2);
        assert_int_equal(out.n_untruncated, n);
        assert_int_equal(out.ids[0], full.ids[0]);
        assert_int_equal(out.ids[out.n - 1], full.ids[n - 1]);
        assert_memory_equal(out.ids + 1, full.ids + 1, (size_t)keep * sizeof *out.ids);
        encode_ok(tok, text, max, AKE_TRUNCATE_LEFT, &out);
        assert_int_equal(out.n, keep + 2);
        assert_int_equal(out.n_untruncated, n);
        assert_int_equal(out.ids[0], full.ids[0]);
        assert_int_equal(out.ids[out.n - 1], full.ids[n - 1]);
        assert_memory_equal(out.ids + 1, full.ids + 1 + (n - 2 - keep), (size_t)keep * sizeof *out.ids);
    }
    /* fewer tokens than the template's specials: refused (HF would silently not truncate) */
    char err[256];
    assert_int_equal(ake_tokenizer_encode(tok, text, strlen(text), 1, AKE_TRUNCATE_RIGHT, &out, err, sizeof err), AKE_EINVAL);
    assert_non_null(strstr(err, "max_tokens 1"));
    /* a long text through one reused ake_tokens, then a short one */
    size_t big_len = 200000;
    char *big = malloc(big_len + 1);
    for (size_t i = 0; i < big_len; i++) big[i] = "ab cd, "[i % 7];
    big[big_len] = 0;
    encode_ok(tok, big, 0, AKE_TRUNCATE_RIGHT, &out);
    int32_t big_n = out.n;
    assert_true(big_n > 50000 && out.cap >= big_n);
    encode_ok(tok, big, 128, AKE_TRUNCATE_LEFT, &out);
    assert_int_equal(out.n, 128);
    assert_int_equal(out.n_untruncated, big_n);
    encode_ok(tok, big, 128, AKE_TRUNCATE_RIGHT, &out);
    assert_int_equal(out.n, 128);
    assert_int_equal(out.n_untruncated, big_n);
    encode_ok(tok, "hi", 0, AKE_TRUNCATE_RIGHT, &out);
    assert_int_equal(out.n, 3);
    free(big);
    ake_tokens_release(&full);
    ake_tokens_release(&out);
    ake_tokenizer_free(tok);
}

/* Values the accessors must give, read from the model's tokenizer.json (not typed here). */
static void test_accessors(void **state) {
    (void)state;
    char *json = test_read_file(model_file("tokenizer.json"), NULL);
    assert_non_null(json);
    json_object *spec = parse_json(json);
    free(json);
    int32_t cls = -1, sep = -1, pad = -1, unk = -1;
    const json_object *added = json_object_object_get(spec, "added_tokens");
    for (size_t i = 0; i < json_object_array_length(added); i++) {
        const json_object *a = json_object_array_get_idx(added, i);
        const char *c = json_object_get_string(json_object_object_get(a, "content"));
        int id = json_object_get_int(json_object_object_get(a, "id"));
        if (!strcmp(c, "[CLS]")) cls = id;
        if (!strcmp(c, "[SEP]")) sep = id;
        if (!strcmp(c, "[PAD]")) pad = id;
        if (!strcmp(c, "[UNK]")) unk = id;
    }
    const json_object *model = json_object_object_get(spec, "model");
    int vocab = json_object_object_length(json_object_object_get(model, "vocab"));
    int max_len = json_object_get_int(json_object_object_get(json_object_object_get(spec, "truncation"), "max_length"));
    ake_tokenizer *tok = load_ok(test_model_dir());
    assert_int_equal(ake_tokenizer_cls_id(tok), cls);
    assert_int_equal(ake_tokenizer_sep_id(tok), sep);
    assert_int_equal(ake_tokenizer_pad_id(tok), pad);
    assert_int_equal(ake_tokenizer_unk_id(tok), unk);
    assert_int_equal(ake_tokenizer_vocab_size(tok), vocab);
    assert_int_equal(ake_tokenizer_max_length(tok), max_len);
    ake_tokenizer_free(tok);
    ake_tokenizer_free(NULL);
    json_object_put(spec);
}

/* Normalizer details the ids of this vocabulary cannot show (values from HF normalize_str). */
static void test_normalizer_details(void **state) {
    (void)state;
    static const struct { const char *in; int32_t want[8]; size_t n; } cases[] = {
        {"A\xcc\x81\xcc\x96", {'a'}, 1},                                            /* NFD, Mn dropped */
        {"\xc4\xb0", {'i'}, 1},                                                     /* İ: NFD first, so no U+0307 */
        {"x\xf0\x9d\x85\xad\xf0\x9d\x85\xa5", {'x', 0x1D165, 0x1D16D}, 3},          /* canonical order 216 < 226 */
        {"x\xf0\x9d\x85\xad\xf0\x96\xbf\xb0\xf0\x9d\x85\xa5", {'x', 0x1D16D, 0x16FF0, 0x1D165}, 4}, /* U+16FF0: class 0 to HF */
        {"\xe4\xb8\xad", {' ', 0x4E2D, ' '}, 3},                                    /* CJK spacing */
        {"a\0b\xef\xbf\xbd\xe2\x80\x8b" "c\xc2\x85", {'a', 'b', 'c'}, 3},           /* U+0000 U+FFFD Cf Cc removed */
        {"\t\n\xe3\x80\x80\xe2\x80\xa8", {' ', ' ', ' ', ' '}, 4},                  /* whitespace to ' ' */
        {"\xe1\x9c\xb4\xe1\x99\xad", {0x166D}, 1},                                  /* U+1734 Mn to HF; U+166D kept */
        {"\xef\xbc\xa1\xc3\x9f", {0xFF41, 0xDF}, 2},                                /* no NFKC: full-width stays, ß stays */
    };
    ake_tokenizer *tok = load_ok(test_model_dir());
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int32_t *cps = NULL;
        size_t n = 0;
        size_t len = i == 5 ? 12 : strlen(cases[i].in);
        assert_int_equal(ake_tokenizer_normalize_cps(tok, cases[i].in, len, &cps, &n), AKE_OK);
        if (n != cases[i].n || memcmp(cps, cases[i].want, n * sizeof *cps) != 0) {
            print_message("case %zu: got", i);
            for (size_t k = 0; k < n; k++) print_message(" U+%04X", (unsigned)cps[k]);
            print_message("\n");
            fail_msg("normalizer case %zu differs from HF", i);
        }
        free(cps);
    }
    ake_tokenizer_free(tok);
}

/* The HF-vs-utf8proc corrections were measured against this utf8proc's Unicode version. */
static void test_unicode_version(void **state) {
    (void)state;
    if (strcmp(utf8proc_unicode_version(), ake_text_unicode_compat_version()) != 0)
        fail_msg("utf8proc has Unicode %s but src/text/unicode_compat_impl.h was made for %s: regenerate it with "
                 "tests/golden/make_unicode_compat.py and rerun the tokenizer tests",
                 utf8proc_unicode_version(), ake_text_unicode_compat_version());
}

/* ---- loading ------------------------------------------------------------------------------ */

static void test_missing_folder(void **state) {
    (void)state;
    ake_tokenizer *tok = (ake_tokenizer *)0x1;
    char err[512] = "";
    assert_int_equal(ake_tokenizer_load("/nonexistent/akidb-model", &tok, err, sizeof err), AKE_ENOTFOUND);
    assert_null(tok);
    assert_non_null(strstr(err, "/nonexistent/akidb-model"));
    /* a folder without tokenizer files */
    char *dir = test_tmp_dir();
    assert_int_equal(ake_tokenizer_load(dir, &tok, err, sizeof err), AKE_ENOTFOUND);
    assert_null(tok);
    assert_non_null(strstr(err, "tokenizer.json"));
    assert_non_null(strstr(err, "vocab.txt"));
    test_rm_rf(dir);
    free(dir);
    /* a file where the folder should be */
    assert_int_equal(ake_tokenizer_load(model_file("tokenizer.json"), &tok, err, sizeof err), AKE_ENOTFOUND);
    assert_int_equal(ake_tokenizer_load(NULL, &tok, err, sizeof err), AKE_EINVAL);
}

static void expect_bad_json(const char *dir, const char *json, ake_status want, const char *needle) {
    test_write_file(dir, "tokenizer.json", json, strlen(json));
    ake_tokenizer *tok = NULL;
    char err[512] = "";
    ake_status st = ake_tokenizer_load(dir, &tok, err, sizeof err);
    if (st != want || tok || !strstr(err, "tokenizer.json") || !strstr(err, needle))
        fail_msg("tokenizer.json %.60s...: got status %d, error \"%s\"; want %d naming \"%s\"", json, st, err, want,
                 needle);
}

static void test_corrupt_tokenizer_json(void **state) {
    (void)state;
    char *dir = test_tmp_dir();
    /* the real file cut in half */
    size_t n = 0;
    char *real = test_read_file(model_file("tokenizer.json"), &n);
    assert_non_null(real);
    real[n / 2] = 0;
    expect_bad_json(dir, real, AKE_EFORMAT, "not valid JSON");
    free(real);
    const char *wp = "\"model\": {\"type\": \"WordPiece\", \"unk_token\": \"[UNK]\", \"vocab\": {\"[UNK]\": 0, \"a\": 1}}";
    char buf[2048];
    expect_bad_json(dir, "", AKE_EFORMAT, "not valid JSON");
    expect_bad_json(dir, "[1, 2]", AKE_EFORMAT, "not a JSON object");
    expect_bad_json(dir, "{}", AKE_EFORMAT, "model");
    expect_bad_json(dir, "{\"model\": {\"type\": \"BPE\", \"vocab\": {}}}", AKE_EUNSUPPORTED, "BPE");
    expect_bad_json(dir, "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": \"x\"}}}", AKE_EFORMAT, "model.vocab");
    expect_bad_json(dir, "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": -3}}}", AKE_EFORMAT, "model.vocab");
    expect_bad_json(dir, "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 1.5}}}", AKE_EFORMAT, "model.vocab");
    expect_bad_json(dir, "{\"model\": {\"type\": \"WordPiece\", \"vocab\": [1]}}", AKE_EFORMAT, "model.vocab");
    expect_bad_json(dir, "{\"model\": {\"type\": \"WordPiece\", \"unk_token\": \"[UNK]\", \"vocab\": {\"a\": 0}}}",
                    AKE_EFORMAT, "unk_token");
    snprintf(buf, sizeof buf, "{%s, \"normalizer\": {\"type\": \"NFKC\"}}", wp);
    expect_bad_json(dir, buf, AKE_EUNSUPPORTED, "NFKC");
    snprintf(buf, sizeof buf, "{%s, \"normalizer\": {\"type\": \"BertNormalizer\", \"lowercase\": \"yes\"}}", wp);
    expect_bad_json(dir, buf, AKE_EFORMAT, "lowercase");
    snprintf(buf, sizeof buf, "{%s, \"pre_tokenizer\": {\"type\": \"Whitespace\"}}", wp);
    expect_bad_json(dir, buf, AKE_EUNSUPPORTED, "Whitespace");
    snprintf(buf, sizeof buf, "{%s, \"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}}", wp);
    expect_bad_json(dir, buf, AKE_EUNSUPPORTED, "post_processor");
    snprintf(buf, sizeof buf,
             "{%s, \"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}, \"post_processor\": {\"type\": "
             "\"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"[CLS]\"}}, {\"Sequence\": {\"id\": "
             "\"A\"}}], \"special_tokens\": {}}}",
             wp);
    expect_bad_json(dir, buf, AKE_EFORMAT, "[CLS]");
    snprintf(buf, sizeof buf,
             "{%s, \"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}, \"post_processor\": {\"type\": "
             "\"BertProcessing\", \"cls\": [\"[CLS]\", 0], \"sep\": [\"[SEP]\", 0]}, \"added_tokens\": [{\"id\": 0}]}",
             wp);
    expect_bad_json(dir, buf, AKE_EFORMAT, "added_tokens[0].content");
    /* and the smallest file that loads */
    snprintf(buf, sizeof buf,
             "{%s, \"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}, \"post_processor\": {\"type\": "
             "\"BertProcessing\", \"cls\": [\"[CLS]\", 7], \"sep\": [\"[SEP]\", 8]}}",
             wp);
    test_write_file(dir, "tokenizer.json", buf, strlen(buf));
    ake_tokenizer *tok = load_ok(dir);
    ake_tokens out = {0};
    encode_ok(tok, "a b c", 0, AKE_TRUNCATE_RIGHT, &out);
    int32_t want[] = {7, 1, 0, 0, 8}; /* no normalizer; "b", "c" are not in the vocab: [UNK] = 0 */
    assert_int_equal(out.n, 5);
    assert_memory_equal(out.ids, want, sizeof want);
    assert_int_equal(ake_tokenizer_pad_id(tok), -1);
    ake_tokens_release(&out);
    ake_tokenizer_free(tok);
    test_rm_rf(dir);
    free(dir);
}

/* vocab.txt + tokenizer_config.json + special_tokens_map.json must tokenize as tokenizer.json. */
static void test_vocab_txt_fallback(void **state) {
    (void)state;
    char *dir = test_tmp_dir();
    copy_model_file(dir, "vocab.txt");
    copy_model_file(dir, "tokenizer_config.json");
    copy_model_file(dir, "special_tokens_map.json");
    ake_tokenizer *json = load_ok(test_model_dir()), *txt = load_ok(dir);
    assert_int_equal(ake_tokenizer_vocab_size(txt), ake_tokenizer_vocab_size(json));
    assert_int_equal(ake_tokenizer_cls_id(txt), ake_tokenizer_cls_id(json));
    assert_int_equal(ake_tokenizer_sep_id(txt), ake_tokenizer_sep_id(json));
    assert_int_equal(ake_tokenizer_pad_id(txt), ake_tokenizer_pad_id(json));
    assert_int_equal(ake_tokenizer_unk_id(txt), ake_tokenizer_unk_id(json));
    assert_true(ake_tokenizer_max_length(txt) > 0); /* model_max_length of tokenizer_config.json */
    golden_set g;
    golden_load(GOLDEN, &g);
    check_golden(txt, &g, "vocab.txt fallback, " GOLDEN);
    golden_free(&g);
    ake_tokenizer_free(txt);

    /* vocab.txt alone: BERT's default special token names */
    char p[4096];
    snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/special_tokens_map.json", dir);
    unlink(p);
    txt = load_ok(dir);
    ake_tokens a = {0}, b = {0};
    const char *s = "Héllo [MASK] wörld! 日本 [SEP]";
    encode_ok(txt, s, 0, AKE_TRUNCATE_RIGHT, &a);
    encode_ok(json, s, 0, AKE_TRUNCATE_RIGHT, &b);
    assert_int_equal(a.n, b.n);
    assert_memory_equal(a.ids, b.ids, (size_t)a.n * sizeof *a.ids);
    assert_int_equal(ake_tokenizer_max_length(txt), 0);
    ake_tokenizer_free(txt);

    /* a vocab.txt without [MASK] and no config naming another: refused, naming the token */
    const char small[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n";
    test_write_file(dir, "vocab.txt", small, sizeof small - 1);
    ake_tokenizer *bad = NULL;
    char err[512] = "";
    assert_int_equal(ake_tokenizer_load(dir, &bad, err, sizeof err), AKE_EFORMAT);
    assert_null(bad);
    assert_non_null(strstr(err, "[MASK]"));
    /* ... unless tokenizer_config.json names the specials (lowercase off here) */
    const char cfg[] = "{\"do_lower_case\": false, \"unk_token\": \"[UNK]\", \"cls_token\": \"[CLS]\", "
                       "\"sep_token\": {\"content\": \"[SEP]\"}, \"pad_token\": \"[PAD]\"}";
    test_write_file(dir, "tokenizer_config.json", cfg, sizeof cfg - 1);
    txt = load_ok(dir);
    encode_ok(txt, "hello Hello", 0, AKE_TRUNCATE_RIGHT, &a);
    int32_t want[] = {2, 4, 1, 3};
    assert_int_equal(a.n, 4);
    assert_memory_equal(a.ids, want, sizeof want);
    ake_tokenizer_free(txt);
    /* invalid UTF-8 in vocab.txt names the line */
    const char badtxt[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\nh\xffllo\n";
    test_write_file(dir, "vocab.txt", badtxt, sizeof badtxt - 1);
    assert_int_equal(ake_tokenizer_load(dir, &bad, err, sizeof err), AKE_EFORMAT);
    assert_non_null(strstr(err, "line 5"));

    ake_tokens_release(&a);
    ake_tokens_release(&b);
    ake_tokenizer_free(json);
    test_rm_rf(dir);
    free(dir);
}

/* ---- spans -------------------------------------------------------------------------------- */

typedef struct {
    int32_t id;
    uint32_t start, stop;
    uint8_t special;
} span_want;

/* Encodes s (len bytes) with spans and checks ids and spans against want[n]. */
static void expect_spans(const ake_tokenizer *tok, const char *s, size_t len, int32_t max_tokens, ake_truncation_dir dir,
                         const span_want *want, int32_t n) {
    ake_tokens out = {0};
    char err[256];
    ake_status st = ake_tokenizer_encode_spans(tok, s, len, max_tokens, dir, &out, err, sizeof err);
    if (st) fail_msg("encode_spans(\"%s\"): %s", s, err);
    bool ok = out.n == n && out.n_spans == n;
    for (int32_t i = 0; ok && i < n; i++)
        ok = out.ids[i] == want[i].id && out.spans[i].start == want[i].start && out.spans[i].stop == want[i].stop &&
             out.spans[i].special == want[i].special;
    if (!ok) {
        print_message("text \"%s\" (max_tokens %d, dir %d): got\n", s, max_tokens, (int)dir);
        for (int32_t i = 0; i < out.n_spans; i++)
            print_message("  %d [%u, %u) special %u\n", out.ids[i], out.spans[i].start, out.spans[i].stop,
                          (unsigned)out.spans[i].special);
        fail_msg("spans of \"%s\" differ from the expected ones", s);
    }
    /* the plain encode gives the same ids, and says it gave no spans */
    assert_int_equal(ake_tokenizer_encode(tok, s, len, max_tokens, dir, &out, err, sizeof err), AKE_OK);
    assert_int_equal(out.n, n);
    assert_int_equal(out.n_spans, 0);
    for (int32_t i = 0; i < n; i++) assert_int_equal(out.ids[i], want[i].id);
    ake_tokens_release(&out);
}

#define SPANS(tok, s, max, dir, ...)                                                                              \
    do {                                                                                                          \
        static const span_want w_[] = {__VA_ARGS__};                                                              \
        expect_spans(tok, s, sizeof s - 1, max, dir, w_, (int32_t)(sizeof w_ / sizeof w_[0]));                    \
    } while (0)

/* Spans worked out by hand (bytes of the UTF-8 text), each also what HF gives (its char offsets
 * converted to bytes). The ids are all-MiniLM-L6-v2's: 101 [CLS], 102 [SEP], 100 [UNK]. */
static void test_spans(void **state) {
    (void)state;
    ake_tokenizer *tok = load_ok(test_model_dir());
    const ake_truncation_dir R = AKE_TRUNCATE_RIGHT, L = AKE_TRUNCATE_LEFT;
    /* punctuation splits; ö (2 bytes) loses its accent but keeps its bytes in the span */
    SPANS(tok, "Hello, w\xc3\xb6rld!", 0, R, {101, 0, 0, 1}, {7592, 0, 5, 0}, {1010, 5, 6, 0}, {2088, 7, 13, 0},
          {999, 13, 14, 0}, {102, 0, 0, 1});
    /* U+0130 (2 bytes) -> i (U+0307 stripped): the word still starts at byte 0 */
    SPANS(tok, "\xc4\xb0stanbul", 0, R, {101, 0, 0, 1}, {9960, 0, 9, 0}, {102, 0, 0, 1});
    /* U+0000 removed: "ab" spans both letters and the NUL between */
    SPANS(tok, "a\0b", 0, R, {101, 0, 0, 1}, {11113, 0, 3, 0}, {102, 0, 0, 1});
    /* CJK ideographs become words of their own, each its 3 bytes */
    SPANS(tok, "\xe6\x97\xa5\xe6\x9c\xac", 0, R, {101, 0, 0, 1}, {1864, 0, 3, 0}, {1876, 3, 6, 0}, {102, 0, 0, 1});
    /* word pieces: una ##ffa ##ble */
    SPANS(tok, "unaffable", 0, R, {101, 0, 0, 1}, {14477, 0, 3, 0}, {20961, 3, 6, 0}, {3468, 6, 9, 0}, {102, 0, 0, 1});
    /* [UNK]: a word past max_input_chars_per_word (100), and one with no pieces (full-width
     * letters, 3 bytes each; U+01C5 lowercases to U+01C6, 2 bytes either way) */
    SPANS(tok, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx y", 0, R,
          {101, 0, 0, 1}, {100, 0, 101, 0}, {1061, 102, 103, 0}, {102, 0, 0, 1});
    SPANS(tok, "\xef\xbc\xa1\xef\xbc\xa2\xef\xbc\xa3 \xc7\x85 x", 0, R, {101, 0, 0, 1}, {100, 0, 9, 0}, {100, 10, 12, 0},
          {1060, 13, 14, 0}, {102, 0, 0, 1});
    /* an added token in the text: its own span, not special (HF's special_tokens_mask is 0) */
    SPANS(tok, "a [MASK] b", 0, R, {101, 0, 0, 1}, {1037, 0, 1, 0}, {103, 2, 8, 0}, {1038, 9, 10, 0}, {102, 0, 0, 1});
    /* truncation keeps the spans of the kept tokens, from either end */
    SPANS(tok, "one two three four", 4, R, {101, 0, 0, 1}, {2028, 0, 3, 0}, {2048, 4, 7, 0}, {102, 0, 0, 1});
    SPANS(tok, "one two three four", 4, L, {101, 0, 0, 1}, {2093, 8, 13, 0}, {2176, 14, 18, 0}, {102, 0, 0, 1});
    SPANS(tok, "one two", 2, L, {101, 0, 0, 1}, {102, 0, 0, 1});
    SPANS(tok, "", 0, R, {101, 0, 0, 1}, {102, 0, 0, 1});

    /* one ake_tokens through encode_spans, a longer text, then encode: spans grow with ids */
    ake_tokens out = {0};
    char err[256];
    size_t big_len = 30000;
    char *big = malloc(big_len);
    for (size_t i = 0; i < big_len; i++) big[i] = "ab cd, "[i % 7];
    assert_int_equal(ake_tokenizer_encode_spans(tok, big, big_len, 0, R, &out, err, sizeof err), AKE_OK);
    assert_true(out.n > 10000 && out.n_spans == out.n && out.spans_cap >= out.n);
    for (int32_t i = 1; i + 1 < out.n; i++) { /* "ab" "cd" "," repeat every 7 bytes */
        int32_t k = (i - 1) % 3, base = (i - 1) / 3 * 7;
        static const uint32_t start[] = {0, 3, 5}, stop[] = {2, 5, 6};
        if (out.spans[i].start != base + start[k] || out.spans[i].stop != base + stop[k] || out.spans[i].special)
            fail_msg("token %d: [%u, %u) special %u", i, out.spans[i].start, out.spans[i].stop, out.spans[i].special);
    }
    free(big);
    /* invalid UTF-8: refused as by encode, no spans */
    assert_int_equal(ake_tokenizer_encode_spans(tok, "a\xff", 2, 0, R, &out, err, sizeof err), AKE_EINVAL);
    assert_int_equal(out.n, 0);
    assert_int_equal(out.n_spans, 0);
    ake_tokens_release(&out);
    assert_null(out.spans);
    assert_int_equal(out.spans_cap, 0);
    ake_tokenizer_free(tok);
}

/* ---- ids -> text -------------------------------------------------------------------------- */

static void expect_decode(const ake_tokenizer *tok, const int32_t *ids, size_t n, bool skip, const char *want) {
    char *text = NULL, err[256];
    size_t len = 0;
    ake_status st = ake_tokenizer_decode(tok, ids, n, skip, &text, &len, err, sizeof err);
    if (st) fail_msg("decode: %s", err);
    if (len != strlen(want) || strcmp(text, want) != 0)
        fail_msg("decode (skip_special_tokens %d): got \"%s\", want \"%s\"", (int)skip, text, want);
    free(text);
}

#define DECODE(tok, skip, want, ...)                                                                              \
    do {                                                                                                          \
        static const int32_t ids_[] = {__VA_ARGS__};                                                              \
        expect_decode(tok, ids_, sizeof ids_ / sizeof ids_[0], skip, want);                                       \
    } while (0)

/* Expected texts by hand from decoders/wordpiece.rs, each equal to HF Tokenizer.decode. */
static void test_decode(void **state) {
    (void)state;
    ake_tokenizer *tok = load_ok(test_model_dir());
    size_t len = 99;
    const char *s = ake_tokenizer_id_to_token(tok, ake_tokenizer_cls_id(tok), &len);
    assert_true(s && len == 5 && memcmp(s, "[CLS]", 5) == 0);
    s = ake_tokenizer_id_to_token(tok, 2075, &len);
    assert_true(s && len == 5 && memcmp(s, "##ing", 5) == 0);
    assert_null(ake_tokenizer_id_to_token(tok, -1, &len));
    assert_int_equal(len, 0);
    assert_null(ake_tokenizer_id_to_token(tok, ake_tokenizer_vocab_size(tok), NULL));
    assert_non_null(ake_tokenizer_id_to_token(tok, ake_tokenizer_vocab_size(tok) - 1, NULL));

    /* [CLS] hello , world ! [SEP]: " ," and " !" cleaned up; specials kept or skipped */
    DECODE(tok, false, "[CLS] hello, world! [SEP]", 101, 7592, 1010, 2088, 999, 102);
    DECODE(tok, true, "hello, world!", 101, 7592, 1010, 2088, 999, 102);
    DECODE(tok, true, "?!,", 101, 1029, 999, 1010, 102); /* the first kept token gets no space */
    /* "##" stripped after the first token only */
    DECODE(tok, false, "##ing", 2075);
    DECODE(tok, false, "helloing", 7592, 2075);
    DECODE(tok, false, "[CLS]ing", 101, 2075);
    DECODE(tok, true, "##ing", 101, 2075); /* numbering after the skip: ##ing is now first */
    /* cleanup is per token: don ' t stays apart (" ' " never occurs inside one token) */
    DECODE(tok, false, "don ' t", 2123, 1005, 1056);
    DECODE(tok, false, "..", 1012, 1012);
    DECODE(tok, true, "", 101, 102);
    expect_decode(tok, NULL, 0, false, "");

    /* ids without a token: refused, naming the position */
    char *text = (char *)0x1, err[256] = "";
    int32_t bad[] = {101, ake_tokenizer_vocab_size(tok), 102};
    assert_int_equal(ake_tokenizer_decode(tok, bad, 3, false, &text, NULL, err, sizeof err), AKE_EINVAL);
    assert_null(text);
    assert_non_null(strstr(err, "ids[1]"));
    bad[1] = -5;
    assert_int_equal(ake_tokenizer_decode(tok, bad, 3, true, &text, NULL, err, sizeof err), AKE_EINVAL);
    assert_non_null(strstr(err, "-5"));
    assert_int_equal(ake_tokenizer_decode(tok, NULL, 2, true, &text, NULL, err, sizeof err), AKE_EINVAL);
    ake_tokenizer_free(tok);

    /* a small tokenizer.json: added tokens with spaces show every cleanup rule at work; the
     * template's ids are tokens here, so decode knows them */
    const char *json =
        "{\"model\": {\"type\": \"WordPiece\", \"unk_token\": \"[UNK]\", \"vocab\": {\"[UNK]\": 0, \"a\": 1, \"b\": 2, "
        "\".\": 3, \"##c\": 4, \"[CLS]\": 5, \"[SEP]\": 6, \"'\": 7}}, \"normalizer\": null, \"pre_tokenizer\": "
        "{\"type\": \"BertPreTokenizer\"}, \"post_processor\": {\"type\": \"BertProcessing\", \"cls\": [\"[CLS]\", 5], "
        "\"sep\": [\"[SEP]\", 6]}, \"added_tokens\": [{\"id\": 5, \"content\": \"[CLS]\", \"special\": true}, {\"id\": 6, "
        "\"content\": \"[SEP]\", \"special\": true}, {\"id\": 8, \"content\": \"do not\"}, {\"id\": 9, \"content\": "
        "\"x ' y 's\"}], \"decoder\": %s}";
    char buf[2048];
    char *dir = test_tmp_dir();
    snprintf(buf, sizeof buf, json, "{\"type\": \"WordPiece\", \"prefix\": \"##\", \"cleanup\": true}");
    test_write_file(dir, "tokenizer.json", buf, strlen(buf));
    tok = load_ok(dir);
    DECODE(tok, false, "a don't b", 1, 8, 2);      /* " do not" -> " don't" */
    DECODE(tok, false, "a x'y's", 1, 9);           /* " x ' y 's": " ' " -> "'", then " 's" -> "'s" */
    DECODE(tok, false, "do not", 8);               /* first token: no leading space to match */
    DECODE(tok, false, "##c ac. ' b", 4, 1, 4, 3, 7, 2);
    DECODE(tok, true, "a", 5, 1, 6);
    /* spans of an added token with a space inside, on a text without normalizer */
    SPANS(tok, "a do not b", 0, AKE_TRUNCATE_RIGHT, {5, 0, 0, 1}, {1, 0, 1, 0}, {8, 2, 8, 0}, {2, 9, 10, 0}, {6, 0, 0, 1});
    ake_tokenizer_free(tok);
    /* no decoder: tokens joined by spaces, "##" kept, no cleanup */
    snprintf(buf, sizeof buf, json, "null");
    test_write_file(dir, "tokenizer.json", buf, strlen(buf));
    tok = load_ok(dir);
    DECODE(tok, false, "[CLS] a ##c . do not [SEP]", 5, 1, 4, 3, 8, 6);
    DECODE(tok, true, "a ##c . do not", 5, 1, 4, 3, 8, 6);
    ake_tokenizer_free(tok);
    /* another decoder: loads and encodes, decode says what it cannot do */
    snprintf(buf, sizeof buf, json, "{\"type\": \"ByteLevel\"}");
    test_write_file(dir, "tokenizer.json", buf, strlen(buf));
    tok = load_ok(dir);
    int32_t one = 1;
    assert_int_equal(ake_tokenizer_decode(tok, &one, 1, false, &text, NULL, err, sizeof err), AKE_EUNSUPPORTED);
    assert_non_null(strstr(err, "ByteLevel"));
    ake_tokens out = {0};
    encode_ok(tok, "a b", 0, AKE_TRUNCATE_RIGHT, &out);
    assert_int_equal(out.n, 4);
    ake_tokens_release(&out);
    ake_tokenizer_free(tok);
    test_rm_rf(dir);
    free(dir);
}

/* ---- threads ------------------------------------------------------------------------------ */

typedef struct {
    const ake_tokenizer *tok;
    const golden_set *g;
    size_t first;
    size_t bad;
} thread_arg;

static void *encode_all(void *p) {
    thread_arg *a = p;
    ake_tokens out = {0};
    char err[256];
    for (size_t k = 0; k < a->g->n; k++) {
        const golden_case *c = &a->g->c[(a->first + k) % a->g->n];
        if (ake_tokenizer_encode(a->tok, c->text, c->len, c->max_tokens, AKE_TRUNCATE_RIGHT, &out, err, sizeof err) ||
            out.n != c->n || memcmp(out.ids, c->ids, (size_t)c->n * sizeof *c->ids) != 0)
            a->bad++;
    }
    ake_tokens_release(&out);
    return NULL;
}

/* One tokenizer, four threads encoding at once (the server's HTTP workers do this). */
static void test_threads(void **state) {
    (void)state;
    golden_set g;
    golden_load(GOLDEN, &g);
    ake_tokenizer *tok = load_ok(test_model_dir());
    pthread_t th[4];
    thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thread_arg){.tok = tok, .g = &g, .first = (size_t)i * g.n / 4};
        assert_int_equal(pthread_create(&th[i], NULL, encode_all, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(args[i].bad, 0);
    }
    ake_tokenizer_free(tok);
    golden_free(&g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_golden_added_tokens),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_accessors),
        cmocka_unit_test(test_normalizer_details),
        cmocka_unit_test(test_unicode_version),
        cmocka_unit_test(test_spans),
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_missing_folder),
        cmocka_unit_test(test_corrupt_tokenizer_json),
        cmocka_unit_test(test_vocab_txt_fallback),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
