/* The models a server holds: names, numbered versions, which version serves each name,
 * and the loads, swaps and unloads that change it while requests are being answered.
 *
 * Layout (Triton's model repository convention):
 *   repo/<name>/akidb-model.json        optional settings of the model (below)
 *   repo/<name>/<version>/              an ordinary model folder; versions are numbers
 *   repo/<name>/<version>/akidb-model.json   optional, overrides the model's for this version
 * Models given one by one (`--model name=dir`) have the single version "1".
 *
 * Settings (akidb-model.json, every field optional; unknown fields are an error, so that a
 * typo is not silently ignored):
 *   {"device": "cpu" | "cuda:0,cuda:1", "replicas": 2, "dtype": "int8", "threads": 0,
 *    "max_batch_tokens": 16384, "max_batch_size": 64, "max_wait_ms": 10,
 *    "version_policy": {"latest": 1} | {"specific": ["1", "3"]}}
 * `replicas` engines per listed device. The version policy says which versions are loaded
 * (Triton's: the newest N, or those listed); the newest loaded one serves the name.
 *
 * Life of a version: LOADING (pipeline, engines and warm-up, beside the serving version,
 * no lock held) → READY (new requests for the name go to it at once) → UNLOADING (no new
 * requests; the ones admitted finish on it) → freed by the registry's reaper thread when
 * its last request is answered. A failed load leaves FAILED with its message and the
 * serving version in place.
 *
 * Reference counts: the registry holds one on every READY version; each request holds one
 * from ake_registry_acquire to ake_registry_release, so a version never changes or goes
 * away under a request (no request mixes versions).
 *
 * State (repositories only): which version serves each name, which names were unloaded,
 * and the versions not to take up again (failed, or rolled back from), written atomically
 * (temp file + rename) to the state file after every change; at start the server serves
 * what it served before. Only the admin API takes a skipped version up again. */
#ifndef AKE_SERVE_REGISTRY_H
#define AKE_SERVE_REGISTRY_H

#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/status.h"
#include "model/model.h"
#include "serve/api.h"
#include "serve/batcher.h"
#include "serve/jsonw.h"
#include "serve/metrics.h"
#include "serve/pipeline.h"

#define AKE_MODEL_NAME_MAX 128
#define AKE_VERSION_MAX 32

typedef enum { AKE_MV_LOADING = 0, AKE_MV_READY, AKE_MV_UNLOADING, AKE_MV_FAILED } ake_mv_state;

/* One loaded (or loading, or failed) version of a model. A holder of a reference may read
 * every field above `refs`; they do not change while the version is READY or UNLOADING. */
typedef struct ake_model_version {
    char name[AKE_MODEL_NAME_MAX];
    char version[AKE_VERSION_MAX];
    char dir[PATH_MAX];
    ake_pipeline p;          /* model and tokenizer */
    ake_model raw_model;     /* *p.model with cfg.normalize = false: engines return pooled vectors and
                                the APIs normalize per request */
    ake_batcher *batcher;
    ake_api_model facts;     /* what requests are checked against */
    double tokens_per_s;     /* the engines' speed measured at load (ake_batcher_tokens_per_s) */
    char devices[256];       /* the replicas' devices as resolved, comma-separated */
    const char *dtype;       /* "float32", "float16", "bfloat16", "int8", "float8_e4m3fn" */
    size_t weight_bytes;     /* resident weights of one replica */
    ake_metrics metrics;     /* this version's (ake_model_* families); parent: the server's */
    double load_ms;          /* load + warm-up */
    /* the registry's */
    _Atomic int32_t refs;
    ake_mv_state state;
    char error[512];         /* FAILED: why */
    struct ake_model_version *next;
    struct ake_model_entry *entry;
} ake_model_version;

typedef struct {
    const char *repository;   /* NULL: only models added with ake_registry_add */
    const char *state_file;   /* NULL: <repository>/.akidb-state.json */
    const char *model_root;   /* admin loads of a folder path must lie under it or the repository */
    const char *default_model;/* NULL: the only model, else the first added / first in the repository */
    int32_t poll_s;           /* > 0: rescan the repository every poll_s seconds (ake_registry_poll) */
    ake_batcher_opts engine;  /* devices, precision, threads and batch limits unless a model's
                                 akidb-model.json says otherwise */
    int64_t max_request_tokens; /* most tokens per request; 0: each version's measured speed ×
                                   engine.request_timeout_ms (no limit when that is 0 too) */
    ake_metrics *metrics;     /* shared by every batcher */
} ake_registry_opts;

typedef struct ake_registry ake_registry;

/* Copies opts; checks that the repository (when given) is a directory. No model is loaded
 * yet. Free with ake_registry_free. */
ake_status ake_registry_create(const ake_registry_opts *opts, ake_registry **out, char *err, size_t errlen);

/* Adds a model outside any repository: `name` served by the folder `dir` as version "1".
 * AKE_EINVAL for a bad or duplicate name. Before ake_registry_start only. */
ake_status ake_registry_add(ake_registry *r, const char *name, const char *dir, char *err, size_t errlen);

/* Loads every model: added ones; for each repository model the version the state file says,
 * else its version policy. Fails (naming the model) when a model loads no version. */
ake_status ake_registry_start(ake_registry *r, char *err, size_t errlen);

/* The version that answers `model` ("name", "name@version", or NULL for the default model;
 * "org/name" names "name", as OpenAI clients send Hugging Face ids), with a reference the
 * caller gives back with ake_registry_release. 404 in e (naming the served models) when
 * there is none. */
int ake_registry_acquire(ake_registry *r, const char *model, ake_model_version **out, ake_api_error *e);
void ake_registry_release(ake_registry *r, ake_model_version *v);

/* Admin operations; each answers 0 or an HTTP status with the message in e.
 * load: `version` of the repository model `name` (NULL: its newest), or the folder `path`
 * (relative to the model root, else the repository; it must stay under one of them: `..`
 * and symlinks out are refused) as `version` (NULL: one above the highest known). On
 * success the version serves the name; versions the policy no longer keeps are unloaded.
 * Blocks for the load and warm-up. *loaded (may be NULL) gets the version string.
 * unload: `version` (NULL: every loaded version; the name then answers 404). */
int ake_registry_load(ake_registry *r, const char *name, const char *version, const char *path, char *loaded,
                      size_t loaded_len, ake_api_error *e);
int ake_registry_unload(ake_registry *r, const char *name, const char *version, ake_api_error *e);

/* Experiments (router.c). hold: keeps `versions` of `name` loaded while an experiment runs,
 * loading from the repository those that are not (beside the serving version; an admin-loaded
 * folder must be loaded first), taking them off the skip list, and makes `serve` (NULL: leave it)
 * the serving version. Held versions are left by the version policy, and admin unloads of them
 * answer 409. A name holds one set at a time (409). Blocks for the loads. 0 or an HTTP status.
 * end_hold: the experiment is over: `serve` serves the name; `retire` (NULL: none) is put on the
 * skip list (skip_retired: a rolled-back canary must not come back with the policy) and unloaded
 * (unload_retired; its requests finish on it). */
int ake_registry_hold(ake_registry *r, const char *name, const char *const *versions, int32_t n, const char *serve,
                      ake_api_error *e);
void ake_registry_end_hold(ake_registry *r, const char *name, const char *serve, const char *retire, bool skip_retired,
                           bool unload_retired);

/* Rescans the repository: loads new models and new versions (by each model's policy, the
 * skipped ones left alone) and unloads versions and models whose folders are gone. */
void ake_registry_poll(ake_registry *r);

/* True once ake_registry_start has succeeded. */
bool ake_registry_started(const ake_registry *r);

/* JSON writers (under the registry's lock):
 * models: OpenAI's list, one entry per name: {"id", "object": "model", "created", "owned_by",
 *   "serving_version", "versions": [{"version", "state", "device", "dtype", "error"}]};
 *   versions on disk that are not loaded are listed as "available".
 * info: one object per name with the serving version's facts (an array); `admin` adds the
 *   folder, load time and resident weight bytes per device of every loaded version.
 * default_name: the default model's name ("" when none). */
void ake_registry_write_models(ake_registry *r, int64_t created, ake_buf *out);
void ake_registry_write_info(ake_registry *r, bool admin, ake_buf *out);
void ake_registry_default_name(ake_registry *r, char *out, size_t len);
/* The /metrics exposition: the server's totals and every loaded version's families. */
void ake_registry_write_metrics(ake_registry *r, const ake_metrics *server, const char *server_version, ake_buf *out);
/* The facts of one version as the fields of a JSON object, without the braces: model_id,
 * model_version, dtype, dim, max_input_length, pooling, normalize, device, replicas,
 * weight_bytes, quantization, synthetic_weights; `admin` adds model_dir, state,
 * requests_in_flight, load_ms and weight_bytes_per_device. The caller holds a reference. */
void ake_registry_write_version(const ake_model_version *v, bool admin, ake_buf *out);

/* Unloads everything (waiting for the reaper) and frees the registry. No request may hold
 * a version any more (the HTTP side is stopped first). */
void ake_registry_free(ake_registry *r);

#endif
