/* `akidb-embed ab decide`: the rollout decision of an A/B experiment, offline, from a snapshot of
 * its samples (GET /admin/experiments/NAME/snapshot) and its plan: the same function the server
 * applies (serve/rollout.h), so the same samples give the same decision. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "base/json.h"
#include "cli/cli.h"
#include "serve/rollout.h"

static const char ab_help[] =
    "usage: akidb-embed ab decide --metrics SNAPSHOT.json [--plan EXPERIMENT.json]\n"
    "  Prints, as JSON, the rollout decision for a step's samples: wait, hold, next_step, promote or\n"
    "  rollback, with the reason and the numbers behind it (P50/P95 per arm, Mann-Whitney U, one-sided\n"
    "  p-value, effect size, error rates, agreement). Exit status 0 whatever the outcome, 1 on bad input.\n"
    "  --metrics FILE   a snapshot (GET /admin/experiments/NAME/snapshot writes one)\n"
    "  --plan FILE      the experiment (its rollout steps and gates); default: the plan inside the snapshot\n";

/* Reads and parses a JSON file; prints the error and returns false on failure (a file holding
 * only `null` included). */
static bool read_json(const char *path, json_object **root) {
    char err[512];
    if (ake_json_read_file(path, 256u << 20, root, err, sizeof err) != AKE_OK) {
        fprintf(stderr, "akidb-embed ab decide: %s\n", err);
        return false;
    }
    if (!*root) fprintf(stderr, "akidb-embed ab decide: %s holds null, not a JSON object\n", path);
    return *root != NULL;
}

static int decide(int argc, char **argv) {
    const char *metrics = NULL, *plan_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(ab_help, stdout);
            return 0;
        }
        if ((!strcmp(argv[i], "--metrics") || !strcmp(argv[i], "--plan")) && i + 1 >= argc) {
            fprintf(stderr, "akidb-embed ab decide: %s needs a file\n", argv[i]);
            return 1;
        }
        if (!strcmp(argv[i], "--metrics") || !strcmp(argv[i], "--plan")) {
            *(!strcmp(argv[i], "--metrics") ? &metrics : &plan_path) = argv[i + 1];
            i++;
            continue;
        }
        fprintf(stderr, "akidb-embed ab decide: unexpected argument '%s'\n\n%s", argv[i], ab_help);
        return 1;
    }
    if (!metrics) {
        fprintf(stderr, "akidb-embed ab decide: --metrics is required\n\n%s", ab_help);
        return 1;
    }
    json_object *snap_json = NULL, *plan_json = NULL, *pj = NULL;
    if (!read_json(metrics, &snap_json)) return 1;
    int rc = 1;
    char err[512];
    ake_ab_plan plan;
    ake_ab_snapshot snap;
    memset(&snap, 0, sizeof snap);
    if (plan_path) {
        if (!read_json(plan_path, &plan_json)) goto done;
        pj = plan_json;
    } else if (!json_object_object_get_ex(snap_json, "plan", &pj)) {
        fprintf(stderr, "akidb-embed ab decide: %s holds no plan: give --plan\n", metrics);
        goto done;
    }
    if (ake_ab_plan_parse(pj, &plan, err, sizeof err) != AKE_OK) {
        fprintf(stderr, "akidb-embed ab decide: %s: %s\n", plan_path ? plan_path : metrics, err);
        goto done;
    }
    if (!plan.has_rollout) {
        fprintf(stderr, "akidb-embed ab decide: the experiment has no rollout, so nothing to decide\n");
        goto done;
    }
    if (ake_ab_snapshot_parse(snap_json, &snap, err, sizeof err) != AKE_OK) {
        fprintf(stderr, "akidb-embed ab decide: %s: %s\n", metrics, err);
        goto done;
    }
    const char *want[2] = {plan.arms[ake_ab_control(&plan)].version, plan.arms[ake_ab_canary(&plan)].version};
    const char *have[2] = {snap.control.version, snap.canary.version};
    for (int k = 0; k < 2; k++)
        if (have[k][0] && strcmp(have[k], want[k])) {
            fprintf(stderr, "akidb-embed ab decide: the snapshot's %s is version %s, the plan's is %s\n",
                    k ? "canary" : "control", have[k], want[k]);
            goto done;
        }
    if (snap.step >= plan.rollout.n_steps) {
        fprintf(stderr, "akidb-embed ab decide: the snapshot's step %d is past the plan's %d steps\n", snap.step,
                plan.rollout.n_steps);
        goto done;
    }
    ake_ab_decision d;
    ake_ab_decide(&plan, &snap, &d);
    ake_buf b = {0};
    ake_ab_decision_write(&d, &b);
    printf("%s\n", b.data ? b.data : "{}");
    ake_buf_release(&b);
    rc = 0;
done:
    ake_ab_snapshot_release(&snap);
    json_object_put(snap_json);
    json_object_put(plan_json);
    return rc;
}

int ake_cmd_ab(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "decide")) return decide(argc - 1, argv + 1);
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        fputs(ab_help, stdout);
        return 0;
    }
    if (argc >= 2) fprintf(stderr, "akidb-embed ab: unknown subcommand '%s' (there is `decide`)\n\n%s", argv[1], ab_help);
    else fprintf(stderr, "akidb-embed ab: expected a subcommand\n\n%s", ab_help);
    return 1;
}
