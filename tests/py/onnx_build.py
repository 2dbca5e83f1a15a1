"""Tiny ONNX files written byte by byte, for the import-onnx tests and the fuzzer's seeds
(tests/fuzz/make_onnx_seeds.py): a protobuf encoder of our own (no onnx package in .venv) and a
builder of small BERT encoder graphs laid out as torch.onnx exports them (the structure of
models/paraphrase-MiniLM-L3-v2.onnx), with switches for the variants the importer must accept
or refuse.

Field numbers are ONNX's (onnx/onnx.proto), as in src/onnx/onnx_subset.proto.
"""
import struct

import numpy as np

FLOAT, INT32, INT64, FLOAT16 = 1, 6, 7, 10
A_FLOAT, A_INT, A_STRING, A_TENSOR, A_INTS = 1, 2, 3, 4, 7


# ---- protobuf wire format -------------------------------------------------------------------

def varint(n):
    n &= (1 << 64) - 1  # int64 fields: negative numbers as their two's complement
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def f_varint(field, n):
    return varint(field << 3) + varint(n)


def f_bytes(field, b):
    return varint(field << 3 | 2) + varint(len(b)) + b


def f_str(field, s):
    return f_bytes(field, s.encode())


def f_float(field, x):
    return varint(field << 3 | 5) + struct.pack("<f", x)


# ---- ONNX messages --------------------------------------------------------------------------

def tensor(name, dims, data_type, raw=None, int64_data=None, external=None):
    out = b"".join(f_varint(1, d) for d in dims) + f_varint(2, data_type) + f_str(8, name)
    if raw is not None:
        out += f_bytes(9, raw)
    if int64_data is not None:
        out += f_bytes(7, b"".join(varint(x) for x in int64_data))  # packed, as onnx.proto declares
    if external is not None:
        out += b"".join(f_bytes(13, f_str(1, k) + f_str(2, v)) for k, v in external.items()) + f_varint(14, 1)
    return out


def f32_tensor(name, arr):
    arr = np.ascontiguousarray(arr, dtype="<f4")
    return tensor(name, arr.shape, FLOAT, raw=arr.tobytes())


def attribute(name, value):
    out = f_str(1, name)
    if isinstance(value, float):
        return out + f_float(2, value) + f_varint(20, A_FLOAT)
    if isinstance(value, int):
        return out + f_varint(3, value) + f_varint(20, A_INT)
    if isinstance(value, str):
        return out + f_bytes(4, value.encode()) + f_varint(20, A_STRING)
    if isinstance(value, bytes):  # an encoded TensorProto
        return out + f_bytes(5, value) + f_varint(20, A_TENSOR)
    return out + b"".join(f_varint(8, v) for v in value) + f_varint(20, A_INTS)


def node(op, inputs, outputs, name="", **attrs):
    out = b"".join(f_str(1, i) for i in inputs) + b"".join(f_str(2, o) for o in outputs)
    out += f_str(3, name or outputs[0]) + f_str(4, op)
    return out + b"".join(f_bytes(5, attribute(k, v)) for k, v in attrs.items())


def value_info(name, elem_type, dims):
    """ValueInfoProto with a TypeProto.Tensor: dims are ints (dim_value) or names (dim_param)."""
    shape = b"".join(f_bytes(1, f_varint(1, d) if isinstance(d, int) else f_str(2, d)) for d in dims)
    return f_str(1, name) + f_bytes(2, f_bytes(1, f_varint(1, elem_type) + f_bytes(2, shape)))


def graph(nodes, initializers, inputs, outputs, name="g"):
    """inputs and outputs: (name, elem_type, dims) triples."""
    out = b"".join(f_bytes(1, n) for n in nodes) + f_str(2, name)
    out += b"".join(f_bytes(5, t) for t in initializers)
    out += b"".join(f_bytes(11, value_info(*i)) for i in inputs)
    return out + b"".join(f_bytes(12, value_info(*o)) for o in outputs)


def model(graph_bytes, opset=17):
    return (f_varint(1, 8) + f_str(2, "akidb-embed tests") + f_bytes(7, graph_bytes) +
            f_bytes(8, f_str(1, "") + f_varint(2, opset)))


# ---- a BERT encoder -------------------------------------------------------------------------

class _G:
    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def op(self, op, *inputs, **attrs):
        self.n += 1
        out = f"/{op}_{self.n}_output_0"
        self.nodes.append(node(op, list(inputs), [out], name=f"/{op}_{self.n}", **attrs))
        return out

    def const(self, values, dtype=INT64):
        self.n += 1
        out = f"/Constant_{self.n}_output_0"
        if dtype == INT64 and isinstance(values, int):  # a scalar
            t = tensor("", [], INT64, int64_data=[values])
        elif dtype == INT64:
            t = tensor("", [len(values)], INT64, int64_data=values)
        else:
            t = tensor("", [], FLOAT, raw=struct.pack("<f", values))
        self.nodes.append(node("Constant", [], [out], name=f"/Constant_{self.n}", value=t))
        return out

    def init(self, name, arr):
        self.inits.append(f32_tensor(name, arr))
        return name


def bert(layers=2, hidden=8, heads=2, inter=16, vocab=32, max_pos=16, type_vocab=2, prefix="model.0.auto_model.",
         seed=0, ln="op", weights="matmul", heads_form="concat", act="erf", eps=1e-12, drop=(), opset=None):
    """A BERT encoder as ONNX bytes, and its weights under Hugging Face names in BertModel's
    layout (Linear weights [out, in]) as float32 arrays.

    ln: "op" (LayerNormalization, opset 17) or "decomposed" (ReduceMean/Sub/Pow/Sqrt/Div/Mul/Add)
    weights: "matmul" (anonymous onnx::MatMul_N initializers [in, out], as torch.onnx writes them)
             or "transpose" (named [out, in] initializers through Transpose nodes)
    heads_form: "concat" (Reshape shape = Concat(batch, seq, Constant[heads], Constant[head_dim])),
                "const" (one Constant [0, 0, heads, head_dim]) or "none" (nothing constant)
    act: "erf" (exact GELU), "tanh" (GELU's tanh approximation) or "relu"
    drop: Hugging Face names of initializers to leave out
    """
    rng = np.random.default_rng(seed)
    g = _G()
    w = {}

    def param(name, shape, scale=0.5, center=0.0):
        w[name] = (center + scale * rng.standard_normal(shape)).astype(np.float32)
        return w[name]

    def named(name):
        return prefix + name

    def add_init(name):
        if name not in drop:
            g.init(named(name), w[name])
        return named(name)

    mm_counter = [100]

    def linear(x, base, n_in, n_out):
        wt = param(base + ".weight", (n_out, n_in), scale=0.3)
        param(base + ".bias", (n_out,), scale=0.1)
        if weights == "matmul":
            mm_counter[0] += 1
            wname = f"onnx::MatMul_{mm_counter[0]}"
            if base + ".weight" not in drop:
                g.init(wname, wt.T)
        else:
            wname = g.op("Transpose", add_init(base + ".weight"), perm=[1, 0])
        y = g.op("MatMul", x, wname)
        return g.op("Add", add_init(base + ".bias"), y)

    def layer_norm(x, base):
        param(base + ".weight", (hidden,), scale=0.1, center=1.0)
        param(base + ".bias", (hidden,), scale=0.1)
        gamma, beta = add_init(base + ".weight"), add_init(base + ".bias")
        if ln == "op":
            return g.op("LayerNormalization", x, gamma, beta, axis=-1, epsilon=float(eps))
        mean = g.op("ReduceMean", x, axes=[-1])
        centered = g.op("Sub", x, mean)
        var = g.op("ReduceMean", g.op("Pow", centered, g.const(2.0, FLOAT)), axes=[-1])
        std = g.op("Sqrt", g.op("Add", var, g.const(float(eps), FLOAT)))
        return g.op("Add", g.op("Mul", g.op("Div", centered, std), gamma), beta)

    head_dim = hidden // heads
    param("embeddings.word_embeddings.weight", (vocab, hidden))
    param("embeddings.position_embeddings.weight", (max_pos, hidden))
    param("embeddings.token_type_embeddings.weight", (type_vocab, hidden))
    word = g.op("Gather", add_init("embeddings.word_embeddings.weight"), "input_ids")
    zeros = g.op("Mul", "input_ids", g.const([0]))
    tt = g.op("Gather", add_init("embeddings.token_type_embeddings.weight"), zeros)
    seq_len = g.op("Unsqueeze", g.op("Gather", g.op("Shape", "input_ids"), g.const(1)), g.const([0]))
    pos_ids = g.op("Slice", g.const(list(range(max_pos))), g.const([0]), seq_len, g.const([0]))
    pos = g.op("Gather", add_init("embeddings.position_embeddings.weight"), pos_ids)
    x = layer_norm(g.op("Add", g.op("Add", word, tt), pos), "embeddings.LayerNorm")
    mask4 = g.op("Unsqueeze", g.op("Cast", "attention_mask", to=FLOAT), g.const([1, 2]))
    mask = g.op("Mul", g.op("Sub", g.const(1.0, FLOAT), mask4),
                g.const(-3.4e38, FLOAT))

    def split_heads(t):
        if heads_form == "const":
            shape = g.const([0, 0, heads, head_dim])
        else:
            s = g.op("Shape", t)
            b = g.op("Unsqueeze", g.op("Gather", s, g.const(0)), g.const([0]))
            sq = g.op("Unsqueeze", g.op("Gather", s, g.const(1)), g.const([0]))
            if heads_form == "concat":
                shape = g.op("Concat", b, sq, g.const([heads]), g.const([head_dim]), axis=0)
            else:
                shape = g.op("Concat", b, sq, b, sq, axis=0)
        return g.op("Transpose", g.op("Reshape", t, shape), perm=[0, 2, 1, 3])

    for i in range(layers):
        p = f"encoder.layer.{i}."
        q = linear(x, p + "attention.self.query", hidden, hidden)
        k = linear(x, p + "attention.self.key", hidden, hidden)
        v = linear(x, p + "attention.self.value", hidden, hidden)
        scores = g.op("Div", g.op("MatMul", split_heads(q), g.op("Transpose", split_heads(k), perm=[0, 1, 3, 2])),
                      g.const(float(np.sqrt(head_dim)), FLOAT))
        probs = g.op("Softmax", g.op("Add", scores, mask), axis=-1)
        ctx = g.op("Reshape", g.op("Transpose", g.op("MatMul", probs, split_heads(v)), perm=[0, 2, 1, 3]),
                   g.const([0, 0, hidden]))
        o = linear(ctx, p + "attention.output.dense", hidden, hidden)
        x1 = layer_norm(g.op("Add", o, x), p + "attention.output.LayerNorm")
        f1 = linear(x1, p + "intermediate.dense", hidden, inter)
        if act == "erf":
            a = g.op("Mul", g.op("Mul", f1, g.op("Add", g.op("Erf", g.op("Div", f1, g.const(1.4142135, FLOAT))),
                                                 g.const(1.0, FLOAT))), g.const(0.5, FLOAT))
        elif act == "tanh":
            cube = g.op("Mul", g.op("Pow", f1, g.const(3.0, FLOAT)), g.const(0.044715, FLOAT))
            t = g.op("Tanh", g.op("Mul", g.op("Add", f1, cube), g.const(0.7978846, FLOAT)))
            a = g.op("Mul", g.op("Mul", f1, g.const(0.5, FLOAT)), g.op("Add", t, g.const(1.0, FLOAT)))
        else:
            a = g.op("Relu", f1)
        f2 = linear(a, p + "output.dense", inter, hidden)
        x = layer_norm(g.op("Add", f2, x1), p + "output.LayerNorm")
    g.nodes.append(node("Identity", [x], ["last_hidden_state"]))
    ins = [("input_ids", INT64, ["batch", "seq"]), ("attention_mask", INT64, ["batch", "seq"])]
    data = model(graph(g.nodes, g.inits, ins, [("last_hidden_state", FLOAT, ["batch", "seq", hidden])]),
                 opset=opset or (17 if ln == "op" else 13))
    return data, w


def not_bert():
    """A valid ONNX model that is not a BERT encoder: y = x W + b, one MatMul and one Add."""
    g = _G()
    g.init("W", np.ones((4, 4), np.float32))
    g.init("b", np.zeros(4, np.float32))
    y = g.op("Add", g.op("MatMul", "x", "W"), "b")
    g.nodes.append(node("Identity", [y], ["y"]))
    return model(graph(g.nodes, g.inits, [("x", FLOAT, ["n", 4])], [("y", FLOAT, ["n", 4])]))
