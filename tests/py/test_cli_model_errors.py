"""The CLI on broken model folders and hostile input: a clear message on stderr, a non-zero exit,
never a crash. Runs against the optimized binary and, when built, the ASan+UBSan one
(build-san/akidb-embed), whose sanitizer reports would turn any memory error into a failure."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "all-MiniLM-L6-v2"
BINS = [b for b in (os.environ.get("AKE_BIN", "build/akidb-embed"), "build-san/akidb-embed") if (ROOT / b).exists()]
SAN_ENV = dict(os.environ, ASAN_OPTIONS="abort_on_error=0:exitcode=99", UBSAN_OPTIONS="halt_on_error=1:exitcode=99")


def run(binary, args, stdin=b"hello\n"):
    return subprocess.run([str(ROOT / binary), *args], input=stdin, capture_output=True, env=SAN_ENV, timeout=300)


def clone_model(tmp_path, drop=(), replace=None):
    """A copy of the default model folder (weights symlinked) with files dropped or replaced."""
    dst = tmp_path / "model"
    dst.mkdir()
    for f in MODEL.rglob("*"):
        rel = f.relative_to(MODEL)
        if str(rel) in drop or f.is_dir():
            continue
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        if replace and str(rel) in replace:
            (dst / rel).write_bytes(replace[str(rel)])
        elif f.name == "model.safetensors":
            (dst / rel).symlink_to(f)
        else:
            shutil.copy(f, dst / rel)
    return dst


def assert_clean_failure(res, *words):
    assert res.returncode not in (0, 99) and res.returncode > 0, (res.returncode, res.stderr.decode(errors="replace"))
    err = res.stderr.decode(errors="replace")
    assert err.startswith("akidb-embed"), err
    for w in words:
        assert w in err, f"{w!r} not in {err!r}"
    assert "Sanitizer" not in err and "runtime error" not in err, err


def truncated_weights(tmp_path):
    data = (MODEL / "model.safetensors").read_bytes()
    return data[: len(data) // 2]


CASES = {
    "missing config": (dict(drop={"config.json"}), ["config.json"]),
    "invalid json config": (dict(replace={"config.json": b'{"hidden_size": 384,'}), ["config.json"]),
    "missing tokenizer": (dict(drop={"tokenizer.json", "vocab.txt"}), ["tokenizer"]),
    "corrupt tokenizer": (dict(replace={"tokenizer.json": b"{not json"}), ["tokenizer.json"]),
    "missing weights": (dict(drop={"model.safetensors"}), ["model.safetensors"]),
    "oversized header": (dict(replace={"model.safetensors": (1 << 60).to_bytes(8, "little") + b"{}"}),
                         ["model.safetensors"]),
    "garbage weights": (dict(replace={"model.safetensors": b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\": 1}    "}),
                        ["model.safetensors"]),
}


@pytest.mark.parametrize("binary", BINS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_model_folder(tmp_path, binary, case):
    kw, words = CASES[case]
    model = clone_model(tmp_path, **kw)
    for cmd in ("embed", "tokenize") if "tokenizer" in case else ("embed",):
        assert_clean_failure(run(binary, [cmd, "--model", str(model)]), *words)


@pytest.mark.parametrize("binary", BINS)
def test_truncated_weights(tmp_path, binary):
    model = clone_model(tmp_path, replace={"model.safetensors": truncated_weights(tmp_path)})
    assert_clean_failure(run(binary, ["embed", "--model", str(model)]), "model.safetensors")


@pytest.mark.parametrize("binary", BINS)
def test_missing_model_dir(tmp_path, binary):
    assert_clean_failure(run(binary, ["embed", "--model", str(tmp_path / "nope")]), "nope")


@pytest.mark.parametrize("binary", BINS)
def test_invalid_utf8_names_the_line(binary):
    res = run(binary, ["embed"], stdin=b"fine\nbad \xc3\x28 here\n")
    assert_clean_failure(res, "line 2", "UTF-8")


@pytest.mark.parametrize("binary", BINS)
def test_bad_flags(binary):
    assert_clean_failure(run(binary, ["embed", "--batch-size", "0"]), "--batch-size")
    assert_clean_failure(run(binary, ["embed", "--bogus"]))
    assert_clean_failure(run(binary, ["frobnicate"]), "unknown command")
    assert_clean_failure(run(binary, ["embed", "--input", "/nonexistent/texts.txt"]), "/nonexistent/texts.txt")


@pytest.mark.parametrize("binary", BINS)
def test_over_long_and_empty_inputs(binary):
    """A 2 MB line is truncated to the model's 256 tokens, an empty line is a text, no input is no output."""
    long_line = ("word " * 400_000).encode() + b"\n"
    res = run(binary, ["tokenize"], stdin=long_line + b"\n")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.decode().splitlines()
    assert len(lines) == 2 and lines[0].count(",") == 255 and lines[1] == "[101,102]"
    res = run(binary, ["embed"], stdin=long_line)
    assert res.returncode == 0 and res.stdout.count(b"\n") == 1, res.stderr
    res = run(binary, ["embed"], stdin=b"")
    assert res.returncode == 0 and res.stdout == b""
