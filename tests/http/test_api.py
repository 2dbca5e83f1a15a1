"""Both APIs through `requests` and the official `openai` SDK; vectors equal `akidb-embed embed`."""
import base64
import http.client
import json
import re
import subprocess
import time

import numpy as np
import pytest
import requests
from tokenizers import Tokenizer

from conftest import (AKE_BIN, DEVICE, DIM, INFO_DTYPE, MAX_TOKENS, MODEL_DIR, MODEL_ID, ON_GPU, TEXTS, assert_close,
                      cli_embed)

LONG = " ".join(f"token{i} alpha beta" for i in range(200))  # far over 256 tokens


def hf_tokenizer():
    tok = Tokenizer.from_file(f"{MODEL_DIR}/tokenizer.json")
    tok.no_truncation()
    tok.no_padding()
    return tok


@pytest.fixture(scope="module")
def reference():
    return cli_embed(TEXTS)


def post(server, path, body, **kw):
    return requests.post(server.url + path, json=body, timeout=120, **kw)


@pytest.mark.smoke
def test_health_info_models(server):
    r = requests.get(server.url + "/health", timeout=10)
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    info = requests.get(server.url + "/info", timeout=10).json()
    assert info["model_id"] == MODEL_ID and info["dim"] == DIM and info["max_input_length"] == MAX_TOKENS
    assert info["pooling"] == "mean" and info["dtype"] == INFO_DTYPE and info["device"] == DEVICE
    assert re.fullmatch(r"\d+\.\d+\.\d+", info["version"])
    for k in ("max_concurrent_requests", "max_batch_tokens", "max_batch_size", "max_client_batch_size",
              "max_payload_bytes", "max_wait_ms", "request_timeout_ms"):
        assert isinstance(info[k], int) and info[k] > 0, k
    models = requests.get(server.url + "/v1/models", timeout=10).json()
    assert models["object"] == "list" and models["data"][0]["id"] == MODEL_ID


@pytest.mark.smoke
def test_tei_embed_equals_cli(server, reference):
    r = post(server, "/embed", {"inputs": TEXTS})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    vecs = r.json()
    assert len(vecs) == len(TEXTS)
    for i, (v, ref) in enumerate(zip(vecs, reference)):
        assert len(v) == DIM
        assert_close(v, ref, f"text {i}")
    # one text per request, and a lone string instead of an array
    for i, t in enumerate(TEXTS[:4]):
        one = post(server, "/embed", {"inputs": t}).json()
        assert len(one) == 1
        assert_close(one[0], reference[i], f"single text {i}")


def test_tei_normalize_false(server, reference):
    raw = np.array(post(server, "/embed", {"inputs": TEXTS[:3], "normalize": False}).json(), dtype=np.float32)
    norms = np.linalg.norm(raw, axis=1)
    assert np.all(np.abs(norms - 1) > 1e-3), "normalize=false must return the pooled, unnormalized vectors"
    for i in range(3):
        assert_close(raw[i] / norms[i], reference[i], f"text {i} normalized by hand")


def test_truncation(server):
    r = post(server, "/embed", {"inputs": ["short", LONG]})
    assert r.status_code == 422 and r.json()["error_type"] == "Validation", r.text
    msg = r.json()["error"]
    n_tokens = len(hf_tokenizer().encode(LONG).ids)
    assert f"input 1 has {n_tokens} tokens" in msg and str(MAX_TOKENS) in msg, msg

    right = post(server, "/embed", {"inputs": LONG, "truncate": True}).json()[0]
    assert_close(right, cli_embed([LONG])[0], "truncate=right vs the CLI (which truncates right)")

    left = post(server, "/embed", {"inputs": LONG, "truncate": True, "truncation_direction": "Left"}).json()[0]
    tok = hf_tokenizer()
    body = tok.encode(LONG, add_special_tokens=False).ids
    ids = [tok.token_to_id("[CLS]")] + body[-(MAX_TOKENS - 2):] + [tok.token_to_id("[SEP]")]
    by_ids = post(server, "/v1/embeddings", {"model": MODEL_ID, "input": ids}).json()["data"][0]["embedding"]
    assert_close(left, by_ids, "truncate=left vs the same ids sent as tokens", same_engine=True)
    assert float(np.max(np.abs(np.array(left) - np.array(right)))) > 1e-3


def tei_tokens(text, add_special_tokens=True):
    """What TEI's /tokenize answers for text: HF `tokenizers`' encoding, its character offsets as
    byte offsets into the UTF-8 text, special tokens with their own string and null offsets."""
    enc = hf_tokenizer().encode(text, add_special_tokens=add_special_tokens)
    out = []
    for tid, tstr, (a, b), special in zip(enc.ids, enc.tokens, enc.offsets, enc.special_tokens_mask):
        if special:
            out.append({"id": tid, "text": tstr, "special": True, "start": None, "stop": None})
        else:
            start, stop = len(text[:a].encode()), len(text[:b].encode())
            out.append({"id": tid, "text": text.encode()[start:stop].decode(), "special": False, "start": start,
                        "stop": stop})
    return out


def test_tokenize(server):
    texts = TEXTS + ["Héllo, wörld! İstanbul 東京 naïve café\u0000x", "  spaces\tand\nnewlines  ", "don't [MASK] it"]
    r = post(server, "/tokenize", {"inputs": texts})
    assert r.status_code == 200, r.text
    assert r.json() == [tei_tokens(t) for t in texts]
    r = post(server, "/tokenize", {"inputs": "hello world", "add_special_tokens": False})
    assert r.json() == [tei_tokens("hello world", add_special_tokens=False)]


def test_decode(server):
    tok = hf_tokenizer()
    seqs = [tok.encode(t).ids for t in TEXTS + ["don't stop: it's fine , really ."]]
    for skip in (True, False):
        r = post(server, "/decode", {"ids": seqs, "skip_special_tokens": skip})
        assert r.status_code == 200, r.text
        assert r.json() == [tok.decode(s, skip_special_tokens=skip) for s in seqs]
    r = post(server, "/decode", {"ids": seqs[0]})  # one sequence; skip_special_tokens defaults to true
    assert r.json() == [tok.decode(seqs[0])]
    r = post(server, "/decode", {"ids": [101, 30522]})
    assert r.status_code == 422 and "30522" in r.json()["error"], r.text
    r = post(server, "/decode", {"ids": "hello"})
    assert r.status_code == 422


def test_embed_all(server, reference):
    """/embed_all: the last hidden state of every token, [CLS] and [SEP] included; mean-pooled and
    normalized, a text's rows give its /embed vector."""
    r = post(server, "/embed_all", {"inputs": TEXTS})
    assert r.status_code == 200, r.text
    rows = r.json()
    ids = [[t["id"] for t in row] for row in post(server, "/tokenize", {"inputs": TEXTS}).json()]
    assert [len(x) for x in rows] == [len(x) for x in ids]
    assert all(len(v) == DIM for x in rows for v in x)
    for i, x in enumerate(rows):
        m = np.asarray(x, dtype=np.float64).mean(axis=0)
        assert_close(m / np.linalg.norm(m), reference[i], f"pooled rows of text {i}")
    alone = post(server, "/embed_all", {"inputs": TEXTS[1]}).json()
    assert np.max(np.abs(np.asarray(alone[0]) - np.asarray(rows[1]))) <= (1e-3 if ON_GPU else 1e-5)
    r = post(server, "/embed_all", {"inputs": [" ".join(["word"] * 250)] * 80})  # 20,160 tokens: over a batch
    assert r.status_code == 413 and "max-batch-tokens" in r.json()["error"], r.text


def test_openai_requests(server, reference):
    body = {"model": MODEL_ID, "input": TEXTS, "user": "tester"}
    r = post(server, "/v1/embeddings", body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["object"] == "list" and out["model"] == MODEL_ID
    assert [d["index"] for d in out["data"]] == list(range(len(TEXTS)))
    assert all(d["object"] == "embedding" for d in out["data"])
    for i, d in enumerate(out["data"]):
        assert_close(d["embedding"], reference[i], f"text {i}")
    ids = [[t["id"] for t in row] for row in post(server, "/tokenize", {"inputs": TEXTS}).json()]
    n_tokens = sum(len(x) for x in ids)
    assert out["usage"] == {"prompt_tokens": n_tokens, "total_tokens": n_tokens}

    b64 = post(server, "/v1/embeddings", dict(body, encoding_format="base64")).json()
    for i, d in enumerate(b64["data"]):
        v = np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4")
        assert v.shape == (DIM,)
        assert np.array_equal(v, np.array(out["data"][i]["embedding"], dtype=np.float32)), f"base64 != float, {i}"

    # token ids in, one sequence or several: equal to the text inputs
    one = post(server, "/v1/embeddings", {"model": MODEL_ID, "input": ids[1]}).json()
    assert_close(one["data"][0]["embedding"], reference[1], "token ids")
    many = post(server, "/v1/embeddings", {"model": MODEL_ID, "input": ids[:3]}).json()
    for i in range(3):
        assert_close(many["data"][i]["embedding"], reference[i], f"token ids {i}")

    # the Hugging Face name of the model is accepted too
    hf = post(server, "/v1/embeddings", {"model": "sentence-transformers/" + MODEL_ID, "input": TEXTS[0]})
    assert hf.status_code == 200


def test_openai_dimensions(server, reference):
    r = post(server, "/v1/embeddings", {"model": MODEL_ID, "input": TEXTS[:3], "dimensions": 64})
    assert r.status_code == 200, r.text
    for i, d in enumerate(r.json()["data"]):
        v = np.array(d["embedding"], dtype=np.float32)
        assert v.shape == (64,)
        assert abs(float(np.linalg.norm(v)) - 1) < 1e-5
        cut = reference[i][:64] / np.linalg.norm(reference[i][:64])
        if ON_GPU:
            assert_close(v, cut, f"dimensions=64, text {i}")
        else:
            assert float(np.max(np.abs(v - cut))) < 1e-5


@pytest.mark.smoke
def test_openai_sdk(server, reference):
    from openai import OpenAI

    client = OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    res = client.embeddings.create(model=MODEL_ID, input=TEXTS, encoding_format="float")
    assert len(res.data) == len(TEXTS) and res.model == MODEL_ID
    for i, d in enumerate(res.data):
        assert_close(d.embedding, reference[i], f"sdk float {i}")
    res64 = client.embeddings.create(model=MODEL_ID, input=TEXTS[:4], encoding_format="base64")
    for i, d in enumerate(res64.data):
        v = np.frombuffer(base64.b64decode(d.embedding), dtype="<f4") if isinstance(d.embedding, str) \
            else np.array(d.embedding, dtype=np.float32)
        assert_close(v, reference[i], f"sdk base64 {i}")
    # the SDK's default (it asks for base64 and decodes it itself)
    res_default = client.embeddings.create(model=MODEL_ID, input="hello")
    assert_close(res_default.data[0].embedding, reference[0], "sdk default")
    assert res_default.usage.prompt_tokens == 3
    assert [m.id for m in client.models.list()] == [MODEL_ID]


def test_api_key(make_server):
    from openai import AuthenticationError, OpenAI

    s = make_server("--api-key", "s3cret")
    assert requests.get(s.url + "/health", timeout=10).status_code == 200
    r = requests.post(s.url + "/embed", json={"inputs": "a"}, timeout=30)
    assert r.status_code == 401 and "error" in r.json() and r.headers.get("www-authenticate") == "Bearer"
    r = requests.post(s.url + "/embed", json={"inputs": "a"}, headers={"Authorization": "Bearer wrong"}, timeout=30)
    assert r.status_code == 401
    r = requests.get(s.url + "/metrics", timeout=30)
    assert r.status_code == 401
    r = requests.post(s.url + "/embed", json={"inputs": "a"}, headers={"Authorization": "Bearer s3cret"}, timeout=30)
    assert r.status_code == 200
    ok = OpenAI(base_url=s.url + "/v1", api_key="s3cret", max_retries=0)
    assert len(ok.embeddings.create(model=MODEL_ID, input="a").data[0].embedding) == DIM
    with pytest.raises(AuthenticationError):
        OpenAI(base_url=s.url + "/v1", api_key="nope", max_retries=0).embeddings.create(model=MODEL_ID, input="a")


def test_keep_alive(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    body = json.dumps({"inputs": ["keep", "alive"]})
    socks = set()
    for _ in range(5):
        conn.request("POST", "/embed", body=body, headers={"Content-Type": "application/json"})
        socks.add(id(conn.sock))
        resp = conn.getresponse()
        assert resp.status == 200 and len(json.loads(resp.read())) == 2
        assert resp.getheader("Connection", "").lower() != "close"
    assert len(socks) == 1, "the connection was not kept alive"
    conn.close()


def test_metrics(server):
    post(server, "/embed", {"inputs": ["metrics one", "metrics two"]})
    post(server, "/embed", {"inputs": []})
    m = server.metrics()
    assert m['ake_requests_total{endpoint="embed",status="200"}'] >= 1
    assert m['ake_requests_total{endpoint="embed",status="422"}'] >= 1
    for h in ("ake_queue_seconds", "ake_tokenize_seconds", "ake_inference_seconds", "ake_request_seconds",
              "ake_batch_size", "ake_batch_tokens"):
        assert m[h + "_count"] >= 1, h
        assert m[h + '_bucket{le="+Inf"}'] == m[h + "_count"], h
    assert "ake_queue_depth" in m and "ake_in_flight_requests" in m
    assert any(k.startswith("ake_model_info{model=\"all-MiniLM-L6-v2\"") for k in m)
    text = requests.get(server.url + "/metrics", timeout=10)
    assert text.headers["content-type"].startswith("text/plain")


def test_help_lists_every_flag_with_env_and_default():
    out = subprocess.run([AKE_BIN, "serve", "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    lines = [l for l in out.stdout.splitlines() if l.strip().startswith("--")]
    assert len(lines) >= 18
    for l in lines:
        flag = l.split()[0]
        env = "AKE_" + flag[2:].upper().replace("-", "_")
        assert env in l and "(default:" in l, l
    for must in ("--host", "--port", "--max-batch-tokens", "--max-batch-size", "--max-wait-ms",
                 "--max-concurrent-requests", "--max-client-batch-size", "--max-payload-bytes",
                 "--request-timeout-ms", "--api-key", "--device", "--batch-policy"):
        assert any(l.split()[0] == must for l in lines), must


def test_env_vars_set_flags(make_server):
    s = make_server(env={"AKE_MAX_CLIENT_BATCH_SIZE": "3", "AKE_MODEL_ID": "mini"})
    info = requests.get(s.url + "/info", timeout=10).json()
    assert info["max_client_batch_size"] == 3 and info["model_id"] == "mini"
    r = requests.post(s.url + "/embed", json={"inputs": ["a", "b", "c", "d"]}, timeout=30)
    assert r.status_code == 422 and "3" in r.json()["error"]
    # the command line wins over the environment
    s2 = make_server("--max-client-batch-size", "5", env={"AKE_MAX_CLIENT_BATCH_SIZE": "3"})
    assert requests.get(s2.url + "/info", timeout=10).json()["max_client_batch_size"] == 5


def test_bad_flags_fail_fast(tmp_path):
    for args, env in ((["--port", "70000"], {}), (["--batch-policy", "5:1"], {}), ([], {"AKE_MAX_WAIT_MS": "x"}),
                      (["--model", str(tmp_path)], {}), (["--device", "tpu"], {}), (["--dtype", "fp12"], {}), (["--dtype", "fp8"], {}),
                      (["--max-batch-tokens", "100"], {})):
        r = subprocess.run([AKE_BIN, "serve", "--port", "0", *args], capture_output=True, text=True, timeout=60,
                           env={"PATH": "/usr/bin:/bin", **env})
        assert r.returncode != 0 and r.stderr.strip(), (args, env, r.stderr)


def test_request_timeout(make_server):
    """A queue wait over --request-timeout-ms answers 503 with a JSON error."""
    import concurrent.futures as cf

    # an explicit token budget: the default (speed x timeout) would refuse these at once with 413
    s = make_server("--request-timeout-ms", "1", "--max-batch-size", "1", "--max-request-tokens", "100000")
    body = {"inputs": [" ".join(["word"] * 200)] * 4}
    with cf.ThreadPoolExecutor(16) as ex:
        rs = list(ex.map(lambda _: requests.post(s.url + "/embed", json=body, timeout=120), range(16)))
    codes = [r.status_code for r in rs]
    assert set(codes) <= {200, 503}, codes
    assert 503 in codes, codes
    for r in rs:
        if r.status_code == 503:
            assert "request-timeout-ms" in r.json()["error"]
    assert s.metrics()["ake_timeouts_total"] >= 1


def test_started_request_is_not_timed_out(make_server):
    """The queue timeout covers waiting before a request's first sequence runs: a request whose
    work has begun is answered, however long its remaining sequences take."""
    s = make_server("--request-timeout-ms", "100", "--max-batch-size", "1", "--max-request-tokens", "100000")
    body = {"inputs": [" ".join(["word"] * 250) + f" {i}" for i in range(48)]}  # ~1 s of engine time here
    t0 = time.time()
    r = requests.post(s.url + "/embed", json=body, timeout=300)
    assert r.status_code == 200, r.text
    assert len(r.json()) == 48
    assert time.time() - t0 > 0.1 or ON_GPU  # it did take longer than the timeout
    assert s.metrics()["ake_timeouts_total"] == 0


def test_two_replicas(make_server, reference):
    """--device cpu,cpu: two engine replicas behind one queue each; same vectors."""
    s = make_server("--device", "cpu,cpu", "--threads", "1")
    info = requests.get(s.url + "/info", timeout=10).json()
    assert info["replicas"] == 2 and info["device"] == "cpu,cpu"
    import concurrent.futures as cf
    with cf.ThreadPoolExecutor(8) as ex:
        outs = list(ex.map(lambda _: requests.post(s.url + "/embed", json={"inputs": TEXTS}, timeout=120).json(),
                           range(8)))
    for vecs in outs:
        for i, v in enumerate(vecs):
            assert_close(v, reference[i], f"text {i}", gpu=False)
