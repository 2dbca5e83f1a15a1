"""TEI's clients and routes (issue 9, first part): the Hugging Face client
(`huggingface_hub.InferenceClient`, which posts every task to `POST /`), `POST /similarity`,
`X-Request-Id` on every response and in the log, `truncate` for token-id input, and
sentence-transformers prompts (`prompt_name`, `default_prompt_name`), never ignored."""
import json
import os
import re
import subprocess

import numpy as np
import pytest
import requests

from conftest import AKE_BIN, MODEL_DIR, MODEL_ID, ON_GPU, assert_close, cli_embed, cosine

TEXTS = ["The quick brown fox jumps over the lazy dog.", "A fast auburn fox leaps over a sleepy hound.",
         "Stock markets fell sharply today.", "hello"]


@pytest.fixture(scope="module")
def ref():
    return dict(zip(TEXTS, cli_embed(TEXTS)))


def test_hugging_face_client(server, ref):
    from huggingface_hub import InferenceClient
    client = InferenceClient(base_url=server.url)
    got = client.feature_extraction(TEXTS[0])  # POST / {"inputs": "..."}
    assert_close(np.asarray(got).reshape(-1), ref[TEXTS[0]], "feature_extraction")
    got = client.feature_extraction(TEXTS[0], normalize=True, truncate=True, truncation_direction="left")
    assert_close(np.asarray(got).reshape(-1), ref[TEXTS[0]], "feature_extraction with options")
    sims = client.sentence_similarity(TEXTS[0], other_sentences=TEXTS[1:])  # POST / {"inputs": {...}}
    want = [cosine(ref[TEXTS[0]], ref[t]) for t in TEXTS[1:]]
    assert len(sims) == 3
    assert max(abs(a - b) for a, b in zip(sims, want)) <= (1e-4 if ON_GPU else 1e-6), (sims, want)
    assert sims[0] > sims[1]  # the paraphrase is nearer than the unrelated sentence


def test_similarity_route(server, ref):
    body = {"inputs": {"source_sentence": TEXTS[0], "sentences": TEXTS[1:]}, "model": MODEL_ID}
    r = requests.post(server.url + "/similarity", json=body, timeout=30)
    assert r.status_code == 200, r.text
    want = [cosine(ref[TEXTS[0]], ref[t]) for t in TEXTS[1:]]
    assert np.max(np.abs(np.asarray(r.json()) - want)) <= (1e-4 if ON_GPU else 1e-6)
    for bad, status, words in (({"inputs": {"sentences": ["a"]}}, 422, "source_sentence"),
                               ({"inputs": {"source_sentence": "a", "sentences": []}}, 400, "empty"),
                               ({"inputs": {"source_sentence": "a", "sentences": "b"}}, 422, "array"),
                               ({"inputs": {"source_sentence": "a", "sentences": ["b", 3]}}, 422, "sentences[1]"),
                               ({"inputs": ["a"]}, 422, "object")):
        r = requests.post(server.url + "/similarity", json=bad, timeout=30)
        assert r.status_code == status and words in r.json()["error"], (bad, r.text)
    r = requests.post(server.url + "/", json={"inputs": ["a", "b"]}, timeout=30)
    assert r.status_code == 200 and len(r.json()) == 2
    assert requests.get(server.url + "/", timeout=30).status_code == 405


def test_request_id(server):
    r = requests.post(server.url + "/embed", json={"inputs": "x"}, headers={"X-Request-Id": "client-7"}, timeout=30)
    assert r.headers["X-Request-Id"] == "client-7"
    made = {requests.get(server.url + "/health", timeout=10).headers["X-Request-Id"] for _ in range(20)}
    assert len(made) == 20 and all(re.fullmatch(r"[0-9a-f]{16}", m) for m in made)
    for bad in ("has space", "x" * 200):
        r = requests.get(server.url + "/health", headers={"X-Request-Id": bad}, timeout=10)
        assert re.fullmatch(r"[0-9a-f]{16}", r.headers["X-Request-Id"]), bad
    r = requests.post(server.url + "/embed", json={"inputs": []}, headers={"X-Request-Id": "bad-one-42"}, timeout=30)
    assert r.status_code == 400 and r.headers["X-Request-Id"] == "bad-one-42"
    assert "[bad-one-42] POST /embed -> 400" in server.log()


def test_truncate_token_ids(server):
    """truncate:true cuts a too-long token-id input to the model's limit, keeping [CLS] and [SEP]."""
    ids = [101] + [2000 + i % 500 for i in range(400)] + [102]
    url = server.url + "/v1/embeddings"
    r = requests.post(url, json={"model": MODEL_ID, "input": [ids]}, timeout=30)
    assert r.status_code == 400 and "truncate" in r.json()["error"]["message"]
    r = requests.post(url, json={"model": MODEL_ID, "input": [ids], "truncate": True}, timeout=30)
    assert r.status_code == 200, r.text
    cut = ids[:255] + [102]  # 256 tokens: [CLS], the first 254, [SEP]
    want = requests.post(url, json={"model": MODEL_ID, "input": [cut]}, timeout=30)
    assert_close(r.json()["data"][0]["embedding"], want.json()["data"][0]["embedding"], "truncated ids",
                 same_engine=True)
    assert r.json()["usage"]["prompt_tokens"] == 256


def test_prompt_name_is_not_ignored(server):
    """A model without prompts: any prompt_name is a 422 that says so."""
    r = requests.post(server.url + "/embed", json={"inputs": "x", "prompt_name": "query"}, timeout=30)
    assert r.status_code == 422 and "no prompts" in r.json()["error"], r.text
    r = requests.post(server.url + "/embed", json={"inputs": "x", "prompt_name": 3}, timeout=30)
    assert r.status_code == 422


def prompt_model(tmp_path, name, cfg):
    """MiniLM with its own config_sentence_transformers.json (the other files linked)."""
    d = tmp_path / name
    d.mkdir()
    for f in os.listdir(MODEL_DIR):
        if f != "config_sentence_transformers.json":
            os.symlink(os.path.join(MODEL_DIR, f), d / f)
    (d / "config_sentence_transformers.json").write_text(json.dumps(cfg))
    return str(d)


def test_prompts(make_server, tmp_path):
    """prompt_name puts the prompt before every text, as sentence-transformers does (prompt + text
    is what is tokenized: token counts and truncation include it); default_prompt_name applies
    when a request names none; an unknown name is a 422 naming the model's prompts."""
    prompts = {"query": "query: ", "passage": "passage: "}
    s = make_server("--model", "m=" + prompt_model(tmp_path, "p", {"prompts": prompts, "default_prompt_name": "query"}))
    info = requests.get(s.url + "/info", timeout=10).json()
    assert info["prompts"] == prompts and info["default_prompt_name"] == "query"
    texts = ["how do I bake bread", "the capital of France", " ".join(["long"] * 400)]
    want = cli_embed(["passage: " + t for t in texts] + ["query: " + t for t in texts])
    tol = 1e-4 if ON_GPU else 1e-6
    r = requests.post(s.url + "/embed", json={"inputs": texts, "prompt_name": "passage", "truncate": True}, timeout=60)
    assert r.status_code == 200, r.text
    assert np.max(np.abs(np.asarray(r.json()) - np.asarray(want[:3]))) <= tol
    r = requests.post(s.url + "/embed", json={"inputs": texts, "truncate": True}, timeout=60)  # the default: query
    assert np.max(np.abs(np.asarray(r.json()) - np.asarray(want[3:]))) <= tol
    # OpenAI requests take the default prompt too; usage counts its tokens
    r = requests.post(s.url + "/v1/embeddings", json={"model": "m", "input": "hello"}, timeout=30)
    assert r.json()["usage"]["prompt_tokens"] == 5  # [CLS] query : hello [SEP]
    r = requests.post(s.url + "/tokenize", json={"inputs": "hello", "prompt_name": "passage"}, timeout=30)
    assert [t["id"] if isinstance(t, dict) else t for t in r.json()[0]] == [101, 6019, 1024, 7592, 102]
    r = requests.post(s.url + "/embed", json={"inputs": "x", "prompt_name": "document"}, timeout=30)
    assert r.status_code == 422 and '"query", "passage"' in r.json()["error"], r.text
    # the CLI applies the default prompt too (and --prompt-name), so its vectors stay the server's
    folder = os.path.join(str(tmp_path), "p")
    cli = cli_embed(texts[:2], model_dir=folder)
    assert np.max(np.abs(np.asarray(cli) - np.asarray(want[3:5]))) <= 1e-6


@pytest.mark.parametrize("cfg,words", [({"prompts": {"q": 3}}, "not a string"),
                                       ({"prompts": ["q"]}, "not an object"),
                                       ({"prompts": {"q": "q: "}, "default_prompt_name": "z"}, "default_prompt_name")])
def test_bad_prompt_configs_are_refused(tmp_path, cfg, words):
    d = prompt_model(tmp_path, "bad", cfg)
    r = subprocess.run([AKE_BIN, "embed", "--model", d], input=b"x\n", capture_output=True, timeout=120)
    assert r.returncode != 0 and words in r.stderr.decode(), r.stderr.decode()


def test_tei_request_fields(server, ref):
    """TEI's request fields beyond texts: token ids in `inputs` (mixed with texts), `dimensions`
    (cut, then normalized), similarity's `parameters`; OpenAI's `model` may be left out (TEI)."""
    tok = requests.post(server.url + "/tokenize", json={"inputs": TEXTS[:2]}, timeout=30).json()
    ids = [[t["id"] for t in row] for row in tok]
    r = requests.post(server.url + "/embed", json={"inputs": [ids[0], TEXTS[1]]}, timeout=30)
    assert r.status_code == 200, r.text
    assert_close(r.json()[0], ref[TEXTS[0]], "token ids in /embed")
    assert_close(r.json()[1], ref[TEXTS[1]], "text beside token ids")
    one = requests.post(server.url + "/embed", json={"inputs": ids[0]}, timeout=30).json()
    assert len(one) == 1
    cut = requests.post(server.url + "/embed", json={"inputs": TEXTS[0], "dimensions": 64}, timeout=30).json()[0]
    want = np.asarray(ref[TEXTS[0]][:64], dtype=np.float64)
    assert len(cut) == 64 and np.max(np.abs(np.asarray(cut) - want / np.linalg.norm(want))) <= (1e-3 if ON_GPU else 1e-6)
    raw = requests.post(server.url + "/embed", json={"inputs": TEXTS[0], "dimensions": 64, "normalize": False},
                        timeout=30).json()[0]
    assert abs(np.linalg.norm(raw) - 1) > 1e-3
    r = requests.post(server.url + "/embed", json={"inputs": TEXTS[0], "dimensions": 385}, timeout=30)
    assert r.status_code == 422
    long = " ".join(["word"] * 300)
    body = {"inputs": {"source_sentence": long, "sentences": ["word word"]}}
    assert requests.post(server.url + "/similarity", json=body, timeout=30).status_code == 422
    body["parameters"] = {"truncate": True}
    assert requests.post(server.url + "/similarity", json=body, timeout=30).status_code == 200
    r = requests.post(server.url + "/v1/embeddings", json={"input": TEXTS[0]}, timeout=30)
    assert r.status_code == 200 and r.json()["model"] == MODEL_ID
    assert_close(r.json()["data"][0]["embedding"], ref[TEXTS[0]], "OpenAI without a model")


def test_curl(server, ref):
    """The README's curl commands: results equal `akidb-embed embed`."""
    def curl(path, body):
        r = subprocess.run(["curl", "-sS", "-H", "Content-Type: application/json", "-d", json.dumps(body),
                            server.url + path], capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr.decode()
        return json.loads(r.stdout)
    for t, v in zip(TEXTS, curl("/embed", {"inputs": TEXTS})):
        assert_close(v, ref[t], f"curl /embed {t!r}")
    out = curl("/v1/embeddings", {"model": MODEL_ID, "input": TEXTS})
    for t, d in zip(TEXTS, out["data"]):
        assert_close(d["embedding"], ref[t], f"curl /v1/embeddings {t!r}")
    sims = curl("/similarity", {"inputs": {"source_sentence": TEXTS[0], "sentences": TEXTS[1:]}})
    want = [cosine(ref[TEXTS[0]], ref[t]) for t in TEXTS[1:]]
    assert np.max(np.abs(np.asarray(sims) - want)) <= (1e-4 if ON_GPU else 1e-6)
