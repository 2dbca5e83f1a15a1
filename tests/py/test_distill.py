"""`akidb-embed distill` end to end on the CPU, on the tiny teacher of tests/golden/distill (4
layers of 32, a 256-token vocabulary) and the committed calibration text: the loss falls; a run
stopped (--stop-after, SIGTERM, kill -9) and resumed ends with the same bytes and the same loss
sequence as one that never stopped; the output is a model folder that `embed` loads, and
`--assemble` rebuilds it from trained-f16.safetensors; bad input gets an error naming it. (The
step itself is checked against PyTorch in tests/unit/test_distill.c, every backward against
finite differences in tests/unit/test_train_grad.c.)"""
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / os.environ.get("AKE_BIN", "build/akidb-embed")
TEACHER = ROOT / "tests" / "golden" / "distill" / "teacher"
CORPUS = ROOT / "tests" / "golden" / "quant_calib.txt"
BASE = ["--teacher", TEACHER, "--layers", "0,2", "--corpus", CORPUS, "--batch", "16", "--max-len", "32",
        "--lr", "1e-3", "--valid-size", "200", "--threads", "2", "--no-plot"]


def run(*args, timeout=300):
    return subprocess.run([str(BIN), "distill", *map(str, args)], capture_output=True, text=True, timeout=timeout)


def curve(out):
    """The per-step rows of curve.tsv: (step, loss text, gradient norm, lr)."""
    rows = [l.split("\t") for l in (out / "curve.tsv").read_text().splitlines() if not l.startswith("#")]
    return [r for r in rows if r[1]]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run of 120 steps, validated every 40, checkpointed every 20, with its curve.png."""
    out = tmp_path_factory.mktemp("distill") / "ref"
    plotted = [a for a in BASE if a != "--no-plot"]
    p = run(*plotted, "--steps", 120, "--valid-every", 40, "--checkpoint-every", 20, "--out", out)
    assert p.returncode == 0, p.stderr
    return out


def same_run(a, b):
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert (a / "trained-f16.safetensors").read_bytes() == (b / "trained-f16.safetensors").read_bytes()
    assert curve(a) == curve(b)  # the losses as printed with 17 digits: the same doubles


def test_loss_falls_and_the_output_is_a_model_folder(reference, tmp_path):
    losses = [float(r[1]) for r in curve(reference)]
    assert len(losses) == 120 and all(np.isfinite(losses))
    assert np.mean(losses[-10:]) < 0.3 * np.mean(losses[:10])
    report = json.loads((reference / "distillation.json").read_text())
    assert report["steps_done"] == 120 and report["settings"]["layers"] == [0, 2]
    assert report["settings"]["corpus_sha256"] and report["valid_sentences"] == 200
    v = report["final_validation"]
    assert 0 < v["recall_at_10"] <= 1 and 0.5 < v["mean_cos"] <= 1
    valid_rows = [l for l in (reference / "curve.tsv").read_text().splitlines() if l.split("\t")[1:2] == [""]]
    assert len(valid_rows) == 3  # steps 40, 80, 120
    assert (reference / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # gnuplot (scripts/setup installs it)
    # embed loads the folder: 2 layers, the teacher's tokenizer, normalized vectors of 32
    e = subprocess.run([str(BIN), "embed", "--model", reference], input="a tiny test\nof the student\n",
                       capture_output=True, text=True, timeout=60)
    assert e.returncode == 0, e.stderr
    vecs = [json.loads(l) for l in e.stdout.splitlines()]
    assert len(vecs) == 2 and all(abs(np.linalg.norm(v) - 1) < 1e-5 for v in vecs)
    assert json.loads((reference / "config.json").read_text())["num_hidden_layers"] == 2
    # --assemble rebuilds the folder from the F16 trained tensors and the teacher
    asm = tmp_path / "asm"
    p = run("--assemble", reference / "trained-f16.safetensors", "--teacher", TEACHER, "--out", asm)
    assert p.returncode == 0, p.stderr
    e2 = subprocess.run([str(BIN), "embed", "--model", asm], input="a tiny test\nof the student\n",
                        capture_output=True, text=True, timeout=60)
    vecs2 = [json.loads(l) for l in e2.stdout.splitlines()]
    assert all(np.dot(a, b) > 0.999 for a, b in zip(vecs, vecs2))
    assert json.loads((asm / "distillation.json").read_text()) == report  # the record travels with it
    # --plot draws curve.png of a run made with --no-plot (a GPU machine without gnuplot)
    plotted = tmp_path / "plotted"
    plotted.mkdir()
    (plotted / "curve.tsv").write_bytes((reference / "curve.tsv").read_bytes())
    p = run("--plot", plotted)
    assert p.returncode == 0, p.stderr
    assert (plotted / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_stop_after_and_resume_is_bit_exact(reference, tmp_path):
    out = tmp_path / "b"
    args = [*BASE, "--steps", 120, "--valid-every", 40, "--checkpoint-every", 20, "--out", out]
    p = run(*args, "--stop-after", 33)
    assert p.returncode == 0, p.stderr
    assert "stopped at step 33 of 120" in p.stderr and not (out / "model.safetensors").exists()
    p = run(*args, "--resume", out / "checkpoint")
    assert p.returncode == 0, p.stderr
    assert "resumed from" in p.stderr and "at step 33 of 120" in p.stderr
    same_run(reference, out)


def wait_for(pred, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_signal_then_resume_is_bit_exact(reference, tmp_path, sig):
    """SIGTERM: the run writes a checkpoint at the next step and exits 143. kill -9: the last
    periodic checkpoint (every 20 steps, written atomically) survives. Either way --resume ends
    where the uninterrupted run ended."""
    out = tmp_path / "c"
    args = [str(BIN), "distill", *map(str, [*BASE, "--steps", 120, "--valid-every", 40, "--checkpoint-every", 20,
                                             "--out", out])]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ck = out / "checkpoint" / "checkpoint.bin"
    assert wait_for(ck.exists), "no checkpoint appeared"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the run finished before the signal arrived")  # a slow signal on a loaded machine
    assert proc.returncode == (143 if sig == signal.SIGTERM else -9), err
    if sig == signal.SIGTERM:
        assert "stopped at step" in err and "--resume" in err
    assert not list(out.glob("checkpoint/*.tmp.*")) or sig == signal.SIGKILL
    p = run(*BASE, "--steps", 120, "--valid-every", 40, "--checkpoint-every", 20, "--out", out,
            "--resume", out / "checkpoint")
    assert p.returncode == 0, p.stderr
    same_run(reference, out)


def test_bad_input_is_refused_by_name(reference, tmp_path):
    ck = reference / "checkpoint"
    cases = [
        (["--layers", "0,0"], "strictly increasing"),
        (["--layers", "0,7"], "layer 7"),
        (["--layers", "a"], "--layers"),
        (["--corpus", tmp_path / "missing.txt"], "missing.txt"),
        (["--lr", "-1"], "--lr"),
        (["--schedule", "exp"], "--schedule"),
        (["--device", "tpu"], "tpu"),
        (["--valid-size", "5000"], "holding back"),
    ]
    for extra, want in cases:
        args = list(BASE)
        for i in range(0, len(extra), 2):
            k = extra[i]
            if k in args:
                args[args.index(k) + 1] = extra[i + 1]
            else:
                args += extra[i:i + 2]
        p = run(*args, "--steps", 5, "--out", tmp_path / "x")
        assert p.returncode != 0 and want in p.stderr, (extra, p.stderr)
    # a fresh run into a folder that holds a run, and a resume with other settings
    p = run(*BASE, "--steps", 120, "--out", reference)
    assert p.returncode == 1 and "--resume" in p.stderr
    p = run(*BASE, "--steps", 120, "--lr", "2e-3", "--valid-every", 40, "--checkpoint-every", 20, "--out", reference,
            "--resume", ck)
    assert p.returncode == 1 and "made with lr 0.001" in p.stderr and "0.002" in p.stderr
    # a damaged checkpoint is refused, not trained on
    bad = tmp_path / "bad"
    (bad / "checkpoint").mkdir(parents=True)
    data = bytearray((ck / "checkpoint.bin").read_bytes())
    data[len(data) // 2] ^= 0x40
    (bad / "checkpoint" / "checkpoint.bin").write_bytes(bytes(data))
    p = run(*BASE, "--steps", 120, "--out", bad, "--resume", bad / "checkpoint")
    assert p.returncode == 1 and "checksum mismatch" in p.stderr
    (bad / "checkpoint" / "checkpoint.bin").write_bytes(bytes(data[:100]))
    p = run(*BASE, "--steps", 120, "--out", bad, "--resume", bad / "checkpoint")
    assert p.returncode == 1 and "not an akidb-embed checkpoint" in p.stderr
    p = run(*BASE, "--steps", 120, "--out", tmp_path / "none", "--resume", tmp_path / "none" / "checkpoint")
    assert p.returncode == 1 and "no checkpoint" in p.stderr
    p = run("--assemble", CORPUS, "--teacher", TEACHER, "--out", tmp_path / "asm")
    assert p.returncode == 1 and str(CORPUS) in p.stderr
    p = run("--plot", tmp_path / "none")
    assert p.returncode == 1 and "curve.tsv" in p.stderr
