#!/usr/bin/env python3
"""CPU peers of akidb-embed on one model, same shapes, same thread count: PyTorch and ONNX Runtime.

Run it through bench/cpu_peers.sh, which builds the venv (.venv-golden) and akidb-embed and
passes --akidb build/akidb-embed (omitted with --peers-only).

akidb-embed is timed by its own `akidb-embed bench` (engine only, packed, no padding), one call
per shape with the same --threads, --iters and shape.
Peers, FP32 on the CPU, each in its own process (set up once, idle while another is timed):
  torch        transformers BertModel (the model folder's weights, default attention
               implementation) + mean pooling over the attention mask + L2 normalize, under
               torch.inference_mode(), torch.set_num_threads(T). This is what
               sentence-transformers runs for this model.
  onnxruntime  the same BertModel + mean pooling + L2 normalize exported as ONE ONNX graph
               (pooling and normalize are inside the graph), dynamic batch and sequence axes,
               run by InferenceSession on CPUExecutionProvider with intra_op_num_threads=T,
               inter_op_num_threads=1, graph_optimization_level=ORT_ENABLE_ALL. Exported once to
               build/onnx/ (re-exported when torch, the model or this recipe changes) and checked
               against torch before timing. ORT's online optimizer leaves attention unfused in
               this export (no Attention node in the optimized graph).
  onnxruntime-fused  the same graph after onnxruntime.transformers.optimizer.optimize_model
               (model_type "bert": Attention, EmbedLayerNormalization, SkipLayerNormalization,
               BiasGelu fused; what Optimum's O2 does), then the same session options. The
               strongest plain ORT CPU setting; also checked against torch.

Shapes: batch {1,8,32} x seq {32,128,256}, plus one batch "mixed" whose lengths are the n_tokens
of lines 0..31 of tests/golden/embeddings_<model>.jsonl (akidb-embed bench --mixed gets the same
list). Inputs: token ids drawn uniformly from [1000, 30000), [CLS]/[SEP] not special-cased;
for "mixed" the peers pad to the longest sequence with id 0 and mask each row by its length
(what a padded framework does); akidb-embed packs without padding.
tokens_per_s counts real tokens only: batch*seq, or the sum of the mixed lengths.
Timing: `--warmup` untimed calls, then the median of `--iters` (>= 20) timed calls per shape.
The implementations are interleaved shape by shape (each peer is a persistent process that
times one shape on request), so that load from elsewhere on a shared machine hits them alike;
with --repeat R the whole interleaved pass runs R times and each (implementation, shape) keeps
its lowest median (all medians are kept in the row's pass_ms).

Output: all rows (akidb-embed's too) to --out as a JSON list, and a markdown table on stdout.
"""
import argparse
import datetime
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BATCHES = (1, 8, 32)
SEQS = (32, 128, 256)
MIXED_LINES = 32
EXPORT_RECIPE = "bert+meanpool+l2norm, eager attention, opset 17, v1"


# ---------------------------------------------------------------------------------------------
# Shared helpers.

def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                              capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def golden_path(model_dir):
    name = os.path.basename(os.path.normpath(model_dir))
    return os.path.join(REPO, "tests", "golden", f"embeddings_{name}.jsonl")


def mixed_lengths(model_dir):
    """n_tokens of golden lines 0..31 (the rule akidb-embed bench --mixed is given)."""
    path = golden_path(model_dir)
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            out.append(int(json.loads(line)["n_tokens"]))
            if len(out) == MIXED_LINES:
                break
    if len(out) != MIXED_LINES:
        sys.exit(f"cpu_peers: {path} has fewer than {MIXED_LINES} lines")
    return out


def shapes(model_dir):
    """[(batch, seq label, [length per sequence])]"""
    out = [(b, s, [s] * b) for b in BATCHES for s in SEQS]
    mixed = mixed_lengths(model_dir)
    out.append((len(mixed), "mixed", mixed))
    return out


def make_inputs(lengths, seed):
    """int64 input_ids / attention_mask [batch, max(lengths)], padded with 0 on the right."""
    import numpy as np
    rng = np.random.default_rng(seed)
    b, t = len(lengths), max(lengths)
    ids = rng.integers(1000, 30000, size=(b, t), dtype=np.int64)
    mask = (np.arange(t)[None, :] < np.asarray(lengths)[:, None]).astype(np.int64)
    ids *= mask
    return ids, mask


def time_median_ms(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), min(times)


# ---------------------------------------------------------------------------------------------
# Workers (one process per peer).

def _load_torch_model(model_dir, threads, attn=None):
    import torch
    from transformers import AutoModel
    torch.set_num_threads(threads)
    kw = {"attn_implementation": attn} if attn else {}
    model = AutoModel.from_pretrained(model_dir, dtype=torch.float32, **kw)
    model.eval()
    return model


def _embedder(model):
    """Wraps a BertModel; built here so that the onnxruntime worker never imports torch."""
    import torch

    class Embedder(torch.nn.Module):
        """BertModel -> mean pooling over the mask -> L2 normalize: sentence-transformers'
        Transformer + Pooling(mean) + Normalize."""

        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask):
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                               token_type_ids=torch.zeros_like(input_ids)).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    return Embedder(model).eval()


def setup_torch(args):
    """-> (detail, [fn per shape])"""
    import torch
    import transformers
    emb = _embedder(_load_torch_model(args.model, args.threads))
    fns = []
    for i, (_, _, lengths) in enumerate(shapes(args.model)):
        ids, mask = (torch.from_numpy(a) for a in make_inputs(lengths, seed=100 + i))

        def fn(ids=ids, mask=mask):
            with torch.inference_mode():
                return emb(ids, mask)

        fns.append(fn)
    detail = (f"torch {torch.__version__}, transformers {transformers.__version__}, "
              f"attn {emb.bert.config._attn_implementation}")
    return detail, fns


def _onnx_path(model_dir):
    import torch
    st = os.stat(os.path.join(model_dir, "model.safetensors"))
    key = f"{os.path.abspath(model_dir)}|{st.st_size}|{st.st_mtime_ns}|{torch.__version__}|" \
          f"{EXPORT_RECIPE}"
    h = hashlib.sha256(key.encode()).hexdigest()[:12]
    name = os.path.basename(os.path.normpath(model_dir))
    return os.path.join(REPO, "build", "onnx", f"{name}-embed-{h}.onnx")


def worker_export(args):
    """Exports (if not cached) the plain and the fused ONNX graphs, checks both against torch;
    prints {"onnxruntime": path, "onnxruntime-fused": path, ...} as one JSON line."""
    import numpy as np
    import onnxruntime as ort
    import torch
    path = _onnx_path(args.model)
    fused = path[: -len(".onnx")] + ".fused.onnx"
    # Eager attention exports as plain MatMul/Softmax, the pattern ORT's attention fusion knows.
    emb = _embedder(_load_torch_model(args.model, args.threads, attn="eager"))
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        ids, mask = (torch.from_numpy(a) for a in make_inputs([7, 5], seed=1))
        tmp = path + ".tmp"
        with torch.inference_mode():
            torch.onnx.export(emb, (ids, mask), tmp, input_names=["input_ids", "attention_mask"],
                              output_names=["sentence_embedding"], opset_version=17,
                              dynamic_axes={"input_ids": {0: "batch", 1: "seq"},
                                            "attention_mask": {0: "batch", 1: "seq"},
                                            "sentence_embedding": {0: "batch"}},
                              do_constant_folding=True, dynamo=False)
        os.replace(tmp, path)
    if not os.path.exists(fused):
        from onnxruntime.transformers.optimizer import optimize_model
        cfg = emb.bert.config
        opt = optimize_model(path, model_type="bert", num_heads=cfg.num_attention_heads,
                             hidden_size=cfg.hidden_size, opt_level=0)
        stats = {k: v for k, v in opt.get_fused_operator_statistics().items() if v}
        print(f"  fused: {stats}", file=sys.stderr)
        opt.save_model_to_file(fused + ".tmp")
        os.replace(fused + ".tmp", fused)
    # Check both graphs against the torch peer on a padded mixed batch before any timing.
    ref_model = _embedder(_load_torch_model(args.model, args.threads))
    ids, mask = make_inputs([3, 40, 256, 17, 129], seed=2)
    with torch.inference_mode():
        ref = ref_model(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    result = {}
    for label, p in (("onnxruntime", path), ("onnxruntime-fused", fused)):
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = args.threads
        sess = ort.InferenceSession(p, so, providers=["CPUExecutionProvider"])
        got = sess.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        diff = float(np.max(np.abs(got - ref)))
        if not diff <= 1e-4:
            sys.exit(f"cpu_peers: ONNX graph {p} disagrees with torch: max |diff| {diff:.3g}")
        result[label] = p
        result[label + " max_abs_diff_vs_torch"] = diff
    print(json.dumps(result))


def setup_onnxruntime(args):
    """-> (detail, [fn per shape])"""
    import collections

    import onnx
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = args.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # The graph as ORT runs it, after its online optimizations: which ops got fused.
    opt_path = args.onnx[: -len(".onnx")] + ".ortopt.onnx"
    so.optimized_model_filepath = opt_path
    so.log_severity_level = 3
    sess = ort.InferenceSession(args.onnx, so, providers=["CPUExecutionProvider"])
    ops = collections.Counter(n.op_type for n in onnx.load(opt_path).graph.node)
    top = ", ".join(f"{k} {v}" for k, v in ops.most_common(8))
    print(f"  {args.label} (onnxruntime {ort.__version__}) graph ops: {top}", file=sys.stderr)
    fns = []
    for i, (_, _, lengths) in enumerate(shapes(args.model)):
        ids, mask = make_inputs(lengths, seed=100 + i)
        feeds = {"input_ids": ids, "attention_mask": mask}
        fns.append(lambda feeds=feeds: sess.run(None, feeds))
    detail = (f"onnxruntime {ort.__version__}, ORT_ENABLE_ALL, pooling+normalize in graph, "
              f"{'fused Attention' if 'Attention' in ops else 'no fused Attention'}")
    return detail, fns


def worker_serve(args):
    """A timing server on stdin/stdout: answers {"ready": detail}, then for each request line
    {"shape": i} times shape i (warm-up, then --iters calls) and answers {"ms", "ms_min"}.
    The protocol uses the original stdout; everything else printed goes to stderr."""
    import numpy as np
    proto = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    detail, fns = (setup_torch if args.worker == "torch" else setup_onnxruntime)(args)
    for fn in fns:  # one call each: every shape runs and gives finite vectors
        out = fn()
        out = out[0] if isinstance(out, list) else out.numpy()
        assert np.isfinite(out).all()
    proto.write(json.dumps({"ready": detail}) + "\n")
    proto.flush()
    for line in sys.stdin:
        req = json.loads(line)
        ms, ms_min = time_median_ms(fns[req["shape"]], args.warmup, args.iters)
        proto.write(json.dumps({"ms": ms, "ms_min": ms_min}) + "\n")
        proto.flush()


def _row(impl, args, batch, seq, tokens, ms, ms_min, detail):
    return {"impl": impl, "model": os.path.basename(os.path.normpath(args.model)),
            "dtype": "fp32", "device": "cpu", "batch": batch, "seq": seq, "tokens": tokens,
            "ms": round(ms, 4), "ms_min": round(ms_min, 4),
            "tokens_per_s": round(tokens / ms * 1e3), "threads": args.threads,
            "iters": args.iters, "cpu": cpu_model(), "commit": git_commit(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
            "detail": detail}


# ---------------------------------------------------------------------------------------------
# Driver.

def _worker_env(args):
    return dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
                HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")


def _worker_cmd(impl, args, extra=()):
    return [sys.executable, os.path.abspath(__file__), "--worker", impl, "--model", args.model,
            "--threads", str(args.threads), "--iters", str(args.iters),
            "--warmup", str(args.warmup), *extra]


class Peer:
    """A peer in its own process (torch or onnxruntime), set up once, timed shape by shape."""

    def __init__(self, label, impl, args, extra=()):
        self.label = label
        self.p = subprocess.Popen(_worker_cmd(impl, args, extra), env=_worker_env(args),
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.detail = self._reply()["ready"]

    def _reply(self):
        line = self.p.stdout.readline()
        if not line:
            sys.exit(f"cpu_peers: worker {self.label} died (exit {self.p.wait()})")
        return json.loads(line)

    def time(self, shape_index):
        self.p.stdin.write(json.dumps({"shape": shape_index}) + "\n")
        self.p.stdin.flush()
        r = self._reply()
        return r["ms"], r["ms_min"]

    def close(self):
        self.p.stdin.close()
        self.p.wait()


class Akidb:
    """akidb-embed: one `akidb-embed bench` call per shape (3 warm-up calls, median of --iters)."""

    def __init__(self, binary, args):
        self.label, self.binary, self.args = "akidb-embed", binary, args
        self.shapes = shapes(args.model)
        self.detail = "akidb-embed bench (engine only, packed, no padding)"

    def time(self, shape_index):
        b, seq, lengths = self.shapes[shape_index]
        a = self.args
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "rows.json")
            cmd = [self.binary, "bench", "--model", a.model, "--threads", str(a.threads),
                   "--iters", str(a.iters), "--json", out]
            if seq == "mixed":  # the grid cannot be empty: time a 1x32 cell too and drop it
                cmd += ["--batch", "1", "--seq", "32", "--mixed", ",".join(map(str, lengths))]
            else:
                cmd += ["--batch", str(b), "--seq", str(seq), "--mixed", "none"]
            p = subprocess.run(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
            if p.returncode != 0:
                sys.exit(f"cpu_peers: {' '.join(cmd)} failed (exit {p.returncode}): {p.stderr}")
            with open(out, encoding="utf-8") as f:
                rows = [r for r in json.load(f) if str(r["seq"]) == str(seq)]
        assert len(rows) == 1 and rows[0]["batch"] == b and rows[0]["tokens"] == sum(lengths), rows
        if rows[0]["threads"] != a.threads:
            sys.exit(f"cpu_peers: akidb-embed ran with {rows[0]['threads']} threads, "
                     f"not {a.threads}")
        self.last_row = rows[0]
        return rows[0]["ms"], None

    def close(self):
        pass


def fmt_table(rows, impls):
    by = {(r["impl"], r["batch"], str(r["seq"])): r for r in rows}
    keys = []
    for r in rows:
        k = (r["batch"], str(r["seq"]))
        if k not in keys:
            keys.append(k)
    keys.sort(key=lambda k: (k[1] == "mixed", k[0], int(k[1]) if k[1] != "mixed" else 0))
    head = ["batch", "seq"]
    for i in impls:
        head += [f"{i} ms", f"{i} tok/s"]
    num = "akidb-embed" if "akidb-embed" in impls else "torch"
    ratios = [(num, d) for d in ("onnxruntime", "onnxruntime-fused") if d in impls]
    head += [f"{a.split('-')[0]}/{d} tok/s" for a, d in ratios]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---:" for _ in head) + "|"]
    for b, s in keys:
        cells = [str(b), s]
        for i in impls:
            r = by.get((i, b, s))
            cells += [f"{r['ms']:.2f}", f"{r['tokens_per_s']:,}"] if r else ["–", "–"]
        for num_impl, den_impl in ratios:
            a, o = by.get((num_impl, b, s)), by.get((den_impl, b, s))
            cells.append(f"{a['tokens_per_s'] / o['tokens_per_s']:.2f}x" if a and o else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description="CPU peers benchmark (see bench/README.md)")
    ap.add_argument("--model", default=os.path.join(REPO, "models", "all-MiniLM-L6-v2"))
    ap.add_argument("--threads", type=int, default=int(os.environ.get("THREADS", "2")))
    ap.add_argument("--iters", type=int, default=20, help="timed calls per shape (>= 20)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--akidb", metavar="BIN", help="akidb-embed binary to time (omit: peers only)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="interleaved passes; each cell keeps its pass with the lowest median")
    ap.add_argument("--out", help="results JSON (default bench/results/cpu_peers-<date>.json)")
    ap.add_argument("--print-mixed", action="store_true",
                    help="print the mixed lengths (comma-separated) and exit")
    ap.add_argument("--worker", choices=["torch", "export", "onnxruntime"], help=argparse.SUPPRESS)
    ap.add_argument("--onnx", help=argparse.SUPPRESS)
    ap.add_argument("--label", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.model = os.path.abspath(args.model)

    if args.print_mixed:
        print(",".join(map(str, mixed_lengths(args.model))))
        return
    if args.worker == "export":
        worker_export(args)
        return
    if args.worker in ("torch", "onnxruntime"):
        worker_serve(args)
        return
    if args.iters < 20:
        ap.error("--iters must be at least 20")

    cpu = cpu_model()
    print(f"cpu_peers: {cpu}, {args.threads} threads, model {args.model}", file=sys.stderr)
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"cpu_peers: warning: load average {load:.2f} at the start: other work on this "
              f"machine skews the numbers (each row records loadavg_1m)", file=sys.stderr)
    print("cpu_peers: exporting/checking ONNX", file=sys.stderr)
    p = subprocess.run(_worker_cmd("export", args), env=_worker_env(args), stdout=subprocess.PIPE,
                       text=True)
    if p.returncode != 0:
        sys.exit(f"cpu_peers: ONNX export failed (exit {p.returncode})")
    exp = json.loads(p.stdout.strip().splitlines()[-1])
    for label in ("onnxruntime", "onnxruntime-fused"):
        print(f"  {label}: {os.path.relpath(exp[label], REPO)} (max |diff| vs torch "
              f"{exp[label + ' max_abs_diff_vs_torch']:.2g})", file=sys.stderr)

    impls = []
    if args.akidb:
        impls.append(Akidb(args.akidb, args))
    print("cpu_peers: setting up the peers", file=sys.stderr)
    impls.append(Peer("torch", "torch", args))
    for label in ("onnxruntime", "onnxruntime-fused"):
        impls.append(Peer(label, "onnxruntime", args, ["--onnx", exp[label], "--label", label]))

    # Interleaved: for each shape every implementation in turn (the order rotating from shape
    # to shape), so that load from elsewhere hits all of them alike; --repeat passes keep, per
    # implementation and shape, the pass with the lowest median.
    shp = shapes(args.model)
    best = {}
    for rep in range(args.repeat):
        for si, (b, seq, lengths) in enumerate(shp):
            order = impls[si % len(impls):] + impls[:si % len(impls)]
            for impl in order:
                time.sleep(0.2)  # let the previous implementation's spinning threads sleep
                load = os.getloadavg()[0]
                ms, ms_min = impl.time(si)
                tokens = sum(lengths)
                print(f"  pass {rep + 1}/{args.repeat} {impl.label:>17} batch {b:>3} seq "
                      f"{str(seq):>5}: {ms:9.3f} ms {tokens / ms * 1e3:9.0f} tokens/s "
                      f"(load {load:.2f})", file=sys.stderr, flush=True)
                key = (impl.label, si)
                prev = best.get(key)
                medians = (prev["pass_ms"] if prev else []) + [round(ms, 4)]
                if prev is None or ms < prev["ms"]:
                    if isinstance(impl, Akidb):
                        # akidb-embed bench may time fewer calls when a cell passes 10 s
                        row = dict(impl.last_row, iters_requested=args.iters)
                    else:
                        row = _row(impl.label, args, b, seq, tokens, ms, ms_min, impl.detail)
                    row["loadavg_1m"] = round(load, 2)
                    best[key] = row
                best[key]["pass_ms"] = medians
    for impl in impls:
        impl.close()
    labels = [i.label for i in impls]
    rows = [best[(label, si)] for label in labels for si in range(len(shp))]
    for r in rows:
        r["repeats"] = args.repeat

    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    out = args.out or os.path.join(REPO, "bench", "results", f"cpu_peers-{date}.json")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=os.path.dirname(os.path.abspath(out)),
                                     delete=False, suffix=".tmp") as f:
        json.dump(rows, f, indent=1)
        f.write("\n")
    os.replace(f.name, out)

    mixed = mixed_lengths(args.model)
    loads = [r["loadavg_1m"] for r in rows]
    print(f"\nCPU: {cpu}; threads: {args.threads}; commit {git_commit()}; {date}; FP32; "
          f"median of {args.iters} iterations, best of {args.repeat} interleaved pass(es); "
          f"1-min load average {min(loads):.2f}..{max(loads):.2f}\n")
    print(fmt_table(rows, labels))
    print(f"\nmixed = batch of {len(mixed)} with the token lengths of golden lines 0..31 "
          f"({sum(mixed)} real tokens; the peers pad to {max(mixed)}, "
          f"{len(mixed) * max(mixed)} token slots). Rows written to {os.path.relpath(out, REPO)}")


if __name__ == "__main__":
    main()
