"""PyTorch anchor for GPU encoder speed: BertModel forward + mean pooling + L2 normalize.

Origin: a copy of ../shared/bench/torch_baseline.py (the project's PyTorch anchor), kept in
the repository because a GPU machine receives only the repository. Changes from the original:
--mixed LENS adds one row per model for a batch of those token lengths, padded to the longest
with an attention mask (what PyTorch users run for mixed lengths), its tokens_per_s counting
real tokens only; rows carry "tokens". Everything else is as in the original.

Random weights of the real configs (speed does not depend on the weights). Needs a GPU machine
with torch and transformers. Prints one JSON line per case and, with --out, writes them all to a
JSON file. Run it in the same job as the engine's own benchmark so that both numbers come from
the same card.

  python3 torch_baseline.py --models minilm-l6,bert-base --batch 1,32,128 --seq 32,128,512 \
      --dtype float16 --graphs --out $OUT/torch.json

--graphs also times the forward captured in a CUDA graph (static shapes), the strongest plain
PyTorch setting for small batches, where eager mode is bound by kernel-launch overhead.
"""
import argparse
import json

import torch
from transformers import BertConfig, BertModel

CONFIGS = {
    "minilm-l6": dict(num_hidden_layers=6, hidden_size=384, num_attention_heads=12, intermediate_size=1536),
    "bge-small": dict(num_hidden_layers=12, hidden_size=384, num_attention_heads=12, intermediate_size=1536),
    "bert-base": dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12, intermediate_size=3072),
    "bert-large": dict(num_hidden_layers=24, hidden_size=1024, num_attention_heads=16, intermediate_size=4096),
}


def median_ms(fn, iters):
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    return times[len(times) // 2]


def make_forward(model, ids, mask):
    def forward():
        with torch.inference_mode():
            hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
            pooled = (hidden * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
            return torch.nn.functional.normalize(pooled.float(), dim=-1)
    return forward


def graphed(forward):
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            forward()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        forward()
    return graph.replay


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="minilm-l6,bge-small,bert-base,bert-large")
    ap.add_argument("--batch", default="1,8,32,128")
    ap.add_argument("--seq", default="32,128,512")
    ap.add_argument("--dtype", default="float16", choices=["float32", "float16", "bfloat16"])
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--graphs", action="store_true")
    ap.add_argument("--mixed", help="comma-separated token lengths of one extra padded batch")
    ap.add_argument("--out")
    args = ap.parse_args()
    dtype = getattr(torch, args.dtype)
    rows = []
    for name in args.models.split(","):
        cfg = BertConfig(vocab_size=30522, max_position_embeddings=512, **CONFIGS[name])
        cfg._attn_implementation = "sdpa"
        model = BertModel(cfg, add_pooling_layer=False).cuda().to(dtype).eval()
        cases = [(b, s, [s] * b) for s in map(int, args.seq.split(",")) for b in map(int, args.batch.split(","))]
        if args.mixed:
            lens = [int(x) for x in args.mixed.split(",")]
            cases.append((len(lens), "mixed", lens))
        for batch, seq, lens in cases:
            width = max(lens)
            ids = torch.randint(1000, 30000, (batch, width), device="cuda")
            mask = (torch.arange(width, device="cuda")[None, :] < torch.tensor(lens, device="cuda")[:, None]).long()
            forward = make_forward(model, ids, mask)
            modes = [("eager", forward)]
            if args.graphs:
                modes.append(("cuda-graph", graphed(forward)))
            for mode, fn in modes:
                ms = median_ms(fn, args.iters)
                row = dict(impl="pytorch-" + mode, attn=model.config._attn_implementation, model=name, dtype=args.dtype,
                           batch=batch, seq=seq, tokens=sum(lens), ms=round(ms, 4),
                           tokens_per_s=round(sum(lens) / ms * 1000))
                rows.append(row)
                print(json.dumps(row), flush=True)
        del model
        torch.cuda.empty_cache()
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
