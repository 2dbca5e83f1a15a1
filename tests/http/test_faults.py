"""Faults users of embedding servers reported (issue 9), each with the value it must give.

1. U+0000 inside a JSON string is text: HF `tokenizers` drops it in normalization, so
   "a\\u0000b" tokenizes and embeds exactly as "ab", on every route and in `embed --jsonl`.
4. Status codes follow each API: TEI's mapping (router/src/http/server.rs) on the TEI routes,
   OpenAI's (400 invalid_request_error for every invalid request, 404 model_not_found) on
   /v1/embeddings.
"""
import json
import subprocess

import numpy as np
import pytest
import requests
from tokenizers import Tokenizer

from conftest import AKE_BIN, MODEL_DIR, MODEL_ID, REPO, TOL

NUL_TEXTS = ["a\u0000b", "\u0000leading and trailing\u0000", "two\u0000\u0000nuls in a row"]
PLAIN = [t.replace("\u0000", "") for t in NUL_TEXTS]


def post(server, path, body):
    return requests.post(server.url + path, json=body, timeout=60)


@pytest.mark.smoke
def test_nul_is_text_on_every_route(server):
    # json.dumps writes U+0000 as the escape "\u0000": the bytes the fault report sent
    assert "\\u0000" in json.dumps(NUL_TEXTS)
    nul = post(server, "/embed", {"inputs": NUL_TEXTS})
    plain = post(server, "/embed", {"inputs": PLAIN})
    assert nul.status_code == 200, nul.text
    assert nul.json() == plain.json()  # the same tokens in the same batch shape: the same bits

    r = post(server, "/v1/embeddings", {"model": MODEL_ID, "input": NUL_TEXTS})
    want = post(server, "/v1/embeddings", {"model": MODEL_ID, "input": PLAIN})
    assert r.status_code == 200, r.text
    assert [d["embedding"] for d in r.json()["data"]] == [d["embedding"] for d in want.json()["data"]]
    assert r.json()["usage"] == want.json()["usage"]

    tok = Tokenizer.from_file(f"{MODEL_DIR}/tokenizer.json")
    tok.no_padding()
    tok.no_truncation()
    r = post(server, "/tokenize", {"inputs": NUL_TEXTS})
    assert r.status_code == 200, r.text
    got = [[t["id"] if isinstance(t, dict) else t for t in row] for row in r.json()]
    assert got == [tok.encode(t).ids for t in NUL_TEXTS] == [tok.encode(t).ids for t in PLAIN]

    r = post(server, "/similarity", {"inputs": {"source_sentence": "a\u0000b", "sentences": ["ab", "a b"]}})
    assert r.status_code == 200, r.text
    assert r.json()[0] == pytest.approx(1.0, abs=1e-6) and r.json()[1] < 0.999


def test_nul_in_cli_jsonl():
    stdin = "".join(json.dumps(t) + "\n" for t in NUL_TEXTS + PLAIN).encode()
    r = subprocess.run([AKE_BIN, "embed", "--model", MODEL_DIR, "--jsonl"], input=stdin, capture_output=True,
                       timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stderr.decode()
    rows = [np.array(json.loads(line), dtype=np.float32) for line in r.stdout.decode().splitlines()]
    n = len(NUL_TEXTS)
    for i in range(n):  # the same tokens; other batch positions, so equal to the engine's 1e-6
        assert np.max(np.abs(rows[i] - rows[n + i])) <= TOL, NUL_TEXTS[i]


@pytest.mark.parametrize("line,words", [
    (b'"unterminated\n', "ends inside"),
    (b'"a" "b"\n', "column 5"),
    (b'42\n', "not int"),
    (b'"\\ud800"\n', "surrogate"),
    (b'"x\\udc00\\ud800"\n', "column 3"),
    (b'"caf\xe9"\n', "JSON"),
])
def test_cli_jsonl_errors_name_the_line(line, words):
    r = subprocess.run([AKE_BIN, "embed", "--model", MODEL_DIR, "--jsonl"], input=b'"fine"\n' + line,
                       capture_output=True, timeout=300, cwd=REPO)
    err = r.stderr.decode()
    assert r.returncode != 0 and "line 2" in err and words in err, err


def test_model_name_with_nul_is_refused(server):
    r = post(server, "/v1/embeddings", {"model": MODEL_ID + "\u0000x", "input": "a"})
    assert r.status_code == 400 and "U+0000" in r.json()["error"]["message"], r.text


# (path, body, TEI status, TEI error_type) — TEI: Empty → 400, Validation and Tokenizer → 422
TEI_STATUS = [
    ("/embed", {"inputs": []}, 400, "Empty"),
    ("/embed", {"inputs": ""}, 400, "Empty"),
    ("/embed", {"inputs": ["a", ""]}, 400, "Empty"),
    ("/similarity", {"inputs": {"source_sentence": "a", "sentences": []}}, 400, "Empty"),
    ("/embed", {"inputs": " ".join(["word"] * 300)}, 422, "Validation"),
    ("/embed", {"inputs": ["a"] * 2049}, 422, "Validation"),
    ("/embed", {"inputs": 5}, 422, "Validation"),
    ("/embed", {"inputs": "a", "normalize": "yes"}, 422, "Validation"),
    ("/embed", {"inputs": "a", "model": "nope"}, 404, "NotFound"),
]


@pytest.mark.smoke
def test_tei_status_codes(server):
    for path, body, status, kind in TEI_STATUS:
        r = post(server, path, body)
        assert (r.status_code, r.json().get("error_type")) == (status, kind), (path, str(body)[:80], r.text[:200])


OPENAI_STATUS = [
    ({"model": MODEL_ID, "input": []}, 400, "input", None),
    ({"model": MODEL_ID, "input": ""}, 400, "input", None),
    ({"model": MODEL_ID, "input": " ".join(["word"] * 300)}, 400, None, None),
    ({"model": MODEL_ID, "input": ["a"] * 2049}, 400, "input", None),
    ({"model": MODEL_ID, "input": [101, 999999, 102]}, 400, "input", None),
    ({"model": MODEL_ID, "input": "a", "dimensions": 0}, 400, "dimensions", None),
    ({"input": "a"}, 400, "model", None),
    ({"model": "gpt-4", "input": "a"}, 404, "model", "model_not_found"),
]


@pytest.mark.smoke
def test_openai_status_codes(server):
    for body, status, param, code in OPENAI_STATUS:
        r = post(server, "/v1/embeddings", body)
        err = r.json()["error"]
        want_type = "invalid_request_error"
        assert (r.status_code, err["type"], err["param"], err["code"]) == (status, want_type, param, code), \
            (str(body)[:80], r.text[:200])
    r = requests.post(server.url + "/v1/embeddings", data=b'{"model":', timeout=30)
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


def test_openai_auth_and_overload_statuses(make_server):
    s = make_server("--api-key", "k1")
    r = requests.post(s.url + "/v1/embeddings", json={"model": MODEL_ID, "input": "a"}, timeout=30)
    err = r.json()["error"]
    assert (r.status_code, err["type"], err["code"]) == (401, "authentication_error", "invalid_api_key"), r.text
    r = requests.post(s.url + "/embed", json={"inputs": "a"}, timeout=30)
    assert r.status_code == 401 and r.json()["error_type"] == "Unauthorized"
