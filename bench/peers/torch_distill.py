"""PyTorch peer for distillation training speed: the student of `akidb-embed distill`, trained the
same way in plain PyTorch + transformers, timed as a PyTorch user would time a training loop.

Origin: written for this repository (no copy in ../shared/bench/). The training semantics are
those of our trainer (src/train/, tests/golden/distill/make_distill_golden.py's docstring); the
data pipeline and the kernels are what PyTorch users run: a tokenizer from the model folder,
batches padded to their longest sentence with an attention mask, BertModel with SDPA attention,
bf16 autocast over FP32 master weights, fused AdamW. Needs python3 with torch, transformers,
tokenizers and numpy (no sentence-transformers). Run it in the same job as `akidb-embed distill`
so that both numbers come from the same card.

  python3 bench/peers/torch_distill.py --teacher models/all-MiniLM-L6-v2 --corpus data/distill/train.txt \
      --layers 0,2,4 --batch 128 --max-len 128 --warmup 20 --steps 200 --out $OUT/torch_distill.json
  python3 bench/peers/torch_distill.py ... --compile      (inductor; compile time reported apart)
  python3 bench/peers/torch_distill.py --check            (CPU, fp32, tiny teacher: correctness)

What is trained (each point as in our trainer):
  Teacher   the folder's BertModel (BertModel.from_pretrained: "bert."-prefixed names or not),
            weights cast to float32, eval(), no_grad, under the same autocast as the student.
  Student   BertModel with len(--layers) layers: the teacher's embeddings (word, position, token
            type, LayerNorm) and teacher layer layers[j] copied into layer j. The word table is
            frozen (requires_grad False, not in the optimizer); everything else trains. Dropout 0
            (our trainer has none; MiniLM's config says 0.1, so the config is overridden).
  Data      --corpus, one sentence per line (empty lines skipped), tokenized once before timing
            with the folder's fast tokenizer, [CLS] ... [SEP] truncated to min(--max-len,
            max_position_embeddings). Each epoch visits the sentences in a permutation drawn from
            numpy's default_rng(--seed); a step takes the next --batch sentences, a final
            part-batch of an epoch is left out. A batch is padded (the tokenizer's pad id) to its
            longest sentence with an attention mask; token_type_ids are zeros. The padded batches
            are built, pinned, before timing and copied to the GPU (non_blocking) inside each step.
  Embedding masked mean of last_hidden_state, then F.normalize (L2).
  Loss      F.mse_loss(student embedding, teacher embedding): mean over batch x dim; with
            --contrastive W also W x F.cross_entropy(student teacher^T / --temperature,
            arange(batch)) (akidb-embed distill's in-batch contrastive term).
  Optimizer torch.optim.AdamW(lr, betas (0.9, 0.999), eps 1e-8), weight decay 0.01 on Linear
            weights and the position / token-type tables, 0 on biases and LayerNorm; fused=True
            on CUDA (--no-fused: foreach). LambdaLR: lr (s+1)/W for s < W, then lr (1 - (s-W)/(S-W)),
            S = --warmup + --steps (every step this run takes), W = S // 10. clip_grad_norm_ 1.0.
  Precision bf16 (default): torch.autocast(bfloat16) around teacher and student forward (and the
            loss), FP32 master weights, no GradScaler. fp32: no autocast, TF32 matmuls off.
  --compile torch.compile of the student and of the teacher (each with pooling + normalize
            inside), mode max-autotune-no-cudagraphs: CUDA graphs are off because the padded
            length differs from batch to batch (dynamic shapes: dynamo compiles the first shape
            static and recompiles once with the length dynamic on the second). Compilation happens
            in the untimed warm-up; "compile_s" is that warm-up's time and "recompiles_timed"
            counts graphs compiled inside the timed window (0 for a clean number).

What is measured: --warmup untimed steps, then --steps timed ones. A step is teacher forward +
student forward + loss + backward + clip + optimizer.step + scheduler.step +
zero_grad(set_to_none=True). The GPU is synchronized before the first timed step and after the
last; in between this script waits on it only for loss.item() every --log-every steps (the
progress line a training loop prints). transformers itself waits once per BertModel forward in
eager mode (twice a step): create_bidirectional_mask tests padding_mask.all() on the host to
decide whether SDPA may drop the mask (transformers 5.x masking_utils); compiled, it does not. tokens_per_s counts REAL tokens (attention-mask ones) over the timed
seconds, padded_tokens_per_s every position computed. One JSON line on stdout; --out writes it too.

--check (CPU, fp32, no GPU needed): (1) replays tests/golden/distill/steps.json run "mse" (the
PyTorch reference our trainer is tested against: tiny teacher, layers [0, 2], lr 1e-3, W 5, S 50)
through this script's own step and requires every loss within 1e-3 relative of the reference;
(2) trains the tiny teacher's student 30 steps at lr 1e-3 on --corpus (default
tests/golden/quant_calib.txt) through the full data path and requires finite losses that fall.
"""
import argparse
import contextlib
import json
import math
import os
import platform
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
import transformers
from transformers import AutoTokenizer, BertModel

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
GOLDEN = os.path.join(REPO, "tests", "golden", "distill")


def log(msg):
    print(f"torch_distill: {msg}", file=sys.stderr, flush=True)


class Embedder(torch.nn.Module):
    """BertModel + masked mean pooling + L2 normalize: the sentence-transformers embedding."""

    def __init__(self, bert):
        super().__init__()
        self.bert = bert

    def forward(self, ids, mask, types):
        hidden = self.bert(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
        m = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return F.normalize(pooled.float(), p=2, dim=1)


def load_teacher(folder, attn):
    """The folder's BertModel in float32 (F16 files are cast), eval, frozen. Fails on a missing tensor."""
    if not os.path.isfile(os.path.join(folder, "config.json")):
        raise SystemExit(f"torch_distill: {folder}: no config.json (not a model folder)")
    model, info = BertModel.from_pretrained(folder, dtype=torch.float32, add_pooling_layer=False,
                                            attn_implementation=attn, output_loading_info=True)
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        raise SystemExit(f"torch_distill: {folder}: the weights lack {missing[:5]} ({len(missing)} tensors)")
    model = model.float().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def make_student(teacher, layers, attn):
    """A len(layers)-layer BertModel holding the teacher's embeddings and layers[j] as layer j."""
    n = teacher.config.num_hidden_layers
    if not layers or any(l < 0 or l >= n for l in layers):
        raise SystemExit(f"torch_distill: --layers {layers}: the teacher has layers 0..{n - 1}")
    cfg = teacher.config.__class__.from_dict(teacher.config.to_dict())
    cfg.num_hidden_layers = len(layers)
    cfg.hidden_dropout_prob = 0.0
    cfg.attention_probs_dropout_prob = 0.0
    cfg._attn_implementation = attn
    student = BertModel(cfg, add_pooling_layer=False).float()
    tsd = teacher.state_dict()
    sd = {}
    for name in student.state_dict():
        src = name
        if name.startswith("encoder.layer."):
            j, rest = name[len("encoder.layer."):].split(".", 1)
            src = f"encoder.layer.{layers[int(j)]}.{rest}"
        sd[name] = tsd[src].detach().clone().float()
    student.load_state_dict(sd, strict=True)
    student.embeddings.word_embeddings.weight.requires_grad_(False)
    student.train()
    return student


def param_groups(student, weight_decay):
    """Decay on Linear weights and the position / token-type tables; none on biases and LayerNorm."""
    decay, no_decay = [], []
    for name, p in student.named_parameters():
        if not p.requires_grad:
            assert name == "embeddings.word_embeddings.weight", name
            continue
        if name in ("embeddings.position_embeddings.weight", "embeddings.token_type_embeddings.weight") or \
                (name.startswith("encoder.") and name.endswith(".weight") and "LayerNorm" not in name):
            decay.append(p)
        else:
            assert name.endswith(".bias") or "LayerNorm" in name, name
            no_decay.append(p)
    assert len(decay) == 6 * student.config.num_hidden_layers + 2, len(decay)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def lr_lambda(warmup, total):
    """Linear warm-up over `warmup` updates, then linear decay to 0 at `total` (factor of the peak)."""
    def f(s):
        if s < warmup:
            return (s + 1) / warmup
        return max(0.0, 1.0 - (s - warmup) / max(1, total - warmup))
    return f


def read_corpus(path):
    """Lines of the file (UTF-8), a trailing \\r dropped, empty lines skipped: as our data.c."""
    with open(path, "rb") as f:
        text = f.read().decode("utf-8")
    out = []
    for line in text.split("\n"):
        if line.endswith("\r"):
            line = line[:-1]
        if line:
            out.append(line)
    return out


def tokenize(tok, lines, max_len):
    enc = tok(lines, add_special_tokens=True, truncation=True, max_length=max_len,
              return_attention_mask=False, return_token_type_ids=False)
    return enc["input_ids"]


def pad_batch(seqs, pad_id, pin):
    """ids, mask, token types [B, T] (T = the longest), and the real / padded token counts."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, :len(s)] = 1
    types = torch.zeros_like(ids)
    if pin:
        ids, mask, types = ids.pin_memory(), mask.pin_memory(), types.pin_memory()
    return (ids, mask, types), sum(len(s) for s in seqs), len(seqs) * width


def make_batches(seqs, batch, n_steps, seed, pad_id, pin):
    """n_steps batches: epochs of seeded permutations, `batch` sentences per step, part-batches dropped."""
    per_epoch = len(seqs) // batch
    if per_epoch < 1:
        raise SystemExit(f"torch_distill: the corpus has {len(seqs)} sentences, fewer than --batch {batch}")
    rng = np.random.default_rng(seed)
    out, perm = [], None
    for s in range(n_steps):
        k = s % per_epoch
        if k == 0:
            perm = rng.permutation(len(seqs))
        out.append(pad_batch([seqs[i] for i in perm[k * batch:(k + 1) * batch]], pad_id, pin))
    return out


class Trainer:
    """The step of a run: optimizer, schedule, precision, optional compile."""

    def __init__(self, teacher, student, device, precision, lr, warmup, total, fused, compile_mode=None,
                 weight_decay=0.01, max_grad_norm=1.0, contrastive=0.0, temperature=0.05):
        self.device = device
        self.contrastive, self.temperature = contrastive, temperature
        self.teacher = Embedder(teacher).to(device)
        self.student = Embedder(student).to(device)
        self.params = [p for p in student.parameters() if p.requires_grad]
        self.max_grad_norm = max_grad_norm
        kw = {"fused": True} if fused else {}
        self.opt = torch.optim.AdamW(param_groups(student, weight_decay), lr=lr, betas=(0.9, 0.999), eps=1e-8, **kw)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lr_lambda(warmup, total))
        if precision == "bf16":
            self.autocast = lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        else:
            self.autocast = contextlib.nullcontext
        self.teacher_fn, self.student_fn = self.teacher, self.student
        if compile_mode:
            self.teacher_fn = torch.compile(self.teacher, mode=compile_mode)
            self.student_fn = torch.compile(self.student, mode=compile_mode)

    def step(self, batch):
        ids, mask, types = (t.to(self.device, non_blocking=True) for t in batch)
        with self.autocast():
            with torch.no_grad():
                target = self.teacher_fn(ids, mask, types)
            pred = self.student_fn(ids, mask, types)
            loss = F.mse_loss(pred, target)
            if self.contrastive:
                logits = pred.float() @ target.float().T / self.temperature
                loss = loss + self.contrastive * F.cross_entropy(
                    logits, torch.arange(logits.shape[0], device=logits.device))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, self.max_grad_norm)
        self.opt.step()
        self.sched.step()
        self.opt.zero_grad(set_to_none=True)
        return loss.detach()


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def unique_graphs():
    try:
        from torch._dynamo.utils import counters
        return int(counters["stats"]["unique_graphs"])
    except Exception:  # an internal counter: absent in some version, then not reported
        return None


def set_precision(device, precision):
    if precision == "fp32" and device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False


def run(args):
    device = torch.device(args.device)
    set_precision(device, args.precision)
    torch.manual_seed(args.seed)
    layers = [int(x) for x in args.layers.split(",")]
    t_load = time.perf_counter()
    teacher = load_teacher(args.teacher, args.attn)
    student = make_student(teacher, layers, args.attn)
    tok = AutoTokenizer.from_pretrained(args.teacher)
    if not tok.is_fast:
        raise SystemExit(f"torch_distill: {args.teacher}: no fast tokenizer")
    pad_id = tok.pad_token_id
    if pad_id is None:
        raise SystemExit(f"torch_distill: {args.teacher}: the tokenizer names no pad token")
    max_len = min(args.max_len, teacher.config.max_position_embeddings)
    lines = read_corpus(args.corpus)
    seqs = tokenize(tok, lines, max_len)
    total = args.warmup + args.steps
    batches = make_batches(seqs, args.batch, total, args.seed, pad_id, pin=device.type == "cuda")
    log(f"{len(seqs)} sentences, {sum(map(len, seqs))} tokens (max_len {max_len}); {total} batches of "
        f"{args.batch}; ready in {time.perf_counter() - t_load:.1f} s")

    tr = Trainer(teacher, student, device, args.precision, args.lr, total // 10, total,
                 fused=device.type == "cuda" and not args.no_fused,
                 compile_mode=args.compile_mode if args.compile else None, contrastive=args.contrastive,
                 temperature=args.temperature)
    del teacher, student

    losses = []  # (step, loss tensor), read after the timed window except at --log-every
    sync(device)
    t0 = time.perf_counter()
    for s in range(args.warmup):
        loss = tr.step(batches[s][0])
        if s == 0:
            losses.append((0, loss))
    sync(device)
    warmup_s = time.perf_counter() - t0
    graphs_before = unique_graphs() if args.compile else None
    log(f"warm-up: {args.warmup} steps in {warmup_s:.2f} s" + (" (compilation included)" if args.compile else ""))

    real = sum(b[1] for b in batches[args.warmup:])
    padded = sum(b[2] for b in batches[args.warmup:])
    t0 = time.perf_counter()
    for s in range(args.warmup, total):
        lr_used = tr.sched.get_last_lr()[0]
        loss = tr.step(batches[s][0])
        if s == 0:
            losses.append((0, loss))
        if args.log_every > 0 and (s + 1) % args.log_every == 0:
            log(f"step {s + 1}/{total} loss {loss.item():.6g} lr {lr_used:.3g}")
            losses.append((s, loss))
    sync(device)
    seconds = time.perf_counter() - t0
    if losses[-1][0] != total - 1:
        losses.append((total - 1, loss))
    graphs_after = unique_graphs() if args.compile else None

    loss_log = [[s, float(l)] for s, l in losses]
    if not all(math.isfinite(l) for _, l in loss_log):
        raise SystemExit(f"torch_distill: a loss is not finite: {loss_log}")
    if device.type == "cuda":
        dev_name = torch.cuda.get_device_name(device)
    else:
        dev_name = "cpu " + (platform.processor() or platform.machine())
    row = dict(peer="pytorch", torch=torch.__version__, transformers=transformers.__version__, device=dev_name,
               precision=args.precision, compile=bool(args.compile), attn=args.attn, batch=args.batch,
               max_len=max_len, layers=layers, steps=args.steps, warmup=args.warmup,
               tokens_per_s=round(real / seconds), padded_tokens_per_s=round(padded / seconds),
               step_ms=round(seconds / args.steps * 1000, 4), seconds=round(seconds, 4),
               real_tokens=real, padded_tokens=padded, pad_fraction=round(1 - real / padded, 4),
               first_loss=loss_log[0][1], last_loss=loss_log[-1][1], loss_log=loss_log,
               lr=args.lr, contrastive=args.contrastive, temperature=args.temperature, seed=args.seed, fused=tr.opt.defaults.get("fused") or False,
               warmup_s=round(warmup_s, 3), teacher=args.teacher, corpus=args.corpus, sentences=len(seqs))
    if args.compile:
        row.update(compile_mode=args.compile_mode, compile_s=round(warmup_s, 3),
                   compiled_graphs=graphs_after,
                   recompiles_timed=None if graphs_before is None else graphs_after - graphs_before)
    print(json.dumps(row), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write(json.dumps(row) + "\n")
    return row


def check(args):
    """CPU fp32 correctness: the golden reference's losses, then a falling loss on a real corpus."""
    device = torch.device("cpu")
    steps_json = os.path.join(GOLDEN, "steps.json")
    with open(steps_json) as f:
        golden = json.load(f)
    ref = golden["runs"]["mse"]
    st = ref["settings"]
    assert st["schedule"] == "linear" and st["hidden_loss_weight"] == 0, st
    tdir = os.path.join(GOLDEN, golden["teacher"])
    teacher = load_teacher(tdir, args.attn)
    student = make_student(teacher, golden["layers"], args.attn)
    tr = Trainer(teacher, student, device, "fp32", st["lr"], st["warmup_steps"], st["total_steps"], fused=False,
                 weight_decay=st["weight_decay"], max_grad_norm=st["max_grad_norm"])
    assert (st["beta1"], st["beta2"], st["eps"]) == (0.9, 0.999, 1e-8), st
    pad_id = teacher.config.pad_token_id
    worst = 0.0
    ours = []
    for s, seqs in enumerate(golden["batches"][:st["total_steps"]]):
        loss = float(tr.step(pad_batch(seqs, pad_id, pin=False)[0]))
        rel = abs(loss - ref["loss"][s]) / abs(ref["loss"][s])
        worst = max(worst, rel)
        ours.append(loss)
        if rel > 1e-3:
            raise SystemExit(f"torch_distill: check: step {s}: loss {loss!r}, reference {ref['loss'][s]!r} "
                             f"({rel:.3g} relative)")
    log(f"check: {len(ours)} steps follow {os.path.relpath(steps_json, REPO)} run 'mse' within "
        f"{worst:.3g} relative (loss {ours[0]:.6g} -> {ours[-1]:.6g})")

    # The full path: tokenizer, corpus, shuffle, padding, LambdaLR with W = S // 10.
    teacher = load_teacher(args.teacher or tdir, args.attn)
    layers = [int(x) for x in args.layers.split(",")] if args.layers_given else golden["layers"]
    student = make_student(teacher, layers, args.attn)
    tok = AutoTokenizer.from_pretrained(args.teacher or tdir)
    max_len = min(args.max_len, teacher.config.max_position_embeddings)
    corpus = args.corpus or os.path.join(REPO, "tests", "golden", "quant_calib.txt")
    seqs = tokenize(tok, read_corpus(corpus), max_len)
    n = 30
    batches = make_batches(seqs, 16, n, args.seed, tok.pad_token_id, pin=False)
    tr = Trainer(teacher, student, device, "fp32", 1e-3, n // 10, n, fused=False)
    curve = [float(tr.step(b[0])) for b in batches]
    if not all(math.isfinite(x) for x in curve):
        raise SystemExit(f"torch_distill: check: a loss is not finite: {curve}")
    if not np.mean(curve[-5:]) < 0.7 * curve[0]:
        raise SystemExit(f"torch_distill: check: the loss does not fall: {curve}")
    log(f"check: {n} steps on {os.path.relpath(corpus, REPO)}: loss {curve[0]:.6g} -> {curve[-1]:.6g}")
    row = dict(peer="pytorch", check="ok", torch=torch.__version__, transformers=transformers.__version__,
               golden_steps=len(ours), golden_max_rel=worst, corpus_first_loss=curve[0], corpus_last_loss=curve[-1])
    print(json.dumps(row), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--teacher", help="teacher model folder")
    ap.add_argument("--corpus", help="training sentences, one per line")
    ap.add_argument("--layers", help="teacher layers the student keeps (default 0,2,4)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--contrastive", type=float, default=0.0, help="weight of the in-batch contrastive term")
    ap.add_argument("--temperature", type=float, default=0.05)
    ap.add_argument("--warmup", type=int, default=20, help="untimed steps before the timed ones")
    ap.add_argument("--steps", type=int, default=200, help="timed steps")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    ap.add_argument("--attn", choices=["sdpa", "eager"], default="sdpa")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--compile-mode", default="max-autotune-no-cudagraphs")
    ap.add_argument("--no-fused", action="store_true", help="AdamW foreach instead of fused")
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", help="also write the JSON line to this file")
    ap.add_argument("--check", action="store_true", help="CPU fp32 correctness check (see the docstring)")
    args = ap.parse_args()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    args.layers_given = args.layers is not None
    if args.layers is None:
        args.layers = "0,2,4"
    if args.check:
        check(args)
        return
    if not args.teacher or not args.corpus:
        ap.error("--teacher and --corpus are required (or --check)")
    if args.batch < 1 or args.max_len < 2 or args.steps < 1 or args.warmup < 0:
        ap.error("--batch >= 1, --max-len >= 2, --steps >= 1, --warmup >= 0")
    run(args)


if __name__ == "__main__":
    main()
