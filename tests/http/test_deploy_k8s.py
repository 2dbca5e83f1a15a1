"""The Kubernetes manifests we ship (deploy/k8s) against the real tools, offline (issue 12):

- every kustomization renders with Debian's kubectl 1.20, whose built-in Kustomize v2.0.3 is the
  oldest the files support (scripts/setup unpacks it into .tools/);
- the rendered Kubernetes resources pass kubernetes-validate --strict against the 1.30 schemas,
  and checkov's Kubernetes checks (security and reliability) find nothing;
- the custom resources (Istio, Flagger, Prometheus Operator) and the prometheus-adapter values pass
  our own schemas of the fields we use (deploy/k8s/schemas, each naming the version it follows),
  which refuse unknown fields: a misspelt field fails here instead of being ignored by a cluster;
- what the files promise holds: grace period over preStop + request timeout, probes on /health,
  the plan's canary steps and gates, the alerts equal to deploy/prometheus's, every AKE_* variable
  a real option, the Flagger and adapter queries valid PromQL on metrics the server exports;
- a server started with a rendered Deployment's environment (the pod's paths mapped onto this
  machine) becomes healthy, and the in-pod A/B overlay's experiment starts.
What this cannot show (no cluster, Istio or Flagger here) is named in the README."""
import json
import os
import re
import subprocess

import jsonschema
import pytest
import requests
import yaml

from conftest import AKE_BIN, MODEL_DIR, REPO, Server
from deploy_tools import assert_promql_parses, checkov, containerfile_stages, exported_metrics

K8S = os.path.join(REPO, "deploy", "k8s")
TOOLS = os.path.join(REPO, ".tools")
KUBECTL = os.path.join(TOOLS, "kubectl")
OVERLAYS = ["cpu", "gpu", "canary-flagger", "canary-istio/step-5", "canary-istio/step-25",
            "canary-istio/step-50", "canary-istio/step-0", "ab-in-pod"]
CANARY_STEPS = {"canary-istio/step-5": (95, 5), "canary-istio/step-25": (75, 25),
                "canary-istio/step-50": (50, 50), "canary-istio/step-0": (100, 0)}
KUBE_VERSION = "1.30.0"  # the oldest Kubernetes still in support when this was written
SCHEMAS = {  # kind -> our schema of it (the kinds Kubernetes' own schemas do not cover)
    "VirtualService": "istio-virtualservice", "DestinationRule": "istio-destinationrule",
    "Canary": "flagger-canary", "MetricTemplate": "flagger-metrictemplate",
    "PodMonitor": "prometheus-operator-podmonitor", "PrometheusRule": "prometheus-operator-prometheusrule",
}
EXPERIMENT = os.path.join(K8S, "overlays", "ab-in-pod", "experiments.json")


def tool(name):
    path = os.path.join(TOOLS, "venv", "bin", name) if name != "kubectl" else KUBECTL
    assert os.access(path, os.X_OK), f"{path} not found: bash scripts/setup installs it"
    return path


def schema(name):
    return json.load(open(os.path.join(K8S, "schemas", name + ".schema.json")))


def kustomize(folder):
    r = subprocess.run([tool("kubectl"), "kustomize", folder], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"kubectl kustomize {folder}: {r.stderr}"
    return r.stdout


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """{overlay: (path of the rendered YAML, [documents])}."""
    out = tmp_path_factory.mktemp("k8s")
    v = subprocess.run([tool("kubectl"), "version", "--client"], capture_output=True, text=True).stdout
    assert 'GitVersion:"v1.20.2"' in v, v  # Kustomize v2.0.3: what the manifests are written for
    res = {}
    for o in OVERLAYS:
        text = kustomize(os.path.join(K8S, "overlays", o))
        path = out / (o.replace("/", "_") + ".yaml")
        path.write_text(text)
        res[o] = (str(path), list(yaml.safe_load_all(text)))
    return res


def docs_of(rendered, kind, overlays=OVERLAYS):
    return [(o, d) for o in overlays for d in rendered[o][1] if d["kind"] == kind]


def test_every_kustomization_renders_whole_documents():
    """Every folder with a kustomization.yaml (the base's parts too) renders, and every document
    is a whole resource (Kustomize v2.0.3 leaves an empty one where `$patch: delete` was used)."""
    folders = [d for d, _, files in os.walk(K8S) if "kustomization.yaml" in files]
    assert len(folders) >= 12
    for f in folders:
        for d in yaml.safe_load_all(kustomize(f)):
            assert d and d.get("apiVersion") and d.get("kind") and d["metadata"].get("name"), (f, d)
            if d["kind"] != "Namespace":
                assert d["metadata"].get("namespace") == "akidb-embed" or "base" in f, (f, d["kind"])


def test_kubernetes_resources_pass_kubernetes_validate(rendered):
    for o, (path, docs) in rendered.items():
        r = subprocess.run([tool("kubernetes-validate"), "--strict", "-k", KUBE_VERSION, path],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode in (0, 2) and "ERROR" not in r.stdout + r.stderr, (o, r.stdout + r.stderr)
        passed = len(re.findall(r"^INFO .* passed for resource", r.stdout, re.M))
        no_schema = re.findall(r"Couldn't find schema for kind (\w+)", r.stdout + r.stderr)
        assert passed + len(no_schema) == len(docs), (o, r.stdout)
        # what Kubernetes' schemas do not know, ours must (test below)
        assert set(no_schema) <= set(SCHEMAS), (o, no_schema)


def test_checkov_finds_nothing(rendered):
    failed, passed, skipped = checkov("kubernetes", [path for path, _ in rendered.values()])
    assert not failed, failed
    assert passed >= 500 and skipped == {"CKV_K8S_43"}, (passed, skipped)  # the one skip is explained in the Deployment


def test_custom_resources_pass_our_schemas(rendered):
    seen = set()
    for o in OVERLAYS:
        for d in rendered[o][1]:
            if d["kind"] in SCHEMAS:
                jsonschema.validate(d, schema(SCHEMAS[d["kind"]]))
                seen.add(d["kind"])
    assert seen == set(SCHEMAS), seen
    jsonschema.validate(yaml.safe_load(open(os.path.join(K8S, "prometheus-adapter", "values.yaml"))),
                        schema("prometheus-adapter"))


def test_our_schemas_refuse_what_a_cluster_would_silently_ignore(rendered):
    """The schemas are not vacuous: a misspelt field, a weight as a string, an unknown retry
    condition and a missing query each fail."""
    vs = next(d for _, d in docs_of(rendered, "VirtualService"))
    canary = next(d for _, d in docs_of(rendered, "Canary"))
    mt = next(d for _, d in docs_of(rendered, "MetricTemplate"))
    bad = [
        ("VirtualService", lambda d: d["spec"]["http"][0]["route"][0].update(weigth=95), vs),
        ("VirtualService", lambda d: d["spec"]["http"][0]["retries"].update(retryOn="5xx,on-fire"), vs),
        ("Canary", lambda d: d["spec"]["analysis"].update(stepWeights=["5"]), canary),
        ("Canary", lambda d: d["spec"]["analysis"]["metrics"][0].update(thresholdrange={"max": 1}), canary),
        ("MetricTemplate", lambda d: d["spec"].pop("query"), mt),
    ]
    for kind, mutate, doc in bad:
        d = json.loads(json.dumps(doc))
        mutate(d)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(d, schema(SCHEMAS[kind]))


def serve_help():
    r = subprocess.run([AKE_BIN, "serve", "--help"], capture_output=True, text=True)
    return r.stdout + r.stderr


def serve_options():
    return set(re.findall(r"\b(AKE_[A-Z_]+)\b", serve_help()))


def test_deployments_keep_their_promises(rendered):
    options = serve_options()
    deployments = docs_of(rendered, "Deployment")
    assert len(deployments) == len(OVERLAYS) + len(CANARY_STEPS)  # canary-istio's steps have two each
    for o, d in deployments:
        pod = d["spec"]["template"]["spec"]
        c = pod["containers"][0]
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert set(env) <= options, (o, set(env) - options)
        grace = pod["terminationGracePeriodSeconds"]
        pre_stop = int(c["lifecycle"]["preStop"]["exec"]["command"][-1])
        # the drain waits for a request that queued up to the timeout and then runs about as long
        # in the engine (the default token limit is what the engines embed within the timeout)
        assert "AKE_MAX_REQUEST_TOKENS" not in env, o
        assert grace > pre_stop + 2 * int(env["AKE_REQUEST_TIMEOUT_MS"]) / 1000, o
        assert "replicas" not in d["spec"], f"{o}: the HPA owns the count; `replicas` would reset it on every apply"
        # Istio's sidecar keeps proxying through the longest drain and is gone before the kill
        ann = d["spec"]["template"]["metadata"]["annotations"]
        drain = int(json.loads(ann["proxy.istio.io/config"])["terminationDrainDuration"].rstrip("s"))
        assert pre_stop + 2 * int(env["AKE_REQUEST_TIMEOUT_MS"]) / 1000 <= drain < grace, o
        assert ann["sidecar.istio.io/proxyCPU"] == ann["sidecar.istio.io/proxyCPULimit"], o  # Guaranteed QoS
        # a liveness failure can never cut the drain short
        live = c["livenessProbe"]
        assert live["periodSeconds"] * live["failureThreshold"] >= grace, o
        for p in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert c[p]["httpGet"] == {"path": "/health", "port": "http"}, (o, p)
        assert pod["securityContext"]["runAsNonRoot"] and c["securityContext"]["readOnlyRootFilesystem"], o
        if o == "gpu":
            assert c["resources"]["limits"]["nvidia.com/gpu"] == "1" and env["AKE_DEVICE"] == "cuda:0"
        # the selector picks the Deployment's own pods
        assert d["spec"]["selector"]["matchLabels"].items() <= d["spec"]["template"]["metadata"]["labels"].items(), o


def test_the_alerts_are_deploy_prometheus_alerts(rendered):
    rules = yaml.safe_load(open(os.path.join(REPO, "deploy", "prometheus", "rules", "akidb-embed.yml")))
    for o, d in docs_of(rendered, "PrometheusRule"):
        assert d["spec"] == rules, f"{o}: deploy/k8s/base/shared/prometheusrule.yaml differs from the rules file"
    for o, d in docs_of(rendered, "PodMonitor"):
        # the alerts select job="akidb-embed"
        assert d["spec"]["jobLabel"] in d["spec"]["selector"]["matchLabels"], o


def test_canaries_follow_the_plan(rendered):
    """Istio's steps and Flagger's steps and gates are the plan's (the in-pod experiment's)."""
    plan = json.load(open(EXPERIMENT))
    steps = plan["rollout"]["steps"]
    for o, (stable, canary) in CANARY_STEPS.items():
        (_, vs), = docs_of(rendered, "VirtualService", [o])
        route = vs["spec"]["http"][0]["route"]
        assert [(r["destination"]["subset"], r["weight"]) for r in route] == [("stable", stable), ("canary", canary)]
        assert canary in steps or canary == 0
        # the longest request the server admits (queue timeout + as long in the engine) fits
        timeout_s = int(vs["spec"]["http"][0]["timeout"].rstrip("s"))
        assert timeout_s > 2 * 30 and int(vs["spec"]["http"][0]["retries"]["perTryTimeout"].rstrip("s")) == timeout_s
        (_, dr), = docs_of(rendered, "DestinationRule", [o])
        subsets = {s["name"]: s["labels"] for s in dr["spec"]["subsets"]}
        tracks = {d["spec"]["template"]["metadata"]["labels"]["track"] for _, d in docs_of(rendered, "Deployment", [o])}
        assert {s["track"] for s in subsets.values()} == tracks == {"stable", "canary"}
    (_, c), = docs_of(rendered, "Canary", ["canary-flagger"])
    a = c["spec"]["analysis"]
    assert a["stepWeights"] == [s for s in steps if s < 100]  # Flagger promotes after its last step
    gates = plan["rollout"]["gates"]
    limits = {m["name"]: m["thresholdRange"] for m in a["metrics"]}
    assert limits == {"error-rate-increase": {"max": gates["error_rate_increase_max"]},
                      "p95-improvement": {"min": gates["latency_improvement_min"]}}
    templates = {d["metadata"]["name"] for _, d in docs_of(rendered, "MetricTemplate", ["canary-flagger"])}
    assert {m["templateRef"]["name"] for m in a["metrics"]} == templates
    (_, dep), = docs_of(rendered, "Deployment", ["canary-flagger"])
    assert set(dep["spec"]["selector"]["matchLabels"]) == {"app"}  # the label Flagger rewrites for the primary


def test_the_way_out_of_a_manual_canary_removes_exactly_the_canary(rendered):
    """Promotion and rollback end the same way (README): step-0 sends everything to stable, then
    `kubectl delete -k canary-istio/canary-arm` and the VirtualService and DestinationRule by name.
    What that deletes must be exactly what canary-istio adds to the cpu overlay."""
    ident = lambda d: (d["kind"], d["metadata"]["name"])
    cpu = {ident(d) for d in rendered["cpu"][1]}
    arm = {ident(d) for d in yaml.safe_load_all(kustomize(os.path.join(K8S, "overlays", "canary-istio", "canary-arm")))}
    assert arm == {("Deployment", "akidb-embed-canary"), ("HorizontalPodAutoscaler", "akidb-embed-canary")}
    for o in CANARY_STEPS:
        extra = {ident(d) for d in rendered[o][1]} - cpu
        assert extra == arm | {("VirtualService", "akidb-embed"), ("DestinationRule", "akidb-embed")}, o


def pods_of(docs):
    """[(Deployment, pod labels, container port names)], with the -primary Deployment Flagger
    makes of a Canary's target (its pods labelled app: NAME-primary)."""
    out = []
    for d in docs:
        if d["kind"] == "Deployment":
            t = d["spec"]["template"]
            ports = [p for c in t["spec"]["containers"] for p in c.get("ports", [])]
            out.append((d["metadata"]["name"], t["metadata"]["labels"], {p["name"] for p in ports},
                        {p["containerPort"] for p in ports}))
    for c in (d for d in docs if d["kind"] == "Canary"):
        for name, labels, names, numbers in list(out):
            if name == c["spec"]["targetRef"]["name"]:
                out.append((name + "-primary", dict(labels, app=name + "-primary"), names, numbers))
    return out


def reference_errors(docs):
    """What in one rendered overlay points at nothing: selectors that match no pods, ports no
    container names, targets, hosts, subsets, claims, config maps and accounts that do not exist."""
    errors = []
    pods = pods_of(docs)
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d

    def matching(selector):
        return [p for p in pods if selector and selector.items() <= p[1].items()]

    services = dict(by_kind.get("Service", {}))
    for c in by_kind.get("Canary", {}).values():  # Flagger writes these
        t = c["spec"]["targetRef"]["name"]
        port = {"port": c["spec"]["service"]["port"], "targetPort": c["spec"]["service"]["targetPort"]}
        for name, app in ((t, t + "-primary"), (t + "-primary", t + "-primary"), (t + "-canary", t)):
            services[name] = {"spec": {"selector": {"app": app}, "ports": [port]}}
        if c["spec"]["service"]["port"] != 8080:  # the port every client uses (base/service)
            errors.append(f"Canary: service port {c['spec']['service']['port']} is not the Service's 8080")
        if c["spec"]["targetRef"]["name"] not in by_kind.get("Deployment", {}):
            errors.append(f"Canary targets a missing Deployment {t}")
        a = c["spec"].get("autoscalerRef")
        if a and a["name"] not in by_kind.get(a["kind"], {}):
            errors.append(f"Canary's autoscalerRef {a['name']} is missing")
        for m in c["spec"]["analysis"]["metrics"]:
            if "templateRef" in m and m["templateRef"]["name"] not in by_kind.get("MetricTemplate", {}):
                errors.append(f"Canary metric {m['name']}: no MetricTemplate {m['templateRef']['name']}")
    for name, svc in services.items():
        matched = matching(svc["spec"]["selector"])
        if not matched:
            errors.append(f"Service {name} selects no pods")
        for p in svc["spec"]["ports"]:
            tp = p.get("targetPort", p["port"])
            if isinstance(tp, str) and any(tp not in m[2] for m in matched):
                errors.append(f"Service {name}: targetPort {tp} is not a container port of its pods")
    for kind in ("PodDisruptionBudget", "PodMonitor"):
        for name, d in by_kind.get(kind, {}).items():
            matched = matching(d["spec"]["selector"]["matchLabels"])
            if not matched:
                errors.append(f"{kind} {name} selects no pods")
            for ep in d["spec"].get("podMetricsEndpoints", []):
                if any(ep["port"] not in m[2] for m in matched):
                    errors.append(f"PodMonitor {name}: port {ep['port']} is not a container port")
                if ep.get("path", "/metrics") != "/metrics":
                    errors.append(f"PodMonitor {name}: the server's metrics are at /metrics, not {ep['path']}")
    for name, d in by_kind.get("NetworkPolicy", {}).items():
        matched = matching(d["spec"]["podSelector"]["matchLabels"])
        if not matched:
            errors.append(f"NetworkPolicy {name} selects no pods")
        for rule in d["spec"].get("ingress", []):
            for p in rule.get("ports", []):
                if any(p["port"] not in m[3] for m in matched):
                    errors.append(f"NetworkPolicy {name}: port {p['port']} is not a container port")
    for name, d in by_kind.get("HorizontalPodAutoscaler", {}).items():
        ref = d["spec"]["scaleTargetRef"]
        if ref["name"] not in by_kind.get(ref["kind"], {}):
            errors.append(f"HPA {name} scales a missing {ref['kind']} {ref['name']}")
    subsets = {}
    for name, d in by_kind.get("DestinationRule", {}).items():
        host = d["spec"]["host"]
        if host not in services:
            errors.append(f"DestinationRule {name}: no Service {host}")
            continue
        behind = matching(services[host]["spec"]["selector"])
        for sub in d["spec"].get("subsets", []):
            subsets[(host, sub["name"])] = sub
            if not [p for p in behind if sub["labels"].items() <= p[1].items()]:
                errors.append(f"DestinationRule {name}: subset {sub['name']} matches no pod behind {host}")
    for name, d in by_kind.get("VirtualService", {}).items():
        for h in d["spec"]["http"]:
            for r in h["route"]:
                dest = r["destination"]
                if dest["host"] not in services:
                    errors.append(f"VirtualService {name}: no Service {dest['host']}")
                    continue
                if "subset" in dest and (dest["host"], dest["subset"]) not in subsets:
                    errors.append(f"VirtualService {name}: no subset {dest['subset']} of {dest['host']}")
                ports = {p["port"] for p in services[dest["host"]]["spec"]["ports"]}
                if "port" in dest and dest["port"]["number"] not in ports:
                    errors.append(f"VirtualService {name}: {dest['host']} has no port {dest['port']['number']}")
            if sum(r.get("weight", 0) for r in h["route"]) != 100:
                errors.append(f"VirtualService {name}: weights do not sum to 100")
    for name, d in by_kind.get("Deployment", {}).items():
        spec = d["spec"]["template"]["spec"]
        if d["spec"]["selector"]["matchLabels"].items() > d["spec"]["template"]["metadata"]["labels"].items():
            errors.append(f"Deployment {name}: its selector does not select its own pods")
        if spec.get("serviceAccountName") and spec["serviceAccountName"] not in by_kind.get("ServiceAccount", {}):
            errors.append(f"Deployment {name}: no ServiceAccount {spec['serviceAccountName']}")
        for c in spec["containers"]:
            env = {e["name"]: e.get("value") for e in c.get("env", [])}
            if "AKE_PORT" in env and {int(env["AKE_PORT"])} != {p["containerPort"] for p in c.get("ports", [])}:
                errors.append(f"Deployment {name}: the server listens on AKE_PORT {env['AKE_PORT']}, not its containerPort")
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for c in spec["containers"]:
            for m in c.get("volumeMounts", []):
                if m["name"] not in volumes:
                    errors.append(f"Deployment {name}: mount of a missing volume {m['name']}")
        for v in volumes.values():
            if "persistentVolumeClaim" in v and v["persistentVolumeClaim"]["claimName"] not in by_kind.get("PersistentVolumeClaim", {}):
                errors.append(f"Deployment {name}: no PersistentVolumeClaim {v['persistentVolumeClaim']['claimName']}")
            if "configMap" in v and v["configMap"]["name"] not in by_kind.get("ConfigMap", {}):
                errors.append(f"Deployment {name}: no ConfigMap {v['configMap']['name']}")
    return errors


def test_every_reference_points_at_something(rendered):
    for o in OVERLAYS:
        assert not reference_errors(rendered[o][1]), (o, reference_errors(rendered[o][1]))


MISTAKES = [  # (overlay, kind, name, what a typo does to it)
    ("cpu", "Service", "akidb-embed", lambda d: d["spec"]["selector"].update(app="akidb-embd")),
    ("cpu", "Service", "akidb-embed", lambda d: d["spec"]["ports"][0].update(targetPort="htp")),
    ("cpu", "PodDisruptionBudget", "akidb-embed", lambda d: d["spec"]["selector"]["matchLabels"].update(track="stabel")),
    ("cpu", "PodMonitor", "akidb-embed", lambda d: d["spec"]["podMetricsEndpoints"][0].update(port="metrics")),
    ("cpu", "HorizontalPodAutoscaler", "akidb-embed", lambda d: d["spec"]["scaleTargetRef"].update(name="akidb")),
    ("cpu", "NetworkPolicy", "akidb-embed", lambda d: d["spec"]["podSelector"]["matchLabels"].update(x="y")),
    ("cpu", "Deployment", "akidb-embed", lambda d: d["spec"]["template"]["spec"].update(serviceAccountName="default")),
    ("canary-istio/step-5", "DestinationRule", "akidb-embed", lambda d: d["spec"].update(host="akidb-embed-canary")),
    ("canary-istio/step-5", "DestinationRule", "akidb-embed", lambda d: d["spec"]["subsets"][1]["labels"].update(track="canery")),
    ("canary-istio/step-5", "VirtualService", "akidb-embed", lambda d: d["spec"]["http"][0]["route"][1]["destination"].update(host="akidb-embed-canary")),
    ("canary-istio/step-5", "VirtualService", "akidb-embed", lambda d: d["spec"]["http"][0]["route"][0]["destination"]["port"].update(number=8081)),
    ("canary-istio/step-5", "VirtualService", "akidb-embed", lambda d: d["spec"]["http"][0]["route"][1].update(weight=10)),
    ("canary-flagger", "Canary", "akidb-embed", lambda d: d["spec"]["targetRef"].update(name="akidb")),
    ("canary-flagger", "Canary", "akidb-embed", lambda d: d["spec"]["service"].update(targetPort="htp")),
    ("canary-flagger", "Canary", "akidb-embed", lambda d: d["spec"]["analysis"]["metrics"][0]["templateRef"].update(name="x")),
    ("canary-flagger", "PodDisruptionBudget", "akidb-embed", lambda d: d["spec"]["selector"]["matchLabels"].update(app="akidb-embed-primery")),
    ("ab-in-pod", "Deployment", "akidb-embed", lambda d: d["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"].update(claimName="models")),
    ("cpu", "NetworkPolicy", "akidb-embed", lambda d: d["spec"]["ingress"][0]["ports"][0].update(port=9090)),
    ("cpu", "PodMonitor", "akidb-embed", lambda d: d["spec"]["podMetricsEndpoints"][0].update(path="/metrcs")),
    ("cpu", "Deployment", "akidb-embed", lambda d: [e.update(value="9090") for e in d["spec"]["template"]["spec"]["containers"][0]["env"] if e["name"] == "AKE_PORT"]),
    ("canary-flagger", "Canary", "akidb-embed", lambda d: d["spec"]["service"].update(port=8081)),
]


@pytest.mark.parametrize("overlay,kind,name,mistake", MISTAKES, ids=[f"{m[0]}-{m[1]}-{i}" for i, m in enumerate(MISTAKES)])
def test_a_broken_reference_is_caught(rendered, overlay, kind, name, mistake):
    docs = json.loads(json.dumps(rendered[overlay][1]))
    (d,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    mistake(d)
    assert reference_errors(docs)


def test_retries_and_template_variables_are_the_intended_ones(rendered):
    """Replays are for requests that got no answer or a 503 only (a 429 asks the client to back
    off), and a MetricTemplate uses only the variables Flagger fills in (a misspelt one is still
    valid PromQL, and matches nothing)."""
    retry = {"connect-failure", "refused-stream", "reset", "503"}
    for o, d in docs_of(rendered, "VirtualService"):
        assert set(d["spec"]["http"][0]["retries"]["retryOn"].split(",")) == retry, o
    for o, d in docs_of(rendered, "Canary"):
        assert set(d["spec"]["service"]["retries"]["retryOn"].split(",")) == retry, o
    for o, d in docs_of(rendered, "MetricTemplate", ["canary-flagger"]):
        used = set(re.findall(r"{{\s*([\w.]+)\s*}}", d["spec"]["query"]))
        assert used <= {"name", "namespace", "target", "service", "ingress", "interval"}, used
        assert {"namespace", "target", "interval"} <= used, used


def test_device_and_precision_are_ones_the_server_takes(rendered):
    help_text = serve_help()
    dtypes = set(re.search(r"engine precision: ([^(]*?)\(", help_text).group(1).replace("or", ",").replace(" ", "").split(",")) - {""}
    assert {"fp32", "fp16", "bf16", "int8", "fp8", "default"} <= dtypes, dtypes
    for o, d in docs_of(rendered, "Deployment"):
        env = {e["name"]: e.get("value") for e in d["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env.get("AKE_DTYPE", "default") in dtypes, (o, env.get("AKE_DTYPE"))
        assert re.fullmatch(r"cpu|cuda:\d+(,cuda:\d+)*", env.get("AKE_DEVICE", "cpu")), (o, env.get("AKE_DEVICE"))


def flagger_query(q, interval="1m"):
    """A MetricTemplate's query as Flagger fills it in for the Canary akidb-embed."""
    return q.replace("{{ namespace }}", "akidb-embed").replace("{{ target }}", "akidb-embed").replace(
        "{{ interval }}", interval)


def adapter_query():
    rule = yaml.safe_load(open(os.path.join(K8S, "prometheus-adapter", "values.yaml")))["rules"]["custom"][0]
    series = rule["seriesQuery"].split("{")[0]
    return series, rule["metricsQuery"].replace("<<.Series>>", series).replace(
        "<<.LabelMatchers>>", 'namespace="akidb-embed",pod=~"akidb-embed-.*"').replace("<<.GroupBy>>", "pod")


def test_flagger_and_autoscaler_queries_are_promql_on_exported_metrics(rendered, server, tmp_path):
    exprs = [flagger_query(d["spec"]["query"]) for _, d in docs_of(rendered, "MetricTemplate", ["canary-flagger"])]
    series, adapter = adapter_query()
    exprs.append(adapter)
    assert_promql_parses(exprs, tmp_path, "k8s")
    exported = exported_metrics(requests.get(server.url + "/metrics", timeout=30).text)
    for e in exprs:
        assert set(re.findall(r"\bake_[a-z_]+", e)) <= set(exported), e
    # every endpoint and status a query names is one the server counts (src/serve/metrics.c)
    src = open(os.path.join(REPO, "src", "serve", "metrics.c")).read()
    endpoints = set(re.findall(r'"(\w+)"', re.search(r"ep_names\[AKE_EP_COUNT\] = \{(.*?)\};", src, re.S).group(1)))
    statuses = set(re.findall(r"\d+", re.search(r"status_codes\[[^]]*\] = \{(.*?)\};", src, re.S).group(1)))
    for e in exprs:
        for label, values in re.findall(r'\b(endpoint|status)(?:=~|!~|!=|=)"([^"]*)"', e):
            for v in values.split("|"):
                assert v in (endpoints if label == "endpoint" else statuses), (label, v, e)
    # the HPA scales on the metric the adapter serves, a gauge the server exports
    hpa_metrics = {d["spec"]["metrics"][0]["pods"]["metric"]["name"] for _, d in docs_of(rendered, "HorizontalPodAutoscaler")}
    assert hpa_metrics == {series} and exported.get(series) == "gauge"


def image_env(image):
    """The ENV of the image a Deployment names, from deploy/container/Containerfile.cpu: the
    `runtime` target for a -nomodel tag, else the default (`baked`) one, which adds the model."""
    stages = containerfile_stages(os.path.join(REPO, "deploy", "container", "Containerfile.cpu"))
    env = {}
    for stage in ["runtime"] + ([] if image.endswith("-nomodel") else ["baked"]):
        for line in re.findall(r"^ENV (.*)$", stages[stage], re.M):
            env.update(kv.split("=", 1) for kv in line.split())
    assert env, image
    return env


def pod_env(rendered, overlay, mounts):
    """The environment overlay's (first) Deployment's container runs with: its image's ENV under
    the pod's env, with the pod's paths mapped onto this machine by mounts {pod path: local path}."""
    (_, d), *_ = docs_of(rendered, "Deployment", [overlay])
    c = d["spec"]["template"]["spec"]["containers"][0]
    env = image_env(c["image"])
    env.update({e["name"]: e["value"] for e in c["env"]})
    for k, v in env.items():
        for pod_path, local in mounts.items():
            if v.startswith(pod_path):
                env[k] = local + v[len(pod_path):]
    return env


def test_the_cpu_deployment_environment_serves(rendered, tmp_path):
    env = pod_env(rendered, "cpu", {"/opt/akidb-embed/models": os.path.dirname(MODEL_DIR)})
    assert env["AKE_MODEL"] == MODEL_DIR and env["AKE_HOST"] == "0.0.0.0"
    # --host/--port on the command line (the test's own free port) win over AKE_HOST/AKE_PORT
    with Server(tmp_path / "cpu.log", env=env) as s:
        r = requests.post(s.url + "/embed", json={"inputs": ["from the cpu overlay"]}, timeout=30)
        assert r.status_code == 200 and len(r.json()[0]) == 384
        assert requests.get(s.url + "/health", timeout=5).status_code == 200


def test_the_in_pod_ab_deployment_starts_its_experiment(rendered, tmp_path):
    """ab-in-pod: a repository like the one its PersistentVolumeClaim describes, the experiment
    from its ConfigMap, its environment: the server serves `minilm` with the experiment running."""
    repo = tmp_path / "models" / "minilm"
    (repo / "2").mkdir(parents=True)
    os.symlink(MODEL_DIR, repo / "1")
    for f in os.listdir(MODEL_DIR):
        os.symlink(os.path.join(MODEL_DIR, f), repo / "2" / f)
    (repo / "2" / "akidb-model.json").write_text('{"dtype": "int8"}')
    (repo / "akidb-model.json").write_text('{"version_policy": {"specific": ["1"]}}')
    (cm,) = [d for _, d in docs_of(rendered, "ConfigMap", ["ab-in-pod"])]
    etc, state = tmp_path / "etc", tmp_path / "state"
    etc.mkdir()
    state.mkdir()
    (etc / "experiments.json").write_text(cm["data"]["experiments.json"])
    env = pod_env(rendered, "ab-in-pod", {"/models": str(tmp_path / "models"), "/etc/akidb-embed": str(etc),
                                          "/var/lib/akidb-embed": str(state)})
    # the image has no model of its own: the repository's are the only ones
    assert "AKE_MODEL" not in env and env["AKE_ADMIN_PORT"] == "8081"
    env["AKE_ADMIN_PORT"] = "0"  # any free port here: 8081 may be taken on a shared machine
    with Server(tmp_path / "ab.log", env=env) as s:
        assert s.admin_url, s.log()
        e = requests.get(s.admin_url + "/admin/experiments/minilm-int8", timeout=10).json()
        assert e["status"] == "running" and e["model"] == "minilm", e
        r = requests.post(s.url + "/v1/embeddings", json={"model": "minilm", "input": "a", "user": "u1"}, timeout=30)
        assert r.status_code == 200 and r.headers["X-Model-Version"] in ("1", "2")
        # requests that name no model (TEI's /embed) are the experiment's too
        assert [m["id"] for m in requests.get(s.url + "/v1/models", timeout=10).json()["data"]] == ["minilm"]
    assert (state / "experiments.json").exists() and (state / "state.json").exists()
