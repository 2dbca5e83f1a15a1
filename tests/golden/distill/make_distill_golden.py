#!/usr/bin/env python3
"""Golden data for the distillation trainer (src/train/), made by the reference: PyTorch.

Run through tests/golden/distill/make_distill_golden.sh (it uses .venv-golden: torch 2.15.0,
transformers 5.24.0, sentence-transformers 6.2.0, numpy 2.1.3, pinned in
tests/golden/golden_venv.sh); CI never runs this, it reads what this wrote. Everything is
seeded: two runs write byte-identical files.

What it writes, into tests/golden/distill/ (or --out-dir):

  teacher/                    a tiny random BERT as a Hugging Face + sentence-transformers folder
      config.json             BertModel: vocab 256, hidden 32, 4 layers, 4 heads, intermediate 64,
                              max_position 32, type_vocab 2, exact-erf "gelu", LN eps 1e-12, no dropout
      model.safetensors       F32, BertModel names without a "bert." prefix, no pooler
      modules.json, 1_Pooling/config.json, sentence_bert_config.json
                              Transformer + mean Pooling + Normalize, in the classic
                              sentence-transformers (2.x) layout that all-MiniLM-L6-v2 ships with
                              (2_Normalize/ holds nothing and is not written)
      vocab.txt, tokenizer_config.json, special_tokens_map.json
                              a 256-piece WordPiece vocabulary: [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3
                              [MASK]=4, letters, digits, punctuation, ##a..##z, common words
  steps.json                  the batches and, per run, the loss / grad norm / lr of every step
  grads0_mse.safetensors      step-0 gradients (BEFORE clipping) of every trainable student
  grads0_hidden.safetensors   tensor, F32, student names (layer indices 0..J-1)
  student_final_mse.safetensors  the student's trainable tensors after the 50 steps of run "mse"

Teacher weights (numpy Generator, seed TEACHER_SEED, drawn in the order of teacher_names()):
Linear weights N(0, 0.2), Linear biases N(0, 0.05), embeddings (word, position, token type)
N(0, 0.5) with the [PAD] row 0 of the word embeddings zeroed (HF's padding_idx convention),
LayerNorm gamma 1 + N(0, 0.1), beta N(0, 0.05).

Training semantics (the C trainer implements the same):

  Student    BertModel with J = len(LAYERS) = 2 layers, LAYERS = [0, 2]. Init: the teacher's
             embeddings (word, position, token type, embedding LayerNorm) and teacher layer
             LAYERS[j] copied into student layer j. Trainable: every tensor EXCEPT
             embeddings.word_embeddings.weight (frozen, not in the optimizer).
  Batches    50 batches of 8 sequences, numpy Generator seed BATCH_SEED. For each sequence, in
             order: n = integers(3, 25) (total length incl. [CLS]/[SEP], 3..24), then
             integers(5, 256, size=n-2) for the body; sequence = [2] + body + [3].
             token_type_ids all 0, position ids 0..n-1. Torch pads with id 0 to the longest in
             the batch and passes an attention mask (attn_implementation="eager": the mask is
             ADDED to the scaled scores before softmax as 0 for real keys and
             torch.finfo(float32).min for padding keys, so exp() gives exactly 0 for them:
             identical to running each sequence alone, as the C engine does, up to rounding).
  Embedding  e = mean over the sequence's tokens of the last hidden state, then e / max(|e|, 1e-12)
             (L2). Teacher: the same, under torch.no_grad(), float32.
  Loss       L = MSE(student e, teacher e), mean over the n x d elements (n = 8, d = 32)
               + hidden_loss_weight * (1/J) sum_j [ sum over real tokens t and d of
                 (hs_student_j[t] - hs_teacher_{LAYERS[j]}[t])^2 / (n_tokens_in_batch * d) ]
             where hs_X_k = the output of layer k (its output LayerNorm), k counted from 0.
             The last hidden state of the student is hs_student_{J-1}.
  Optimizer  torch.optim.AdamW(foreach=False), betas (0.9, 0.999), eps 1e-8, step t = 1, 2, ...:
               p <- p * (1 - lr * wd)
               m <- m + (1 - b1) * (g - m)           (lerp; = b1 m + (1 - b1) g)
               v <- b2 v + (1 - b2) g^2
               p <- p - (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
             wd = 0.01 on Linear weights (query, key, value, attention.output.dense,
             intermediate.dense, output.dense) and on embeddings.position_embeddings.weight and
             embeddings.token_type_embeddings.weight; 0 on every bias and every LayerNorm
             weight/bias. NOTE: decay applies to whole tensors, so the position rows 24..31 and
             the token-type row 1, whose gradient is always 0, still shrink by (1 - lr wd) per
             step (their m, v stay 0 and their Adam update is exactly 0).
  LR         set on both param groups before the update of step s = 0..S-1 (Python float64):
             s < W: lr_peak (s + 1) / W; else p = (s - W) / (S - W) and
             linear: lr_peak (1 - p); cosine: lr_peak 0.5 (1 + cos(pi p)).
  Clipping   torch.nn.utils.clip_grad_norm_(trainable, max_norm): total = L2 norm over all
             trainable gradients (float32); every gradient is multiplied by
             min(max_norm / (total + 1e-6), 1). grad_norm records `total` (before clipping).
  Order      per step: forward (loss recorded, BEFORE this step's update), backward, grad norm
             + clip, set lr, AdamW step. float32, CPU, torch.set_num_threads(1),
             torch.use_deterministic_algorithms(True), dropout 0, models in eval() mode.

  Runs (same teacher, same student init, same 50 batches):
    "mse":    lr 1e-3, W 5, S 50, linear, max_grad_norm 1.0, hidden_loss_weight 0
    "hidden": lr 2e-3, W 5, S 50, cosine, max_grad_norm HIDDEN_MAX_GRAD_NORM, hidden_loss_weight
              0.5; HIDDEN_MAX_GRAD_NORM was picked from the unclipped norms (--probe-norms) so
              that clipping is active on most steps; the script checks that it is.
    "contrastive": as "mse", plus contrastive_weight 0.02 x F.cross_entropy(s_emb t_emb^T / 0.1,
              arange(n)): in-batch contrastive distillation (InfoNCE with the teacher's embeddings
              as keys, DistilCSE), akidb-embed's --contrastive 0.02 --temperature 0.1.

steps.json: {"what", "made_by", "versions", "teacher": "teacher", "layers", "cls_id", "sep_id",
"batches": [50][8][ids] (no padding), "runs": {name: {"settings": {...}, "loss": [S],
"grad_norm": [S], "lr": [S], "embed_loss": [S], "hidden_loss": [S]}}}: embed_loss is the MSE
term and hidden_loss the (1/J) sum_j term BEFORE its weight, so loss = embed_loss +
hidden_loss_weight * hidden_loss (up to float32 rounding). Floats are the float32 values as
Python floats, printed with repr (round-trip exact).

Comparing: the attention key bias gets a gradient that is mathematically 0 (softmax is
invariant to it); torch's is ~1e-11 rounding noise, which AdamW turns into ~1e-6 steps of
random sign. It changes no output, so compare grads0 / student_final key.bias absolutely
(not relatively), or skip it. --probe-f64 shows how much rounding moves the run: the float64
losses stay within 5e-7 (relative) of the float32 ones over all 50 steps, so 1e-3 leaves room.
sentence-transformers, loading teacher/, reports pooler.dense.* as MISSING: expected (no
pooler is saved; mean pooling does not use it).

Usage: bash tests/golden/distill/make_distill_golden.sh [--out-dir DIR] [--probe-norms | --probe-f64]
"""
import argparse
import json
import math
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))

TEACHER_SEED = 20261130
BATCH_SEED = 7
LAYERS = [0, 2]
CLS_ID, SEP_ID, PAD_ID = 2, 3, 0
N_BATCHES, BATCH_SIZE, MIN_LEN, MAX_LEN = 50, 8, 3, 24
HIDDEN_MAX_GRAD_NORM = 0.07

CONFIG = {
    "architectures": ["BertModel"],
    "attention_probs_dropout_prob": 0.0,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.0,
    "hidden_size": 32,
    "intermediate_size": 64,
    "layer_norm_eps": 1e-12,
    "max_position_embeddings": 32,
    "model_type": "bert",
    "num_attention_heads": 4,
    "num_hidden_layers": 4,
    "pad_token_id": 0,
    "position_embedding_type": "absolute",
    "type_vocab_size": 2,
    "vocab_size": 256,
}

RUNS = {
    "mse": {"lr": 1e-3, "warmup_steps": 5, "total_steps": 50, "schedule": "linear",
            "weight_decay": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
            "max_grad_norm": 1.0, "hidden_loss_weight": 0.0},
    "hidden": {"lr": 2e-3, "warmup_steps": 5, "total_steps": 50, "schedule": "cosine",
               "weight_decay": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
               "max_grad_norm": HIDDEN_MAX_GRAD_NORM, "hidden_loss_weight": 0.5},
    "contrastive": {"lr": 1e-3, "warmup_steps": 5, "total_steps": 50, "schedule": "linear",
                    "weight_decay": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
                    "max_grad_norm": 1.0, "hidden_loss_weight": 0.0,
                    "contrastive_weight": 0.02, "temperature": 0.1},
}

# ---------------------------------------------------------------------------------------------
# Tokenizer files.

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PUNCT = list(".,!?'\"-():;/&%$#@")
WORDS = (
    "the be to of and in that have it for not on with he as you do at this but his by from they "
    "we say her she or an will my one all would there their what so up out if about who get "
    "which go me when make can like time no just him know take people into year your good some "
    "could them see other than then now look only come its over think also back after use two "
    "how our work first well way even new want because any these give day most us is was are "
    "were been has had did said very more many much where here why each few man woman child "
    "world life hand part place case week company system program question government number "
    "night point home water room mother area money story fact month lot right study book eye "
    "job word business issue side kind head house service friend father power hour game line "
    "end member law car city name team minute idea kid body information school face others "
    "level office door health person art war history party result change morning reason "
    "research girl guy moment air teacher force education old great big high small large long "
    "little own same able bad best better sure free true full"
).split()


def vocab():
    v = SPECIALS + [chr(c) for c in range(ord("a"), ord("z") + 1)] + [str(d) for d in range(10)]
    v += PUNCT + ["##" + chr(c) for c in range(ord("a"), ord("z") + 1)]
    for w in WORDS:
        if len(v) == CONFIG["vocab_size"]:
            break
        if w not in v:
            v.append(w)
    assert len(v) == CONFIG["vocab_size"] and len(set(v)) == len(v), len(v)
    assert v.index("[CLS]") == CLS_ID and v.index("[SEP]") == SEP_ID and v.index("[PAD]") == PAD_ID
    return v


SPECIAL_TOKENS_MAP = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                      "cls_token": "[CLS]", "mask_token": "[MASK]"}
TOKENIZER_CONFIG = {"do_lower_case": True, **SPECIAL_TOKENS_MAP, "tokenize_chinese_chars": True,
                    "strip_accents": None, "do_basic_tokenize": True, "never_split": None,
                    "tokenizer_class": "BertTokenizer", "model_max_length": 32}
MODULES = [
    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
    {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
]
POOLING = {"word_embedding_dimension": CONFIG["hidden_size"], "pooling_mode_cls_token": False,
           "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
           "pooling_mode_mean_sqrt_len_tokens": False}
SBERT = {"max_seq_length": 32, "do_lower_case": False}

# ---------------------------------------------------------------------------------------------
# Weights.

LINEARS = ["attention.self.query", "attention.self.key", "attention.self.value",
           "attention.output.dense", "intermediate.dense", "output.dense"]
LAYER_NORMS = ["attention.output.LayerNorm", "output.LayerNorm"]


def layer_names(i):
    out = []
    for lin in LINEARS:
        out += [f"encoder.layer.{i}.{lin}.weight", f"encoder.layer.{i}.{lin}.bias"]
    for ln in LAYER_NORMS:
        out += [f"encoder.layer.{i}.{ln}.weight", f"encoder.layer.{i}.{ln}.bias"]
    return out


EMB_NAMES = ["embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
             "embeddings.token_type_embeddings.weight", "embeddings.LayerNorm.weight",
             "embeddings.LayerNorm.bias"]


def teacher_names():
    return EMB_NAMES + [n for i in range(CONFIG["num_hidden_layers"]) for n in layer_names(i)]


def teacher_weights(shapes):
    """name -> float32 array, drawn in teacher_names() order from one seeded Generator."""
    rng = np.random.default_rng(TEACHER_SEED)
    w = {}
    for name in teacher_names():
        shape = shapes[name]
        if "LayerNorm.weight" in name:
            a = 1.0 + rng.normal(0.0, 0.1, shape)
        elif "LayerNorm.bias" in name:
            a = rng.normal(0.0, 0.05, shape)
        elif name.startswith("embeddings."):
            a = rng.normal(0.0, 0.5, shape)
        elif name.endswith(".weight"):
            a = rng.normal(0.0, 0.2, shape)
        else:
            a = rng.normal(0.0, 0.05, shape)
        w[name] = a.astype(np.float32)
    w["embeddings.word_embeddings.weight"][PAD_ID] = 0.0
    return w


def decays(name):
    """Weight decay applies to Linear weights and to the position / token-type embeddings."""
    if name in ("embeddings.position_embeddings.weight", "embeddings.token_type_embeddings.weight"):
        return True
    return "LayerNorm" not in name and name.endswith(".weight") and name.startswith("encoder.")


# ---------------------------------------------------------------------------------------------

def make_batches():
    rng = np.random.default_rng(BATCH_SEED)
    batches = []
    for _ in range(N_BATCHES):
        b = []
        for _ in range(BATCH_SIZE):
            n = int(rng.integers(MIN_LEN, MAX_LEN + 1))
            body = rng.integers(len(SPECIALS), CONFIG["vocab_size"], size=n - 2)
            b.append([CLS_ID] + [int(x) for x in body] + [SEP_ID])
        batches.append(b)
    return batches


def lr_at(s, st):
    lr, w, total = st["lr"], st["warmup_steps"], st["total_steps"]
    if s < w:
        return lr * (s + 1) / w
    p = (s - w) / (total - w)
    if st["schedule"] == "linear":
        return lr * (1.0 - p)
    if st["schedule"] == "cosine":
        return lr * 0.5 * (1.0 + math.cos(math.pi * p))
    raise ValueError(st["schedule"])


def write_json(path, obj, indent=2):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        json.dump(obj, f, indent=indent, ensure_ascii=False)
        f.write("\n")


def dumps_compact_leaves(obj, ind=0):
    """JSON with dicts indented and lists of scalars / lists of lists of scalars on one line each."""
    pad, pad1 = " " * ind, " " * (ind + 2)
    if isinstance(obj, dict):
        items = [f"{pad1}{json.dumps(k)}: {dumps_compact_leaves(v, ind + 2)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list) and obj and isinstance(obj[0], list) and obj[0] and \
            isinstance(obj[0][0], list):
        items = [pad1 + dumps_compact_leaves(v, ind + 2) for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(obj, separators=(", ", ": "))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out-dir", default=HERE)
    ap.add_argument("--probe-norms", action="store_true",
                    help="print the unclipped grad norms of run 'hidden' and write nothing")
    ap.add_argument("--probe-f64", action="store_true",
                    help="run both runs in float64 and print how far their losses are from the "
                         "float32 ones in steps.json (how much rounding moves the trajectory); "
                         "writes nothing")
    args = ap.parse_args()

    import torch
    import torch.nn.functional as F
    import transformers
    from safetensors.torch import save_file
    from transformers import BertConfig, BertModel

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(0)  # nothing random is drawn from torch; set anyway

    dtype = torch.float64 if args.probe_f64 else torch.float32

    def bert(n_layers):
        cfg = {k: v for k, v in CONFIG.items() if k not in ("architectures", "model_type")}
        cfg["num_hidden_layers"] = n_layers
        m = BertModel(BertConfig(**cfg, attn_implementation="eager"), add_pooling_layer=False)
        assert m.config._attn_implementation == "eager"
        return m.to(dtype).eval()

    teacher = bert(CONFIG["num_hidden_layers"])
    tsd = teacher.state_dict()
    assert sorted(tsd) == sorted(teacher_names()), set(tsd) ^ set(teacher_names())
    tw = teacher_weights({k: tuple(v.shape) for k, v in tsd.items()})
    teacher.load_state_dict({k: torch.from_numpy(v) for k, v in tw.items()}, strict=True)
    for p in teacher.parameters():
        p.requires_grad_(False)

    def new_student():
        s = bert(len(LAYERS))
        sd = {n: tw[n] for n in EMB_NAMES}
        for j, l in enumerate(LAYERS):
            for n in layer_names(l):
                sd[n.replace(f"encoder.layer.{l}.", f"encoder.layer.{j}.", 1)] = tw[n]
        s.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in sd.items()}, strict=True)
        s.embeddings.word_embeddings.weight.requires_grad_(False)
        return s

    batches = make_batches()

    def pad(batch):
        T = max(len(x) for x in batch)
        ids = torch.zeros(len(batch), T, dtype=torch.long)
        mask = torch.zeros(len(batch), T, dtype=torch.long)
        for i, x in enumerate(batch):
            ids[i, :len(x)] = torch.tensor(x)
            mask[i, :len(x)] = 1
        pos = torch.arange(T).unsqueeze(0).expand(len(batch), T)
        return ids, mask, pos

    def forward(model, batch):
        ids, mask, pos = pad(batch)
        out = model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids),
                    position_ids=pos, output_hidden_states=True)
        hs = out.hidden_states  # (embeddings, after layer 0, after layer 1, ...)
        assert len(hs) == model.config.num_hidden_layers + 1
        assert hs[-1] is out.last_hidden_state or torch.equal(hs[-1], out.last_hidden_state)
        m = mask.unsqueeze(-1).to(dtype)
        pooled = (out.last_hidden_state * m).sum(1) / torch.clamp(m.sum(1), min=1e-9)
        return F.normalize(pooled, p=2, dim=1), hs[1:], m

    with torch.no_grad():
        teacher_out = [forward(teacher, b) for b in batches]

    def train(name, st, max_norm_override=None):
        student = new_student()
        named = [(n, p) for n, p in student.named_parameters() if p.requires_grad]
        assert "embeddings.word_embeddings.weight" not in dict(named)
        groups = [{"params": [p for n, p in named if decays(n)], "weight_decay": st["weight_decay"]},
                  {"params": [p for n, p in named if not decays(n)], "weight_decay": 0.0}]
        opt = torch.optim.AdamW(groups, lr=st["lr"], betas=(st["beta1"], st["beta2"]),
                                eps=st["eps"], weight_decay=st["weight_decay"], foreach=False)
        max_norm = st["max_grad_norm"] if max_norm_override is None else max_norm_override
        params = [p for _, p in named]
        rec = {"loss": [], "grad_norm": [], "lr": [], "embed_loss": [], "hidden_loss": []}
        grads0 = None
        for s in range(st["total_steps"]):
            batch = batches[s % len(batches)]
            t_emb, t_hs, _ = teacher_out[s % len(batches)]
            opt.zero_grad(set_to_none=True)
            s_emb, s_hs, m = forward(student, batch)
            embed_loss = F.mse_loss(s_emb, t_emb)
            d = s_emb.shape[1]
            terms = [((s_hs[j] - t_hs[l]) ** 2 * m).sum() / (m.sum() * d)
                     for j, l in enumerate(LAYERS)]
            hidden_loss = sum(terms) / len(LAYERS)
            loss = embed_loss + st["hidden_loss_weight"] * hidden_loss
            if st.get("contrastive_weight", 0):
                # in-batch contrastive distillation: each student embedding must pick its own
                # teacher embedding out of the batch's (InfoNCE, DistilCSE)
                logits = s_emb @ t_emb.T / st["temperature"]
                labels = torch.arange(logits.shape[0])
                loss = loss + st["contrastive_weight"] * F.cross_entropy(logits, labels)
            loss.backward()
            if s == 0:
                grads0 = {n: p.grad.detach().clone().contiguous() for n, p in named}
            norm = torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=False)
            lr = lr_at(s, st)
            for g in opt.param_groups:
                g["lr"] = lr
            opt.step()
            rec["loss"].append(float(loss.item()))
            rec["grad_norm"].append(float(norm.item()))
            rec["lr"].append(lr)
            rec["embed_loss"].append(float(embed_loss.item()))
            rec["hidden_loss"].append(float(hidden_loss.item()))
        final = {n: p.detach().clone().contiguous() for n, p in named}
        return rec, grads0, final

    if args.probe_norms:
        rec, _, _ = train("hidden", RUNS["hidden"], max_norm_override=float("inf"))
        norms = rec["grad_norm"]
        print("hidden run, unclipped grad norms:", " ".join(f"{x:.4g}" for x in norms))
        print("sorted:", " ".join(f"{x:.4g}" for x in sorted(norms)))
        print("loss first/last:", rec["loss"][0], rec["loss"][-1])
        return

    out = os.path.abspath(args.out_dir)
    if args.probe_f64:
        with open(os.path.join(out, "steps.json"), encoding="utf-8") as f:
            ref = json.load(f)["runs"]
        for name, st in RUNS.items():
            rec = train(name, st)[0]
            rel = [abs(a - b) / abs(b) for a, b in zip(rec["loss"], ref[name]["loss"])]
            reln = [abs(a - b) / abs(b) for a, b in zip(rec["grad_norm"], ref[name]["grad_norm"])]
            print(f"run {name}: float64 vs float32 loss, max relative difference {max(rel):.3g} "
                  f"(step {rel.index(max(rel))}); grad norm {max(reln):.3g}")
        return
    tdir = os.path.join(out, "teacher")
    os.makedirs(os.path.join(tdir, "1_Pooling"), exist_ok=True)
    write_json(os.path.join(tdir, "config.json"), CONFIG)
    write_json(os.path.join(tdir, "modules.json"), MODULES)
    write_json(os.path.join(tdir, "1_Pooling", "config.json"), POOLING)
    write_json(os.path.join(tdir, "sentence_bert_config.json"), SBERT)
    write_json(os.path.join(tdir, "tokenizer_config.json"), TOKENIZER_CONFIG)
    write_json(os.path.join(tdir, "special_tokens_map.json"), SPECIAL_TOKENS_MAP)
    with open(os.path.join(tdir, "vocab.txt"), "w", encoding="utf-8", newline="\n") as f:
        f.write("".join(t + "\n" for t in vocab()))
    save_file({k: torch.from_numpy(tw[k]) for k in teacher_names()},
              os.path.join(tdir, "model.safetensors"), metadata={"format": "pt"})

    runs = {}
    for name, st in RUNS.items():
        rec, grads0, final = train(name, st)
        runs[name] = {"settings": st, **rec}
        save_file(grads0, os.path.join(out, f"grads0_{name}.safetensors"), metadata={"format": "pt"})
        if name == "mse":
            save_file(final, os.path.join(out, "student_final_mse.safetensors"),
                      metadata={"format": "pt"})
        n_clip = sum(x > st["max_grad_norm"] for x in rec["grad_norm"])
        print(f"run {name}: loss {rec['loss'][0]:.6g} -> {rec['loss'][-1]:.6g} "
              f"(x{rec['loss'][0] / rec['loss'][-1]:.3g}), clipped on {n_clip}/{len(rec['loss'])} "
              f"steps (max_grad_norm {st['max_grad_norm']})", file=sys.stderr)
        # the contrastive term starts near log(batch) and falls more slowly than the MSE
        limit = 0.75 if name == "contrastive" else 0.5
        assert rec["loss"][-1] < limit * rec["loss"][0], (name, rec["loss"][0], rec["loss"][-1])
        if name == "hidden":
            assert n_clip > 0.75 * len(rec["loss"]), n_clip

    steps = {
        "what": "PyTorch reference of the distillation trainer: a 2-layer student (teacher layers "
                "[0, 2]) trained 50 AdamW steps on MSE of normalized mean-pooled embeddings "
                "(+ weighted hidden-state MSE); per-step loss before the update, grad norm "
                "before clipping, lr used. Semantics: make_distill_golden.py's docstring.",
        "made_by": "tests/golden/distill/make_distill_golden.py",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "numpy": np.__version__},
        "teacher": "teacher",
        "layers": LAYERS,
        "cls_id": CLS_ID,
        "sep_id": SEP_ID,
        "batches": batches,
        "runs": runs,
    }
    with open(os.path.join(out, "steps.json"), "w", encoding="utf-8", newline="\n") as f:
        f.write(dumps_compact_leaves(steps) + "\n")

    check_sentence_transformers(tdir, teacher, forward, batches, torch)


def check_sentence_transformers(tdir, teacher, forward, batches, torch):
    """The teacher folder loads in sentence-transformers and embeds as our forward does."""
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(tdir, device="cpu")
    st.eval()
    assert st.max_seq_length == 32, st.max_seq_length
    tok = st.tokenizer
    assert tok.convert_tokens_to_ids(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]) == [0, 1, 2, 3, 4]
    # Sequences of batch 0 through ST's modules directly (ids in, normalized embedding out).
    with torch.no_grad():
        ours = forward(teacher, batches[0])[0]
        for i, seq in enumerate(batches[0]):
            ids = torch.tensor([seq])
            feats = {"input_ids": ids, "attention_mask": torch.ones_like(ids),
                     "token_type_ids": torch.zeros_like(ids)}
            e = st(feats)["sentence_embedding"][0]
            diff = float((e - ours[i]).abs().max())
            assert diff < 1e-5, (i, diff)
    # And from text, through the tokenizer.
    text = "the quick brown fox, 4 times!"
    ids = tok(text)["input_ids"]
    assert ids[0] == CLS_ID and ids[-1] == SEP_ID and 1 not in ids, ids
    e = torch.from_numpy(st.encode([text], convert_to_numpy=True))[0]
    with torch.no_grad():
        o = forward(teacher, [ids])[0][0]
    assert float((e - o).abs().max()) < 1e-5
    print(f"sentence-transformers loads teacher/ ({[type(m).__name__ for m in st]}); "
          f"'{text}' -> {ids}", file=sys.stderr)


if __name__ == "__main__":
    main()
