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

--int8 (the INT8 mode) times five implementations instead, interleaved the same way:
  akidb-embed              fp32, as above
  akidb-embed-int8         `akidb-embed bench --dtype int8` on the float model: dynamic W8A8
                           (per-token activation scales, Hadamard-rotated inputs, per-channel
                           weights)
  akidb-embed-int8-static  `akidb-embed bench --model DIR` on the static INT8 folder that
                           `akidb-embed quantize --model M --calib tests/golden/quant_calib.txt`
                           writes (cached in build/cpu_peers/, keyed by the binary, model and
                           calibration file; or --static-int8 DIR)
  onnxruntime              fp32, as above (the same export)
  onnxruntime-int8         onnxruntime.quantization.quantize_dynamic of that same exported graph
                           with weight_type=QuantType.QInt8 and every other argument left at its
                           default (see ORT_INT8_RECIPE), same session options
and, before the timing, the accuracy of each INT8 variant against its own FP32 on the first
--accuracy-limit (5,000) texts of --corpus (tests/golden/quant_eval.txt): mean and minimum
cosine per text and recall@10, measured exactly as `akidb-embed validate` does
(src/quant/accuracy.c: 500 queries at indices i*n/500, the 10 nearest by cosine among all
texts, the query itself excluded, recall = overlap/10 averaged over the queries). akidb-embed's
come from `akidb-embed validate --json` (reference: the float model on the fp32 CPU engine);
ONNX Runtime's from embedding the texts here through both sessions (HF tokenizers with the model
folder's tokenizer.json, truncated to the model's max_seq_length, 256 tokens, as
sentence-transformers does; batches of 32 in order of length, padded, with attention masks) and
the same measures in numpy (accuracy_measure below). Rows of INT8 implementations carry
"accuracy" and "vs_own_fp32"; the results go to bench/results/cpu_peers-int8-<date>.json.
"""
import argparse
import atexit
import datetime
import hashlib
import json
import os
import platform
import shutil
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
# The ORT INT8 peer: quantize_dynamic(fp32_export, out, weight_type=QuantType.QInt8), nothing
# else passed; these are the defaults of onnxruntime 1.32 for the other arguments.
ORT_INT8_RECIPE = ("onnxruntime.quantization.quantize_dynamic(weight_type=QuantType.QInt8; defaults: "
                   "per_channel=False, reduce_range=False, op_types_to_quantize=None (every op it "
                   "supports: MatMul, Gather, Attention, EmbedLayerNormalization, Conv, LSTM, "
                   "Transpose), nodes_to_quantize/exclude=None, use_external_data_format=False, "
                   "extra_options={} (MatMulConstBOnly=True for dynamic)) of the plain fp32 export, "
                   "no pre-processing")
GATE = {"mean_cosine": 0.995, "min_cosine": 0.98, "recall_at_10": 0.95}  # AKE_GATE_DEFAULT
RECALL_K = 10          # AKE_RECALL_K
RECALL_QUERIES = 500   # akidb-embed validate's default --queries


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
    """Short HEAD, plus " with uncommitted changes" when a tracked file differs from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                              capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" with uncommitted changes" if git_dirty_files() else "")


def git_dirty_files():
    """Tracked files that differ from HEAD (staged or not)."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                             text=True, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    return sorted(line[3:] for line in out.splitlines() if line.strip())


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


def shapes(model_dir, only=None):
    """[(batch, seq label, [length per sequence])]; only: "BxS,..." cells to keep (S may be
    "mixed", whose batch is 32), None for all."""
    out = [(b, s, [s] * b) for b in BATCHES for s in SEQS]
    mixed = mixed_lengths(model_dir)
    out.append((len(mixed), "mixed", mixed))
    if only:
        want = [tuple(c.strip().split("x", 1)) for c in only.split(",") if c.strip()]
        keep = [t for t in out if (str(t[0]), str(t[1])) in want]
        if len(keep) != len(want):
            sys.exit(f"cpu_peers: --shapes {only}: cells are BxS with B in {BATCHES} and S in "
                     f"{SEQS} or 'mixed' (batch {len(mixed)})")
        out = keep
    return out


def shape_seed(model_dir, batch, seq):
    """The input seed of a cell: 100 + its index in the full grid, whatever --shapes keeps."""
    full = [(b, str(q)) for b, q, _ in shapes(model_dir)]
    return 100 + full.index((batch, str(seq)))


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
    for b, seq, lengths in shapes(args.model, args.shapes):
        ids, mask = (torch.from_numpy(a)
                     for a in make_inputs(lengths, seed=shape_seed(args.model, b, seq)))

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


def _ort_int8_path(fp32_path):
    """The quantize_dynamic copy of fp32_path, keyed by onnxruntime's version and the recipe."""
    import onnxruntime as ort
    h = hashlib.sha256(f"{ort.__version__}|{ORT_INT8_RECIPE}".encode()).hexdigest()[:8]
    return fp32_path[: -len(".onnx")] + f".int8-{h}.onnx"


def _ort_quantize_dynamic(path, out):
    """ORT's own dynamic INT8 of the fp32 export (ORT_INT8_RECIPE), written to out."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    tmp = out + ".tmp"
    quantize_dynamic(path, tmp, weight_type=QuantType.QInt8)
    os.replace(tmp, out)


def worker_export(args):
    """Exports (if not cached) the plain and the fused ONNX graphs, checks both against torch;
    with --int8 also quantize_dynamic's INT8 copy of the plain graph (run once, its distance to
    torch reported, not checked); prints {"onnxruntime": path, "onnxruntime-fused": path, ...}
    as one JSON line."""
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
    if args.int8:
        q = _ort_int8_path(path)
        if not os.path.exists(q):
            _ort_quantize_dynamic(path, q)
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        sess = ort.InferenceSession(q, so, providers=["CPUExecutionProvider"])
        got = sess.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        if not np.isfinite(got).all():
            sys.exit(f"cpu_peers: the INT8 graph {q} gives non-finite vectors")
        result["onnxruntime-int8"] = q
        result["onnxruntime-int8 max_abs_diff_vs_torch"] = float(np.max(np.abs(got - ref)))
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
    for b, seq, lengths in shapes(args.model, args.shapes):
        ids, mask = make_inputs(lengths, seed=shape_seed(args.model, b, seq))
        feeds = {"input_ids": ids, "attention_mask": mask}
        fns.append(lambda feeds=feeds: sess.run(None, feeds))
    detail = (f"onnxruntime {ort.__version__}, ORT_ENABLE_ALL, pooling+normalize in graph, "
              f"{'fused Attention' if 'Attention' in ops else 'no fused Attention'}")
    return detail, fns


def accuracy_measure(ref, cand, queries=RECALL_QUERIES, k=RECALL_K):
    """ake_accuracy_measure (src/quant/accuracy.c) with first = 0, in numpy. ref, cand: [n, d].
    Rows are normalized in double and stored as float32; cosine per text in double; queries at
    q = i*n//queries; neighbours by float32 dot product among all n rows, the query excluded,
    ties to the lower index (the C code's strict '>' scan); recall = overlap/k averaged."""
    import numpy as np

    def unit(x):
        x = np.asarray(x, dtype=np.float32)
        ss = np.einsum("ij,ij->i", x.astype(np.float64), x.astype(np.float64))
        inv = np.where(ss > 0, 1.0 / np.sqrt(np.where(ss > 0, ss, 1.0)), 0.0).astype(np.float32)
        return x * inv[:, None]

    n = ref.shape[0]
    ur, uc = unit(ref), unit(cand)
    cos = np.einsum("ij,ij->i", ur.astype(np.float64), uc.astype(np.float64))
    out = {"texts": int(n), "mean_cosine": float(cos.mean()), "min_cosine": float(cos.min()),
           "min_cosine_text": int(np.argmin(cos)) + 1}
    queries = min(queries, n)
    out["queries"] = int(queries)
    if n <= k or queries <= 0:
        out["recall_at_10"] = 1.0
        return out

    def nearest(u, q):
        sim = u @ u[q]
        sim[q] = -np.inf
        return np.argsort(-sim, kind="stable")[:k]

    hits = 0
    for qi in range(queries):
        q = qi * n // queries
        hits += len(set(nearest(ur, q).tolist()) & set(nearest(uc, q).tolist()))
    out["recall_at_10"] = hits / (queries * k)
    return out


def read_corpus(path, limit):
    """The first `limit` lines of path (without the line break), as akidb-embed validate reads
    them (every line is a text, empty ones included)."""
    texts = []
    with open(path, encoding="utf-8", newline="") as f:
        for line in f:
            texts.append(line[:-1] if line.endswith("\n") else line)
            if len(texts) == limit:
                break
    return texts


def worker_ort_accuracy(args):
    """Embeds the corpus through the fp32 and the INT8 ONNX sessions (same options as the timing
    sessions), in batches of 32 (in order of length, padded, masked) and again one text per call,
    and prints the INT8 vectors' accuracy against the fp32 ones as one JSON line: the batched
    measures at the top level, the one-per-call ones under "one_text_per_call" (they can
    differ: quantize_dynamic's activation scale is one per tensor, so in a batch the largest
    activation of any of its texts, padding included, sets the scale for all of them)."""
    import numpy as np
    import onnxruntime as ort
    from tokenizers import Tokenizer
    with open(os.path.join(args.model, "sentence_bert_config.json"), encoding="utf-8") as f:
        max_len = int(json.load(f)["max_seq_length"])
    tok = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    tok.no_padding()  # the file itself asks for fixed padding and truncation at 128
    tok.enable_truncation(max_length=max_len)
    texts = read_corpus(args.corpus, args.accuracy_limit)
    enc = [e.ids for e in tok.encode_batch(texts, add_special_tokens=True)]
    order = sorted(range(len(enc)), key=lambda i: (-len(enc[i]), i))

    def batches(size):
        out = []
        for lo in range(0, len(order), size):
            idx = order[lo:lo + size]
            t = max(len(enc[i]) for i in idx)
            ids = np.zeros((len(idx), t), dtype=np.int64)
            mask = np.zeros((len(idx), t), dtype=np.int64)
            for r, i in enumerate(idx):
                ids[r, :len(enc[i])] = enc[i]
                mask[r, :len(enc[i])] = 1
            out.append((idx, ids, mask))
        return out

    tokens = sum(len(e) for e in enc)
    sessions = {}
    for label, path in (("fp32", args.onnx), ("int8", args.onnx_int8)):
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = args.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        sessions[label] = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    result = {}
    for size in (32, 1):
        bs = batches(size)
        vecs, secs = {}, {}
        for label, sess in sessions.items():
            v = None
            t0 = time.perf_counter()
            for idx, ids, mask in bs:
                out = sess.run(None, {"input_ids": ids, "attention_mask": mask})[0]
                if v is None:
                    v = np.zeros((len(texts), out.shape[1]), dtype=np.float32)
                v[idx] = out
            secs[label] = time.perf_counter() - t0
            vecs[label] = v
        acc = accuracy_measure(vecs["fp32"], vecs["int8"])
        acc.update({"batch_size": size, "seconds": secs["int8"],
                    "reference_seconds": secs["fp32"], "speedup": secs["fp32"] / secs["int8"]})
        print(f"  onnxruntime-int8, batch {size}: mean cosine {acc['mean_cosine']:.5f}, min "
              f"{acc['min_cosine']:.5f}, recall@10 {acc['recall_at_10']:.4f}", file=sys.stderr)
        if size == 32:
            result = acc
        else:
            result["one_text_per_call"] = acc
    result.update({"corpus": os.path.relpath(args.corpus, REPO), "tokens": tokens,
                   "max_seq_length": max_len, "file_bytes": os.path.getsize(args.onnx_int8),
                   "reference_file_bytes": os.path.getsize(args.onnx),
                   "how": "ORT fp32 vs ORT INT8 vectors of the same texts, batches of 32 in "
                          "order of length (padded, masked), accuracy_measure in numpy"})
    print(json.dumps(result))


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


def _row(impl, args, batch, seq, tokens, ms, ms_min, detail, dtype="fp32"):
    return {"impl": impl, "model": os.path.basename(os.path.normpath(args.model)),
            "dtype": dtype, "device": "cpu", "batch": batch, "seq": seq, "tokens": tokens,
            "ms": round(ms, 4), "ms_min": round(ms_min, 4),
            "tokens_per_s": round(tokens / ms * 1e3), "threads": args.threads,
            "iters": args.iters, "cpu": cpu_model(), "commit": args.commit,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
            "detail": detail}


# ---------------------------------------------------------------------------------------------
# Driver.

def _worker_env(args):
    return dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
                HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")


def _worker_cmd(impl, args, extra=()):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", impl, "--model", args.model,
           "--threads", str(args.threads), "--iters", str(args.iters),
           "--warmup", str(args.warmup), *extra]
    if args.shapes:
        cmd += ["--shapes", args.shapes]
    return cmd


class Peer:
    """A peer in its own process (torch or onnxruntime), set up once, timed shape by shape."""

    def __init__(self, label, impl, args, extra=(), dtype="fp32"):
        self.label, self.dtype = label, dtype
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
    """akidb-embed: one `akidb-embed bench` call per shape (3 warm-up calls, median of --iters).
    model: the folder to run (default --model); dtype: its --dtype (None: the folder's own)."""

    def __init__(self, binary, args, label="akidb-embed", model=None, dtype=None, detail=None):
        self.label, self.binary, self.args = label, binary, args
        self.model, self.dtype = model or args.model, dtype
        self.shapes = shapes(args.model, args.shapes)
        self.detail = detail or "akidb-embed bench (engine only, packed, no padding)"

    def time(self, shape_index):
        b, seq, lengths = self.shapes[shape_index]
        a = self.args
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "rows.json")
            cmd = [self.binary, "bench", "--model", self.model, "--threads", str(a.threads),
                   "--iters", str(a.iters), "--json", out]
            if self.dtype:
                cmd += ["--dtype", self.dtype]
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
        # The row names the implementation and the float model it stands for (a quantized
        # folder's name is not the model's), and the commit as this driver sees it.
        self.last_row = dict(rows[0], impl=self.label, model=os.path.basename(
            os.path.normpath(a.model)), commit=a.commit, detail=self.detail)
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


OWN_FP32 = {"akidb-embed-int8": "akidb-embed", "akidb-embed-int8-static": "akidb-embed",
            "onnxruntime-int8": "onnxruntime"}
QUANT_CALIB = os.path.join(REPO, "tests", "golden", "quant_calib.txt")


# The sources that decide what `akidb-embed quantize` writes on the CPU: src/base, text, model,
# engine (not engine/cuda), quant, the quantize command and the CLI helpers it uses, and the
# Makefile. A rebuild for anything else (CUDA, server, other commands) keeps the cached folder:
# quantizing takes minutes, ten when the gate's sensitivity pass runs on a loaded machine.
QUANT_SOURCE_DIRS = ("src/base", "src/text", "src/model", "src/engine", "src/quant")
QUANT_SOURCE_SKIP = ("src/engine/cuda",)
QUANT_SOURCE_FILES = ("src/cli/quantize.c", "src/cli/cli_common.c", "src/cli/cli.h", "Makefile")


def _quant_source_key(h):
    paths = []
    for top in QUANT_SOURCE_DIRS:
        for root, dirs, files in os.walk(os.path.join(REPO, top)):
            dirs.sort()
            rel = os.path.relpath(root, REPO)
            if rel.startswith(QUANT_SOURCE_SKIP):
                dirs[:] = []
                continue
            paths += [os.path.join(rel, n) for n in sorted(files) if n.endswith((".c", ".h"))]
    for rel in paths + list(QUANT_SOURCE_FILES):
        with open(os.path.join(REPO, rel), "rb") as f:
            h.update(rel.encode() + b"\0" + f.read())


def static_int8_folder(binary, args):
    """--static-int8, or the folder `akidb-embed quantize` writes from the float model with the
    calibration texts of tests/golden/quant_calib.txt and its defaults (gate included), kept in
    build/cpu_peers/ under a key of the sources it depends on (QUANT_SOURCE_*), the model and
    the calibration file."""
    if args.static_int8:
        return os.path.abspath(args.static_int8)
    h = hashlib.sha256()
    _quant_source_key(h)
    st = os.stat(os.path.join(args.model, "model.safetensors"))
    with open(QUANT_CALIB, "rb") as f:
        h.update(f.read())
    h.update(f"{args.model}|{st.st_size}|{st.st_mtime_ns}".encode())
    name = os.path.basename(os.path.normpath(args.model))
    out = os.path.join(REPO, "build", "cpu_peers", f"{name}-int8-static-{h.hexdigest()[:12]}")
    if os.path.exists(os.path.join(out, "model.safetensors")):
        print(f"cpu_peers: static INT8 folder {os.path.relpath(out, REPO)} (cached)",
              file=sys.stderr)
        return out
    os.makedirs(os.path.dirname(out), exist_ok=True)
    cmd = [binary, "quantize", "--model", args.model, "--calib", QUANT_CALIB, "--out", out,
           "--threads", str(args.threads)]
    print(f"cpu_peers: akidb-embed quantize --model {os.path.relpath(args.model, REPO)} --calib "
          f"{os.path.relpath(QUANT_CALIB, REPO)} --out {os.path.relpath(out, REPO)} (about 1.5 "
          f"min)", file=sys.stderr, flush=True)
    t0 = time.time()
    p = subprocess.run(cmd, cwd=REPO, stdout=sys.stderr, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.exit(f"cpu_peers: akidb-embed quantize failed (exit {p.returncode}): "
                 f"{p.stderr[-2000:]}")
    print(f"cpu_peers: quantized in {time.time() - t0:.0f} s", file=sys.stderr)
    return out


def static_folder_facts(folder):
    """'; 94.4 % of linear FLOPs in 8 bits, float: layer 4 ffn2' from quantization_config.json."""
    try:
        with open(os.path.join(folder, "quantization_config.json"), encoding="utf-8") as f:
            cfg = json.load(f)
    except (OSError, ValueError):
        return ""
    kept = [f"layer {i} {k}" for i, layer in enumerate(cfg.get("layers", []))
            for k, v in layer.items() if v != cfg.get("dtype")]
    share = cfg.get("gemm_flops_8bit_share")
    return (f"; {cfg.get('activations', '?')}; "
            + (f"{100 * share:.1f} % of linear FLOPs in 8 bits" if share is not None else "")
            + (f", kept in float: {', '.join(kept)}" if kept else ""))


def _gate_pass(acc):
    return all(acc[k] >= v for k, v in GATE.items())


def akidb_accuracy(binary, args, model, dtype):
    """`akidb-embed validate --json` of model (with --dtype dtype) against the float model."""
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "validate.json")
        cmd = [binary, "validate", "--model", model, "--reference", args.model, "--corpus",
               args.corpus, "--limit", str(args.accuracy_limit), "--threads", str(args.threads),
               "--json", out] + (["--dtype", dtype] if dtype else [])
        p = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
        # exit 1 with the report written: the gate failed, which is a result
        if not os.path.exists(out) or p.returncode not in (0, 1):
            sys.exit(f"cpu_peers: {' '.join(cmd)} failed (exit {p.returncode}): "
                     f"{p.stderr[-2000:]}")
        with open(out, encoding="utf-8") as f:
            v = json.load(f)
    shown = [os.path.relpath(c, REPO) if c.startswith(REPO + os.sep) else c
             for c in cmd[1:] if c != out]
    shown[shown.index("--json")] = "--json F"
    acc = {k: v[k] for k in ("texts", "queries", "mean_cosine", "min_cosine", "min_cosine_text",
                             "recall_at_10", "dtype", "reference_dtype", "file_bytes",
                             "reference_file_bytes", "seconds", "reference_seconds", "speedup")}
    acc.update({"corpus": os.path.relpath(args.corpus, REPO), "pass": bool(v["pass"]),
                "failed": v["failed"],
                "how": "akidb-embed " + " ".join(shown)})
    return acc


def ort_accuracy(args, exp):
    """The ort-accuracy worker's report (INT8 session against the fp32 session), plus the gate."""
    cmd = _worker_cmd("ort-accuracy", args, ["--onnx", exp["onnxruntime"], "--onnx-int8",
                                             exp["onnxruntime-int8"], "--corpus", args.corpus,
                                             "--accuracy-limit", str(args.accuracy_limit)])
    p = subprocess.run(cmd, env=_worker_env(args), stdout=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.exit(f"cpu_peers: the ONNX Runtime accuracy worker failed (exit {p.returncode})")
    acc = json.loads(p.stdout.strip().splitlines()[-1])
    for a in (acc, acc["one_text_per_call"]):
        a.update({"pass": _gate_pass(a), "failed": "; ".join(
            f"{k} {a[k]:.4f} < {v}" for k, v in GATE.items() if a[k] < v)})
    acc.update({"dtype": "int8", "reference_dtype": "fp32"})
    return acc


def fmt_int8_tables(rows, labels, accuracy, args):
    """The headline cell (batch 32, seq 128, or the first cell timed) with speed and accuracy
    side by side, then tokens/s and the ratios over every cell."""
    by = {(r["impl"], r["batch"], str(r["seq"])): r for r in rows}
    cells = []
    for r in rows:
        if (r["batch"], str(r["seq"])) not in cells:
            cells.append((r["batch"], str(r["seq"])))
    cells.sort(key=lambda k: (k[1] == "mixed", k[0], int(k[1]) if k[1] != "mixed" else 0))
    hb, hs = (32, "128") if (32, "128") in cells else cells[0]
    ort8 = by.get(("onnxruntime-int8", hb, hs))
    what = {"akidb-embed": "fp32",
            "akidb-embed-int8": "int8 dynamic (per-token activation scales)",
            "akidb-embed-int8-static": "int8 static folder (akidb-embed quantize)",
            "onnxruntime": "fp32 (torch.onnx export)",
            "onnxruntime-int8": "int8 quantize_dynamic (QInt8 weights)"}
    out = [f"Batch {hb}, seq {hs}: speed (median ms, tokens/s) and accuracy against the same "
           f"implementation's FP32 on the first {args.accuracy_limit} texts of "
           f"{os.path.relpath(args.corpus, REPO)} (gate: mean >= {GATE['mean_cosine']}, "
           f"min >= {GATE['min_cosine']}, recall@10 >= {GATE['recall_at_10']})", "",
           "| impl | precision | ms | tokens/s | x own FP32 | x ORT INT8 | mean cosine | "
           "min cosine | recall@10 | gate |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for label in labels:
        r = by.get((label, hb, hs))
        if not r:
            continue
        a = accuracy.get(label)
        own = by.get((OWN_FP32.get(label, label), hb, hs))
        x_own = f"{r['tokens_per_s'] / own['tokens_per_s']:.2f}x" if own else "–"
        x_ort = f"{r['tokens_per_s'] / ort8['tokens_per_s']:.2f}x" if ort8 else "–"
        if a:
            acc = [f"{a['mean_cosine']:.4f}", f"{a['min_cosine']:.4f}",
                   f"{a['recall_at_10']:.3f}", "PASS" if a["pass"] else "FAIL"]
        elif label in OWN_FP32:
            acc = ["not measured"] * 3 + ["–"]
        else:
            acc = ["(reference)", "", "", ""]
        out.append(f"| {label} | {what.get(label, r['dtype'])} | {r['ms']:.2f} | "
                   f"{r['tokens_per_s']:,} | {x_own} | {x_ort} | " + " | ".join(acc) + " |")
    ratios = [(n, d) for n, d in (("akidb-embed-int8", "akidb-embed"),
                                  ("akidb-embed-int8-static", "akidb-embed"),
                                  ("onnxruntime-int8", "onnxruntime"),
                                  ("akidb-embed-int8", "onnxruntime-int8"),
                                  ("akidb-embed-int8-static", "onnxruntime-int8"))
              if n in labels and d in labels]
    short = {"akidb-embed": "akidb fp32", "akidb-embed-int8": "akidb int8",
             "akidb-embed-int8-static": "akidb static", "onnxruntime": "ORT fp32",
             "onnxruntime-int8": "ORT int8"}
    head = ["batch", "seq"] + [f"{short.get(i, i)} tok/s" for i in labels] + \
           [f"{short[n]} / {short[d]}" for n, d in ratios]
    out += ["", "Every cell, tokens/s and ratios of tokens/s:", "",
            "| " + " | ".join(head) + " |", "|" + "|".join("---:" for _ in head) + "|"]
    for b, sq in cells:
        c = [str(b), sq]
        for i in labels:
            r = by.get((i, b, sq))
            c.append(f"{r['tokens_per_s']:,}" if r else "–")
        for n, d in ratios:
            x, y = by.get((n, b, sq)), by.get((d, b, sq))
            c.append(f"{x['tokens_per_s'] / y['tokens_per_s']:.2f}x" if x and y else "–")
        out.append("| " + " | ".join(c) + " |")
    if accuracy:
        out += ["", "Accuracy, each against its own FP32:"]
        for label, a in accuracy.items():
            out.append(f"- {label}: {a['texts']} texts, {a['queries']} queries, mean cosine "
                       f"{a['mean_cosine']:.5f}, min {a['min_cosine']:.5f} (text "
                       f"{a['min_cosine_text']}), recall@10 {a['recall_at_10']:.4f}, "
                       f"{'PASS' if a['pass'] else 'FAIL: ' + a['failed']}; weights "
                       f"{a['file_bytes'] / 1e6:.1f} MB vs {a['reference_file_bytes'] / 1e6:.1f}"
                       f" MB; whole corpus {a['speedup']:.2f}x its FP32 ({a['how']})")
            o = a.get("one_text_per_call")
            if o:
                out.append(f"  - {label}, one text per call instead of batches of 32: mean "
                           f"cosine {o['mean_cosine']:.5f}, min {o['min_cosine']:.5f} (text "
                           f"{o['min_cosine_text']}), recall@10 {o['recall_at_10']:.4f}, "
                           f"{'PASS' if o['pass'] else 'FAIL'} (its activation scales are one per "
                           f"tensor, shared by the texts of a batch)")
    out += ["", f"onnxruntime-int8 = {ORT_INT8_RECIPE}."]
    return "\n".join(out)


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
    ap.add_argument("--shapes", help="only these cells, e.g. 32x128,32xmixed (default: all)")
    ap.add_argument("--int8", action="store_true",
                    help="INT8 mode: akidb-embed fp32/int8/static int8 and onnxruntime "
                         "fp32/quantize_dynamic, speed and accuracy")
    ap.add_argument("--static-int8", metavar="DIR",
                    help="--int8: this static INT8 folder instead of quantizing one")
    ap.add_argument("--corpus", default=os.path.join(REPO, "tests", "golden", "quant_eval.txt"),
                    help="--int8: accuracy texts, one per line")
    ap.add_argument("--accuracy-limit", type=int, default=5000,
                    help="--int8: the first N texts of --corpus (default 5000)")
    ap.add_argument("--no-accuracy", action="store_true", help="--int8: time only")
    ap.add_argument("--worker", choices=["torch", "export", "onnxruntime", "ort-accuracy"],
                    help=argparse.SUPPRESS)
    ap.add_argument("--onnx", help=argparse.SUPPRESS)
    ap.add_argument("--onnx-int8", help=argparse.SUPPRESS)
    ap.add_argument("--label", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.model = os.path.abspath(args.model)
    args.corpus = os.path.abspath(args.corpus)
    if args.shapes:
        shapes(args.model, args.shapes)  # exits on a bad list

    if args.print_mixed:
        print(",".join(map(str, mixed_lengths(args.model))))
        return
    if args.worker == "export":
        worker_export(args)
        return
    if args.worker in ("torch", "onnxruntime"):
        worker_serve(args)
        return
    if args.worker == "ort-accuracy":
        worker_ort_accuracy(args)
        return
    if args.iters < 20:
        ap.error("--iters must be at least 20")

    cpu = cpu_model()
    print(f"cpu_peers: {cpu}, {args.threads} threads, model {args.model}"
          f"{', INT8 mode' if args.int8 else ''}", file=sys.stderr)
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"cpu_peers: warning: load average {load:.2f} at the start: other work on this "
              f"machine skews the numbers (each row records loadavg_1m)", file=sys.stderr)
    # The commit as it stands now, just after bench/cpu_peers.sh built the binary: every row
    # carries this one, even if HEAD moves while the benchmark runs.
    args.commit, args.dirty = git_commit(), git_dirty_files()
    binary = None
    if args.akidb:
        # One binary for the whole run, even if build/ is rebuilt meanwhile.
        snap = tempfile.mkdtemp(prefix="cpu_peers-")
        atexit.register(shutil.rmtree, snap, True)
        binary = os.path.join(snap, "akidb-embed")
        shutil.copy2(args.akidb, binary)
    print("cpu_peers: exporting/checking ONNX", file=sys.stderr)
    p = subprocess.run(_worker_cmd("export", args, ["--int8"] if args.int8 else []),
                       env=_worker_env(args), stdout=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.exit(f"cpu_peers: ONNX export failed (exit {p.returncode})")
    exp = json.loads(p.stdout.strip().splitlines()[-1])
    for label in ("onnxruntime", "onnxruntime-fused", "onnxruntime-int8"):
        if label in exp:
            print(f"  {label}: {os.path.relpath(exp[label], REPO)} (max |diff| vs torch "
                  f"{exp[label + ' max_abs_diff_vs_torch']:.2g})", file=sys.stderr)

    impls, accuracy = [], {}
    if args.int8:
        static_dir = static_int8_folder(binary, args) if binary else None
        if not args.no_accuracy:
            print(f"cpu_peers: accuracy against each one's FP32 on the first "
                  f"{args.accuracy_limit} texts of {os.path.relpath(args.corpus, REPO)}",
                  file=sys.stderr)
            if binary:
                accuracy["akidb-embed-int8"] = akidb_accuracy(binary, args, args.model, "int8")
                accuracy["akidb-embed-int8-static"] = akidb_accuracy(binary, args, static_dir,
                                                                     None)
            accuracy["onnxruntime-int8"] = ort_accuracy(args, exp)
            for label, a in accuracy.items():
                print(f"  {label:>23}: mean cosine {a['mean_cosine']:.5f}, min "
                      f"{a['min_cosine']:.5f}, recall@10 {a['recall_at_10']:.4f}, gate "
                      f"{'PASS' if a['pass'] else 'FAIL'}", file=sys.stderr)
        if binary:
            impls.append(Akidb(binary, args))
            impls.append(Akidb(binary, args, "akidb-embed-int8", dtype="int8", detail=(
                "akidb-embed bench --dtype int8 on the float model: dynamic W8A8 (per-token "
                "activation scales, Hadamard-rotated inputs, per-channel weights)")))
            impls.append(Akidb(binary, args, "akidb-embed-int8-static", model=static_dir,
                               detail=f"akidb-embed bench --model {os.path.relpath(static_dir, REPO)}"
                                      f": static INT8 folder written by akidb-embed quantize"
                                      f"{static_folder_facts(static_dir)}"))
        print("cpu_peers: setting up the peers", file=sys.stderr)
        impls.append(Peer("onnxruntime", "onnxruntime", args,
                          ["--onnx", exp["onnxruntime"], "--label", "onnxruntime"]))
        impls.append(Peer("onnxruntime-int8", "onnxruntime", args,
                          ["--onnx", exp["onnxruntime-int8"], "--label", "onnxruntime-int8"],
                          dtype="int8"))
    else:
        if binary:
            impls.append(Akidb(binary, args))
        print("cpu_peers: setting up the peers", file=sys.stderr)
        impls.append(Peer("torch", "torch", args))
        for label in ("onnxruntime", "onnxruntime-fused"):
            impls.append(Peer(label, "onnxruntime", args,
                              ["--onnx", exp[label], "--label", label]))

    # Interleaved: for each shape every implementation in turn (the order rotating from shape
    # to shape), so that load from elsewhere hits all of them alike; --repeat passes keep, per
    # implementation and shape, the pass with the lowest median.
    shp = shapes(args.model, args.shapes)
    best = {}
    for rep in range(args.repeat):
        for si, (b, seq, lengths) in enumerate(shp):
            k = (si + rep) % len(impls)
            order = impls[k:] + impls[:k]
            for impl in order:
                time.sleep(0.2)  # let the previous implementation's spinning threads sleep
                load = os.getloadavg()[0]
                ms, ms_min = impl.time(si)
                tokens = sum(lengths)
                print(f"  pass {rep + 1}/{args.repeat} {impl.label:>23} batch {b:>3} seq "
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
                        row = _row(impl.label, args, b, seq, tokens, ms, ms_min, impl.detail,
                                   impl.dtype)
                    row["loadavg_1m"] = round(load, 2)
                    best[key] = row
                best[key]["pass_ms"] = medians
    for impl in impls:
        impl.close()
    labels = [i.label for i in impls]
    rows = [best[(label, si)] for label in labels for si in range(len(shp))]
    dirty = args.dirty
    for r in rows:
        r["repeats"] = args.repeat
        if dirty:
            r["uncommitted_files"] = dirty
    if args.int8:
        by = {(r["impl"], r["batch"], str(r["seq"])): r for r in rows}
        for r in rows:
            own = OWN_FP32.get(r["impl"])
            if not own:
                continue
            if r["impl"] == "onnxruntime-int8":
                r["detail"] += "; " + ORT_INT8_RECIPE
            f = by.get((own, r["batch"], str(r["seq"])))
            if f:
                r["vs_own_fp32"] = round(r["tokens_per_s"] / f["tokens_per_s"], 3)
            if r["impl"] in accuracy:
                r["accuracy"] = accuracy[r["impl"]]

    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    name = f"cpu_peers-int8-{date}.json" if args.int8 else f"cpu_peers-{date}.json"
    out = args.out or os.path.join(REPO, "bench", "results", name)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=os.path.dirname(os.path.abspath(out)),
                                     delete=False, suffix=".tmp") as f:
        json.dump(rows, f, indent=1)
        f.write("\n")
    os.chmod(f.name, 0o644)  # NamedTemporaryFile makes it 0600
    os.replace(f.name, out)

    mixed = mixed_lengths(args.model)
    loads = [r["loadavg_1m"] for r in rows]
    print(f"\nCPU: {cpu}; threads: {args.threads}; commit {args.commit}; {date}; "
          f"{'FP32 and INT8' if args.int8 else 'FP32'}; "
          f"median of {args.iters} iterations, best of {args.repeat} interleaved pass(es); "
          f"1-min load average {min(loads):.2f}..{max(loads):.2f}\n")
    if args.int8:
        print(fmt_int8_tables(rows, labels, accuracy, args))
    else:
        print(fmt_table(rows, labels))
    print(f"\nmixed = batch of {len(mixed)} with the token lengths of golden lines 0..31 "
          f"({sum(mixed)} real tokens; the peers pad to {max(mixed)}, "
          f"{len(mixed) * max(mixed)} token slots). Rows written to {os.path.relpath(out, REPO)}")


if __name__ == "__main__":
    main()
