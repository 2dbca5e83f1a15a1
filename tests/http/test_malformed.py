"""A table of malformed requests: each gets the right status and a JSON error, and the
server keeps answering afterwards."""
import socket

import pytest
import requests

from conftest import MODEL_ID

M = MODEL_ID
WORDS_300 = " ".join(["word"] * 300)  # 302 tokens, over the 256 limit
DEEP = b"[" * 5000 + b"]" * 5000


def oa(body: str) -> bytes:
    return body.replace("MODEL", M).encode()


# (name, method, path, body bytes, expected status, error shape: "tei" | "openai")
# Statuses follow each API (README, "Status codes"): TEI answers an empty input with 400 (Empty),
# other invalid requests with 422 (Validation; 413 only for a body over the byte limit); the
# OpenAI route answers every invalid request with 400 invalid_request_error, but 404 for an
# unknown model.
CASES = [
    ("truncated JSON", "POST", "/embed", b'{"inputs":', 400, "tei"),
    ("trailing garbage", "POST", "/embed", b'{"inputs":"a"} x', 400, "tei"),
    ("trailing comma", "POST", "/embed", b'{"inputs":"a",}', 400, "tei"),
    ("single quotes", "POST", "/embed", b"{'inputs':'a'}", 400, "tei"),
    ("empty body", "POST", "/embed", b"", 400, "tei"),
    ("not JSON at all", "POST", "/embed", b"hello", 400, "tei"),
    ("nesting 5000 deep", "POST", "/embed", DEEP, 400, "tei"),
    ("NaN", "POST", "/embed", b'{"inputs":NaN}', 400, "tei"),
    ("Infinity in ids", "POST", "/embed", b'{"inputs":[101,-Infinity]}', 400, "tei"),
    ("raw control character in a string", "POST", "/embed", b'{"inputs":"a\x01b"}', 400, "tei"),
    ("invalid UTF-8 in a string", "POST", "/embed", b'{"inputs":"caf\xe9"}', 400, "tei"),
    ("UTF-8 encoded surrogate", "POST", "/embed", b'{"inputs":"\xed\xa0\x80"}', 400, "tei"),
    ("overlong UTF-8", "POST", "/embed", b'{"inputs":"\xc0\xaf"}', 400, "tei"),
    ("raw NUL byte", "POST", "/embed", b'{"inputs":"a\x00b"}', 400, "tei"),
    ("unpaired surrogate escape", "POST", "/embed", b'{"inputs":"\\ud800"}', 400, "tei"),
    ("body is an array", "POST", "/embed", b'["a"]', 422, "tei"),
    ("inputs missing", "POST", "/embed", b"{}", 422, "tei"),
    ("inputs a number", "POST", "/embed", b'{"inputs":5}', 422, "tei"),
    ("inputs null", "POST", "/embed", b'{"inputs":null}', 422, "tei"),
    ("inputs an object", "POST", "/embed", b'{"inputs":{"a":1}}', 422, "tei"),
    ("empty string", "POST", "/embed", b'{"inputs":""}', 400, "tei"),
    ("empty array", "POST", "/embed", b'{"inputs":[]}', 400, "tei"),
    ("empty string in array", "POST", "/embed", b'{"inputs":["a",""]}', 400, "tei"),
    ("number in array", "POST", "/embed", b'{"inputs":["a",1]}', 422, "tei"),
    ("nested arrays", "POST", "/embed", b'{"inputs":[["a"]]}', 422, "tei"),
    ("normalize a string", "POST", "/embed", b'{"inputs":"a","normalize":"yes"}', 422, "tei"),
    ("truncate a number", "POST", "/embed", b'{"inputs":"a","truncate":1}', 422, "tei"),
    ("bad truncation_direction", "POST", "/embed", b'{"inputs":"a","truncation_direction":"up"}', 422, "tei"),
    ("over-long input", "POST", "/embed", ('{"inputs":"%s"}' % WORDS_300).encode(), 422, "tei"),
    ("too many inputs", "POST", "/embed", ('{"inputs":[%s]}' % ",".join(['"a"'] * 2049)).encode(), 422, "tei"),
    ("10 MB body", "POST", "/embed", b'{"inputs":"' + b"a" * (10 << 20) + b'"}', 413, "tei"),
    ("tokenize: wrong type", "POST", "/tokenize", b'{"inputs":[1]}', 422, "tei"),
    ("GET on a POST route", "GET", "/embed", b"", 405, "tei"),
    ("POST on a GET route", "POST", "/health", b"{}", 405, "tei"),
    ("unknown route", "POST", "/nope", b"{}", 404, "tei"),
    ("openai: unknown route", "POST", "/v1/nope", b"{}", 404, "openai"),
    ("openai: bad JSON", "POST", "/v1/embeddings", b'{"model":', 400, "openai"),
    ("openai: model a number", "POST", "/v1/embeddings", b'{"model":1,"input":"a"}', 400, "openai"),
    ("openai: unknown model", "POST", "/v1/embeddings", b'{"model":"gpt-4","input":"a"}', 404, "openai"),
    ("openai: input missing", "POST", "/v1/embeddings", oa('{"model":"MODEL"}'), 400, "openai"),
    ("openai: input an object", "POST", "/v1/embeddings", oa('{"model":"MODEL","input":{}}'), 400, "openai"),
    ("openai: empty input array", "POST", "/v1/embeddings", oa('{"model":"MODEL","input":[]}'), 400, "openai"),
    ("openai: token id out of vocab", "POST", "/v1/embeddings", oa('{"model":"MODEL","input":[101,999999,102]}'),
     400, "openai"),
    ("openai: negative token id", "POST", "/v1/embeddings", oa('{"model":"MODEL","input":[101,-1,102]}'), 400,
     "openai"),
    ("openai: fractional token id", "POST", "/v1/embeddings", oa('{"model":"MODEL","input":[101,1.5,102]}'), 400,
     "openai"),
    ("openai: huge token id", "POST", "/v1/embeddings", oa('{"model":"MODEL","input":[101,1e300,102]}'), 400,
     "openai"),
    ("openai: infinite token id", "POST", "/v1/embeddings", oa('{"model":"MODEL","input":[101,1e400,102]}'), 400,
     "openai"),
    ("openai: mixed ids and text", "POST", "/v1/embeddings", oa('{"model":"MODEL","input":[[101,102],"a"]}'), 400,
     "openai"),
    ("openai: empty id array", "POST", "/v1/embeddings", oa('{"model":"MODEL","input":[[]]}'), 400, "openai"),
    ("openai: ids nested 3 deep", "POST", "/v1/embeddings", oa('{"model":"MODEL","input":[[[101]]]}'), 400,
     "openai"),
    ("openai: bad encoding_format", "POST", "/v1/embeddings",
     oa('{"model":"MODEL","input":"a","encoding_format":"binary"}'), 400, "openai"),
    ("openai: dimensions 0", "POST", "/v1/embeddings", oa('{"model":"MODEL","input":"a","dimensions":0}'), 400,
     "openai"),
    ("openai: dimensions too big", "POST", "/v1/embeddings", oa('{"model":"MODEL","input":"a","dimensions":385}'),
     400, "openai"),
    ("openai: dimensions huge", "POST", "/v1/embeddings", oa('{"model":"MODEL","input":"a","dimensions":1e400}'),
     400, "openai"),
    ("openai: dimensions a string", "POST", "/v1/embeddings",
     oa('{"model":"MODEL","input":"a","dimensions":"64"}'), 400, "openai"),
    ("openai: user a number", "POST", "/v1/embeddings", oa('{"model":"MODEL","input":"a","user":5}'), 400,
     "openai"),
    ("openai: too many token ids", "POST", "/v1/embeddings",
     oa('{"model":"MODEL","input":[%s]}' % ",".join(["1000"] * 300)), 400, "openai"),
]


def check_error_body(r, shape):
    body = r.json()  # every error is JSON
    if shape == "openai":
        assert isinstance(body["error"], dict) and body["error"]["message"], body
        assert body["error"]["type"]
    else:
        assert isinstance(body["error"], str) and body["error"], body
        assert body["error_type"]
    return body


@pytest.mark.smoke
def test_malformed_table(server):
    assert len(CASES) >= 30
    failures = []
    for name, method, path, body, want, shape in CASES:
        r = requests.request(method, server.url + path, data=body, timeout=120,
                             headers={"Content-Type": "application/json"})
        if r.status_code != want:
            failures.append(f"{name}: got {r.status_code} want {want}: {r.text[:200]}")
            continue
        check_error_body(r, shape)
    assert not failures, "\n".join(failures)
    # the server is still fine
    assert requests.get(server.url + "/health", timeout=10).status_code == 200
    assert requests.post(server.url + "/embed", json={"inputs": "still alive"}, timeout=30).status_code == 200


def test_invalid_json_names_the_position(server):
    r = requests.post(server.url + "/embed", data=b'{"inputs":\n ["a", ]}', timeout=30)
    assert r.status_code == 400
    assert "line 2" in r.json()["error"] and "byte offset" in r.json()["error"]


def test_chunked_body_over_the_limit(server):
    """A body sent chunked (no Content-Length) is still cut at --max-payload-bytes."""
    def chunks():
        yield b'{"inputs":"'
        for _ in range(40):
            yield b"a" * (256 << 10)
        yield b'"}'

    r = requests.post(server.url + "/embed", data=chunks(), timeout=120)
    assert r.status_code == 413
    check_error_body(r, "tei")


def test_garbage_on_the_socket(server):
    """Bytes that are not HTTP get a 400 or a closed connection, never a crash."""
    for junk in (b"\x00\x01\x02\x03" * 100, b"GET / HTTP/9.9\r\n\r\n", b"POST /embed HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                 b"A" * 100000 + b"\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            try:
                s.sendall(junk)
                s.shutdown(socket.SHUT_WR)
                s.recv(4096)
            except OSError:
                pass
    assert requests.get(server.url + "/health", timeout=10).status_code == 200
