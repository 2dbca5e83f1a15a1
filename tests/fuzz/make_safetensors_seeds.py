#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_safetensors: small valid files and one file per
kind of defect the reader must reject. Standard library only; rerun to regenerate:
    python3 tests/fuzz/make_safetensors_seeds.py tests/fuzz/fuzz_safetensors.seed
"""
import json
import os
import struct
import sys


def raw(header_text, data=b"", declared=None):
    h = header_text if isinstance(header_text, bytes) else header_text.encode("utf-8")
    n = len(h) if declared is None else declared
    return struct.pack("<Q", n) + h + data


def st(tensors, meta=None, pad=True, extra=b""):
    """tensors: list of (name, dtype, shape, bytes) laid out in order."""
    hdr, data = {}, b""
    if meta is not None:
        hdr["__metadata__"] = meta
    for name, dtype, shape, blob in tensors:
        hdr[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    text = json.dumps(hdr, separators=(",", ":"))
    if pad:
        text += " " * (-(8 + len(text)) % 8)
    return raw(text, data + extra)


def f32(*v):
    return struct.pack("<%df" % len(v), *v)


def entry(dtype, shape, offs):
    return {"dtype": dtype, "shape": shape, "data_offsets": offs}


SEEDS = {
    "valid_small": st([("a", "F32", [2, 2], f32(1, 2, 3, 4)), ("b", "I64", [1], struct.pack("<q", 7))],
                      meta={"format": "pt"}),
    "valid_empty": st([]),
    "valid_zero_size": st([("z", "BF16", [0, 4], b""), ("s", "U8", [], b"\x05")]),
    "valid_unpadded": st([("d", "F64", [1], struct.pack("<d", 2.5))], pad=False),
    "valid_bert_like": st([
        ("embeddings.position_ids", "I64", [1, 4], struct.pack("<4q", 0, 1, 2, 3)),
        ("embeddings.word_embeddings.weight", "F16", [5, 4], b"\x00\x3c" * 20),
        ("embeddings.LayerNorm.weight", "F32", [4], f32(1, 1, 1, 1)),
        ("embeddings.LayerNorm.bias", "BF16", [4], b"\x00\x00" * 4),
        ("encoder.layer.0.attention.self.query.weight", "F8_E4M3", [4, 4], bytes(range(16))),
        ("pooler.dense.bias", "BOOL", [2], b"\x01\x00"),
    ], meta={"format": "pt", "note": "seed"}),
    "bad_truncated": st([("a", "F32", [4], f32(1, 2, 3, 4))])[:-5],
    "bad_header_past_eof": raw('{"a":1}', declared=4096),
    "bad_header_len_huge": raw("{}", declared=(1 << 62)),
    "bad_not_object": raw("[1,2,3]"),
    "bad_json": raw('{"a":{"dtype":"F32","shape":[1],'),
    "bad_dtype": raw(json.dumps({"w": entry("Q4_K", [2], [0, 2])}), b"\x00\x00"),
    "bad_mismatch": raw(json.dumps({"w": entry("F32", [2, 2], [0, 12])}), bytes(12)),
    "bad_overlap": raw(json.dumps({"a": entry("F32", [4], [0, 16]), "b": entry("F32", [4], [8, 24])}), bytes(24)),
    "bad_gap": raw(json.dumps({"a": entry("F32", [1], [0, 4]), "b": entry("F32", [1], [8, 12])}), bytes(12)),
    "bad_out_of_bounds": raw(json.dumps({"w": entry("F32", [4], [0, 16])}), bytes(8)),
    "bad_duplicate": raw('{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},'
                         '"w":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', b"\x01\x02"),
    "bad_overflow": raw(json.dumps({"w": entry("F32", [4294967296, 4294967296], [0, 4])}), bytes(4)),
    "bad_negative": raw('{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', bytes(4)),
    "bad_fraction": raw('{"w":{"dtype":"U8","shape":[1.5],"data_offsets":[0,1]}}', bytes(1)),
    "bad_metadata": raw('{"__metadata__":{"format":1}}'),
    "bad_utf8": raw(b'{"w\xff":{}}'),
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "fuzz_safetensors.seed")
    os.makedirs(out, exist_ok=True)
    for name, blob in sorted(SEEDS.items()):
        assert len(blob) < 10240, name
        with open(os.path.join(out, name + ".safetensors"), "wb") as f:
            f.write(blob)


if __name__ == "__main__":
    main()
