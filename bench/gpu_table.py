"""Merges akidb-embed's and PyTorch's GPU benchmark rows (same card, same device call) into one
table with the throughput ratio, and one JSON list whose rows all carry card, commit and date.

  python3 bench/gpu_table.py --ours a.json b.json --peer torch.json --card NAME --commit HASH \
      --date YYYY-MM-DD --out bench/results/gpu-<date>.json   # prints a markdown table
"""
import argparse
import json

TARGETS = {  # the targets on an H100, fp16: (model, batch, seq) -> ms ceiling or tokens/s floor
    ("minilm-l6", 1, 32): ("ms", 0.12),
    ("minilm-l6", 128, 128): ("tok", 16e6),
    ("bert-base", 128, 128): ("tok", 4.0e6),
    ("bert-base", 32, 512): ("tok", 3.5e6),
    ("bert-large", 32, 512): ("tok", 1.1e6),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", nargs="+", required=True)
    ap.add_argument("--peer", nargs="*", default=[])
    ap.add_argument("--card", required=True)
    ap.add_argument("--commit", required=True)
    ap.add_argument("--date", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    rows = []
    for path in args.ours + args.peer:
        with open(path) as f:
            rows += json.load(f)
    for r in rows:
        r["card"], r["commit"], r["date"] = args.card, args.commit, args.date
        r.setdefault("tokens", r["batch"] * r["seq"] if r["seq"] != "mixed" else None)
    with open(args.out, "w") as f:
        json.dump(rows, f, indent=1)

    def key(r):
        return (r["model"], r["batch"], str(r["seq"]))

    ours = {key(r): r for r in rows if r["impl"] == "akidb-embed"}
    peers = {}
    for r in rows:
        if r["impl"].startswith("pytorch"):
            peers.setdefault(key(r), {})[r["impl"]] = r
    order = ["minilm-l6", "bge-small", "bert-base", "bert-large"]
    print(f"card {args.card}, commit {args.commit}, {args.date}, fp16; ms = median per call "
          "(akidb-embed: host wall clock incl. upload and download; PyTorch: CUDA events around the forward)\n")
    print("| model | batch | seq | akidb-embed ms | M tok/s | PyTorch eager ms | PyTorch graph ms | M tok/s (best) "
          "| ratio | target |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---|")
    for k in sorted(ours, key=lambda k: (order.index(k[0]) if k[0] in order else 9, k[2] == "mixed",
                                         int(k[2]) if k[2] != "mixed" else 0, k[1])):
        o = ours[k]
        p = peers.get(k, {})
        eager, graph = p.get("pytorch-eager"), p.get("pytorch-cuda-graph")
        best = max([x["tokens_per_s"] for x in (eager, graph) if x] or [0])
        ratio = o["tokens_per_s"] / best if best else float("nan")
        t = TARGETS.get((k[0], k[1], int(k[2]) if k[2] != "mixed" else 0))
        target = ""
        if t:
            met = o["ms"] <= t[1] if t[0] == "ms" else o["tokens_per_s"] >= t[1]
            target = (f"≤ {t[1]} ms" if t[0] == "ms" else f"≥ {t[1] / 1e6:g} M") + (" met" if met else " missed")
        fmt = lambda x: f"{x['ms']:.3f}" if x else "-"
        print(f"| {k[0]} | {k[1]} | {k[2]} | {o['ms']:.3f} | {o['tokens_per_s'] / 1e6:.2f} | {fmt(eager)} | "
              f"{fmt(graph)} | {best / 1e6:.2f} | {ratio:.2f} | {target} |")


if __name__ == "__main__":
    main()
