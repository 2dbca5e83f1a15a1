/* Model registry: see registry.h for the layout, the states and the reference counts.
 *
 * Locks: `mu` guards the model list, every version's state and links, and the serving
 * pointers; it is held for microseconds (a request's acquire, a listing, a swap). `ops_mu`
 * makes loads, unloads and polls one at a time, and is held across a whole load, so that a
 * slow load never blocks a request or a listing. Order: ops_mu before mu. */
#include "serve/registry.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "base/fs.h"
#include "base/json.h"
#include "base/log.h"
#include "serve/rollout.h"

#define MAX_SKIP 64
#define MAX_SPECIFIC 32
#define MAX_DISK_VERSIONS 256
#define SETTINGS_FILE "akidb-model.json"

typedef struct {
    int32_t latest;                              /* newest N; 0 when `specific` is used */
    int32_t n_specific;
    char specific[MAX_SPECIFIC][AKE_VERSION_MAX];
} version_policy;

typedef struct ake_model_entry {
    char name[AKE_MODEL_NAME_MAX];
    char dir[PATH_MAX];         /* repository: repo/<name>; added: the model folder itself */
    bool in_repository;
    bool removed;               /* its folder left the repository */
    bool unloaded;              /* unloaded by the admin API: the policy leaves it alone */
    version_policy policy;
    ake_model_version *versions;/* loading, ready, unloading and failed ones */
    ake_model_version *serving; /* NULL: the name answers 404 */
    unsigned long long highest;  /* highest version ever loaded: a folder loaded by path gets the next */
    int32_t nskip;
    char skip[MAX_SKIP][AKE_VERSION_MAX]; /* failed or rolled back: not taken up by the policy */
    int32_t nheld;
    char held[AKE_AB_MAX_ARMS][AKE_VERSION_MAX]; /* arms of a running experiment: the policy and admin
                                                    unloads leave them loaded (ake_registry_hold) */
    struct ake_model_entry *next;
} ake_model_entry;

struct ake_registry {
    ake_registry_opts o;
    char repository[PATH_MAX], state_file[PATH_MAX], model_root[PATH_MAX], default_name[AKE_MODEL_NAME_MAX];
    char devices[256];          /* copy of o.engine.devices */
    pthread_mutex_t mu, ops_mu;
    ake_model_entry *models;    /* in the order added / alphabetical in the repository */
    bool started;
    /* reaper: versions whose last reference is gone, freed off the request path */
    ake_model_version *reap;    /* linked through ->next once unlinked from their entry */
    pthread_cond_t reap_cv, reaped_cv;
    pthread_t reaper;
    bool reaper_running, reap_stop;
    /* repository poller */
    pthread_t poller;
    bool poller_running, poll_stop;
    pthread_cond_t poll_cv;
};

/* ---------------------------------------------------------------- names and versions */

/* out = a/b; false (and out empty, so that nothing by a cut name is opened) when it does not fit. */
static bool join(char *out, size_t len, const char *a, const char *b) {
    int n = snprintf(out, len, "%s/%s", a, b);
    if (n >= 0 && (size_t)n < len) return true;
    out[0] = 0;
    return false;
}

static bool valid_name(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n >= AKE_MODEL_NAME_MAX || s[0] == '.') return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.') return false;
    return true;
}

/* Versions are decimal numbers without a sign or leading zeros (Triton's), at most 18 digits:
 * one spelling per number, so that "7" and "007" cannot name two folders. */
static bool valid_version(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 18 || (s[0] == '0' && n > 1)) return false;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i])) return false;
    return true;
}

static unsigned long long vnum(const char *s) { return strtoull(s, NULL, 10); }

static int cmp_versions(const void *a, const void *b) {
    unsigned long long x = vnum(a), y = vnum(b);
    return x < y ? -1 : x > y;
}

/* Does the policy take version v at all? ("latest N" takes any; "specific" the listed ones.) */
static bool policy_takes(const version_policy *p, const char *v) {
    bool listed = p->n_specific == 0;
    for (int32_t i = 0; i < p->n_specific; i++) listed |= vnum(p->specific[i]) == vnum(v);
    return listed;
}

static bool skipped(const ake_model_entry *m, const char *v) {
    for (int32_t i = 0; i < m->nskip; i++)
        if (vnum(m->skip[i]) == vnum(v)) return true;
    return false;
}

static void skip_add(ake_model_entry *m, const char *v) {
    if (skipped(m, v) || m->nskip == MAX_SKIP) return;
    snprintf(m->skip[m->nskip++], AKE_VERSION_MAX, "%s", v);
}

static void skip_remove(ake_model_entry *m, const char *v) {
    for (int32_t i = 0; i < m->nskip; i++)
        if (vnum(m->skip[i]) == vnum(v)) {
            memmove(m->skip[i], m->skip[i + 1], (size_t)(m->nskip - i - 1) * AKE_VERSION_MAX);
            m->nskip--;
            return;
        }
}

static bool held(const ake_model_entry *m, const char *v) {
    for (int32_t i = 0; i < m->nheld; i++)
        if (vnum(m->held[i]) == vnum(v)) return true;
    return false;
}

/* Numbered sub-folders of dir, ascending. Returns how many (at most max). */
static int disk_versions(const char *dir, char (*out)[AKE_VERSION_MAX], int max) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < max) {
        if (!valid_version(de->d_name)) continue;
        char p[PATH_MAX];
        struct stat st;
        if (!join(p, sizeof p, dir, de->d_name) || stat(p, &st) || !S_ISDIR(st.st_mode))
            continue;
        memcpy(out[n++], de->d_name, strlen(de->d_name) + 1); /* valid_version: at most 18 digits */
    }
    closedir(d);
    qsort(out, (size_t)n, AKE_VERSION_MAX, cmp_versions);
    return n;
}

static bool on_disk(const ake_model_entry *m, const char *v) {
    char p[PATH_MAX];
    struct stat st;
    return join(p, sizeof p, m->dir, v) && !stat(p, &st) && S_ISDIR(st.st_mode);
}

static ake_model_entry *find_entry(ake_registry *r, const char *name) {
    for (ake_model_entry *m = r->models; m; m = m->next)
        if (!m->removed && !strcmp(m->name, name)) return m;
    return NULL;
}

static ake_model_version *find_ready(ake_model_entry *m, const char *v) {
    for (ake_model_version *x = m->versions; x; x = x->next)
        if (x->state == AKE_MV_READY && vnum(x->version) == vnum(v)) return x;
    return NULL;
}

/* The newest READY version of m other than `except`, or NULL. */
static ake_model_version *newest_ready(ake_model_entry *m, const ake_model_version *except) {
    ake_model_version *best = NULL;
    for (ake_model_version *x = m->versions; x; x = x->next)
        if (x != except && x->state == AKE_MV_READY && (!best || vnum(x->version) > vnum(best->version))) best = x;
    return best;
}

/* ---------------------------------------------------------------- settings files */

typedef struct {
    ake_batcher_opts engine;
    char devices[256];
    version_policy policy;
    bool has_policy;
} settings;

static int json_int(const json_object *v, const char *key, int64_t lo, int64_t hi, int32_t *out, const char *path,
                    char *err, size_t errlen) {
    double d;
    if (!ake_json_number(v, &d) || !(d >= (double)lo && d <= (double)hi) || d != (double)(int64_t)d) {
        snprintf(err, errlen, "%s: \"%s\" must be an integer in %lld..%lld", path, key, (long long)lo, (long long)hi);
        return -1;
    }
    *out = (int32_t)d;
    return 0;
}

/* Overlays the settings file `path` (absent: nothing to do) onto *s. */
static ake_status read_settings(const char *path, bool model_level, settings *s, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) return errno == ENOENT ? AKE_OK : ake_errf(err, errlen, AKE_EIO, "cannot read %s: %s", path, strerror(errno));
    char buf[16384];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    bool too_long = !feof(f);
    fclose(f);
    if (too_long) return ake_errf(err, errlen, AKE_EFORMAT, "%s is longer than %zu bytes", path, sizeof buf - 1);
    buf[n] = 0;
    json_object *root;
    size_t at, line, col;
    const char *why;
    if (ake_json_parse(buf, n, &root, &at, &why)) {
        ake_json_line_col(buf, at, &line, &col);
        return ake_errf(err, errlen, AKE_EFORMAT, "%s is not a JSON object (invalid JSON at line %zu, column %zu: %s)",
                        path, line, col, why);
    }
    if (!json_object_is_type(root, json_type_object)) {
        json_object_put(root);
        return ake_errf(err, errlen, AKE_EFORMAT, "%s is not a JSON object", path);
    }
    ake_status st = AKE_OK;
    int32_t replicas = 1;
    const char *device = NULL;
    json_object_object_foreach(root, k, it) {
        if (st != AKE_OK) break;
        if (!strcmp(k, "device")) {
            if (!json_object_is_type(it, json_type_string) || !*json_object_get_string(it) ||
                strlen(json_object_get_string(it)) >= 128)
                st = ake_errf(err, errlen, AKE_EFORMAT, "%s: \"device\" must be a device list such as \"cuda:0,cuda:1\"",
                              path);
            else device = json_object_get_string(it);
        } else if (!strcmp(k, "replicas")) {
            if (json_int(it, k, 1, 16, &replicas, path, err, errlen)) st = AKE_EFORMAT;
        } else if (!strcmp(k, "dtype")) {
            const char *v = json_object_is_type(it, json_type_string) ? json_object_get_string(it) : NULL;
            if (!v || (strcmp(v, "default") && ake_precision_parse(v, &s->engine.precision)))
                st = ake_errf(err, errlen, AKE_EFORMAT, "%s: \"dtype\" must be fp32, fp16, bf16, int8, fp8 or default",
                              path);
            else if (!strcmp(v, "default")) s->engine.precision = AKE_PREC_DEFAULT;
        } else if (!strcmp(k, "threads")) {
            if (json_int(it, k, 0, 1024, &s->engine.threads, path, err, errlen)) st = AKE_EFORMAT;
        } else if (!strcmp(k, "max_batch_tokens")) {
            if (json_int(it, k, 1, 1 << 24, &s->engine.max_batch_tokens, path, err, errlen)) st = AKE_EFORMAT;
        } else if (!strcmp(k, "max_batch_size")) {
            if (json_int(it, k, 1, 1 << 16, &s->engine.max_batch_size, path, err, errlen)) st = AKE_EFORMAT;
        } else if (!strcmp(k, "max_wait_ms")) {
            if (json_int(it, k, 0, 60000, &s->engine.max_wait_ms, path, err, errlen)) st = AKE_EFORMAT;
        } else if (!strcmp(k, "version_policy") && model_level) {
            json_object *latest, *spec;
            const bool has_latest = json_object_object_get_ex(it, "latest", &latest);
            const bool has_spec = json_object_object_get_ex(it, "specific", &spec);
            memset(&s->policy, 0, sizeof s->policy);
            s->has_policy = true;
            if (!json_object_is_type(it, json_type_object) || json_object_object_length(it) != 1 ||
                (!has_latest && !has_spec)) {
                st = ake_errf(err, errlen, AKE_EFORMAT,
                              "%s: \"version_policy\" must be {\"latest\": N} or {\"specific\": [\"1\", ...]}", path);
            } else if (has_latest) {
                if (json_int(latest, "version_policy.latest", 1, 64, &s->policy.latest, path, err, errlen))
                    st = AKE_EFORMAT;
            } else if (!json_object_is_type(spec, json_type_array) || json_object_array_length(spec) < 1 ||
                       json_object_array_length(spec) > MAX_SPECIFIC) {
                st = ake_errf(err, errlen, AKE_EFORMAT, "%s: \"version_policy.specific\" must list 1..%d versions",
                              path, MAX_SPECIFIC);
            } else {
                for (size_t i = 0; i < json_object_array_length(spec) && st == AKE_OK; i++) {
                    json_object *v = json_object_array_get_idx(spec, i);
                    if (!json_object_is_type(v, json_type_string) || !valid_version(json_object_get_string(v)))
                        st = ake_errf(err, errlen, AKE_EFORMAT,
                                      "%s: \"version_policy.specific\" holds version numbers as strings, like \"3\"",
                                      path);
                    else
                        snprintf(s->policy.specific[s->policy.n_specific++], AKE_VERSION_MAX, "%s",
                                 json_object_get_string(v));
                }
            }
        } else {
            st = ake_errf(err, errlen, AKE_EFORMAT,
                          "%s: unknown field \"%.64s\" (known: device, replicas, dtype, threads, max_batch_tokens, "
                          "max_batch_size, max_wait_ms%s)",
                          path, k, model_level ? ", version_policy" : "; version_policy belongs to the model's file");
        }
    }
    if (st == AKE_OK && (device || replicas > 1)) {
        char one[256];
        snprintf(one, sizeof one, "%s", device ? device : s->devices);
        s->devices[0] = 0;
        for (int32_t i = 0; i < replicas; i++) {
            size_t len = strlen(s->devices);
            if (snprintf(s->devices + len, sizeof s->devices - len, "%s%s", i ? "," : "", one) >=
                (int)(sizeof s->devices - len)) {
                st = ake_errf(err, errlen, AKE_EFORMAT, "%s: too many replicas", path);
                break;
            }
        }
    }
    json_object_put(root);
    return st;
}

/* The settings of version dir `vdir` of model m: the server's, then m's file, then the version's. */
static ake_status version_settings(const ake_registry *r, const ake_model_entry *m, const char *vdir, settings *s,
                                   char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    s->engine = r->o.engine;
    snprintf(s->devices, sizeof s->devices, "%s", r->devices);
    char p[PATH_MAX + 32];
    ake_status st = AKE_OK;
    if (m->in_repository) {
        join(p, sizeof p, m->dir, SETTINGS_FILE);
        st = read_settings(p, true, s, err, errlen);
    }
    if (st == AKE_OK) {
        join(p, sizeof p, vdir, SETTINGS_FILE);
        st = read_settings(p, false, s, err, errlen);
    }
    s->engine.devices = s->devices;
    return st;
}

/* ---------------------------------------------------------------- the reaper */

static void free_version(ake_model_version *v) {
    ake_batcher_free(v->batcher);
    ake_pipeline_release(&v->p);
    free(v);
}

static void unlink_version(ake_model_version *v) {
    for (ake_model_version **pp = &v->entry->versions; *pp; pp = &(*pp)->next)
        if (*pp == v) {
            *pp = v->next;
            return;
        }
}

/* A version without references: off its model's list and to the reaper. Under mu. */
static void retire_locked(ake_registry *r, ake_model_version *v) {
    unlink_version(v);
    v->next = r->reap;
    r->reap = v;
    pthread_cond_signal(&r->reap_cv);
}

/* Drops one reference; under mu. */
static void unref_locked(ake_registry *r, ake_model_version *v) {
    if (atomic_fetch_sub(&v->refs, 1) == 1) retire_locked(r, v);
}

static void *reaper_main(void *arg) {
    ake_registry *r = arg;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (!r->reap && !r->reap_stop) pthread_cond_wait(&r->reap_cv, &r->mu);
        if (!r->reap) break;
        ake_model_version *v = r->reap;
        r->reap = v->next;
        pthread_mutex_unlock(&r->mu);
        ake_log(AKE_LOG_INFO, "model %s version %s unloaded (its last request answered)", v->name, v->version);
        free_version(v);
        pthread_mutex_lock(&r->mu);
        pthread_cond_broadcast(&r->reaped_cv);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* READY → UNLOADING; under mu. A serving version hands the name to the newest other READY one. */
static void begin_unload(ake_registry *r, ake_model_version *v) {
    if (v->state != AKE_MV_READY) return;
    v->state = AKE_MV_UNLOADING;
    if (v->entry->serving == v) v->entry->serving = newest_ready(v->entry, v);
    ake_log(AKE_LOG_INFO, "model %s version %s: unloading (no new requests)", v->name, v->version);
    unref_locked(r, v);
}

/* Every READY version of m to UNLOADING. Under mu. */
static void unload_all(ake_registry *r, ake_model_entry *m) {
    for (ake_model_version *x = m->versions; x;) {
        if (x->state == AKE_MV_READY) {
            begin_unload(r, x);
            x = m->versions; /* begin_unload may unlink x: start over */
        } else {
            x = x->next;
        }
    }
}

/* ---------------------------------------------------------------- state file */

static void save_state(ake_registry *r) {
    if (!r->state_file[0]) return;
    json_object *root = json_object_new_object(), *models = json_object_new_object();
    bool built = root && models && !json_object_object_add(root, "models", models); /* else nothing is written */
    if (!built) json_object_put(models);
    pthread_mutex_lock(&r->mu);
    for (ake_model_entry *m = r->models; m && built; m = m->next) {
        if (!m->in_repository || m->removed) continue;
        json_object *o = json_object_new_object(), *sk = json_object_new_array();
        if (!(built = o && sk && !json_object_object_add(models, m->name, o))) {
            json_object_put(o);
            json_object_put(sk);
            break;
        }
        json_object_object_add(o, "serving", m->serving ? json_object_new_string(m->serving->version) : NULL);
        json_object_object_add(o, "unloaded", json_object_new_boolean(m->unloaded));
        for (int32_t i = 0; i < m->nskip; i++) json_object_array_add(sk, json_object_new_string(m->skip[i]));
        json_object_object_add(o, "skip", sk);
    }
    pthread_mutex_unlock(&r->mu);
    const char *text = built ? json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                                        JSON_C_TO_STRING_NOSLASHESCAPE)
                             : NULL;
    char err[512];
    if (!text) ake_log(AKE_LOG_ERROR, "cannot write the state file %s: out of memory", r->state_file);
    else if (ake_write_file_atomic(r->state_file, text, strlen(text), err, sizeof err) != AKE_OK)
        ake_log(AKE_LOG_ERROR, "state file: %s", err);
    json_object_put(root);
}

/* Applies the state file's record of m (if any): skip list and unloaded flag; the version
 * that served, when it is still on disk, into want (else ""). */
static void read_state(ake_registry *r, ake_model_entry *m, const json_object *state, char *want) {
    want[0] = 0;
    const json_object *o = json_object_object_get(json_object_object_get(state, "models"), m->name);
    if (!json_object_is_type(o, json_type_object)) return;
    const json_object *sk = json_object_object_get(o, "skip");
    for (size_t i = 0; json_object_is_type(sk, json_type_array) && i < json_object_array_length(sk); i++) {
        json_object *v = json_object_array_get_idx(sk, i);
        if (json_object_is_type(v, json_type_string) && valid_version(json_object_get_string(v)))
            skip_add(m, json_object_get_string(v));
    }
    const json_object *u = json_object_object_get(o, "unloaded");
    m->unloaded = json_object_is_type(u, json_type_boolean) && json_object_get_boolean(u);
    json_object *s = json_object_object_get(o, "serving");
    if (json_object_is_type(s, json_type_string) && valid_version(json_object_get_string(s)) &&
        on_disk(m, json_object_get_string(s)))
        snprintf(want, AKE_VERSION_MAX, "%s", json_object_get_string(s));
    (void)r;
}

/* ---------------------------------------------------------------- loading */

static const char *dtype_name(ake_precision p) {
    switch (p) {
    case AKE_PREC_FP16: return "float16";
    case AKE_PREC_BF16: return "bfloat16";
    case AKE_PREC_INT8: return "int8"; /* W8A8; torch's names for the 8-bit types */
    case AKE_PREC_FP8: return "float8_e4m3fn";
    default: return "float32";
    }
}

/* Pipeline, engines and warm-up of v (LOADING, linked, no lock held). */
static ake_status build_version(ake_model_version *v, const settings *s, int64_t max_request_tokens, char *err,
                                 size_t errlen) {
    ake_status st = ake_pipeline_load(v->dir, &v->p, err, errlen);
    if (st != AKE_OK) return st;
    if (s->engine.max_batch_tokens < v->p.max_seq_tokens)
        return ake_errf(err, errlen, AKE_EINVAL,
                        "max_batch_tokens %d is below the model's longest input (%d tokens); raise it",
                        s->engine.max_batch_tokens, v->p.max_seq_tokens);
    v->raw_model = *v->p.model;
    v->raw_model.cfg.normalize = false;
    v->facts = (ake_api_model){.n_prompts = v->p.model->n_prompts, .prompt_name = v->p.model->prompt_name,
                               .prompt_text = v->p.model->prompt_text, .default_prompt = v->p.model->default_prompt,
                               .max_seq_tokens = v->p.max_seq_tokens, .vocab_size = v->p.model->cfg.vocab_size,
                               .dim = v->p.model->cfg.hidden, .normalizes = v->p.model->cfg.normalize};
    if ((st = ake_batcher_create(&v->raw_model, &s->engine, &v->metrics, &v->batcher, err, errlen)) != AKE_OK)
        return st;
    for (int32_t i = 0; i < ake_batcher_replicas(v->batcher); i++) {
        size_t n = strlen(v->devices);
        snprintf(v->devices + n, sizeof v->devices - n, "%s%s", i ? "," : "", ake_batcher_device(v->batcher, i));
    }
    v->dtype = dtype_name(ake_batcher_precision(v->batcher, 0));
    v->weight_bytes = ake_batcher_weight_bytes(v->batcher, 0);
    v->tokens_per_s = ake_batcher_tokens_per_s(v->batcher);
    /* Admission up front (issue 9): a request the engines cannot finish within the timeout a
     * client is told about is refused at once with 413, not computed for nothing. */
    v->facts.max_request_tokens = max_request_tokens > 0 ? max_request_tokens
                                  : (int64_t)(v->tokens_per_s * s->engine.request_timeout_ms * 1e-3);
    if (v->facts.max_request_tokens > 0 && v->facts.max_request_tokens < v->facts.max_seq_tokens)
        v->facts.max_request_tokens = v->facts.max_seq_tokens; /* one full input always fits */
    return AKE_OK;
}

/* Versions of m to keep loaded beside `serving` after a load: the policy's. Under mu. */
static void retire_others(ake_registry *r, ake_model_entry *m, ake_model_version *serving) {
    int32_t keep = m->policy.latest > 0 ? m->policy.latest - 1 : 0;
    for (;;) { /* unload the oldest surplus READY version until the policy holds */
        int32_t others = 0;
        ake_model_version *oldest = NULL;
        for (ake_model_version *x = m->versions; x; x = x->next) {
            if (x == serving || x->state != AKE_MV_READY || held(m, x->version)) continue;
            if (skipped(m, x->version) || !policy_takes(&m->policy, x->version)) {
                begin_unload(r, x);
                others = -1; /* the list changed: scan again */
                break;
            }
            others++;
            if (!oldest || vnum(x->version) < vnum(oldest->version)) oldest = x;
        }
        if (others < 0) continue;
        if (m->policy.n_specific || others <= keep) return;
        begin_unload(r, oldest);
    }
}

/* v (READY) takes m's new requests; under mu. An admin load (explicit) takes v off the skip
 * list and, replacing a newer version, marks that one rolled back (skipped). Versions the policy
 * no longer keeps are unloaded. */
static void make_serving(ake_registry *r, ake_model_entry *m, ake_model_version *v, bool explicit) {
    ake_model_version *prev = m->serving;
    m->serving = v;
    m->unloaded = false;
    if (explicit) skip_remove(m, v->version);
    if (explicit && prev && prev != v && vnum(prev->version) > vnum(v->version)) skip_add(m, prev->version);
    retire_others(r, m, v);
}

/* Loads `version` of m from `dir` beside whatever serves; on success it serves m (with
 * `serve`, else only when nothing does). ops_mu held. explicit: an admin load (takes up
 * skipped versions; replacing a newer version marks that one rolled back). 0 or an HTTP
 * status with e filled. */
static int load_version(ake_registry *r, ake_model_entry *m, const char *version, const char *dir, bool explicit,
                        bool serve, ake_api_error *e) {
    pthread_mutex_lock(&r->mu);
    ake_model_version *ready = find_ready(m, version);
    if (ready) { /* already loaded: make it serve */
        make_serving(r, m, ready, explicit);
        pthread_mutex_unlock(&r->mu);
        save_state(r);
        return 0;
    }
    for (ake_model_version **pp = &m->versions; *pp;) { /* an earlier failure of this version is replaced */
        ake_model_version *x = *pp;
        if (x->state == AKE_MV_FAILED && vnum(x->version) == vnum(version)) {
            *pp = x->next;
            free(x);
        } else {
            pp = &x->next;
        }
    }
    ake_model_version *v = calloc(1, sizeof *v);
    if (!v) {
        pthread_mutex_unlock(&r->mu);
        return ake_api_fail(e, 500, NULL, "out of memory");
    }
    snprintf(v->name, sizeof v->name, "%s", m->name);
    snprintf(v->version, sizeof v->version, "%s", version);
    snprintf(v->dir, sizeof v->dir, "%s", dir);
    v->entry = m;
    v->state = AKE_MV_LOADING;
    ake_metrics_init(&v->metrics, r->o.metrics);
    v->next = m->versions;
    m->versions = v;
    pthread_mutex_unlock(&r->mu);

    ake_log(AKE_LOG_INFO, "model %s version %s: loading %s", m->name, version, dir);
    const double t0 = ake_now_s();
    settings s;
    char err[512];
    ake_status st = version_settings(r, m, dir, &s, err, sizeof err);
    if (st == AKE_OK) st = build_version(v, &s, r->o.max_request_tokens, err, sizeof err);
    v->load_ms = (ake_now_s() - t0) * 1e3;

    pthread_mutex_lock(&r->mu);
    if (st != AKE_OK) {
        ake_batcher_free(v->batcher);
        ake_pipeline_release(&v->p);
        v->batcher = NULL;
        v->state = AKE_MV_FAILED;
        snprintf(v->error, sizeof v->error, "%s", err);
        if (r->o.metrics) atomic_fetch_add(&r->o.metrics->model_load_failures, 1);
        skip_add(m, version);
        pthread_mutex_unlock(&r->mu);
        ake_log(AKE_LOG_ERROR, "model %s version %s failed to load: %s", m->name, version, err);
        save_state(r);
        return ake_api_fail(e, st == AKE_ENOMEM ? 507 : 422, NULL, "model %s version %s failed to load: %s",
                            m->name, version, err);
    }
    ake_model_version *prev = m->serving;
    atomic_store(&v->refs, 1);
    v->state = AKE_MV_READY;
    if (vnum(version) > m->highest) m->highest = vnum(version);
    m->unloaded = false;
    if (serve || !prev) make_serving(r, m, v, explicit);
    const bool serving = m->serving == v;
    pthread_mutex_unlock(&r->mu);
    ake_log(AKE_LOG_INFO, "model %s version %s: %s (%s %s, loaded and warmed up in %.0f ms)%s%s", m->name, version,
            serving ? "serving" : "loaded", v->devices, v->dtype, v->load_ms,
            serving && prev ? "; replaced version " : "", serving && prev ? prev->version : "");
    if (v->facts.max_request_tokens > 0)
        ake_log(AKE_LOG_INFO, "model %s version %s: engines embed %.0f tokens/s; a request may hold %lld tokens (%s)",
                m->name, version, v->tokens_per_s, (long long)v->facts.max_request_tokens,
                r->o.max_request_tokens > 0 ? "--max-request-tokens" : "that speed x --request-timeout-ms");
    else
        ake_log(AKE_LOG_INFO, "model %s version %s: engines embed %.0f tokens/s; no limit on tokens per request "
                "(--request-timeout-ms 0)", m->name, version, v->tokens_per_s);
    save_state(r);
    return 0;
}

/* Loads m's versions by its policy (the newest that loads serves; failures step to the next
 * older; skipped versions are left alone), or exactly `want` when it is given and loads.
 * ops_mu held. Returns how many loaded. */
static int load_by_policy(ake_registry *r, ake_model_entry *m, const char *want, ake_api_error *last) {
    char dir[PATH_MAX];
    if (!m->in_repository) return load_version(r, m, "1", m->dir, false, true, last) == 0;
    if (want && *want) {
        join(dir, sizeof dir, m->dir, want);
        if (load_version(r, m, want, dir, false, true, last) == 0) return 1;
    }
    char vers[MAX_DISK_VERSIONS][AKE_VERSION_MAX];
    const int n = disk_versions(m->dir, vers, MAX_DISK_VERSIONS);
    if (n == 0) ake_api_fail(last, 404, NULL, "%s holds no numbered version folder", m->dir);
    const int32_t target = m->policy.n_specific ? m->policy.n_specific : m->policy.latest;
    int loaded = 0;
    for (int i = n - 1; i >= 0 && loaded < target; i--) { /* newest first: the first to load serves */
        const bool listed = policy_takes(&m->policy, vers[i]);
        pthread_mutex_lock(&r->mu);
        const bool skip = skipped(m, vers[i]) || find_ready(m, vers[i]);
        pthread_mutex_unlock(&r->mu);
        if (!listed || skip) continue;
        join(dir, sizeof dir, m->dir, vers[i]);
        if (load_version(r, m, vers[i], dir, false, loaded == 0, last) == 0) loaded++;
    }
    return loaded;
}

/* ---------------------------------------------------------------- create, add, start */

static ake_model_entry *new_entry(ake_registry *r, const char *name, const char *dir, bool repo) {
    ake_model_entry *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    snprintf(m->name, sizeof m->name, "%s", name);
    snprintf(m->dir, sizeof m->dir, "%s", dir);
    m->in_repository = repo;
    m->policy.latest = 1;
    ake_model_entry **pp = &r->models;
    while (*pp) pp = &(*pp)->next;
    *pp = m;
    return m;
}

ake_status ake_registry_create(const ake_registry_opts *opts, ake_registry **out, char *err, size_t errlen) {
    *out = NULL;
    ake_registry *r = calloc(1, sizeof *r);
    if (!r) return ake_errf(err, errlen, AKE_ENOMEM, "out of memory");
    r->o = *opts;
    snprintf(r->devices, sizeof r->devices, "%s", opts->engine.devices ? opts->engine.devices : "cpu");
    r->o.engine.devices = r->devices;
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->ops_mu, NULL);
    pthread_cond_init(&r->reap_cv, NULL);
    pthread_cond_init(&r->reaped_cv, NULL);
    pthread_cond_init(&r->poll_cv, NULL);
    ake_status st = AKE_OK;
    if (opts->repository && *opts->repository && !realpath(opts->repository, r->repository))
        st = ake_errf(err, errlen, AKE_ENOTFOUND, "--model-repository %s: %s", opts->repository, strerror(errno));
    if (st == AKE_OK && opts->model_root && *opts->model_root && !realpath(opts->model_root, r->model_root))
        st = ake_errf(err, errlen, AKE_ENOTFOUND, "--model-root %s: %s", opts->model_root, strerror(errno));
    struct stat sb;
    if (st == AKE_OK && r->repository[0] && (stat(r->repository, &sb) || !S_ISDIR(sb.st_mode)))
        st = ake_errf(err, errlen, AKE_EINVAL, "--model-repository %s is not a directory", opts->repository);
    if (opts->state_file && *opts->state_file) snprintf(r->state_file, sizeof r->state_file, "%s", opts->state_file);
    else if (r->repository[0]) join(r->state_file, sizeof r->state_file, r->repository, ".akidb-state.json");
    if (opts->default_model) snprintf(r->default_name, sizeof r->default_name, "%s", opts->default_model);
    r->o.repository = r->o.state_file = r->o.model_root = r->o.default_model = NULL; /* the copies above instead */
    if (st == AKE_OK && pthread_create(&r->reaper, NULL, reaper_main, r) != 0)
        st = ake_errf(err, errlen, AKE_ENOMEM, "cannot start the registry's thread");
    r->reaper_running = st == AKE_OK;
    if (st != AKE_OK) {
        ake_registry_free(r);
        return st;
    }
    *out = r;
    return AKE_OK;
}

ake_status ake_registry_add(ake_registry *r, const char *name, const char *dir, char *err, size_t errlen) {
    if (!valid_name(name))
        return ake_errf(err, errlen, AKE_EINVAL,
                        "model name '%s': use 1..%d letters, digits, '.', '-' or '_', not starting with '.'", name,
                        AKE_MODEL_NAME_MAX - 1);
    if (find_entry(r, name)) return ake_errf(err, errlen, AKE_EINVAL, "model name '%s' is given twice", name);
    return new_entry(r, name, dir, false) ? AKE_OK : ake_errf(err, errlen, AKE_ENOMEM, "out of memory");
}

static int cmp_names(const void *a, const void *b) { return strcmp(a, b); }

/* Model folders of the repository (valid names, directories), sorted. Returns the count. */
static int repo_models(const ake_registry *r, char (*out)[AKE_MODEL_NAME_MAX], int max) {
    DIR *d = opendir(r->repository);
    if (!d) return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < max) {
        char p[PATH_MAX];
        struct stat st;
        if (!valid_name(de->d_name) ||
            !join(p, sizeof p, r->repository, de->d_name) || stat(p, &st) ||
            !S_ISDIR(st.st_mode))
            continue;
        memcpy(out[n++], de->d_name, strlen(de->d_name) + 1); /* valid_name: shorter than AKE_MODEL_NAME_MAX */
    }
    closedir(d);
    qsort(out, (size_t)n, AKE_MODEL_NAME_MAX, cmp_names);
    return n;
}

/* A repository model's entry with its policy from its settings file. */
static ake_model_entry *repo_entry(ake_registry *r, const char *name, char *err, size_t errlen) {
    char dir[PATH_MAX];
    join(dir, sizeof dir, r->repository, name);
    settings s = {0};
    char p[sizeof dir + 32];
    join(p, sizeof p, dir, SETTINGS_FILE);
    if (read_settings(p, true, &s, err, errlen) != AKE_OK) return NULL;
    ake_model_entry *m = new_entry(r, name, dir, true);
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (s.has_policy) m->policy = s.policy;
    return m;
}

static void *poller_main(void *arg) {
    ake_registry *r = arg;
    pthread_mutex_lock(&r->mu);
    while (!r->poll_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += r->o.poll_s;
        pthread_cond_timedwait(&r->poll_cv, &r->mu, &ts);
        if (r->poll_stop) break;
        pthread_mutex_unlock(&r->mu);
        ake_registry_poll(r);
        pthread_mutex_lock(&r->mu);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

#define MAX_REPO_MODELS 256

/* Folders of the repository that are neither a model (a valid name) nor a version (a number
 * without leading zeros) are skipped; say so once, at start. */
static void warn_ignored(const char *dir, bool models) {
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        char p[PATH_MAX];
        struct stat st;
        if (de->d_name[0] == '.' || !join(p, sizeof p, dir, de->d_name) || stat(p, &st) || !S_ISDIR(st.st_mode)) continue;
        if (models ? !valid_name(de->d_name) : !valid_version(de->d_name))
            ake_log(AKE_LOG_WARN, "%s: folder '%s' skipped: %s", dir, de->d_name,
                    models ? "model names are letters, digits, '.', '-' and '_'"
                           : "versions are numbers without a sign or leading zeros");
        else if (models)
            warn_ignored(p, false);
    }
    if (d) closedir(d);
}

ake_status ake_registry_start(ake_registry *r, char *err, size_t errlen) {
    pthread_mutex_lock(&r->ops_mu);
    ake_status st = AKE_OK;
    json_object *state = NULL;
    if (r->repository[0]) {
        warn_ignored(r->repository, true);
        char names[MAX_REPO_MODELS][AKE_MODEL_NAME_MAX];
        int n = repo_models(r, names, MAX_REPO_MODELS);
        for (int i = 0; i < n && st == AKE_OK; i++) {
            if (find_entry(r, names[i])) {
                st = ake_errf(err, errlen, AKE_EINVAL, "model '%s' is both in the repository and given by --model",
                              names[i]);
            } else {
                pthread_mutex_lock(&r->mu);
                if (!repo_entry(r, names[i], err, errlen)) st = AKE_EFORMAT;
                pthread_mutex_unlock(&r->mu);
            }
        }
        FILE *f = fopen(r->state_file, "rb");
        if (f) {
            char *buf = malloc(1 << 20);
            size_t len = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
            fclose(f);
            size_t at;
            const char *why;
            if (!buf || ake_json_parse(buf, len, &state, &at, &why))
                ake_log(AKE_LOG_WARN, "state file %s is not JSON; starting from the version policies", r->state_file);
            free(buf);
        }
    }
    if (st == AKE_OK && !r->models)
        st = ake_errf(err, errlen, AKE_EINVAL, "no model to serve: give --model or a --model-repository with models");
    if (st == AKE_OK && r->default_name[0] && !find_entry(r, r->default_name))
        st = ake_errf(err, errlen, AKE_EINVAL, "--default-model '%s' is not one of the models", r->default_name);
    const bool default_given = r->default_name[0] != 0;
    for (ake_model_entry *m = r->models; m && st == AKE_OK; m = m->next) {
        char want[AKE_VERSION_MAX] = "";
        if (m->in_repository) read_state(r, m, state, want);
        if (m->unloaded) {
            ake_log(AKE_LOG_INFO, "model %s: left unloaded, as before the restart", m->name);
            continue;
        }
        ake_api_error e = {0};
        if (load_by_policy(r, m, want, &e) > 0) continue;
        /* a model given by --model must load; a repository model that loads nothing is listed
         * with its error (Triton's --exit-on-error=false), as long as something serves */
        if (!m->in_repository || (default_given && !strcmp(m->name, r->default_name)))
            st = ake_errf(err, errlen, AKE_EINVAL, "model %s: no version loaded: %s", m->name,
                          e.msg[0] ? e.msg : "its version policy selects none (all skipped?)");
        else
            ake_log(AKE_LOG_ERROR, "model %s: no version loaded (%s); the others are served", m->name,
                    e.msg[0] ? e.msg : "its version policy selects none");
    }
    bool serving = false;
    pthread_mutex_lock(&r->mu);
    for (ake_model_entry *m = r->models; m; m = m->next) {
        if (m->serving && !serving && !default_given) /* the default: the first model that serves */
            snprintf(r->default_name, sizeof r->default_name, "%s", m->name);
        serving |= m->serving != NULL;
    }
    pthread_mutex_unlock(&r->mu);
    if (st == AKE_OK && !serving) { /* everything unloaded before a restart, or nothing loads: the admin API can fix it */
        ake_log(AKE_LOG_WARN, "no model serves: every model of the repository is unloaded or failed to load");
        if (!default_given) snprintf(r->default_name, sizeof r->default_name, "%s", r->models->name);
    }
    json_object_put(state);
    if (st == AKE_OK) {
        r->started = true;
        save_state(r);
    }
    pthread_mutex_unlock(&r->ops_mu);
    if (st == AKE_OK && r->repository[0] && r->o.poll_s > 0) {
        if (pthread_create(&r->poller, NULL, poller_main, r) != 0)
            return ake_errf(err, errlen, AKE_ENOMEM, "cannot start the repository poller");
        r->poller_running = true;
    }
    return st;
}

bool ake_registry_started(const ake_registry *r) { return r->started; }

/* ---------------------------------------------------------------- requests */

static void served_names(ake_registry *r, char *buf, size_t len) {
    size_t o = 0;
    buf[0] = 0;
    for (ake_model_entry *m = r->models; m && o < len; m = m->next)
        if (!m->removed && m->serving)
            o += (size_t)snprintf(buf + o, len - o, "%s`%s`", o ? ", " : "", m->name);
    if (!o) snprintf(buf, len, "none");
}

int ake_registry_acquire(ake_registry *r, const char *model, ake_model_version **out, ake_api_error *e) {
    char name[AKE_MODEL_NAME_MAX + AKE_VERSION_MAX + 2];
    const char *version = NULL;
    *out = NULL;
    if (model && strlen(model) >= sizeof name) {
        e->code = "model_not_found";
        return ake_api_fail(e, 404, "model", "the model name is longer than %zu bytes", sizeof name - 1);
    }
    pthread_mutex_lock(&r->mu);
    snprintf(name, sizeof name, "%s", model ? model : r->default_name);
    char *at = strrchr(name, '@');
    if (at) {
        *at = 0;
        version = at + 1;
    }
    ake_model_entry *m = find_entry(r, name);
    if (!m && strchr(name, '/')) m = find_entry(r, strrchr(name, '/') + 1); /* "org/name" */
    ake_model_version *v = NULL;
    if (m) v = version ? (valid_version(version) ? find_ready(m, version) : NULL) : m->serving;
    if (v) atomic_fetch_add(&v->refs, 1);
    else {
        char served[512];
        served_names(r, served, sizeof served);
        e->code = "model_not_found";
        if (!m) ake_api_fail(e, 404, "model", "the model `%.200s` does not exist; this server serves %s", name, served);
        else if (version) ake_api_fail(e, 404, "model", "model `%s` has no version `%.40s` loaded", m->name, version);
        else ake_api_fail(e, 404, "model", "model `%s` is not loaded; this server serves %s", m->name, served);
    }
    pthread_mutex_unlock(&r->mu);
    *out = v;
    return v ? 0 : e->status;
}

void ake_registry_release(ake_registry *r, ake_model_version *v) {
    /* The last reference of a version can only be a request's once the version is
     * UNLOADING (the registry's own is gone), and nobody can take a new one then. */
    if (!v || atomic_fetch_sub(&v->refs, 1) != 1) return;
    pthread_mutex_lock(&r->mu);
    retire_locked(r, v);
    pthread_mutex_unlock(&r->mu);
}

/* ---------------------------------------------------------------- admin */

/* Resolves an admin load's folder: relative to the model root (else the repository); the
 * real path must lie under one of them. 0 or 403/404/422 with e filled. */
static int resolve_path(const ake_registry *r, const char *path, char *out, ake_api_error *e) {
    const char *base = r->model_root[0] ? r->model_root : r->repository;
    if (!base[0])
        return ake_api_fail(e, 403, "path", "loading a folder needs --model-root or --model-repository on the server");
    for (const char *p = path; *p;) { /* no ".." component, whatever follows */
        size_t n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return ake_api_fail(e, 403, "path", "`path` may not contain `..`");
        p += n;
        while (*p == '/') p++;
    }
    char joined[PATH_MAX];
    if (path[0] == '/') snprintf(joined, sizeof joined, "%s", path);
    else join(joined, sizeof joined, base, path);
    if (!realpath(joined, out)) return ake_api_fail(e, 404, "path", "`%.200s`: %s", path, strerror(errno));
    const char *roots[2] = {r->model_root, r->repository};
    bool inside = false;
    for (int i = 0; i < 2; i++) {
        size_t n = strlen(roots[i]);
        inside |= n && !strncmp(out, roots[i], n) && (out[n] == '/' || out[n] == 0);
    }
    if (!inside)
        return ake_api_fail(e, 403, "path",
                            "`%.200s` lies outside the model root and the repository (symlinks included)", path);
    struct stat sb;
    if (stat(out, &sb) || !S_ISDIR(sb.st_mode))
        return ake_api_fail(e, 422, "path", "`%.200s` is not a model folder (not a directory)", path);
    return 0;
}

int ake_registry_load(ake_registry *r, const char *name, const char *version, const char *path, char *loaded,
                      size_t loaded_len, ake_api_error *e) {
    if (!valid_name(name)) return ake_api_fail(e, 422, NULL, "`%.200s` is not a valid model name", name);
    if (version && !valid_version(version))
        return ake_api_fail(e, 422, "version", "`version` must be a version number such as \"3\", not `%.40s`",
                            version);
    pthread_mutex_lock(&r->ops_mu);
    pthread_mutex_lock(&r->mu);
    ake_model_entry *m = find_entry(r, name);
    if (!m && !path && r->repository[0]) { /* a model folder added to the repository since the last scan */
        char dir[PATH_MAX];
        struct stat sb;
        join(dir, sizeof dir, r->repository, name);
        char err[512] = "";
        if (!stat(dir, &sb) && S_ISDIR(sb.st_mode) && !(m = repo_entry(r, name, err, sizeof err)) && err[0]) {
            pthread_mutex_unlock(&r->mu);
            pthread_mutex_unlock(&r->ops_mu);
            return ake_api_fail(e, 422, NULL, "%s", err);
        }
    }
    const bool created = !m && path;
    if (created) m = new_entry(r, name, "", false);
    pthread_mutex_unlock(&r->mu);
    int rc = 0;
    char v[AKE_VERSION_MAX] = "", dir[PATH_MAX];
    if (!m) {
        rc = ake_api_fail(e, 404, NULL, "no model `%s` in the repository%s", name,
                          r->repository[0] ? "" : " (the server has none: give `path`)");
    } else if (path) {
        rc = resolve_path(r, path, dir, e);
        if (!rc && version) snprintf(v, sizeof v, "%s", version);
        if (!rc && !version) { /* one above the highest version loaded so far, or on disk */
            pthread_mutex_lock(&r->mu);
            unsigned long long hi = m->highest;
            pthread_mutex_unlock(&r->mu);
            char vers[MAX_DISK_VERSIONS][AKE_VERSION_MAX];
            int n = m->in_repository ? disk_versions(m->dir, vers, MAX_DISK_VERSIONS) : 0;
            if (n && vnum(vers[n - 1]) > hi) hi = vnum(vers[n - 1]);
            snprintf(v, sizeof v, "%llu", hi + 1);
        }
    } else if (!m->in_repository) {
        /* a --model: its own folder again (a folder loaded by path has none: give `path`) */
        if (!m->dir[0]) rc = ake_api_fail(e, 422, NULL, "model `%s` was loaded by path: give `path`", name);
        else if (version && vnum(version) != 1)
            rc = ake_api_fail(e, 404, "version", "model `%s` is a --model folder: its only version is 1", name);
        snprintf(v, sizeof v, "1");
        snprintf(dir, sizeof dir, "%s", m->dir);
    } else {
        if (version) {
            snprintf(v, sizeof v, "%s", version);
        } else {
            char vers[MAX_DISK_VERSIONS][AKE_VERSION_MAX];
            int n = disk_versions(m->dir, vers, MAX_DISK_VERSIONS);
            if (n) snprintf(v, sizeof v, "%s", vers[n - 1]);
        }
        if (!v[0] || !on_disk(m, v))
            rc = ake_api_fail(e, 404, "version", "model `%s` has no version folder `%s` in the repository", name,
                              v[0] ? v : "(none)");
        join(dir, sizeof dir, m->dir, v);
    }
    if (!rc) rc = load_version(r, m, v, dir, true, true, e);
    if (!rc && loaded) snprintf(loaded, loaded_len, "%s", v);
    if (rc && created) { /* a name that never served: no trace of the failed attempt */
        pthread_mutex_lock(&r->mu);
        for (ake_model_entry **pp = &r->models; *pp; pp = &(*pp)->next)
            if (*pp == m) {
                *pp = m->next;
                break;
            }
        for (ake_model_version *x = m->versions; x;) { /* only FAILED records: nothing was loaded */
            ake_model_version *next = x->next;
            free(x);
            x = next;
        }
        free(m);
        pthread_mutex_unlock(&r->mu);
    }
    pthread_mutex_unlock(&r->ops_mu);
    return rc;
}

int ake_registry_unload(ake_registry *r, const char *name, const char *version, ake_api_error *e) {
    pthread_mutex_lock(&r->ops_mu);
    pthread_mutex_lock(&r->mu);
    ake_model_entry *m = valid_name(name) ? find_entry(r, name) : NULL;
    int rc = 0;
    if (!m) {
        rc = ake_api_fail(e, 404, NULL, "no model `%.200s`", name);
    } else if (version && held(m, version)) {
        rc = ake_api_fail(e, 409, "version", "model `%s` version `%.40s` is an arm of a running experiment: roll it "
                          "back or delete the experiment first", name, version);
    } else if (!version && m->nheld) {
        rc = ake_api_fail(e, 409, NULL, "model `%s` has a running experiment: roll it back or delete it first", name);
    } else if (version) {
        ake_model_version *v = valid_version(version) ? find_ready(m, version) : NULL;
        if (!v) rc = ake_api_fail(e, 404, "version", "model `%s` has no version `%.40s` loaded", name, version);
        else begin_unload(r, v);
        if (v && !m->serving) m->unloaded = true;
    } else {
        unload_all(r, m);
        m->unloaded = true;
    }
    pthread_mutex_unlock(&r->mu);
    if (!rc) save_state(r);
    pthread_mutex_unlock(&r->ops_mu);
    return rc;
}

int ake_registry_hold(ake_registry *r, const char *name, const char *const *versions, int32_t n,
                      const char *serve, ake_api_error *e) {
    AKE_ASSERT(n >= 1 && n <= AKE_AB_MAX_ARMS);
    pthread_mutex_lock(&r->ops_mu);
    pthread_mutex_lock(&r->mu);
    ake_model_entry *m = valid_name(name) ? find_entry(r, name) : NULL;
    int rc = 0;
    if (!m) rc = ake_api_fail(e, 404, "model", "no model `%.200s`", name);
    else if (m->nheld) rc = ake_api_fail(e, 409, "model", "model `%s` already has a running experiment", name);
    for (int32_t i = 0; !rc && i < n; i++)
        if (!valid_version(versions[i]))
            rc = ake_api_fail(e, 422, "version", "`%.40s` is not a version number", versions[i]);
    pthread_mutex_unlock(&r->mu);
    for (int32_t i = 0; !rc && i < n; i++) { /* load the arms that are not loaded, none of them serving */
        pthread_mutex_lock(&r->mu);
        const bool ready = find_ready(m, versions[i]) != NULL;
        pthread_mutex_unlock(&r->mu);
        if (ready) continue;
        char dir[PATH_MAX];
        if (!m->in_repository || !on_disk(m, versions[i]))
            rc = ake_api_fail(e, 404, "version", "model `%s` has no version `%s` loaded%s", name, versions[i],
                              m->in_repository ? " or in the repository" : " (load it with the admin API first)");
        else if (join(dir, sizeof dir, m->dir, versions[i]))
            rc = load_version(r, m, versions[i], dir, true, false, e);
    }
    if (!rc) {
        pthread_mutex_lock(&r->mu);
        for (int32_t i = 0; i < n; i++) {
            skip_remove(m, versions[i]);
            snprintf(m->held[i], AKE_VERSION_MAX, "%s", versions[i]);
        }
        m->nheld = n;
        ake_model_version *v = serve ? find_ready(m, serve) : NULL;
        if (v) make_serving(r, m, v, false);
        pthread_mutex_unlock(&r->mu);
        save_state(r);
    }
    pthread_mutex_unlock(&r->ops_mu);
    return rc;
}

void ake_registry_end_hold(ake_registry *r, const char *name, const char *serve, const char *retire, bool skip_retired,
                           bool unload_retired) {
    pthread_mutex_lock(&r->ops_mu);
    pthread_mutex_lock(&r->mu);
    ake_model_entry *m = find_entry(r, name);
    if (m) {
        m->nheld = 0;
        ake_model_version *v = serve ? find_ready(m, serve) : NULL;
        if (v && m->serving != v) {
            /* not make_serving: the policy would unload the retired version at once, and a
             * kept canary must stay */
            m->serving = v;
            m->unloaded = false;
            skip_remove(m, v->version);
        }
        if (retire && skip_retired) skip_add(m, retire);
        ake_model_version *x = retire ? find_ready(m, retire) : NULL;
        if (x && unload_retired && x != m->serving) begin_unload(r, x);
    }
    pthread_mutex_unlock(&r->mu);
    save_state(r);
    pthread_mutex_unlock(&r->ops_mu);
}

void ake_registry_poll(ake_registry *r) {
    if (!r->repository[0]) return;
    pthread_mutex_lock(&r->ops_mu);
    char names[MAX_REPO_MODELS][AKE_MODEL_NAME_MAX];
    char vers[MAX_DISK_VERSIONS][AKE_VERSION_MAX];
    int n = repo_models(r, names, MAX_REPO_MODELS);
    /* models whose folder is gone: unload everything */
    pthread_mutex_lock(&r->mu);
    for (ake_model_entry *m = r->models; m; m = m->next) {
        if (!m->in_repository || m->removed) continue;
        bool present = false;
        for (int i = 0; i < n; i++) present |= !strcmp(names[i], m->name);
        if (present) continue;
        ake_log(AKE_LOG_INFO, "model %s: its folder left the repository; unloading it", m->name);
        unload_all(r, m);
        m->removed = true;
    }
    pthread_mutex_unlock(&r->mu);
    for (int i = 0; i < n; i++) {
        pthread_mutex_lock(&r->mu);
        ake_model_entry *m = find_entry(r, names[i]);
        char err[512] = "";
        if (!m && !(m = repo_entry(r, names[i], err, sizeof err)))
            ake_log(AKE_LOG_ERROR, "model %s: %s", names[i], err);
        bool leave = !m || m->unloaded;
        /* versions whose folder is gone */
        for (ake_model_version *x = m ? m->versions : NULL; x;) {
            if (x->state == AKE_MV_READY && !on_disk(m, x->version)) {
                ake_log(AKE_LOG_INFO, "model %s version %s: its folder is gone; unloading it", m->name, x->version);
                begin_unload(r, x);
                x = m->versions;
            } else {
                x = x->next;
            }
        }
        const unsigned long long serving = m && m->serving ? vnum(m->serving->version) : 0;
        pthread_mutex_unlock(&r->mu);
        if (leave) continue;
        ake_api_error e = {0};
        if (serving == 0) { /* a new model, or one whose versions all went away */
            load_by_policy(r, m, NULL, &e);
            continue;
        }
        /* the newest version the policy takes, if newer than the serving one */
        int nv = disk_versions(m->dir, vers, MAX_DISK_VERSIONS);
        for (int k = nv - 1; k >= 0 && vnum(vers[k]) > serving; k--) {
            const bool listed = policy_takes(&m->policy, vers[k]);
            pthread_mutex_lock(&r->mu);
            const bool skip = skipped(m, vers[k]);
            pthread_mutex_unlock(&r->mu);
            if (!listed || skip) continue;
            char dir[PATH_MAX];
            join(dir, sizeof dir, m->dir, vers[k]);
            if (load_version(r, m, vers[k], dir, false, true, &e) == 0) break;
        }
    }
    save_state(r);
    pthread_mutex_unlock(&r->ops_mu);
}

/* ---------------------------------------------------------------- listings */

static const char *state_name(ake_mv_state s) {
    switch (s) {
    case AKE_MV_LOADING: return "loading";
    case AKE_MV_READY: return "ready";
    case AKE_MV_UNLOADING: return "unloading";
    default: return "failed";
    }
}

static void json_str(ake_buf *b, const char *s) { ake_buf_json_string(b, s, strlen(s)); }

void ake_registry_write_models(ake_registry *r, int64_t created, ake_buf *out) {
    char vers[MAX_DISK_VERSIONS][AKE_VERSION_MAX];
    pthread_mutex_lock(&r->mu);
    ake_buf_puts(out, "{\"object\":\"list\",\"data\":[");
    bool first = true;
    for (ake_model_entry *m = r->models; m; m = m->next) {
        if (m->removed) continue;
        ake_buf_puts(out, first ? "{\"id\":" : ",{\"id\":");
        first = false;
        json_str(out, m->name);
        ake_buf_printf(out, ",\"object\":\"model\",\"created\":%lld,\"owned_by\":\"akidb-embed\",\"serving_version\":",
                       (long long)created);
        if (m->serving) json_str(out, m->serving->version);
        else ake_buf_puts(out, "null");
        ake_buf_puts(out, ",\"versions\":[");
        bool vfirst = true;
        for (ake_model_version *v = m->versions; v; v = v->next) {
            ake_buf_puts(out, vfirst ? "{\"version\":" : ",{\"version\":");
            vfirst = false;
            json_str(out, v->version);
            ake_buf_printf(out, ",\"state\":\"%s\",\"device\":", state_name(v->state));
            if (v->devices[0]) json_str(out, v->devices);
            else ake_buf_puts(out, "null");
            ake_buf_puts(out, ",\"dtype\":");
            if (v->dtype) json_str(out, v->dtype);
            else ake_buf_puts(out, "null");
            ake_buf_puts(out, ",\"error\":");
            if (v->state == AKE_MV_FAILED) json_str(out, v->error);
            else ake_buf_puts(out, "null");
            ake_buf_puts(out, "}");
        }
        int n = m->in_repository ? disk_versions(m->dir, vers, MAX_DISK_VERSIONS) : 0;
        for (int i = 0; i < n; i++) {
            bool known = false;
            for (ake_model_version *v = m->versions; v; v = v->next) known |= vnum(v->version) == vnum(vers[i]);
            if (known) continue;
            ake_buf_puts(out, vfirst ? "{\"version\":" : ",{\"version\":");
            vfirst = false;
            json_str(out, vers[i]);
            ake_buf_printf(out, ",\"state\":\"%s\",\"device\":null,\"dtype\":null,\"error\":null}",
                           skipped(m, vers[i]) ? "skipped" : "available");
        }
        ake_buf_puts(out, "]}");
    }
    ake_buf_puts(out, "]}");
    pthread_mutex_unlock(&r->mu);
}

void ake_registry_write_version(const ake_model_version *v, bool admin, ake_buf *b) {
    const ake_model_config *cfg = &v->p.model->cfg;
    ake_buf_puts(b, "\"model_id\":");
    json_str(b, v->name);
    ake_buf_puts(b, ",\"served_model_name\":");
    json_str(b, v->name);
    ake_buf_puts(b, ",\"model_version\":");
    json_str(b, v->version);
    /* model_type as TEI's ModelType: {"embedding": {"pooling": ...}}; model_sha: a folder has none */
    ake_buf_printf(b,
                   ",\"model_type\":{\"embedding\":{\"pooling\":\"%s\"}},\"model_sha\":null,\"model_dtype\":\"%s\","
                   "\"dtype\":\"%s\",\"dim\":%d,\"max_input_length\":%d,\"pooling\":\"%s\",\"normalize\":%s,"
                   "\"vocab_size\":%d,\"layers\":%d,\"synthetic_weights\":%s,\"device\":",
                   ake_pooling_name(cfg->pooling), v->dtype, v->dtype, cfg->hidden, v->facts.max_seq_tokens,
                   ake_pooling_name(cfg->pooling), cfg->normalize ? "true" : "false", cfg->vocab_size, cfg->layers,
                   cfg->synthetic ? "true" : "false");
    json_str(b, v->devices);
    ake_buf_printf(b, ",\"replicas\":%d,\"weight_bytes\":%zu,\"quantization\":%s", ake_batcher_replicas(v->batcher),
                   v->weight_bytes, v->p.model->quant_config ? v->p.model->quant_config : "null");
    ake_buf_printf(b, ",\"engine_tokens_per_s\":%.0f,\"max_request_tokens\":%lld", v->tokens_per_s,
                   (long long)v->facts.max_request_tokens);
    ake_buf_puts(b, ",\"prompts\":{");
    for (int32_t i = 0; i < v->facts.n_prompts; i++) {
        ake_buf_puts(b, i ? "," : "");
        json_str(b, v->facts.prompt_name[i]);
        ake_buf_puts(b, ":");
        json_str(b, v->facts.prompt_text[i]);
    }
    ake_buf_puts(b, "},\"default_prompt_name\":");
    if (v->facts.default_prompt >= 0 && v->facts.default_prompt < v->facts.n_prompts)
        json_str(b, v->facts.prompt_name[v->facts.default_prompt]);
    else
        ake_buf_puts(b, "null");
    if (!admin) return;
    ake_buf_puts(b, ",\"model_dir\":");
    json_str(b, v->dir);
    ake_buf_printf(b, ",\"state\":\"%s\",\"requests_in_flight\":%d,\"load_ms\":%.1f,\"weight_bytes_per_device\":{",
                   state_name(v->state), (int)atomic_load(&v->refs) - (v->state == AKE_MV_READY), v->load_ms);
    for (int32_t i = 0; i < ake_batcher_replicas(v->batcher); i++) {
        ake_buf_puts(b, i ? "," : "");
        json_str(b, ake_batcher_device(v->batcher, i));
        ake_buf_printf(b, ":%zu", ake_batcher_weight_bytes(v->batcher, i));
    }
    ake_buf_puts(b, "}");
}

void ake_registry_write_info(ake_registry *r, bool admin, ake_buf *out) {
    pthread_mutex_lock(&r->mu);
    ake_buf_puts(out, "[");
    bool first = true;
    for (ake_model_entry *m = r->models; m; m = m->next) {
        if (m->removed) continue;
        for (ake_model_version *v = m->versions; v; v = v->next) {
            bool show = admin ? v->state == AKE_MV_READY || v->state == AKE_MV_UNLOADING : v == m->serving;
            if (!show) continue;
            ake_buf_puts(out, first ? "{" : ",{");
            first = false;
            ake_registry_write_version(v, admin, out);
            ake_buf_printf(out, ",\"serving\":%s,\"default\":%s}", v == m->serving ? "true" : "false",
                           !strcmp(m->name, r->default_name) ? "true" : "false");
        }
    }
    ake_buf_puts(out, "]");
    pthread_mutex_unlock(&r->mu);
}

void ake_registry_write_metrics(ake_registry *r, const ake_metrics *server, const char *server_version, ake_buf *out) {
    pthread_mutex_lock(&r->mu);
    int n = 0;
    for (ake_model_entry *m = r->models; m; m = m->next)
        for (ake_model_version *v = m->versions; v; v = v->next) n += v->batcher != NULL;
    ake_metrics_model *mm = calloc((size_t)n + 1, sizeof *mm);
    int k = 0;
    int64_t depth = 0;
    for (ake_model_entry *m = r->models; m && mm; m = m->next)
        for (ake_model_version *v = m->versions; v; v = v->next) {
            if (!v->batcher) continue;
            const int64_t d = ake_batcher_depth(v->batcher);
            depth += d;
            mm[k++] = (ake_metrics_model){.m = &v->metrics, .model = v->name, .version = v->version,
                                          .device = v->devices, .dtype = v->dtype,
                                          .pooling = ake_pooling_name(v->p.model->cfg.pooling),
                                          .dim = v->facts.dim, .max_input_tokens = v->facts.max_seq_tokens,
                                          .replicas = ake_batcher_replicas(v->batcher), .serving = v == m->serving,
                                          .queue_depth = d};
        }
    ake_metrics_write(server, server_version, depth, mm, mm ? k : 0, out);
    pthread_mutex_unlock(&r->mu);
    free(mm);
}

void ake_registry_default_name(ake_registry *r, char *out, size_t len) {
    pthread_mutex_lock(&r->mu);
    snprintf(out, len, "%s", r->default_name);
    pthread_mutex_unlock(&r->mu);
}

/* ---------------------------------------------------------------- the end */

void ake_registry_free(ake_registry *r) {
    if (!r) return;
    if (r->poller_running) {
        pthread_mutex_lock(&r->mu);
        r->poll_stop = true;
        pthread_cond_broadcast(&r->poll_cv);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->poller, NULL);
    }
    pthread_mutex_lock(&r->mu);
    for (ake_model_entry *m = r->models; m; m = m->next) unload_all(r, m);
    if (r->reaper_running) {
        /* wait until only failed records are left */
        for (;;) {
            bool busy = r->reap != NULL;
            for (ake_model_entry *m = r->models; m && !busy; m = m->next)
                for (ake_model_version *x = m->versions; x && !busy; x = x->next) busy = x->state != AKE_MV_FAILED;
            if (!busy) break;
            pthread_cond_wait(&r->reaped_cv, &r->mu);
        }
        r->reap_stop = true;
        pthread_cond_signal(&r->reap_cv);
    }
    pthread_mutex_unlock(&r->mu);
    if (r->reaper_running) pthread_join(r->reaper, NULL);
    for (ake_model_entry *m = r->models; m;) {
        ake_model_entry *next = m->next;
        for (ake_model_version *x = m->versions; x;) {
            ake_model_version *xn = x->next;
            free(x);
            x = xn;
        }
        free(m);
        m = next;
    }
    pthread_mutex_destroy(&r->mu);
    pthread_mutex_destroy(&r->ops_mu);
    pthread_cond_destroy(&r->reap_cv);
    pthread_cond_destroy(&r->reaped_cv);
    pthread_cond_destroy(&r->poll_cv);
    free(r);
}
