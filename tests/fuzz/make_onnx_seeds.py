#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_onnx: small BERT encoders the importer must accept (each
variant of the graph it knows) and one file per kind of defect it must refuse. Needs numpy
(the .venv's python); rerun to regenerate:
    .venv/bin/python tests/fuzz/make_onnx_seeds.py tests/fuzz/fuzz_onnx.seed
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "py"))
import onnx_build as ob  # noqa: E402

FLOAT = ob.FLOAT


def one_tensor_model(t):
    """A model whose only content is one initializer, t (encoded TensorProto)."""
    return ob.model(ob.graph([], [t], [], []))


def seeds():
    ok, _ = ob.bert()
    yield "ok_op_concat.onnx", ok
    yield "ok_decomposed_transpose.onnx", ob.bert(ln="decomposed", weights="transpose", prefix="bert.",
                                                  heads_form="const")[0]
    yield "ok_one_layer_no_prefix.onnx", ob.bert(layers=1, prefix="")[0]
    yield "no_heads.onnx", ob.bert(heads_form="none", layers=1)[0]
    yield "tanh_gelu.onnx", ob.bert(act="tanh", layers=1)[0]
    yield "relu.onnx", ob.bert(act="relu", layers=1)[0]
    yield "missing_bias.onnx", ob.bert(layers=1, drop={"encoder.layer.0.intermediate.dense.bias"})[0]
    yield "missing_matmul_weight.onnx", ob.bert(layers=1, drop={"encoder.layer.0.attention.self.key.weight"})[0]
    yield "not_bert.onnx", ob.not_bert()
    yield "truncated.onnx", ok[: len(ok) // 2]
    yield "empty_graph.onnx", ob.model(ob.graph([], [], [], []))
    name = "embeddings.word_embeddings.weight"
    yield "raw_too_short.onnx", one_tensor_model(ob.tensor(name, [32, 8], FLOAT, raw=b"\0" * 100))
    yield "huge_dims.onnx", one_tensor_model(ob.tensor(name, [1 << 40, 1 << 40], FLOAT, raw=b"\0" * 32))
    yield "negative_dim.onnx", one_tensor_model(ob.tensor(name, [-1, 8], FLOAT, raw=b""))
    yield "external_data.onnx", one_tensor_model(ob.tensor(name, [32, 8], FLOAT,
                                                           external={"location": "../../etc/passwd"}))
    yield "int64_table.onnx", one_tensor_model(ob.tensor(name, [2, 2], ob.INT64, int64_data=[1, 2, 3, 4]))
    # a graph field declared as a varint instead of a message (wrong wire type)
    yield "wrong_wire_type.onnx", ob.f_varint(1, 8) + ob.f_varint(7, 5)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "fuzz_onnx.seed")
    os.makedirs(out, exist_ok=True)
    for name, data in seeds():
        assert len(data) < 65536, (name, len(data))  # the fuzzer's -max_len
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
