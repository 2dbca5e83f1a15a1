"""`akidb-embed loadgen --threads`: several sending threads, one open-loop schedule, one report
that adds up. The server's own request counter checks that every scheduled request (warm-up
included) was sent, whichever thread owned it; a stub server that notes arrival times checks
that the threads' shares interleave into one evenly spaced schedule."""
import http.server
import json
import statistics
import subprocess
import threading
import time

from conftest import AKE_BIN, REPO

RATE = 100
DURATION = 2
WARMUP = 1
FIELDS = ("url", "api", "rate", "duration_s", "warmup_s", "threads", "max_connections", "inputs_per_request",
          "text_words", "sent", "ok", "http_errors", "http_4xx", "http_5xx", "network_errors", "achieved_qps",
          "p50_ms", "p95_ms", "p99_ms", "max_ms", "send_lag_mean_ms", "send_lag_p99_ms", "send_lag_max_ms",
          "send_lag_tail_p50_ms", "generator_behind")


def embeds_answered(server):
    return sum(v for k, v in server.metrics().items()
               if k.startswith("ake_requests_total{") and 'endpoint="embed"' in k and 'status="200"' in k)


def test_loadgen_two_threads_report_adds_up(server, tmp_path):
    out = tmp_path / "loadgen.json"
    before = embeds_answered(server)
    r = subprocess.run([AKE_BIN, "loadgen", "--url", server.url, "--rate", str(RATE), "--duration", str(DURATION),
                        "--warmup", str(WARMUP), "--threads", "2", "--max-connections", "8", "--json", str(out)],
                       capture_output=True, text=True, timeout=60, cwd=REPO)
    assert r.returncode == 0, r.stderr
    d = json.loads(out.read_text())
    assert set(FIELDS) <= set(d), f"missing: {set(FIELDS) - set(d)}"
    assert d["threads"] == 2 and d["max_connections"] == 8 and d["rate"] == RATE
    # the schedule holds exactly rate x duration measured requests, split over the two threads
    assert d["sent"] == RATE * DURATION, d
    assert d["ok"] == d["sent"] and d["http_errors"] == 0 and d["network_errors"] == 0, d
    assert embeds_answered(server) - before == RATE * (DURATION + WARMUP)
    # achieved = successes answered within the measured seconds, whichever request: they differ
    # from the measured requests' successes by the requests in flight at the window's edges,
    # at most those due within the slowest latency of either edge
    assert abs(d["achieved_qps"] * DURATION - d["ok"]) <= RATE * d["max_ms"] / 1e3 + 1, d
    assert 0 < d["p50_ms"] <= d["p95_ms"] <= d["p99_ms"] <= d["max_ms"], d
    assert 0 <= d["send_lag_mean_ms"] <= d["send_lag_max_ms"] and 0 <= d["send_lag_p99_ms"] <= d["send_lag_max_ms"], d
    assert d["generator_behind"] is False, d
    # the printed row says what the JSON says
    head, row = r.stdout.strip().splitlines()[-2:]
    printed = dict(zip(head.split(), row.split()))
    assert int(printed["threads"]) == 2 and int(printed["sent"]) == d["sent"] and int(printed["ok"]) == d["ok"]
    assert abs(float(printed["p99_ms"]) - d["p99_ms"]) < 0.01 and abs(float(printed["qps"]) - d["achieved_qps"]) < 0.1


class _Stamp(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as against the real server
    disable_nagle_algorithm = True  # else the body, written after the headers, waits for an ACK
    arrivals = []

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        _Stamp.arrivals.append(time.monotonic())
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "7")
        self.end_headers()
        self.wfile.write(b"[[0.0]]")

    def log_message(self, *args):
        pass


def test_loadgen_threads_share_one_even_schedule():
    """Request i is due at i/rate whichever thread sends it: the k-th arrival comes k periods
    after the first, give or take the machine's jitter. Two threads sending the same slots
    would make arrivals come in pairs, every other one half a period off that grid."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Stamp)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    _Stamp.arrivals = []
    rate = 100
    try:
        r = subprocess.run([AKE_BIN, "loadgen", "--url", f"http://127.0.0.1:{srv.server_address[1]}", "--rate",
                            str(rate), "--duration", "2", "--warmup", "0", "--threads", "2", "--max-connections", "4"],
                           capture_output=True, text=True, timeout=60, cwd=REPO)
    finally:
        srv.shutdown()
        srv.server_close()
    assert r.returncode == 0, r.stderr
    t = sorted(_Stamp.arrivals)
    assert len(t) == 2 * rate
    off = [a - t[0] - k / rate for k, a in enumerate(t)]
    mid = statistics.median(off)
    spread = statistics.median(abs(o - mid) for o in off)  # robust to a few late ones on a busy machine
    assert spread < 0.25 / rate, f"arrivals sit {spread * 1e3:.2f} ms off an even grid (median)"
    # and the whole schedule takes its 2 s, not 1 (no thread ran through all the slots)
    assert 1.9 < t[-1] - t[0] < 2.3, t[-1] - t[0]


class _Shapes(http.server.BaseHTTPRequestHandler):
    """Answers in the shape the path names: chunked (as uvicorn does), close (Connection: close
    after every response), err (503), bad (not HTTP), once (answers a connection's first request
    and closes it on the second unanswered, as a server whose keep-alive timeout strikes just as
    the request arrives), drop (closes every connection unanswered), slow (answers after 1 s),
    else 200 with a Content-Length."""
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        kind = self.path.strip("/")
        self.served = getattr(self, "served", 0) + 1  # one handler per connection
        if kind == "drop" or (kind == "once" and self.served > 1):
            self.close_connection = True
            return
        if kind == "slow":
            time.sleep(1)
        if kind == "bad":
            self.wfile.write(b"HTTP/9 200 OK\r\nContent-Length: 0\r\n\r\n")
            return
        self.send_response(503 if kind == "err" else 200)
        if kind == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (b"3\r\n[[0\r\n", b"4;x=y\r\n.0]]\r\n", b"0\r\n\r\n"):  # one write each
                self.wfile.write(piece)
                self.wfile.flush()
            return
        body = b"[[0.0]]"
        self.send_header("Content-Length", str(len(body)))
        if kind == "close":
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_loadgen_reads_other_servers_responses(tmp_path):
    """loadgen's own HTTP client: chunked bodies and connections the server closes are read as
    successes, an error status counts by its class, and what is not HTTP is a network error
    that says why. A request that a kept-alive connection drops before any answer goes again
    once on a fresh connection (the server's idle close may cross it); on a fresh connection
    it is an error, as is a response later than --timeout-ms."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Shapes)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    rate = 50
    runs = {}
    try:
        for kind in ("chunked", "close", "err", "bad", "once", "drop", "slow"):
            out = tmp_path / f"{kind}.json"
            r = subprocess.run([AKE_BIN, "loadgen", "--url", f"http://localhost:{srv.server_address[1]}/{kind}",
                                "--rate", str(rate), "--duration", "1", "--warmup", "0", "--threads", "1",
                                "--max-connections", "2", "--timeout-ms", "100" if kind == "slow" else "30000",
                                "--json", str(out)],
                               capture_output=True, text=True, timeout=60, cwd=REPO)
            assert r.returncode == 0, r.stderr
            runs[kind] = (json.loads(out.read_text()), r.stderr)
    finally:
        srv.shutdown()
        srv.server_close()
    for kind in ("chunked", "close", "once"):
        d = runs[kind][0]
        assert d["sent"] == rate and d["ok"] == rate and d["http_errors"] + d["network_errors"] == 0, (kind, d)
    d = runs["err"][0]
    assert d["ok"] == 0 and d["http_errors"] == rate and d["http_5xx"] == rate and d["network_errors"] == 0, d
    d, err = runs["bad"]
    assert d["ok"] == 0 and d["network_errors"] == rate and d["http_errors"] == 0, d
    assert "bad HTTP status line" in err, err
    d, err = runs["drop"]
    assert d["ok"] == 0 and d["network_errors"] == rate, d
    assert "the server closed the connection" in err, err
    # each request waits 100 ms for nothing and its connection closes, freeing it for one that
    # waited: all fail, and the run ends
    d, err = runs["slow"]
    assert d["ok"] == 0 and d["network_errors"] == rate, d
    assert "no response within 100 ms" in err, err


def test_loadgen_refuses_https():
    r = subprocess.run([AKE_BIN, "loadgen", "--url", "https://127.0.0.1:8443"], capture_output=True, text=True,
                       timeout=30, cwd=REPO)
    assert r.returncode == 2 and "https is not supported" in r.stderr, r.stderr


def test_loadgen_print_body_and_thread_limit():
    r = subprocess.run([AKE_BIN, "loadgen", "--print-body", "--text-len", "5"], capture_output=True, text=True,
                       timeout=30, cwd=REPO)
    assert r.returncode == 0, r.stderr
    body = json.loads(r.stdout)
    assert list(body) == ["inputs"] and len(body["inputs"]) == 1 and len(body["inputs"][0].split()) == 5
    # every thread needs a connection of its own
    r = subprocess.run([AKE_BIN, "loadgen", "--threads", "4", "--max-connections", "2"], capture_output=True,
                       text=True, timeout=30, cwd=REPO)
    assert r.returncode == 2 and "--max-connections" in r.stderr
