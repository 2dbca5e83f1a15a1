/* A/B experiments inside the server: which version of a model answers a request, the samples each
 * arm collects, shadow comparisons, and the rollout that promotes or rolls back the canary.
 *
 * An experiment (serve/rollout.h for its fields and the decision rule) maps a model name to arms
 * (versions of that model, each with a weight). While it runs, a request that names the model
 * without a version (or names none when the model is the default) is answered by one arm:
 *   - sticky: a stable hash of (experiment, user) picks the arm, the user being the OpenAI `user`
 *     field or the X-User header; without either, or with "sticky": "none", a random draw. Arms
 *     own contiguous ranges of 10,000 buckets in their listed order, so as a canary listed last
 *     grows from 5 to 25 % its users stay on it;
 *   - a request naming "model@version" is not part of the experiment;
 *   - the arm's version is pinned as any request's (registry.h); weights changed later apply to
 *     new requests only;
 *   - the OpenAI `user` field wins over X-User when a request has both.
 * Starting an experiment loads arms that are not loaded, takes them off the registry's skip list
 * (an explicit admin act, as an admin load is), makes control the serving version, and refuses
 * arms whose vectors differ in size (they go to the same index, and agreement needs it).
 * Per arm and step the router keeps the latency of every answered engine request (a uniform
 * reservoir of at most 200,000), its requests and errors (any status but 200), and for the canary the
 * agreement samples: a `shadow_fraction` of control requests are sent to the canary in the
 * background once control has answered (the client does not wait for the canary's engine), and
 * the cosine of the two pooled vectors of each input is recorded. At most 64 shadow jobs run at
 * once; beyond that a shadow is skipped.
 *
 * With a rollout, an evaluator thread applies ake_ab_decide every 250 ms: next step (new weights,
 * fresh samples), hold, promote (the canary serves the name, control drains and is unloaded), or
 * roll back (all traffic to control at once; the canary is put on the registry's skip list and
 * unloaded unless keep_canary). Traffic moves before versions are unloaded, so no request fails.
 * Every decision that changes something (and the first hold of a step) goes to the experiment's
 * log with its numbers.
 *
 * State: every experiment (plan, status, step, log) is written atomically (temp file + rename) to
 * the state file after each change and read back at start, so a restarted server resumes each
 * running experiment at its step (with fresh samples) and remembers finished ones. */
#ifndef AKE_SERVE_ROUTER_H
#define AKE_SERVE_ROUTER_H

#include <stdbool.h>
#include <stdint.h>

#include "serve/api.h"
#include "serve/jsonw.h"
#include "serve/registry.h"
#include "serve/rollout.h"

typedef struct ake_router ake_router;
typedef struct ake_experiment ake_experiment;

/* A request's place in an experiment, filled by ake_router_acquire. */
typedef struct {
    ake_experiment *exp;  /* NULL: no experiment answered it */
    int32_t arm;
    uint64_t epoch;       /* the experiment's step when routed: samples of an older step are dropped */
    bool shadow;          /* a control request whose inputs also go to the canary */
} ake_route;

/* state_file: NULL or "" keeps experiments in memory only. The router borrows reg, which must
 * outlive it. */
ake_status ake_router_create(ake_registry *reg, const char *state_file, ake_router **out, char *err, size_t errlen);
/* Resumes the state file's experiments (one that cannot be resumed is logged and marked
 * "stopped"), then starts those of experiments_file (NULL: none; a JSON object, an array of them,
 * or {"experiments": [...]}) whose names the state file does not hold: those must start, or this
 * fails naming the experiment. Starts the evaluator thread. */
ake_status ake_router_start(ake_router *r, const char *experiments_file, char *err, size_t errlen);
/* Stops the evaluator and waits for shadow jobs. No request may be in flight (the HTTP side is
 * stopped first); the registry is freed after. */
void ake_router_free(ake_router *r);

/* ake_registry_acquire with experiments: `model` as there, `user` the sticky key (NULL: none). */
int ake_router_acquire(ake_router *r, const char *model, const char *user, ake_model_version **out, ake_route *route,
                       ake_api_error *e);
/* Records an answered request of an experiment (route->exp set): its status and seconds from
 * arrival to response. `engine`: it ran the engine (latency samples come only from those). Every
 * status but 200 counts as an error: a canary that refuses what control accepts (a shorter
 * token limit, say) fails its users as surely as a 500. */
void ake_router_record(ake_router *r, const ake_route *route, bool engine, int status, double seconds);
/* Sends a shadowed request (route->shadow) to the canary: the request as control parsed it, and
 * control's pooled vectors [req->n, dim] before normalization (copied). */
void ake_router_shadow(ake_router *r, const ake_route *route, const ake_api_request *req, const float *vecs,
                       int32_t dim);
/* The request is over (answered or abandoned): gives back route's hold on its experiment, which
 * may then be freed (a DELETEd one). Every route filled by ake_router_acquire ends here. */
void ake_router_done(ake_router *r, ake_route *route);

/* Admin operations (admin.c); each answers 0 or an HTTP status with e filled, and writes its JSON
 * answer to out.
 * create: body is an experiment; 201 once its arms are loaded (blocks for the loads); 409 when the
 *   name exists or the model has a running experiment.
 * patch: {"arms": [{"version", "weight"}, ...], "shadow_fraction"} of an experiment without rollout.
 * rollback / promote: at once, whatever the rollout says.
 * remove: forgets a finished experiment; a running one ends first (control serves, the canary
 *   stays loaded).
 * get: state, per-arm totals and this step's figures, the current decision and the log.
 * snapshot: the step's samples (rollout.h's snapshot file) with the decision the server makes on
 *   exactly them, as "decision". */
int ake_router_create_experiment(ake_router *r, const char *body, size_t len, ake_buf *out, ake_api_error *e);
int ake_router_patch(ake_router *r, const char *name, const char *body, size_t len, ake_buf *out, ake_api_error *e);
int ake_router_rollback(ake_router *r, const char *name, ake_buf *out, ake_api_error *e);
int ake_router_promote(ake_router *r, const char *name, ake_buf *out, ake_api_error *e);
int ake_router_remove(ake_router *r, const char *name, ake_buf *out, ake_api_error *e);
int ake_router_get(ake_router *r, const char *name, ake_buf *out, ake_api_error *e);
int ake_router_snapshot(ake_router *r, const char *name, ake_buf *out, ake_api_error *e);
void ake_router_list(ake_router *r, ake_buf *out);
/* The ake_experiment_* families (labels experiment, model, version, arm) for /metrics. */
void ake_router_write_metrics(ake_router *r, ake_buf *out);

#endif
