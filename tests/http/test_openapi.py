"""GET /openapi.json describes every route, request and error shape; the server is tested against
it with schemathesis (no 5xx, every response matching its documented schema, status and content
type); and for the routes TEI also serves, our request and response fields carry TEI's names and
types (tei_fields.json: the list taken from TEI's published docs/openapi.json, see below).

    python tests/http/test_openapi.py TEI_OPENAPI.json > tests/http/tei_fields.json

rewrites the list from a TEI openapi.json (text-embeddings-inference, docs/openapi.json; the
committed list is from commit 0d124dc, TEI 1.9.3)."""
import json
import os
import subprocess
import sys

import pytest
import requests

HERE = os.path.dirname(os.path.abspath(__file__))
FIELDS = os.path.join(HERE, "tei_fields.json")
# Routes both servers have; TEI's /predict, /rerank, /embed_sparse serve other model types.
SHARED = ["/embed", "/embed_all", "/similarity", "/tokenize", "/decode", "/info", "/v1/embeddings"]
# Where we differ from TEI on purpose (checked to be the only differences):
#   /v1/embeddings error bodies: OpenAI's shape {"error": {"message", "type", "param", "code"}}
#     (issue 9: the OpenAI routes answer as OpenAI does), where TEI has {"message", "code", "type"}.
#   /info model_type: TEI's ModelType is one of classifier / embedding / reranker; we serve
#     embedding models only, so ours is the embedding variant alone.
ALLOWED = {("/info", "response", "model_type"), ("/v1/embeddings", "error", "message"),
           ("/v1/embeddings", "error", "code"), ("/v1/embeddings", "error", "error_type")}


def _resolve(schema, doc):
    while isinstance(schema, dict) and "$ref" in schema:
        node = doc
        for k in schema["$ref"].lstrip("#/").split("/"):
            node = node[k]
        schema = node
    return schema


def _sig(schema, doc, depth):
    """The structure of a schema, without descriptions, examples, defaults, bounds, enums or
    nullability: "string", "integer", "array<...>", "oneOf[...]", "{field:sig,...}"."""
    if depth > 12:
        return "..."
    s = _resolve(schema, doc)
    if "allOf" in s and len(s["allOf"]) == 1:
        return _sig(s["allOf"][0], doc, depth + 1)
    if "oneOf" in s:
        return "oneOf[" + ",".join(sorted(_sig(x, doc, depth + 1) for x in s["oneOf"])) + "]"
    t = s.get("type", "any")
    if t == "array":
        return "array<" + _sig(s.get("items", {}), doc, depth + 1) + ">"
    if t == "object" and "properties" in s:
        return "{" + ",".join(f"{k}:{_sig(v, doc, depth + 1)}" for k, v in sorted(s["properties"].items())) + "}"
    return t


def fields(doc):
    """{route: {"request": {field: sig}, "response": {field: sig} or {"": sig}, "error": {field: sig}}}
    of doc's shared routes ("error": the body of a 422, else of a 400)."""
    out = {}
    for path in SHARED:
        ops = doc["paths"].get(path, {})
        op = ops.get("post") or ops.get("get")
        entry = {}
        body = op.get("requestBody", {}).get("content", {}).get("application/json")
        if body:
            req = _resolve(body["schema"], doc)
            entry["request"] = {k: _sig(v, doc, 0) for k, v in req.get("properties", {}).items()}
        ok = op["responses"]["200"].get("content", {}).get("application/json")
        if ok:
            resp = _resolve(ok["schema"], doc)
            props = dict(resp.get("properties", {}))
            for part in resp.get("allOf", []):  # ours: Info = ModelInfo + server facts
                props.update(_resolve(part, doc).get("properties", {}))
            entry["response"] = {k: _sig(v, doc, 0) for k, v in props.items()} if props else {"": _sig(resp, doc, 0)}
        bad = (op["responses"].get("422") or op["responses"].get("400") or {}).get("content", {}).get("application/json")
        if bad:
            entry["error"] = {k: _sig(v, doc, 0) for k, v in _resolve(bad["schema"], doc)["properties"].items()}
        out[path] = entry
    return out


def test_our_fields_are_teis(server):
    ours = fields(requests.get(server.url + "/openapi.json", timeout=10).json())
    with open(FIELDS) as f:
        tei = json.load(f)
    missing, differ = [], []
    for path, parts in tei.items():
        for part, flds in parts.items():
            for name, want in flds.items():
                if (path, part, name) in ALLOWED:
                    continue
                got = ours.get(path, {}).get(part, {}).get(name)
                if got is None:
                    missing.append(f"{path} {part} `{name}`")
                elif got != want:
                    differ.append(f"{path} {part} `{name}`: ours {got}, TEI {want}")
    assert not missing and not differ, "\n".join(missing + differ)
    # the allowed differences are still differences (else the list above should lose them)
    for path, part, name in ALLOWED:
        assert ours[path][part].get(name) != tei[path][part][name], (path, part, name)


def test_openapi_and_docs_are_served(server):
    r = requests.get(server.url + "/openapi.json", timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    doc = r.json()
    assert doc["openapi"].startswith("3.")
    served = {"/", "/embed", "/embed_all", "/similarity", "/tokenize", "/decode", "/v1/embeddings", "/v1/models",
              "/info", "/health", "/metrics", "/openapi.json", "/docs"}
    assert set(doc["paths"]) == served
    r = requests.get(server.url + "/docs", timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert "openapi.json" in r.text


def test_docs_need_no_api_key(make_server):
    s = make_server("--api-key", "k1")
    assert requests.get(s.url + "/openapi.json", timeout=10).status_code == 200
    assert requests.get(s.url + "/docs", timeout=10).status_code == 200
    assert requests.post(s.url + "/embed", json={"inputs": "a"}, timeout=10).status_code == 401


def test_schemathesis(make_server, tmp_path):
    """Every operation of the description, with requests generated from its schemas: no 5xx,
    every status documented, every body matching its schema and content type."""
    st = os.path.join(os.path.dirname(sys.executable), "st")
    # small batch limits keep generated requests quick on 2 cores; timeouts off so that nothing
    # is a 503 for being slow
    s = make_server("--max-client-batch-size", "64", "--request-timeout-ms", "0")
    cmd = [st, "run", s.url + "/openapi.json", "--base-url", s.url,
           "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                       "response_schema_conformance,response_headers_conformance",
           "--hypothesis-max-examples", os.environ.get("AKE_SCHEMATHESIS_EXAMPLES", "40"),
           "--data-generation-method", "all", "--hypothesis-derandomize", "--hypothesis-suppress-health-check", "all",
           "--request-timeout", "60000", "--no-color", "--show-trace"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and " passed" in out, out[-8000:]


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        json.dump(fields(json.load(f)), sys.stdout, indent=1, sort_keys=True)
        print()
