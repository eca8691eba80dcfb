"""Open a lengthbench checkpoint from Python, and an independent PyTorch model of the paper's decoder.

    from lengthbench_checkpoint import load, Model
    cfg, sd = load("DIR")            # DIR written by `lengthbench train --out DIR`
    model = Model(cfg, sd)           # float64 by default
    logits = model(torch.tensor([[35, 3, 1, 4, 36]]))   # (B, T, num_labels)

`load` reads DIR/config.json ({"model": ..., "train": ...}) and DIR/model.safetensors, parsed here
without the safetensors package: 8-byte little-endian header length n, n bytes of JSON header
{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}, then the raw
little-endian data (offsets relative to the end of the header). A missing, truncated or foreign
file raises CheckpointError with a one-line message.

`Model` is written from the specification (arXiv 2506.16640 and the documented behaviour of
the released code, deep-spin/asentmax), not from the C++ sources: a Hugging Face Gemma-2 decoder (embedding × √C;
sandwich RMSNorms x/√(mean x² + 1e-6)·(1 + w); GeGLU with tanh-GELU; untied lm_head; MHA with
scores q·k/√D, no soft-capping, no sliding window) whose attention rows are normalised by the
configured normalizer over the causal keys, with the position encoding and the query length
scaling (SSMax `nakanishi`, `learn`, ASEntmax `adapt-softplus-tanh`) of the config. Parameter names
are Hugging Face Gemma-2's plus the scaling parameters the checkpoints carry:
`self_attn.ssmax_scale` (Hs), `self_attn.length_scale_{beta,gamma}` (Hs),
`self_attn.asentmax_{beta,gamma}_proj.{weight,bias}` (Hs, C) / (Hs). `load_state_dict` is strict,
so a checkpoint with other names or shapes is refused.

Normalizers: softmax, ssmax, entmax (α = 1.5: exact sort-based; other α: bisection), sparsemax
(exact sort-based), asentmax, topk, stickbreaking, adaptive_temperature. Position encodings: nope,
rope, alibi, nape. Where the paper's released code (deep-spin/asentmax) fixes a detail, this model
follows it (issue 11): stickbreaking takes no ALiBi/NAPE bias ("bias": "alibi" adds it); the
adaptive-temperature polynomial is in ascending powers ("poly": "descending" reverses it); topk
needs "k", and its "div-2" rule counts the keys of the attention call (T in training and prefill,
i + 1 in decoding: Model.forward(ids, decode=True)); "div-2-row" is the per-row variant. Needs only
numpy and torch (Debian's python3-torch works).

Command line: `lengthbench_checkpoint.py DIR` prints the config and the tensor names and shapes.
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["CheckpointError", "read_safetensors", "load", "Model", "normalize_rows",
           "takes_position_bias"]


class CheckpointError(Exception):
    """A checkpoint directory or file that cannot be read; the message is one line."""


# safetensors dtype -> (numpy little-endian dtype, bytes per element). BF16 is widened below.
_DTYPES = {
    "F64": ("<f8", 8), "F32": ("<f4", 4), "F16": ("<f2", 2), "BF16": ("<u2", 2),
    "I64": ("<i8", 8), "I32": ("<i4", 4), "I16": ("<i2", 2), "I8": ("i1", 1), "U8": ("u1", 1),
}


def read_safetensors(path):
    """Returns (metadata dict, {name: torch tensor}) from a safetensors file, validating the header
    length, the JSON, every dtype, shape and offset range. Raises CheckpointError."""
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError as e:
        raise CheckpointError(f"cannot read '{path}': {e.strerror}") from None
    if len(blob) < 8:
        raise CheckpointError(f"'{path}' is not a safetensors file: {len(blob)} bytes, "
                              "shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        raise CheckpointError(f"'{path}' is truncated or not a safetensors file: header length {n} "
                              f"exceeds the {len(blob) - 8} bytes after it")
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"'{path}' is not a safetensors file: header is not JSON ({e})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"'{path}' is not a safetensors file: header is not a JSON object")
    data = memoryview(blob)[8 + n:]
    metadata = header.pop("__metadata__", {}) or {}
    tensors = {}
    for name, info in header.items():
        if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= info.keys():
            raise CheckpointError(f"'{path}': tensor '{name}' lacks dtype/shape/data_offsets")
        if info["dtype"] not in _DTYPES:
            raise CheckpointError(f"'{path}': tensor '{name}' has dtype '{info['dtype']}'; "
                                  f"accepted: {', '.join(_DTYPES)}")
        np_dtype, size = _DTYPES[info["dtype"]]
        shape = info["shape"]
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise CheckpointError(f"'{path}': tensor '{name}' has a malformed shape {shape!r}")
        begin, end = info["data_offsets"]
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if not (0 <= begin <= end <= len(data)):
            raise CheckpointError(f"'{path}' is truncated: tensor '{name}' data [{begin}, {end}) "
                                  f"is outside the {len(data)} data bytes")
        if end - begin != count * size:
            raise CheckpointError(f"'{path}': tensor '{name}' has {end - begin} bytes, its "
                                  f"{info['dtype']} shape {shape} needs {count * size}")
        arr = np.frombuffer(data[begin:end], dtype=np_dtype).reshape(shape)
        if info["dtype"] == "BF16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        tensors[name] = torch.from_numpy(arr.astype(arr.dtype.newbyteorder("="), copy=True))
    return metadata, tensors


def load(directory):
    """(config dict, state dict of torch tensors) of a checkpoint directory.

    config is DIR/config.json as written by `lengthbench train`: {"model": {...}, "train": {...}}.
    The state dict maps Hugging Face Gemma-2 names to fp32 tensors (DIR/model.safetensors)."""
    cfg_path = os.path.join(directory, "config.json")
    if not os.path.isfile(cfg_path):
        raise CheckpointError(f"'{directory}' is not a lengthbench checkpoint directory (no config.json)")
    try:
        with open(cfg_path) as f:
            cfg = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"'{cfg_path}' is not readable JSON: {e}") from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("model"), dict):
        raise CheckpointError(f"'{cfg_path}' has no \"model\" object: not a lengthbench config")
    _, sd = read_safetensors(os.path.join(directory, "model.safetensors"))
    return cfg, sd


# ---- normalizers over causal score rows ----------------------------------------------------
# Every function takes z (..., T, T) scores of query i (row) against key j (column) and a boolean
# mask (T, T), True where j <= i (the visible keys), and returns weights of the same shape with
# exact zeros at masked entries. Row i therefore has n_i = i + 1 entries.


def _softmax(z, mask):
    return torch.softmax(z.masked_fill(~mask, float("-inf")), dim=-1)


def _sorted_desc(z, mask):
    """Visible scores sorted descending with masked entries last (as 0), and the rank 1..T."""
    zs, _ = torch.sort(z.masked_fill(~mask, float("-inf")), dim=-1, descending=True)
    n = mask.sum(-1, keepdim=True)                          # (T, 1) visible count per row
    k = torch.arange(1, z.shape[-1] + 1, dtype=z.dtype)     # (T)
    valid = k <= n
    return zs.masked_fill(~valid, 0.0), k, valid


def _sparsemax(z, mask):
    """Sort-based sparsemax (Martins & Astudillo 2016): τ = (Σ_{j≤k*} z_(j) − 1)/k*, p = [z − τ]_+."""
    z = z - z.masked_fill(~mask, float("-inf")).amax(-1, keepdim=True)
    zs, k, valid = _sorted_desc(z, mask)
    cs = zs.cumsum(-1)
    cond = (k * zs > cs - 1) & valid
    kstar = cond.sum(-1, keepdim=True)
    tau = (cs.gather(-1, kstar - 1) - 1) / kstar.to(z.dtype)
    return torch.clamp(z - tau, min=0).masked_fill(~mask, 0.0)


def _entmax15(z, mask):
    """Exact sort-based 1.5-entmax (Peters et al. 2019): x = (z − max)/2, τ from the support size,
    p = [x − τ]_+²."""
    x = (z - z.masked_fill(~mask, float("-inf")).amax(-1, keepdim=True)) / 2
    xs, k, valid = _sorted_desc(x, mask)
    mean = xs.cumsum(-1) / k
    mean_sq = (xs * xs).cumsum(-1) / k
    ss = k * (mean_sq - mean * mean)
    delta = (1 - ss) / k
    tau = mean - torch.sqrt(torch.clamp(delta, min=0))
    kstar = ((tau <= xs) & valid).sum(-1, keepdim=True)
    tau_star = tau.gather(-1, kstar - 1)
    return (torch.clamp(x - tau_star, min=0) ** 2).masked_fill(~mask, 0.0)


def _entmax_bisect(z, mask, alpha, n_iter=200):
    """Generic α-entmax, p = [(α−1)z − τ]_+^{1/(α−1)}, τ by bisection on Σp = 1 (to float64
    resolution), then renormalised."""
    x = (alpha - 1) * z.masked_fill(~mask, float("-inf"))
    m = x.amax(-1, keepdim=True)
    n = mask.sum(-1, keepdim=True).to(z.dtype)
    lo, hi = m - 1, m - n ** (1 - alpha)
    for _ in range(n_iter):
        mid = (lo + hi) / 2
        s = (torch.clamp(x - mid, min=0) ** (1 / (alpha - 1))).sum(-1, keepdim=True)
        lo = torch.where(s >= 1, mid, lo)
        hi = torch.where(s >= 1, hi, mid)
    p = torch.clamp(x - (lo + hi) / 2, min=0) ** (1 / (alpha - 1))
    return (p / p.sum(-1, keepdim=True)).masked_fill(~mask, 0.0)


def _entmax(z, mask, alpha):
    if alpha == 1.5:
        return _entmax15(z, mask)
    if alpha == 2.0:
        return _sparsemax(z, mask)
    return _entmax_bisect(z, mask, alpha)


def _topk(z, mask, k, rule, n_keys):
    """Top-k as the paper's released code calls it (deep-spin/asentmax with ag1988's top-k
    attention): one K per attention call, K = k, or max(k, N // 2) under rule "div-2", N = n_keys
    (T, 1), the number of keys of the row's call (T in training and prefill, i + 1 in one-token
    decoding). The call's scores carry the causal mask as a large negative number, so a row with
    fewer visible keys than K gets softmax over all of them. K > N raises in the released code
    (torch.topk); lengthbench gives those rows the same softmax, and so does this model (K is
    clamped to N). rule "div-2-row" is lengthbench's earlier per-row K = max(k, (i + 1) // 2).
    torch.topk leaves ties at the K-th place open; here they go to the lowest key indices."""
    visible = mask.sum(-1, keepdim=True)
    kk = torch.full_like(visible, k)
    if rule == "div-2":
        kk = torch.maximum(kk, n_keys // 2)
    elif rule == "div-2-row":
        kk = torch.maximum(kk, visible // 2)
    elif rule != "none":
        raise ValueError(f"unknown topk rule '{rule}'; accepted: none, div-2, div-2-row")
    kk = torch.minimum(kk, n_keys)
    # Rank of every key in its row, visible keys first (masked ones would be picked last).
    _, idx = torch.sort(z.masked_fill(~mask, float("-inf")), dim=-1, descending=True, stable=True)
    rank = torch.empty_like(idx).scatter_(-1, idx, torch.arange(z.shape[-1]).expand_as(idx))
    keep = (rank < kk) & mask
    return torch.softmax(z.masked_fill(~keep, float("-inf")), dim=-1)


def _stickbreaking(z, mask):
    """A_ij = σ(z_ij) Π_{j<k<i} (1 − σ(z_ik)) for j < i (the query's own key excluded), in log
    space; the remainder 1 − Σ_j A_ij is discarded (the released stick-breaking attention). The released code passes
    it no ALiBi/NAPE bias: see Attention.forward."""
    T = z.shape[-1]
    strict = torch.ones(T, T, dtype=torch.bool).tril(-1)
    log_neg = F.logsigmoid(-z).masked_fill(~strict, 0.0)
    # Σ_{k>j, k<i} log σ(−z_ik): reverse cumulative sum along j, excluding j itself.
    after = log_neg.flip(-1).cumsum(-1).flip(-1) - log_neg
    return torch.exp(F.logsigmoid(z) + after).masked_fill(~strict, 0.0)


_POLY = (-0.037, 0.481, -2.3, 4.917, -1.791)


def _adaptive_temperature(z, mask, poly):
    """As in the released code: q = softmax(z), H = −Σ q log(q + 1e-9), β = max(P(H), 1) where
    H > 0.5 else 1, output softmax(β·z). P's coefficients multiply H^0..H^4 ("ascending", the
    released polyval: Σ p[i]·H^i) or H^4..H^0 ("descending", np.polyval's order)."""
    if poly not in ("ascending", "descending"):
        raise ValueError(f"unknown poly '{poly}'; accepted: ascending, descending")
    q = _softmax(z, mask)
    ent = torch.sum(-q * torch.log(q + 1e-9), dim=-1, keepdim=True)
    coeffs = _POLY if poly == "ascending" else tuple(reversed(_POLY))  # coeffs[i] multiplies H^i
    value = sum(c * ent ** i for i, c in enumerate(coeffs))
    beta = torch.where(ent > 0.5, torch.clamp(value, min=1.0), torch.ones_like(ent))
    return _softmax(beta * z, mask)


def takes_position_bias(spec):
    """Whether the normalizer's scores get the ALiBi/NAPE bias: all but stickbreaking, which takes
    it only with "bias": "alibi" (the released code calls stick-breaking on q, k, v alone)."""
    if isinstance(spec, str):
        spec = {"name": spec}
    if spec["name"] == "stickbreaking":
        bias = spec.get("bias", "none")
        if bias not in ("none", "alibi"):
            raise ValueError(f"unknown stickbreaking bias '{bias}'; accepted: none, alibi")
        return bias == "alibi"
    return True


def normalize_rows(spec, z, mask, n_keys=None):
    """Attention weights for score rows z (..., T, T) under the normalizer spec (a name or the
    config's {"name": ..., params} object) and the causal mask (T, T). n_keys (T, 1): the keys of
    each row's attention call (topk's div-2 rule); default T for every row (training, prefill)."""
    if isinstance(spec, str):
        spec = {"name": spec}
    name = spec["name"]
    if name in ("softmax", "ssmax"):
        return _softmax(z, mask)
    if name in ("entmax", "asentmax"):
        return _entmax(z, mask, float(spec.get("alpha", 1.5)))
    if name == "sparsemax":
        return _sparsemax(z, mask)
    if name == "topk":
        if "k" not in spec:
            raise ValueError("topk needs its k (the released code has no default)")
        if n_keys is None:
            n_keys = torch.full((z.shape[-2], 1), z.shape[-1], dtype=torch.long)
        return _topk(z, mask, int(spec["k"]), spec.get("rule", "none"), n_keys)
    if name == "stickbreaking":
        return _stickbreaking(z, mask)
    if name == "adaptive_temperature":
        return _adaptive_temperature(z, mask, spec.get("poly", "ascending"))
    raise ValueError(f"unknown normalizer '{name}'; accepted: softmax, ssmax, entmax, sparsemax, "
                     "asentmax, topk, stickbreaking, adaptive_temperature")


# The query length scaling each normalizer gets when its config names no "scale".
_DEFAULT_SCALE = {"ssmax": "nakanishi", "asentmax": "adapt-softplus-tanh"}


# ---- position encodings ----------------------------------------------------------------------


def alibi_slopes(H):
    """Press et al.'s geometric ALiBi slopes 2^(−8(h+1)/H) for H a power of two; otherwise those of
    the largest power of two P < H, then every other slope of the 2P sequence."""
    def power_of_two(n):
        start = 2.0 ** (-8.0 / n)
        return [start ** (h + 1) for h in range(n)]
    if math.log2(H).is_integer():
        return power_of_two(H)
    p = 2 ** math.floor(math.log2(H))
    return power_of_two(p) + alibi_slopes(2 * p)[0::2][:H - p]


def position_slopes(position, H):
    """Per-head ALiBi slope m_h (bias m_h·(j − i)): NAPE = the first H//2 heads 1/(h+1), the rest 0;
    alibi = geometric on every head; nope and rope = 0."""
    if position == "nape":
        return [1.0 / (h + 1) if h < H // 2 else 0.0 for h in range(H)]
    if position == "alibi":
        return alibi_slopes(H)
    if position in ("nope", "rope"):
        return [0.0] * H
    raise ValueError(f"unknown position encoding '{position}'; accepted: nope, rope, alibi, nape")


def rope(x, theta):
    """GPT-NeoX rotate-half RoPE on x (B, H, T, D) at positions 0..T−1: pairs (x_k, x_{k+D/2})
    rotate by angle t·θ^(−2k/D)."""
    T, D = x.shape[-2], x.shape[-1]
    inv_freq = theta ** (-torch.arange(0, D // 2, dtype=torch.float64) * 2 / D)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv_freq[None, :]   # (T, D/2)
    cos, sin = torch.cos(ang).to(x.dtype), torch.sin(ang).to(x.dtype)
    x1, x2 = x[..., :D // 2], x[..., D // 2:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


# ---- the model -------------------------------------------------------------------------------


class RMSNorm(torch.nn.Module):
    """Gemma's RMSNorm: x / √(mean(x²) + eps) · (1 + w)."""

    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = torch.nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + self.eps) * (1 + self.weight)


class Attention(torch.nn.Module):
    """Causal MHA with the config's position encoding, query length scaling and normalizer."""

    DELTA = 1.0        # attn_scale_delta (constant, not learned)
    GAMMA_RANGE = 2.0  # attn_scale_gamma_range

    def __init__(self, m):
        super().__init__()
        C, H, D = m["hidden"], m["heads"], m["head_dim"]
        self.H, self.D = H, D
        self.position = m["position"]
        self.theta = float(m.get("rope_theta", 10000.0))
        attn = m["attention"] if isinstance(m["attention"], dict) else {"name": m["attention"]}
        self.norm_spec = attn
        self.scale_kind = attn.get("scale", _DEFAULT_SCALE.get(attn["name"], "none"))
        # Length-scaled heads: under NAPE the NoPE heads (the last H − H//2), otherwise all.
        self.Hs = 0 if self.scale_kind == "none" else (H - H // 2 if self.position == "nape" else H)
        self.q_proj = torch.nn.Linear(C, H * D, bias=False)
        self.k_proj = torch.nn.Linear(C, H * D, bias=False)
        self.v_proj = torch.nn.Linear(C, H * D, bias=False)
        self.o_proj = torch.nn.Linear(H * D, C, bias=False)
        if self.scale_kind == "nakanishi":
            self.ssmax_scale = torch.nn.Parameter(torch.ones(self.Hs))
        elif self.scale_kind == "learn":
            self.length_scale_beta = torch.nn.Parameter(torch.ones(self.Hs))
            self.length_scale_gamma = torch.nn.Parameter(torch.zeros(self.Hs))
        elif self.scale_kind == "adapt-softplus-tanh":
            self.asentmax_beta_proj = torch.nn.Linear(C, self.Hs, bias=True)
            self.asentmax_gamma_proj = torch.nn.Linear(C, self.Hs, bias=True)
        elif self.scale_kind != "none":
            raise ValueError(f"unknown length scaling '{self.scale_kind}'; accepted: none, "
                             "nakanishi, learn, adapt-softplus-tanh")
        self.visible_weights = 0   # visible (j <= i) attention weights computed so far
        self.zero_weights = 0      # those of them exactly 0
        self.register_buffer("slopes", torch.tensor(position_slopes(self.position, H)),
                             persistent=False)

    def query_scale(self, x):
        """(B, T, Hs) scale s_{h,i} of the scaled heads, L = log(i + 2) (the released `_apply_length_scaling`)."""
        T = x.shape[1]
        L = torch.log(torch.arange(T, dtype=x.dtype) + 2)[None, :, None]
        if self.scale_kind == "nakanishi":
            return self.ssmax_scale * L
        if self.scale_kind == "learn":
            return self.DELTA + self.length_scale_beta * L ** self.length_scale_gamma
        beta = F.softplus(self.asentmax_beta_proj(x))
        gamma = self.GAMMA_RANGE * torch.tanh(self.asentmax_gamma_proj(x))
        return self.DELTA + beta * L ** gamma

    def forward(self, x, decode=False):
        """decode: each row i is its own attention call of i + 1 keys (one-token cached decoding);
        otherwise one call of T keys (training, prefill). Only topk's div-2 rule sees this."""
        B, T, _ = x.shape
        H, D = self.H, self.D
        q = self.q_proj(x).view(B, T, H, D).transpose(1, 2)   # (B, H, T, D)
        k = self.k_proj(x).view(B, T, H, D).transpose(1, 2)
        v = self.v_proj(x).view(B, T, H, D).transpose(1, 2)
        if self.position == "rope":
            q, k = rope(q, self.theta), rope(k, self.theta)
        if self.Hs:
            s = self.query_scale(x).transpose(1, 2)[..., None]   # (B, Hs, T, 1)
            q = torch.cat([q[:, :H - self.Hs], q[:, H - self.Hs:] * s], dim=1)
        z = q @ k.transpose(-1, -2) / math.sqrt(D)               # (B, H, T, T)
        i = torch.arange(T)
        rel = (i[None, :] - i[:, None]).to(z.dtype)              # j − i
        if takes_position_bias(self.norm_spec):
            z = z + self.slopes.to(z.dtype)[:, None, None] * rel
        mask = i[None, :] <= i[:, None]
        n_keys = (i[:, None] + 1) if decode else torch.full((T, 1), T, dtype=torch.long)
        p = normalize_rows(self.norm_spec, z, mask, n_keys)
        # Exact zeros among the visible weights, for reports of how sparse the rows were.
        self.visible_weights += int(mask.sum()) * B * H
        self.zero_weights += int(((p == 0) & mask).sum())
        out = (p @ v).transpose(1, 2).reshape(B, T, H * D)
        return self.o_proj(out)


class MLP(torch.nn.Module):
    """GeGLU: down(gelu_tanh(gate(x)) ⊙ up(x)), no biases."""

    def __init__(self, C, Fw):
        super().__init__()
        self.gate_proj = torch.nn.Linear(C, Fw, bias=False)
        self.up_proj = torch.nn.Linear(C, Fw, bias=False)
        self.down_proj = torch.nn.Linear(Fw, C, bias=False)

    def forward(self, x):
        return self.down_proj(F.gelu(self.gate_proj(x), approximate="tanh") * self.up_proj(x))


class DecoderLayer(torch.nn.Module):
    """Gemma-2 sandwich: h += post_attn(attn(input(h))); h += post_ffw(mlp(pre_ffw(h)))."""

    def __init__(self, m):
        super().__init__()
        C = m["hidden"]
        self.input_layernorm = RMSNorm(C)
        self.self_attn = Attention(m)
        self.post_attention_layernorm = RMSNorm(C)
        self.pre_feedforward_layernorm = RMSNorm(C)
        self.mlp = MLP(C, m["ffn"])
        self.post_feedforward_layernorm = RMSNorm(C)

    def forward(self, h, decode=False):
        h = h + self.post_attention_layernorm(self.self_attn(self.input_layernorm(h), decode))
        return h + self.post_feedforward_layernorm(self.mlp(self.pre_feedforward_layernorm(h)))


class _Decoder(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.embed_tokens = torch.nn.Embedding(m["vocab_size"], m["hidden"])
        self.layers = torch.nn.ModuleList(DecoderLayer(m) for _ in range(m["layers"]))
        self.norm = RMSNorm(m["hidden"])


class Model(torch.nn.Module):
    """The decoder of a lengthbench config. cfg: config.json's dict (or its "model" part);
    state_dict: tensors by Hugging Face Gemma-2 name (strict: names and shapes must match).
    forward(ids (T) or (B, T) integer tensor, decode=False) -> logits (…, T, num_labels) in
    `dtype`; decode=True gives the logits of one-token cached decoding (each row its own call of
    i + 1 keys: differs from the prefill only under topk's div-2 rule)."""

    def __init__(self, cfg, state_dict=None, dtype=torch.float64):
        super().__init__()
        m = cfg["model"] if "model" in cfg else cfg
        self.config = m
        self.model = _Decoder(m)
        self.lm_head = torch.nn.Linear(m["hidden"], m["num_labels"], bias=False)
        self.to(dtype)
        if state_dict is not None:
            self.load_state_dict({k: v.to(dtype) for k, v in state_dict.items()}, strict=True)

    def zero_weight_fraction(self):
        """Fraction of the visible attention weights computed so far that were exactly 0."""
        attns = [layer.self_attn for layer in self.model.layers]
        total = sum(a.visible_weights for a in attns)
        return sum(a.zero_weights for a in attns) / total if total else 0.0

    @torch.no_grad()
    def forward(self, ids, decode=False):
        ids = torch.as_tensor(ids, dtype=torch.long)
        squeeze = ids.dim() == 1
        if squeeze:
            ids = ids[None]
        dtype = self.lm_head.weight.dtype
        h = self.model.embed_tokens(ids) * torch.tensor(math.sqrt(self.config["hidden"]), dtype=dtype)
        for layer in self.model.layers:
            h = layer(h, decode)
        logits = self.lm_head(self.model.norm(h))
        return logits[0] if squeeze else logits


def attention_weights(model, ids):
    """The attention weights of every layer for token ids (T) or (B, T): a list over layers of
    tensors (H, T, T) (or (B, H, T, T)); row i holds query i's weights over keys j <= i, keys
    j > i are 0, and the exact zeros of sparse normalizers stay exactly 0. The same numbers as
    `lengthbench attention` writes to attention.json. Captures what `normalize_rows` returns
    during one forward pass (the layers call it in order)."""
    global normalize_rows
    inner, captured = normalize_rows, []

    def capture(spec, z, mask):
        p = inner(spec, z, mask)
        captured.append(p.detach().clone())
        return p

    ids = torch.as_tensor(ids, dtype=torch.long)
    normalize_rows = capture
    try:
        model(ids)
    finally:
        normalize_rows = inner
    return [p[0] if ids.dim() == 1 else p for p in captured]


def _main(argv):
    if len(argv) != 2:
        print("usage: lengthbench_checkpoint.py CHECKPOINT_DIR", file=sys.stderr)
        return 2
    try:
        cfg, sd = load(argv[1])
    except CheckpointError as e:
        print(f"lengthbench_checkpoint: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(cfg, indent=2))
    for name, t in sd.items():
        print(f"{name} {list(t.shape)} {t.dtype}")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
