#!/usr/bin/python3
"""Independent float64 PyTorch reference for the Go GPT-2 implementation.

Why: the Go code (model/, cpu/, gpu/) must agree with Hugging Face's GPT2LMHeadModel, but
neither transformers nor safetensors is available here. This script re-derives GPT-2 from
plain torch ops in float64 and reads/writes safetensors by hand, so the goldens it produces
are independent of the Go code they test.

Subcommands:
  fixtures OUTDIR   create the tiny fixtures (config.json, model.safetensors, golden.json)
                    under OUTDIR/<name>/; the goldens are computed from the weights as read
                    back from disk, i.e. after rounding to F16/BF16, upcast to float64.
  check DIR...      reload each fixture folder with the same reader, recompute its goldens
                    and assert they equal the stored golden.json.
  quant OUTDIR DIR...
                    quantization goldens: for each fixture folder DIR, quantize its weights in
                    torch float32 (absmax and zero-point; per tensor, channel and group:16;
                    standard and article presets; int8 and int4) and write OUTDIR/<fixture>.json
                    with code hashes, the max dequantization error and the perplexity of the
                    dequantized model (float64 forward). See testdata/golden/README.md.

Everything is deterministic: each fixture's weights and token ids come from torch
generators with fixed seeds, and the float64 forward runs on the CPU.

Run with Debian's interpreter:  /usr/bin/python3 scripts/reference_gpt2.py fixtures testdata/golden
"""

import argparse
import base64
import hashlib
import json
import math
import struct
import sys
from pathlib import Path

import numpy as np
import torch

# ---------------------------------------------------------------------------------------------
# safetensors, by hand
# ---------------------------------------------------------------------------------------------

# safetensors dtype name -> (torch dtype, little-endian numpy dtype of its bytes); BF16 has no
# numpy type, so it travels as its 16-bit pattern.
SAFETENSORS_DTYPES = {
    "F32": (torch.float32, np.dtype("<f4")),
    "F16": (torch.float16, np.dtype("<f2")),
    "BF16": (torch.bfloat16, np.dtype("<i2")),
}
DTYPE_NAMES = {dt: name for name, (dt, _) in SAFETENSORS_DTYPES.items()}


def tensor_bytes(t):
    """Raw little-endian bytes of an F32/F16/BF16 tensor."""
    _, np_dtype = SAFETENSORS_DTYPES[DTYPE_NAMES[t.dtype]]
    t = t.contiguous()
    arr = t.view(torch.int16).numpy() if t.dtype == torch.bfloat16 else t.numpy()
    return arr.astype(np_dtype).tobytes()


def write_safetensors(path, tensors, metadata=None):
    """Write {name: tensor} to path; tensors are stored in the given order, contiguously."""
    header = {"__metadata__": metadata or {"format": "pt"}}
    blobs = []
    offset = 0
    for name, t in tensors.items():
        data = tensor_bytes(t)
        header[name] = {
            "dtype": DTYPE_NAMES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    head += b" " * (-(8 + len(head)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for data in blobs:
            f.write(data)


def read_safetensors(path):
    """Read a safetensors file into ({name: tensor in its stored dtype}, metadata)."""
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", {})
    data = raw[8 + n :]
    tensors = {}
    expected_start = 0
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        dtype, np_dtype = SAFETENSORS_DTYPES[info["dtype"]]
        start, end = info["data_offsets"]
        if start != expected_start or end - start != math.prod(info["shape"]) * np_dtype.itemsize:
            raise ValueError(f"{path}: {name}: bad data_offsets {info['data_offsets']}")
        expected_start = end
        arr = np.frombuffer(data[start:end], dtype=np_dtype).astype(np_dtype.newbyteorder("="))
        t = torch.from_numpy(arr)
        if dtype == torch.bfloat16:
            t = t.view(torch.bfloat16)
        tensors[name] = t.reshape(info["shape"])
    if expected_start != len(data):
        raise ValueError(f"{path}: {len(data) - expected_start} trailing bytes after the tensors")
    return tensors, metadata


# ---------------------------------------------------------------------------------------------
# Checkpoint folders
# ---------------------------------------------------------------------------------------------

PREFIX = "transformer."
# Buffers that old GPT-2 checkpoints carry; they hold no weights and a loader must skip them.
IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")


def load_folder(path):
    """Load a Hugging Face GPT-2 folder (config.json + model.safetensors).

    Returns (params, cfg, info): params maps canonical unprefixed names to float64 tensors,
    always including "lm_head.weight" (wte's tensor when the checkpoint ties them); cfg is the
    parsed config.json; info records the stored "dtype", "layout" and "tied".
    """
    path = Path(path)
    cfg = json.loads((path / "config.json").read_text())
    stored, _ = read_safetensors(path / "model.safetensors")
    dtypes = {t.dtype for t in stored.values()}
    if len(dtypes) != 1:
        raise ValueError(f"{path}: mixed tensor dtypes {sorted(DTYPE_NAMES[d] for d in dtypes)}")
    prefixed = any(name.startswith(PREFIX) for name in stored)
    params = {}
    for name, t in stored.items():
        if name.endswith(IGNORED_SUFFIXES):
            continue
        if name.startswith(PREFIX):
            name = name[len(PREFIX) :]
        params[name] = t.to(torch.float64)
    tied = "lm_head.weight" not in params
    if tied:
        params["lm_head.weight"] = params["wte.weight"]
    info = {
        "dtype": DTYPE_NAMES[dtypes.pop()],
        "layout": "prefix" if prefixed else "plain",
        "tied": tied,
    }
    return params, cfg, info


# ---------------------------------------------------------------------------------------------
# The model (Hugging Face GPT2LMHeadModel, float64)
# ---------------------------------------------------------------------------------------------


def layer_norm(x, weight, bias, eps):
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)  # biased, as torch.nn.LayerNorm
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def attention(h, params, prefix, n_head):
    """Causal multi-head self-attention of one block; Conv1D weights are (in, out)."""
    t, c = h.shape
    d = c // n_head
    qkv = h @ params[prefix + "c_attn.weight"] + params[prefix + "c_attn.bias"]
    q, k, v = (m.reshape(t, n_head, d).transpose(0, 1) for m in qkv.split(c, dim=-1))
    scores = q @ k.transpose(-1, -2) / math.sqrt(d)
    causal = torch.ones(t, t, dtype=torch.bool).tril()
    scores = scores.masked_fill(~causal, float("-inf"))
    out = torch.softmax(scores, dim=-1) @ v
    out = out.transpose(0, 1).reshape(t, c)
    return out @ params[prefix + "c_proj.weight"] + params[prefix + "c_proj.bias"]


def mlp(h, params, prefix):
    m = gelu_new(h @ params[prefix + "c_fc.weight"] + params[prefix + "c_fc.bias"])
    return m @ params[prefix + "c_proj.weight"] + params[prefix + "c_proj.bias"]


def forward(params, cfg, ids):
    """Logits (len(ids), vocab_size) in float64 for one sequence of at most n_positions ids."""
    ids = torch.as_tensor(ids, dtype=torch.long)
    if len(ids) > cfg["n_positions"]:
        raise ValueError(f"{len(ids)} tokens exceed n_positions {cfg['n_positions']}")
    eps = cfg["layer_norm_epsilon"]
    x = params["wte.weight"][ids] + params["wpe.weight"][: len(ids)]
    for i in range(cfg["n_layer"]):
        p = f"h.{i}."
        h = layer_norm(x, params[p + "ln_1.weight"], params[p + "ln_1.bias"], eps)
        x = x + attention(h, params, p + "attn.", cfg["n_head"])
        h = layer_norm(x, params[p + "ln_2.weight"], params[p + "ln_2.bias"], eps)
        x = x + mlp(h, params, p + "mlp.")
    x = layer_norm(x, params["ln_f.weight"], params["ln_f.bias"], eps)
    return x @ params["lm_head.weight"].T


# ---------------------------------------------------------------------------------------------
# Derived quantities
# ---------------------------------------------------------------------------------------------


def next_token_nll(logits, ids):
    """NLL of ids[t] under logits[t-1], for t = 1..len(ids)-1 (float64 log-softmax)."""
    logp = torch.log_softmax(logits[:-1], dim=-1)
    targets = torch.as_tensor(ids[1:], dtype=torch.long)
    return -logp.gather(1, targets[:, None])[:, 0]


def sliding_perplexity(params, cfg, ids, max_length, stride):
    """Hugging Face's strided perplexity with exact per-token accounting.

    Each window ids[begin:end] runs fresh; it scores the targets t with
    max(prev_end, begin+1) <= t < end from the logits at t-1.
    """
    n = len(ids)
    nll_sum, count, prev_end = 0.0, 0, 0
    for begin in range(0, n, stride):
        end = min(begin + max_length, n)
        window = ids[begin:end]
        nll = next_token_nll(forward(params, cfg, window), window)  # nll[j] scores window[j+1]
        first = max(prev_end, begin + 1)
        scored = nll[first - begin - 1 :]
        nll_sum += float(scored.sum())
        count += len(scored)
        prev_end = end
        if end == n:
            break
    return {
        "ids": list(ids),
        "max_length": max_length,
        "stride": stride,
        "nll_sum": nll_sum,
        "count": count,
        "perplexity": math.exp(nll_sum / count),
    }


def greedy(params, cfg, prompt, new_tokens):
    """Greedy decoding, full forward per step; also the smallest top1-top2 logit gap seen."""
    ids = list(prompt)
    min_margin = math.inf
    for _ in range(new_tokens):
        last = forward(params, cfg, ids)[-1]
        top2 = torch.topk(last, 2).values
        min_margin = min(min_margin, float(top2[0] - top2[1]))
        ids.append(int(torch.argmax(last)))
    return {"prompt": list(prompt), "new_tokens": new_tokens, "ids": ids[len(prompt) :], "min_margin": min_margin}


def compute_goldens(params, cfg, info, inputs):
    """Everything golden.json holds, from a loaded folder and the fixture's fixed inputs."""
    ids = inputs["input_ids"]
    logits = forward(params, cfg, ids)
    ppl = inputs["perplexity_ids"]
    return {
        "config": cfg,
        "dtype": info["dtype"],
        "layout": info["layout"],
        "tied": info["tied"],
        "input_ids": list(ids),
        "nll": next_token_nll(logits, ids).tolist(),
        "perplexity": sliding_perplexity(params, cfg, ppl, max_length=64, stride=32),
        "perplexity_nonoverlap": sliding_perplexity(params, cfg, ppl, max_length=64, stride=64),
        "greedy": greedy(params, cfg, inputs["prompt"], new_tokens=24),
        "logits": logits.tolist(),
    }


def inputs_from_golden(golden):
    return {
        "input_ids": golden["input_ids"],
        "perplexity_ids": golden["perplexity"]["ids"],
        "prompt": golden["greedy"]["prompt"],
    }


def write_json_rows(path, obj, rows_key):
    """JSON with one element of obj[rows_key] per line; floats are repr'd (shortest round-trip,
    <= 17 digits)."""
    parts = []
    for key, value in obj.items():
        if key == rows_key:
            rows = ",\n  ".join(json.dumps(row, separators=(",", ":")) for row in value)
            parts.append(f" {json.dumps(key)}: [\n  {rows}\n ]")
        else:
            parts.append(f" {json.dumps(key)}: {json.dumps(value)}")
    Path(path).write_text("{\n" + ",\n".join(parts) + "\n}\n")


def write_golden(path, golden):
    write_json_rows(path, golden, "logits")


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------

SHAPE = {"n_layer": 2, "n_head": 4, "n_embd": 48, "n_positions": 64, "vocab_size": 512}

# name -> (storage dtype, "transformer." prefix, explicit lm_head, HF attn buffers, seed).
# The seeds were picked so that every greedy step's top1-top2 logit gap is at least 0.05.
FIXTURES = {
    "f32-prefix": (torch.float32, True, True, False, 1001),
    "f16-tied": (torch.float16, False, False, True, 1002),
    "bf16-tied": (torch.bfloat16, True, False, False, 1009),
}


def fixture_config(tied):
    return {
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        "activation_function": "gelu_new",
        **SHAPE,
        "n_ctx": SHAPE["n_positions"],
        "layer_norm_epsilon": 1e-5,
        "tie_word_embeddings": tied,
    }


def random_weights(cfg, gen, lm_head):
    """float32 weights in HF names (unprefixed) and Conv1D (in, out) layout."""
    c, v, n_pos = cfg["n_embd"], cfg["vocab_size"], cfg["n_positions"]

    def normal(std, *shape):
        return torch.randn(*shape, generator=gen) * std

    def ln(name):
        return {name + ".weight": 1.0 + normal(0.1, c), name + ".bias": normal(0.1, c)}

    def conv1d(name, n_in, n_out):
        return {name + ".weight": normal(0.15, n_in, n_out), name + ".bias": normal(0.05, n_out)}

    w = {"wte.weight": normal(0.3, v, c), "wpe.weight": normal(0.3, n_pos, c)}
    for i in range(cfg["n_layer"]):
        p = f"h.{i}."
        w.update(ln(p + "ln_1"))
        w.update(conv1d(p + "attn.c_attn", c, 3 * c))
        w.update(conv1d(p + "attn.c_proj", c, c))
        w.update(ln(p + "ln_2"))
        w.update(conv1d(p + "mlp.c_fc", c, 4 * c))
        w.update(conv1d(p + "mlp.c_proj", 4 * c, c))
    w.update(ln("ln_f"))
    if lm_head:
        w["lm_head.weight"] = normal(0.3, v, c)
    return w


def hf_attention_buffers(cfg, dtype):
    """The causal-mask buffers old HF GPT-2 checkpoints store per layer."""
    n = cfg["n_positions"]
    bufs = {}
    for i in range(cfg["n_layer"]):
        bufs[f"h.{i}.attn.bias"] = torch.ones(n, n, dtype=dtype).tril().reshape(1, 1, n, n)
        bufs[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4, dtype=dtype)
    return bufs


def make_fixture(outdir, name):
    dtype, prefixed, lm_head, buffers, seed = FIXTURES[name]
    folder = Path(outdir) / name
    folder.mkdir(parents=True, exist_ok=True)
    cfg = fixture_config(tied=not lm_head)
    gen = torch.Generator().manual_seed(seed)
    weights = {k: t.to(dtype) for k, t in random_weights(cfg, gen, lm_head).items()}
    if buffers:
        weights.update(hf_attention_buffers(cfg, dtype))
    if prefixed:  # lm_head is never prefixed
        weights = {(k if k == "lm_head.weight" else PREFIX + k): t for k, t in weights.items()}
    (folder / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    write_safetensors(folder / "model.safetensors", weights)

    v, n_pos = cfg["vocab_size"], cfg["n_positions"]
    inputs = {
        "input_ids": torch.randint(v, (n_pos,), generator=gen).tolist(),
        "perplexity_ids": torch.randint(v, (200,), generator=gen).tolist(),
        "prompt": torch.randint(v, (8,), generator=gen).tolist(),
    }
    params, cfg_read, info = load_folder(folder)  # goldens come from the stored (rounded) values
    golden = compute_goldens(params, cfg_read, info, inputs)
    write_golden(folder / "golden.json", golden)
    return golden


def assert_same(path, got, want, where="golden"):
    """Exact for ints/strings/bools; floats within 1e-12 relative (float64 summation order)."""
    if isinstance(want, dict):
        if set(got) != set(want):
            raise AssertionError(f"{path}: {where}: keys {sorted(got)} != {sorted(want)}")
        for k in want:
            assert_same(path, got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        if len(got) != len(want):
            raise AssertionError(f"{path}: {where}: length {len(got)} != {len(want)}")
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(path, g, w, f"{where}[{i}]")
    elif isinstance(want, float):
        if not math.isclose(got, want, rel_tol=1e-12, abs_tol=1e-12):
            raise AssertionError(f"{path}: {where}: {got!r} != {want!r}")
    elif got != want or type(got) is not type(want):
        raise AssertionError(f"{path}: {where}: {got!r} != {want!r}")


def check_folder(folder):
    """Reload folder, recompute its goldens and compare with golden.json; returns the golden."""
    want = json.loads((Path(folder) / "golden.json").read_text())
    params, cfg, info = load_folder(folder)
    got = json.loads(json.dumps(compute_goldens(params, cfg, info, inputs_from_golden(want))))
    assert_same(folder, got, want)
    f64 = torch.float64
    logits_diff = (torch.tensor(got["logits"], dtype=f64) - torch.tensor(want["logits"], dtype=f64)).abs().max()
    return want, float(logits_diff)


def summary(name, golden):
    return (
        f"{name}: dtype={golden['dtype']} layout={golden['layout']} tied={golden['tied']} "
        f"greedy_min_margin={golden['greedy']['min_margin']:.6g} "
        f"ppl(stride 32)={golden['perplexity']['perplexity']:.10g} over {golden['perplexity']['count']} "
        f"ppl(stride 64)={golden['perplexity_nonoverlap']['perplexity']:.10g} "
        f"over {golden['perplexity_nonoverlap']['count']}"
    )


# ---------------------------------------------------------------------------------------------
# Quantization goldens (package quantize)
# ---------------------------------------------------------------------------------------------
#
# The quantizers of the weight-quantization tutorial, in torch float32 with one rounding per
# op and torch.round's half-to-even, generalised to groups by reshaping to (groups, group size)
# and reducing along the last dim with keepdim:
#
#   absmax:     scale = qmax / max|X|            q = (scale * X).round()
#   zero-point: x_range = max - min              scale = levels / x_range
#               zeropoint = (-scale * min - 2^(bits-1)).round()
#               q = torch.clip((X * scale + zeropoint).round(), -2^(bits-1), 2^(bits-1) - 1)
#
# Note that `127 / t` on a tensor is t.reciprocal() * 127 in PyTorch (Tensor.__rtruediv__), two
# float32 roundings; the Go code reproduces that, and its codes match these bit for bit.
# qmax 127 / 7, levels 255 / 15; preset "article" uses 100 and 200 at 8 bits. Degenerate groups:
# max|X| == 0 gives scale 1, x_range == 0 is taken as 1; a scale overflowing float32 is clamped
# to its largest value. Matrices are quantized in the Go code's (out, in) layout, so Conv1D
# weights are transposed first and a "channel" is an output row.

QUANT_SCOPE = "weights"  # every 2-D matrix: wte, wpe, the four projections, an untied head
QUANT_GROUP = 16
QUANT_CODES_TENSOR = "h.0.attn.c_proj.weight"  # its full codes are stored, for diagnosis
F32_MAX = float(torch.finfo(torch.float32).max)


def quant_configs():
    """(scheme, granularity, preset, bits) in the order the golden lists them."""
    out = []
    for scheme in ("absmax", "zeropoint"):
        for gran in ("tensor", "channel", f"group:{QUANT_GROUP}"):
            for preset, bits in (("standard", 8), ("article", 8), ("standard", 4)):
                out.append((scheme, gran, preset, bits))
    return out


def quant_constants(scheme, bits, preset):
    """(numerator of the scale, zero-point offset, lowest code, highest code)."""
    half = 2 ** (bits - 1)
    article = preset == "article" and bits == 8
    if scheme == "absmax":
        return (100.0 if article else float(half - 1)), 0.0, -(half - 1), half - 1
    return (200.0 if article else float(2 * half - 1)), float(half), -half, half - 1


def quantize_tensor(X, scheme, bits, granularity, preset):
    """Quantize a float32 (OC, C) or (C,) tensor; returns flat int8 codes, scales and zero-points
    (None for absmax), one per group of consecutive row-major values."""
    n, row = X.numel(), X.shape[-1]
    if granularity == "tensor":
        gs = n
    elif granularity == "channel":
        gs = row
    else:
        gs = int(granularity.split(":")[1])
        if row % gs:
            raise ValueError(f"group size {gs} does not divide row length {row}")
    G = X.reshape(-1, gs)
    num, offset, lo, hi = quant_constants(scheme, bits, preset)
    if scheme == "absmax":
        amax = torch.amax(torch.abs(G), dim=-1, keepdim=True)
        scale = torch.where(amax == 0, torch.ones_like(amax), num / amax).clamp(max=F32_MAX)
        q = torch.clip((scale * G).round(), lo, hi)  # the clip never binds; kept for symmetry
        zeropoint = None
    else:
        x_min = torch.amin(G, dim=-1, keepdim=True)
        x_range = torch.amax(G, dim=-1, keepdim=True) - x_min
        x_range = torch.where(x_range == 0, torch.ones_like(x_range), x_range)
        scale = (num / x_range).clamp(max=F32_MAX)
        zeropoint = (-scale * x_min - offset).round()
        q = torch.clip((G * scale + zeropoint).round(), lo, hi)
    assert scale.dtype == torch.float32 and q.dtype == torch.float32
    return q.to(torch.int8).reshape(-1), scale.reshape(-1), (None if zeropoint is None else zeropoint.reshape(-1))


def dequantize_tensor(codes, scale, zeropoint, shape):
    """(q - zeropoint) / scale in float32, group by group."""
    q = codes.to(torch.float32).reshape(scale.numel(), -1)
    if zeropoint is not None:
        q = q - zeropoint[:, None]
    return (q / scale[:, None]).reshape(shape)


def load_float32_params(folder):
    """Parameters as float32 in the Go code's order and (OC, C) layout, and the config; a tied
    lm_head is not listed (as in model.Weights.Params)."""
    path = Path(folder)
    cfg = json.loads((path / "config.json").read_text())
    stored, _ = read_safetensors(path / "model.safetensors")
    params = {}
    for name, t in stored.items():
        if name.endswith(IGNORED_SUFFIXES):
            continue
        if name.startswith(PREFIX):
            name = name[len(PREFIX) :]
        params[name] = t.to(torch.float32)
    order = ["wte.weight", "wpe.weight"]
    for i in range(cfg["n_layer"]):
        p = f"h.{i}."
        for s in ("ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
                  "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
                  "mlp.c_proj.weight", "mlp.c_proj.bias"):
            order.append(p + s)
    order += ["ln_f.weight", "ln_f.bias"]
    if "lm_head.weight" in params and not cfg.get("tie_word_embeddings", True):
        order.append("lm_head.weight")
    out = {}
    for name in order:
        t = params[name]
        if name.endswith(CONV1D_SUFFIXES):
            t = t.T.contiguous()  # (in, out) -> (out, in)
        out[name] = t
    return out, cfg


CONV1D_SUFFIXES = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def float64_model_params(params):
    """float32 (OC, C) parameters -> the float64 (in, out) dict forward() takes."""
    out = {}
    for name, t in params.items():
        t = t.to(torch.float64)
        out[name] = t.T.contiguous() if name.endswith(CONV1D_SUFFIXES) else t
    if "lm_head.weight" not in out:
        out["lm_head.weight"] = out["wte.weight"]
    return out


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def quant_goldens(folder):
    folder = Path(folder)
    params, cfg = load_float32_params(folder)
    ppl_ref = json.loads((folder / "golden.json").read_text())["perplexity"]
    ids, max_length, stride = ppl_ref["ids"], ppl_ref["max_length"], ppl_ref["stride"]
    scoped = [name for name, t in params.items() if t.dim() == 2]

    def ppl_entry(p):
        r = sliding_perplexity(float64_model_params(p), cfg, ids, max_length, stride)
        return {"count": r["count"], "nll_sum": r["nll_sum"], "perplexity": r["perplexity"]}

    configs = []
    for scheme, gran, preset, bits in quant_configs():
        qparams = dict(params)
        all_codes, all_scales, per_tensor = [], [], {}
        max_err = 0.0
        codes_b64 = None
        for name in scoped:
            X = params[name]
            codes, scale, zero = quantize_tensor(X, scheme, bits, gran, preset)
            raw = codes.numpy().tobytes()
            all_codes.append(raw)
            per_tensor[name] = sha256_hex(raw)
            all_scales.append(scale.numpy().astype("<f4").tobytes())
            if zero is not None:
                all_scales.append(zero.numpy().astype("<f4").tobytes())
            deq = dequantize_tensor(codes, scale, zero, X.shape)
            max_err = max(max_err, float((deq.to(torch.float64) - X.to(torch.float64)).abs().max()))
            qparams[name] = deq
            if name == QUANT_CODES_TENSOR:
                codes_b64 = base64.b64encode(raw).decode("ascii")
        configs.append({
            "scheme": scheme,
            "granularity": gran,
            "preset": preset,
            "bits": bits,
            "codes_sha256": sha256_hex(b"".join(all_codes)),
            "scales_sha256": sha256_hex(b"".join(all_scales)),
            "tensor_codes_sha256": per_tensor,
            "max_abs_error": max_err,
            "perplexity": ppl_entry(qparams),
            "codes_b64": codes_b64,
        })
    return {
        "fixture": folder.name,
        "scope": QUANT_SCOPE,
        "tensors": scoped,
        "codes_tensor": QUANT_CODES_TENSOR,
        "codes_note": "int8 codes, one byte per value (int4 too, unpacked), tensors in this order, (out, in) layout",
        "perplexity_ids": "the fixture's golden.json perplexity ids",
        "max_length": max_length,
        "stride": stride,
        "perplexity_float32": ppl_entry(params),
        "configs": configs,
    }


def write_quant_golden(path, golden):
    write_json_rows(path, golden, "configs")


def quant_summary(name, golden):
    lines = [f"{name}: float32 ppl {golden['perplexity_float32']['perplexity']:.10g}"]
    for c in golden["configs"]:
        lines.append(
            f"  {c['scheme']:9s} {c['granularity']:9s} {c['preset']:8s} int{c['bits']}: "
            f"max|err| {c['max_abs_error']:.4g} ppl {c['perplexity']['perplexity']:.10g}"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    fx = sub.add_parser("fixtures", help="write the golden fixtures under OUTDIR")
    fx.add_argument("outdir")
    ck = sub.add_parser("check", help="recompute fixture goldens and compare with golden.json")
    ck.add_argument("folders", nargs="+")
    qt = sub.add_parser("quant", help="write quantization goldens OUTDIR/<fixture>.json for fixture folders")
    qt.add_argument("outdir")
    qt.add_argument("folders", nargs="+")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)  # one summation order, whatever the machine
    if args.command == "fixtures":
        for name in FIXTURES:
            print(summary(name, make_fixture(args.outdir, name)))
    elif args.command == "quant":
        Path(args.outdir).mkdir(parents=True, exist_ok=True)
        for folder in args.folders:
            name = Path(folder).name
            golden = quant_goldens(folder)
            write_quant_golden(Path(args.outdir) / f"{name}.json", golden)
            print(quant_summary(name, golden))
    else:
        for folder in args.folders:
            golden, diff = check_folder(folder)
            print(f"ok {summary(folder, golden)} max|dlogit|={diff:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
