/* The admin listener (its own port, 127.0.0.1 by default, optional bearer key):
 *
 *   GET  /admin/models                  {"models": <the /v1/models list>, "loaded": [every loaded
 *                                        version: folder, state, requests in flight, load time,
 *                                        resident weight bytes per device]}
 *   POST /admin/models/{name}/load      {"version": "3"} (a repository version; absent: the newest),
 *                                        or {"path": "dir", "version": "7"} (a folder under the model
 *                                        root or the repository; absent version: one above the highest)
 *                                        → 200 {"model", "version", "state": "serving"} once loaded,
 *                                        warmed up and serving; the previous version finishes its
 *                                        requests and is freed
 *   POST /admin/models/{name}/unload    {} (every version: the name answers 404) or {"version": "2"}
 *   POST /admin/repository/poll         rescan the repository now (as --repository-poll-s does)
 *   GET  /admin/experiments             every A/B experiment (router.h), running or finished
 *   POST /admin/experiments             start one (the body is the experiment) → 201 once its arms are loaded
 *   GET  /admin/experiments/{name}      state, per-arm figures, the current decision, the decision log
 *   PATCH /admin/experiments/{name}     {"arms": [{"version", "weight"}], "shadow_fraction"} (no rollout)
 *   DELETE /admin/experiments/{name}    forget it (a running one ends first: control serves)
 *   POST /admin/experiments/{name}/rollback   all traffic to control at once; the canary is unloaded
 *   POST /admin/experiments/{name}/promote    the canary serves; control drains and is unloaded
 *   GET  /admin/experiments/{name}/snapshot   the step's samples and the decision made on them
 *                                             (`akidb-embed ab decide` reads the file)
 * Errors: {"error": "...", "error_type": ...} as TEI writes them, with 401 (key), 403 (a path
 * outside the roots), 404 (no such model, version or experiment), 405, 409 (an experiment's arm or
 * name is taken; the experiment has ended), 413, 422 (bad body, or a version
 * that failed to load: the message says why; the serving version stays), 507 (out of memory).
 * A connection has its own thread (server.c), so a load blocks only its own caller. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "serve/api_impl.h"
#include "serve/server_impl.h"

#define ADMIN_MAX_BODY 65536

typedef struct {
    ake_buf body;
    bool too_big;
} admin_req;

static enum MHD_Result reply(struct MHD_Connection *c, int status, ake_buf *b) {
    size_t len;
    char *data = ake_buf_take(b, &len);
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(data);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (status == 401) MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ok;
}

static enum MHD_Result reply_error(struct MHD_Connection *c, const char *method, const char *url,
                                   const ake_api_error *e) {
    ake_buf b = {0};
    ake_api_write_error(e, false, &b);
    ake_log(e->status >= 500 ? AKE_LOG_ERROR : AKE_LOG_WARN, "admin %s %s -> %d: %s", method, url, e->status, e->msg);
    return reply(c, e->status, &b);
}

/* An optional string field of the body, copied into out (len bytes; "" when absent); 422
 * when it is not a non-empty string that fits. */
static int body_string(const json_object *root, const char *key, char *out, size_t len, ake_api_error *e) {
    const char *v = NULL;
    out[0] = 0;
    int rc = ake_api_get_name(root, key, &v, e);
    if (rc || !v) return rc;
    if (!*v || strlen(v) >= len) return ake_api_fail(e, 422, key, "`%s` must be 1..%zu bytes long", key, len - 1);
    snprintf(out, len, "%s", v);
    return 0;
}

/* POST /admin/models/{name}/{load|unload}. Bodies: load {"version", "path"}, unload {"version"};
 * any other field is a 422 naming it (a typo must not load or unload something else). */
static enum MHD_Result model_op(ake_server *s, struct MHD_Connection *c, const char *method, const char *url,
                                const char *name, bool load, const ake_buf *body) {
    ake_api_error e = {0};
    json_object *root = NULL;
    int rc = 0;
    if (body->len) {
        rc = ake_api_parse_json(body->data, body->len, &root, &e);
        if (!rc && !json_object_is_type(root, json_type_object))
            rc = ake_api_fail(&e, 422, NULL, "the body must be a JSON object");
    }
    if (!rc && root) { /* json-c's foreach reads through a NULL object */
        json_object_object_foreach(root, key, value) {
            (void)value;
            if (rc) break;
            if (strcmp(key, "version") && (!load || strcmp(key, "path")))
                rc = ake_api_fail(&e, 422, NULL, "unknown field `%.64s` (%s takes %s)", key, load ? "load" : "unload",
                                  load ? "`version` and `path`" : "`version`");
        }
    }
    char version[AKE_VERSION_MAX], path[PATH_MAX];
    if (!rc) rc = body_string(root, "version", version, sizeof version, &e);
    if (!rc && load) rc = body_string(root, "path", path, sizeof path, &e);
    json_object_put(root); /* version and path are copies */
    char loaded[AKE_VERSION_MAX] = "";
    if (!rc) {
        const double t0 = ake_now_s();
        rc = load ? ake_registry_load(s->reg, name, version[0] ? version : NULL, path[0] ? path : NULL, loaded,
                                      sizeof loaded, &e)
                  : ake_registry_unload(s->reg, name, version[0] ? version : NULL, &e);
        if (!rc)
            ake_log(AKE_LOG_INFO, "admin %s %s -> 200 (%.0f ms)", method, url, (ake_now_s() - t0) * 1e3);
    }
    if (rc) return reply_error(c, method, url, &e);
    ake_buf b = {0};
    ake_buf_puts(&b, "{\"model\":");
    ake_buf_json_string(&b, name, strlen(name));
    ake_buf_puts(&b, ",\"version\":");
    const char *v = load ? loaded : version;
    if (*v) ake_buf_json_string(&b, v, strlen(v));
    else ake_buf_puts(&b, "null");
    ake_buf_puts(&b, load ? ",\"state\":\"serving\"}" : ",\"state\":\"unloading\"}");
    return reply(c, 200, &b);
}

/* /admin/experiments and below. */
static enum MHD_Result experiments(ake_server *s, struct MHD_Connection *c, const char *method, const char *url,
                                   const admin_req *a) {
    ake_api_error e = {0};
    const bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD"), post = !strcmp(method, "POST");
    const char *rest = url + strlen("/admin/experiments");
    ake_buf b = {0};
    const char *body = a->body.data ? a->body.data : "";
    int rc = 0, ok_status = 200;
    if (!*rest || !strcmp(rest, "/")) {
        if (get) ake_router_list(s->router, &b);
        else if (post) {
            rc = ake_router_create_experiment(s->router, body, a->body.len, &b, &e);
            ok_status = 201;
        }
        else rc = ake_api_fail(&e, 405, NULL, "use GET or POST");
    } else {
        char name[AKE_AB_NAME_MAX];
        const char *n = rest + 1, *slash = strchr(n, '/');
        const size_t len = slash ? (size_t)(slash - n) : strlen(n);
        const char *op = slash ? slash + 1 : "";
        if (len == 0 || len >= sizeof name) {
            rc = ake_api_fail(&e, 404, NULL, "no experiment `%.100s`", n);
        } else {
            snprintf(name, sizeof name, "%.*s", (int)len, n);
            if (!*op) {
                if (get) rc = ake_router_get(s->router, name, &b, &e);
                else if (!strcmp(method, "PATCH")) rc = ake_router_patch(s->router, name, body, a->body.len, &b, &e);
                else if (!strcmp(method, "DELETE")) rc = ake_router_remove(s->router, name, &b, &e);
                else rc = ake_api_fail(&e, 405, NULL, "use GET, PATCH or DELETE");
            } else if (!strcmp(op, "rollback") || !strcmp(op, "promote")) {
                if (!post) rc = ake_api_fail(&e, 405, NULL, "use POST");
                else if (!strcmp(op, "rollback")) rc = ake_router_rollback(s->router, name, &b, &e);
                else rc = ake_router_promote(s->router, name, &b, &e);
            } else if (!strcmp(op, "snapshot")) {
                rc = get ? ake_router_snapshot(s->router, name, &b, &e) : ake_api_fail(&e, 405, NULL, "use GET");
            } else {
                rc = ake_api_fail(&e, 404, NULL, "no admin route %s %.200s", method, url);
            }
        }
    }
    if (rc) {
        ake_buf_release(&b);
        return reply_error(c, method, url, &e);
    }
    if (!get) ake_log(AKE_LOG_INFO, "admin %s %s -> %d", method, url, ok_status);
    return reply(c, ok_status, &b);
}

static enum MHD_Result route(ake_server *s, struct MHD_Connection *c, const char *method, const char *url,
                             const admin_req *a) {
    ake_api_error e = {0};
    const bool post = !strcmp(method, "POST"), get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    if (s->o.admin_api_key && *s->o.admin_api_key && !ake_http_authorized(c, s->o.admin_api_key)) {
        ake_api_fail(&e, 401, NULL, "the admin API needs `Authorization: Bearer <admin key>`");
        return reply_error(c, method, url, &e);
    }
    if (a->too_big) {
        ake_api_fail(&e, 413, NULL, "admin bodies are at most %d bytes", ADMIN_MAX_BODY);
        return reply_error(c, method, url, &e);
    }
    if (!strcmp(url, "/admin/models")) {
        if (!get) return reply_error(c, method, url, &(ake_api_error){.status = 405, .msg = "use GET"});
        ake_buf b = {0};
        ake_buf_puts(&b, "{\"models\":");
        ake_registry_write_models(s->reg, s->started, &b);
        ake_buf_puts(&b, ",\"loaded\":");
        ake_registry_write_info(s->reg, true, &b);
        ake_buf_puts(&b, "}");
        return reply(c, 200, &b);
    }
    if (!strcmp(url, "/admin/repository/poll")) {
        if (!post) return reply_error(c, method, url, &(ake_api_error){.status = 405, .msg = "use POST"});
        ake_registry_poll(s->reg);
        ake_buf b = {0};
        ake_registry_write_models(s->reg, s->started, &b);
        return reply(c, 200, &b);
    }
    if (!strncmp(url, "/admin/experiments", 18) && (url[18] == 0 || url[18] == '/'))
        return experiments(s, c, method, url, a);
    static const char prefix[] = "/admin/models/";
    if (!strncmp(url, prefix, sizeof prefix - 1)) {
        const char *name = url + sizeof prefix - 1, *slash = strrchr(name, '/');
        char n[AKE_MODEL_NAME_MAX];
        if (slash && slash > name && (!strcmp(slash, "/load") || !strcmp(slash, "/unload"))) {
            if (!post) return reply_error(c, method, url, &(ake_api_error){.status = 405, .msg = "use POST"});
            if ((size_t)(slash - name) >= sizeof n) {
                ake_api_fail(&e, 422, NULL, "model names are at most %zu bytes", sizeof n - 1);
                return reply_error(c, method, url, &e);
            }
            snprintf(n, sizeof n, "%.*s", (int)(slash - name), name);
            return model_op(s, c, method, url, n, !strcmp(slash, "/load"), &a->body);
        }
    }
    ake_api_fail(&e, 404, NULL, "no admin route %s %.200s", method, url);
    return reply_error(c, method, url, &e);
}

enum MHD_Result ake_admin_on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                     const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    admin_req *a = *con_cls;
    if (!a) {
        if (!(a = calloc(1, sizeof *a))) return MHD_NO;
        *con_cls = a;
        return MHD_YES;
    }
    if (*upload_size) {
        if (a->body.len + *upload_size > ADMIN_MAX_BODY) a->too_big = true;
        else ake_buf_put(&a->body, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    return route(cls, c, method, url, a);
}

void ake_admin_on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                            enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)c;
    (void)toe;
    admin_req *a = *con_cls;
    if (!a) return;
    ake_buf_release(&a->body);
    free(a);
    *con_cls = NULL;
}
