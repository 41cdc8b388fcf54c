"""Integer-exact inference: probabilities that are bit-identical on every machine.

A float network's outputs change in the last bits with the thread count, the batch, the instruction set
or the device, and one changed probability corrupts the rest of an ANS stream. An int-exact model
computes its coding distributions from integers only:

- **One topology, three arithmetics.** `walk()` is the U-Net of `nets.ARDMNet` (and of the audio net,
  the same topology in 1-D) written once against an `ops` object: `PlainOps` (the float net; `RangeOps`
  records its ranges to calibrate), `FakeOps` (quantisation-aware training: every quantisation point
  rounds, with straight-through gradients) and `IntOps` (coding). They are dimension-agnostic;
  audio_model.py overrides only the head, which lays out the mixture parameters.
- **Quantisation points.** Conv inputs are 8-bit unsigned activations (ReLU then round to a per-point
  scale); conv weights are 8-bit signed with a per-output-channel scale; biases are integers on the
  accumulator's scale; the residual streams are 16-bit signed integers. Rescaling is one float32
  multiply and a round per element — a single IEEE-754 operation, identical on every platform.
- **Exact accumulation.** Convolutions run in float32 on integer values. Every partial sum of every
  output is bounded by Σ|w|·255 + |b|, which `check_bound` proves below 2^24 for every output channel of
  every layer when a model loads (a model that breaks it is refused), so any summation order — any
  thread count, blocking, SIMD width or device — gives the same integers. After each convolution the
  result is also checked to be integral, which would catch a library that used a transform-based
  algorithm (Winograd, FFT) behind our back.
- **Integer inputs.** The masked values, the mask, the revealed fraction and the normalised-convolution
  context (block sums of known values divided by the number known, in int64) are integers.
- **Integer head.** The net's head yields mixture parameters on fixed integer grids (logits and
  log-scales in 1/16, means in 1/16 of a value); `probabilities()` turns them into integer frequencies
  through lookup tables (a sigmoid table, an inverse-scale table, an exp table for the mixture weights)
  computed with Python's `decimal` module (correctly rounded, so the same tables everywhere) and int64
  arithmetic.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, getcontext
from functools import lru_cache

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .ardm import DIGIT, K_VALUES
from .nets import NORMCONV_SCALES, PAD_MULTIPLE, ARDMNet, NetConfig
from .prior import LOGS_MAX, LOGS_MIN, LOGS_UNIT, MU_MAX, MU_MIN, MU_UNIT, add_prior, prior  # noqa: F401

ACT_MAX = 255             # conv inputs: unsigned 8-bit
WEIGHT_MAX = 127          # conv weights: signed 8-bit, per output channel scale
STREAM_MAX = 32767        # residual streams: signed 16-bit
EXACT_LIMIT = 2 ** 24     # float32 represents every integer below this exactly
INPUT_SCALE = 1.0 / 255   # every input feature is an integer in [-255, 255] meaning value·255

# head grids (means and log-scales: prior.py, which adds its prediction on them)
LOGIT_UNIT = 16           # mixture logits in 1/16
Z_UNIT = 4096             # sigmoid arguments in 1/4096: adjacent bin edges stay apart up to scales of ~1000 values
Z_MAX = 12 * Z_UNIT       # 2^16·σ(±12) rounds to 2^16 / 0
INV_SHIFT = 20            # fixed point of the inverse-scale table
CDF_BITS = 16             # sigmoid table and mixture weights in units of 2^-16
EXP_RANGE = 20 * LOGIT_UNIT  # mixture weights below e^-20 of the largest are 0


# ------------------------------------------------------------------------------------------- tables
@lru_cache(maxsize=1)
def tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sigmoid, inverse scale, exp) lookup tables as int64, from decimal arithmetic (40 digits).

    sigmoid[z + Z_MAX] = round(2^16 · σ(z / Z_UNIT));
    inv_scale[j − LOGS_MIN] = round(2^INV_SHIFT · Z_UNIT · e^(−j/LOGS_UNIT) / (127.5 · MU_UNIT)), which maps
      a distance in mean units to a sigmoid argument for log-scale j;
    exp[i] = round(2^16 · e^(−i/LOGIT_UNIT)) for i = 0 … EXP_RANGE.
    """
    getcontext().prec = 40
    one = Decimal(1)

    def rnd(d: Decimal) -> int:
        return int(d.to_integral_value())  # ROUND_HALF_EVEN; no table value is a tie except σ(0) = 1/2

    step, e, upper = (Decimal(-1) / Z_UNIT).exp(), one, []
    for _ in range(Z_MAX + 1):                       # z = 0 … Z_MAX: σ(z) = 1 / (1 + e^(−z))
        upper.append(rnd(2 ** CDF_BITS / (one + e)))
        e *= step
    sig = [2 ** CDF_BITS - v for v in upper[:0:-1]] + upper
    inv = [rnd(Decimal(2 ** INV_SHIFT * Z_UNIT) * (Decimal(-j) / LOGS_UNIT).exp() / (Decimal("127.5") * MU_UNIT))
           for j in range(LOGS_MIN, LOGS_MAX + 1)]
    ex = [rnd((Decimal(-i) / LOGIT_UNIT).exp() * 2 ** CDF_BITS) for i in range(EXP_RANGE + 1)]
    return np.array(sig, np.int64), np.array(inv, np.int64), np.array(ex, np.int64)


_EDGES_Q = (np.arange(1, 256, dtype=np.int64) * MU_UNIT - MU_UNIT // 2)  # bin edges v − 1/2, v = 1..255


def reference_probabilities(q: np.ndarray, k: int) -> np.ndarray:
    """Categorical distributions over 0..255 from integer head outputs q (n, 3K): (n, 256) float64.

    The readable definition (`probabilities` is the fast one and must agree bit for bit). For each
    component j: weight W_j = exp-table[max logit − logit_j]; at each bin edge e (in 1/16 of a value) the
    sigmoid argument z = round((e − μ_j)·inv-table[log-scale_j] / 2^20), clipped to ±16·64; the mixture
    CDF = Σ_j W_j·σ-table[z]. Frequencies are the CDF's differences plus 1 (no value impossible), and the
    final division by the row total is one correctly rounded IEEE operation per entry, so the float64
    rows are identical everywhere.
    """
    sig, inv, ex = tables()
    q = np.asarray(q, dtype=np.int64)
    logit, mu, logs = q[:, :k], q[:, k:2 * k], q[:, 2 * k:]
    w = ex[np.minimum(logit.max(1, keepdims=True) - logit, EXP_RANGE)]             # (n, K), max = 2^16
    d = _EDGES_Q[None, None, :] - mu[:, :, None]                                    # (n, K, 255)
    z = (d * inv[logs - LOGS_MIN][:, :, None] + (1 << (INV_SHIFT - 1))) >> INV_SHIFT
    cdf = np.einsum("nk,nkv->nv", w, sig[np.clip(z, -Z_MAX, Z_MAX) + Z_MAX])       # (n, 255) int64
    total = w.sum(1, keepdims=True) << CDF_BITS
    freq = np.diff(cdf, prepend=0, append=total, axis=1) + 1
    return freq / freq.sum(1, keepdims=True)


_SPAN = max(MU_MAX // MU_UNIT, 255 - MU_MIN // MU_UNIT)  # the largest |v − ⌊μ/16⌋|


@lru_cache(maxsize=1)
def _cdf_table() -> tuple[torch.Tensor, torch.Tensor]:
    """σ-table[z(e − μ)] for every (log-scale, μ mod 16, v − ⌊μ/16⌋), laid out so that the 255 edges of
    one component are contiguous; float64 holding integers ≤ 2^16 (13 MB). And the exp table."""
    sig, inv, ex = tables()
    m = np.arange(-_SPAN, _SPAN + 1, dtype=np.int64)
    r = np.arange(MU_UNIT, dtype=np.int64)
    d = MU_UNIT * m[None, :] - MU_UNIT // 2 - r[:, None]                  # e − μ with e = 16v − 8, μ = 16a + r
    z = (d[None] * inv[:, None, None] + (1 << (INV_SHIFT - 1))) >> INV_SHIFT
    table = sig[np.clip(z, -Z_MAX, Z_MAX) + Z_MAX].astype(np.float64).reshape(-1)
    return torch.from_numpy(table), torch.from_numpy(ex.astype(np.float64))


def probabilities(q: np.ndarray | torch.Tensor, k: int) -> np.ndarray:
    """Same as reference_probabilities, bit for bit, with one contiguous table gather per component."""
    freq = frequencies(q, k)
    return freq / freq.sum(1, keepdims=True)


def frequencies(q: np.ndarray | torch.Tensor, k: int) -> np.ndarray:
    """The integer frequencies behind `probabilities` (n, 256), float64 holding integers. Float64 holds
    every integer here exactly (products < 2^33, sums < 2^36), so the sum over the components, and any
    sum of frequencies, is exact in any order."""
    table, ex = _cdf_table()
    q = torch.as_tensor(np.asarray(q, dtype=np.int64))
    logit, mu, logs = q[:, :k], q[:, k:2 * k], q[:, 2 * k:]
    w = ex[(logit.max(1, keepdim=True).values - logit).clamp(max=EXP_RANGE)]       # (n, K)
    a = torch.div(mu, MU_UNIT, rounding_mode="floor")
    base = ((logs - LOGS_MIN) * MU_UNIT + (mu - MU_UNIT * a)) * (2 * _SPAN + 1) + _SPAN - a
    rows = table.unfold(0, 255, 1)                                   # view: row i = table[i : i + 255]
    cdf = torch.bmm(w[:, None, :], rows[base + 1])[:, 0]                         # (n, 255)
    total = w.sum(1, keepdim=True) * float(1 << CDF_BITS)
    freq = torch.diff(cdf, prepend=torch.zeros(len(q), 1, dtype=torch.float64), append=total, dim=1) + 1
    return freq.numpy()


def digit_probabilities(freq: np.ndarray, stage: int, coarse: np.ndarray | None = None) -> np.ndarray:
    """A depth-upscaling stage's distributions (ardm.digit_log_prob) from `frequencies` (n, 256): stage 1,
    the coarse digit v // 16 (the frequencies summed over each bin of 16 values); stage 2, the fine digit
    v % 16 given the coarse ones (n,) (the frequencies of the known bin). (n, 16) float64: sums of
    integers are exact, and one correctly rounded division per entry makes them identical everywhere."""
    bins = freq.reshape(len(freq), K_VALUES // DIGIT, DIGIT)
    f = bins.sum(2) if stage == 1 else bins[np.arange(len(freq)), np.asarray(coarse, dtype=np.int64)]
    return f / f.sum(1, keepdims=True)


def log_probabilities_torch(q: torch.Tensor, k: int) -> torch.Tensor:
    """Dequantised head (..., 3K, H, W) for the training loss: logits, means in [-1, 1], log-scales."""
    logit, mu, logs = q.split(k, dim=-3)
    return torch.cat([logit / LOGIT_UNIT, mu / (127.5 * MU_UNIT) - 1.0, logs / LOGS_UNIT], dim=-3)


# ------------------------------------------------------------------------------------ integer inputs
def int_inputs(v: torch.Tensor, known: torch.Tensor, fi: torch.Tensor, with_prior: int = 0,
               stage: torch.Tensor | None = None) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
    """Integer input features, float32 holding integers in [-255, 255] (channels-last), padded to
    PAD_MULTIPLE, and with with_prior (a prior.py version) the prior's (mean, log-scale) on the head's grids
    (prior.prior, padded), else None.

    v: (B, C, H, W) values 0..255 (read only where known); known: (B, C, H, W) 0/1; fi: (B,) the
    revealed fraction as an integer 255·t // D. Channels: 2v − 255 where known, 255·known, fi, then per
    normconv scale s: round(Σ(2v − 255) / Σknown) over s×s blocks and round(255·Σknown / s²); with the
    prior, its feature rows last.

    stage: (B,) 1 or 2 for a depth-upscaling net, whose inputs are ardm.stage_inputs' on the same integer
    scale: `known` marks the stage's known digits; the value channel holds, where known, stage 1: the
    coarse bin's centre 32·(v // 16) − 240 (= 2·(16·(v // 16) + 7.5) − 255), stage 2: 2v − 255, and where
    unknown, stage 1: 0, stage 2: the bin's centre (v // 16 is read everywhere in stage 2); the
    normalised convolutions average the known positions only; the stage, as 255·(stage − 1), follows them;
    the prior sees the known values (stage 1: their bins' centres 16·(v // 16) + 8).
    """
    B, C, H, W = v.shape
    ph, pw = (-H) % PAD_MULTIPLE, (-W) % PAD_MULTIPLE
    kn = known.to(torch.int32)
    vi = v.to(torch.int32)
    x = (2 * vi - 255) * kn
    if stage is not None:
        centre = 32 * torch.div(vi, DIGIT, rounding_mode="floor") - 240
        x = torch.where(stage.view(B, 1, 1, 1) == 2, x + centre * (1 - kn), centre * kn)
    x, kn = F.pad(x, (0, pw, 0, ph)), F.pad(kn, (0, pw, 0, ph))
    Hp, Wp = H + ph, W + pw
    feats = [x, 255 * kn, fi.to(torch.int32).view(B, 1, 1, 1).expand(B, 1, Hp, Wp)]
    known_x = x if stage is None else x * kn
    for s in NORMCONV_SCALES:
        sx = known_x.view(B, C, Hp // s, s, Wp // s, s).sum((3, 5))
        sm = kn.view(B, C, Hp // s, s, Wp // s, s).sum((3, 5))
        mean = torch.div(2 * sx + sm, 2 * sm.clamp(min=1), rounding_mode="floor") * (sm > 0)
        den = torch.div(2 * 255 * sm + s * s, 2 * s * s, rounding_mode="floor")
        feats += [mean.repeat_interleave(s, 2).repeat_interleave(s, 3), den.repeat_interleave(s, 2).repeat_interleave(s, 3)]
    if stage is not None:
        feats.append((255 * (stage.to(torch.int32) - 1)).view(B, 1, 1, 1).expand(B, 1, Hp, Wp))
    pri = None
    if with_prior:
        pv = vi if stage is None else torch.where(stage.view(B, 1, 1, 1) == 1,
                                                  DIGIT * torch.div(vi, DIGIT, rounding_mode="floor") + DIGIT // 2, vi)
        mean16, logs, rows = prior(F.pad(pv * kn[:, :, :H, :W], (0, pw, 0, ph)), kn, with_prior)
        feats.append(rows)
        pri = (mean16, logs)
    # channels-last: oneDNN's fastest layout for these convolutions on CPU (1.2-2x here)
    return torch.cat(feats, 1).to(torch.float32, memory_format=torch.channels_last), pri


# --------------------------------------------------------------------------------------- topology
def walk(net: nn.Module, ops: PlainOps, inp: torch.Tensor):
    """The U-Net of ARDMNet (and of audio_model.AudioNet, the same topology in 1-D), every conv /
    activation / stream point named, in the given arithmetic."""
    h = ops.stream("stem", ops.conv("stem", "input", inp))
    skips = []
    for i, enc in enumerate(net.enc):
        for j in range(len(enc)):
            h = _block(ops, f"enc.{i}.{j}", h)
        if i < len(net.down):
            skips.append(h)
            h = ops.stream(f"down.{i}", ops.conv(f"down.{i}", f"down.{i}.in", ops.act(f"down.{i}.in", h)))
    for i in reversed(range(len(net.dec))):
        u = ops.conv(f"up.{i}", f"up.{i}.in", ops.act(f"up.{i}.in", h))
        h = ops.add(f"up.{i}.out", skips[i], ops.upsample(u))
        for j in range(len(net.dec[i])):
            h = _block(ops, f"dec.{i}.{j}", h)
    return ops.head(ops.conv("head", "head.in", ops.act("head.in", h)))


def _block(ops: PlainOps, name: str, h):
    a = ops.act(f"{name}.a1", h)
    a2 = ops.act(f"{name}.a2", ops.conv(f"{name}.conv1", f"{name}.a1", a))
    return ops.add(f"{name}.out", h, ops.conv(f"{name}.conv2", f"{name}.a2", a2))


def conv_names(net: nn.Module) -> list[str]:
    return [n for n, m in net.named_modules() if isinstance(m, (nn.Conv1d, nn.Conv2d))]


def input_point(conv: str) -> str:
    """The quantisation point that feeds a conv (the same names in the image and the audio net)."""
    if conv == "stem":
        return "input"
    if conv == "head" or conv.startswith(("down.", "up.")):
        return conv + ".in"
    block, which = conv.rsplit(".", 1)  # enc.i.j.conv1 -> enc.i.j.a1
    return f"{block}.a{which[-1]}"


# ------------------------------------------------------------------------------------- arithmetics
# The ops are dimension-agnostic: the image net's Conv2d over (B, C, H, W), the audio net's Conv1d over
# (rows, F, L) and its int-exact form, which runs them as Conv2d over a single row. A net brings its
# decoder's upsampling (`net.upsample`, nearest ×2); the head, which lays out the mixture parameters,
# is what audio_model.py overrides.
_CONV = {3: F.conv1d, 4: F.conv2d}


def per_channel(v: torch.Tensor, ndim: int) -> torch.Tensor:
    """(O,) -> (1, O, 1[, 1]): broadcasts over the channels of a (B, O, ...) activation of `ndim` dims."""
    return v.view((1, -1) + (1,) * (ndim - 2))


def per_output(v: torch.Tensor, ndim: int) -> torch.Tensor:
    """(O,) -> (O, 1, 1[, 1]): broadcasts over the output channels of a conv weight of `ndim` dims."""
    return v.view((-1,) + (1,) * (ndim - 1))


class PlainOps:
    """The float net."""

    def __init__(self, net: nn.Module):
        self.net = net
        self.layers = dict(net.named_modules())

    def conv(self, name, in_name, a):
        return self.layers[name](a)

    def act(self, name, y):
        return F.relu(y)

    def stream(self, name, y):
        return y

    def add(self, name, h, r):
        return h + r

    def upsample(self, u):
        return self.net.upsample(u)

    def head(self, y):
        return y


class RangeOps(PlainOps):
    """The float net, recording each point's range (for calibration)."""

    def __init__(self, net: nn.Module):
        super().__init__(net)
        self.ranges: dict[str, float] = {}

    def _note(self, name: str, y: torch.Tensor, q: float) -> None:
        v = float(torch.quantile(y.detach().abs().flatten()[:1 << 20].float(), q))
        self.ranges[name] = max(self.ranges.get(name, 0.0), v)

    def act(self, name, y):
        y = F.relu(y)
        self._note(name, y, 0.9999)
        return y

    def stream(self, name, y):
        self._note(name, y, 1.0)
        return y

    def add(self, name, h, r):
        y = h + r
        self._note(name, y, 1.0)
        return y


def point_scales(ranges: dict[str, float]) -> dict[str, float]:
    """Every quantisation point's scale from the ranges RangeOps saw: activations use their range in 255
    steps, streams twice their range (headroom over what calibration saw) in 32767 steps."""
    scales = {"input": INPUT_SCALE}
    for name, r in ranges.items():
        if name.endswith((".in", ".a1", ".a2")):
            scales[name] = max(r, 1e-6) / ACT_MAX
        else:
            scales[name] = max(2 * r, 1e-6) / STREAM_MAX
    return scales


def weight_scale(w: torch.Tensor) -> torch.Tensor:
    """Per-output-channel weight scale (O,): max|w|/127, or coarser where needed so that the integer
    weights keep Σ|w_q|·255 below 7/8 of 2^24 (room for rounding and the bias)."""
    flat = w.flatten(1)
    by_max = flat.abs().amax(1) / WEIGHT_MAX
    by_sum = flat.abs().sum(1) * ACT_MAX / (EXACT_LIMIT * 7 / 8 - flat.shape[1] * ACT_MAX)
    return torch.maximum(by_max, by_sum).clamp(min=1e-8)


def _ste(x: torch.Tensor, scale, lo: float, hi: float) -> torch.Tensor:
    """Fake quantisation to integers·scale in [lo, hi]·scale with a straight-through gradient."""
    xc = torch.maximum(torch.minimum(x, hi * scale), lo * scale) if torch.is_tensor(scale) else x.clamp(lo * scale, hi * scale)
    return xc + (torch.round(xc / scale) * scale - xc).detach()


class FakeOps(PlainOps):
    """Quantisation-aware training: the integer arithmetic of IntOps simulated in float, differentiable."""

    def __init__(self, net: nn.Module, scales: dict[str, float]):
        super().__init__(net)
        self.scales = scales

    def conv(self, name, in_name, a):
        layer = self.layers[name]
        w = layer.weight
        sw = per_output(weight_scale(w.detach()), w.dim())
        wq = _ste(w, sw, -WEIGHT_MAX, WEIGHT_MAX)
        bq = _ste(layer.bias, sw.view(-1) * self.scales[in_name], -EXACT_LIMIT, EXACT_LIMIT)
        return _CONV[w.dim()](a, wq, bq, layer.stride, layer.padding)

    def act(self, name, y):
        return _ste(F.relu(y), self.scales[name], 0, ACT_MAX)

    def stream(self, name, y):
        return _ste(y, self.scales[name], -STREAM_MAX, STREAM_MAX)

    def add(self, name, h, r):
        s = self.scales[name]
        return (_ste(h, s, -STREAM_MAX, STREAM_MAX) + _ste(r, s, -STREAM_MAX, STREAM_MAX)).clamp(-STREAM_MAX * s, STREAM_MAX * s)

    def head(self, y):
        k = self.net.cfg.mixtures
        B, _, H, W = y.shape
        y = y.reshape(B, self.net.cfg.channels, 3 * k, H, W)
        logit, mu, logs = y.split(k, dim=2)
        logit = _ste(logit, 1.0 / LOGIT_UNIT, -2048, 2048)
        mu = _ste(mu + 1.0, 1.0 / (127.5 * MU_UNIT), MU_MIN, MU_MAX) - 1.0
        logs = _ste(logs, 1.0 / LOGS_UNIT, LOGS_MIN, LOGS_MAX)
        return torch.cat([logit, mu, logs], 2)


def calibrate(net: ARDMNet, batches: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> dict[str, float]:
    """Scales of every activation and stream point from the float net's ranges on some batches.

    batches: (v, known, fi) integer inputs as int_inputs takes them (a depth-upscaling net: (v, known, fi,
    stage)).
    """
    ops = RangeOps(net)
    with torch.no_grad():
        for v, known, fi, *stage in batches:
            walk(net, ops, int_inputs(v, known, fi, net.cfg.prior, *stage)[0] * INPUT_SCALE)
    return point_scales(ops.ranges)


class QuantNet(nn.Module):
    """Quantisation-aware wrapper with ARDMNet's interface, for training: net(x, m, frac) -> params.

    x, m, frac (and stage) as ARDMNet takes them (x = v/127.5 − 1 masked, or ardm.stage_inputs); the
    integer inputs are rebuilt from them.
    """

    def __init__(self, net: ARDMNet, scales: dict[str, float]):
        super().__init__()
        self.net = net
        self.cfg = net.cfg
        self.scales = dict(scales)

    def forward(self, x: torch.Tensor, m: torch.Tensor, frac: torch.Tensor, stage: torch.Tensor | None = None
                ) -> torch.Tensor:
        B, C, H, W = x.shape
        v = torch.round((x + 1.0) * 127.5)   # stage inputs: a bin's centre rounds into the bin
        fi = torch.floor(frac * 255 + 1e-4)
        inp, pri = int_inputs(v if stage is not None else v * m, m, fi, self.cfg.prior, stage)
        out = walk(self.net, FakeOps(self.net, self.scales), inp * INPUT_SCALE)
        if pri is not None:
            out = add_prior(out, *pri, self.cfg.mixtures)
        return out[..., :H, :W]


# ------------------------------------------------------------------------------- integer inference
@dataclass
class IntLayer:
    weight: torch.Tensor     # float32 holding int8 values (O, I, k, k), channels-last
    bias: torch.Tensor       # float32 holding integers (O,), on the accumulator scale
    scale: torch.Tensor      # float64 (O,): real value of one accumulator unit = weight scale · input scale
    stride: int | tuple[int, int]
    padding: int | tuple[int, int]


def probe_integral(name: str, acc: torch.Tensor) -> None:
    """Raise unless a sample of a convolution's output is integral: a transform-based algorithm (Winograd,
    FFT) would leave fractions nearly everywhere. Reads every 61st element in memory order."""
    flat = acc.permute(0, 2, 3, 1) if acc.dim() == 4 and acc.is_contiguous(memory_format=torch.channels_last) else acc
    probe = flat.reshape(-1)[::61]
    if not torch.equal(probe, torch.round(probe)):
        raise RuntimeError(f"convolution {name} returned non-integers: the backend is not exact")


def export_int(qnet: nn.Module) -> dict:
    """The integer tensors of an int-exact model file (QuantNet or audio_model.QuantAudioNet): per conv
    int8 weights, int32 biases (accumulator scale), float32 weight scales; per point float32 scales.
    Plain tensors and floats only (torch.load weights_only)."""
    out: dict = {"scales": {k: float(np.float32(v)) for k, v in qnet.scales.items()}, "layers": {}}
    mods = dict(qnet.net.named_modules())
    for name in conv_names(qnet.net):
        w = mods[name].weight.detach().double()
        sw = weight_scale(w).float()
        wq = torch.round(w / per_output(sw.double(), w.dim())).clamp(-WEIGHT_MAX, WEIGHT_MAX).to(torch.int8)
        s_in = np.float32(qnet.scales[input_point(name)])
        bq = torch.round(mods[name].bias.detach().double() / (sw.double() * s_in)).to(torch.int32)
        out["layers"][name] = {"weight": wq, "bias": bq, "weight_scale": sw}
    return out


def int_layers(blob: dict, skeleton: nn.Module, scales: dict[str, float], one_row: bool = False
               ) -> dict[str, IntLayer]:
    """A model file's integers as IntLayers (float32 values, channels-last), refused unless every partial
    sum stays below 2^24 (check_bound). one_row: 1-D convolutions, run as 2-D ones over a single row."""
    mods = dict(skeleton.named_modules())
    layers: dict[str, IntLayer] = {}
    for name, d in blob["layers"].items():
        weight = d["weight"].to(torch.float32)
        stride, padding = mods[name].stride[0], mods[name].padding[0]
        if one_row:
            weight, stride, padding = weight.unsqueeze(2), (1, stride), (0, padding)
        layers[name] = IntLayer(weight=weight.contiguous(memory_format=torch.channels_last) if weight.dim() == 4 else weight,
                                bias=d["bias"].to(torch.float32),
                                scale=d["weight_scale"].double() * np.float32(scales[input_point(name)]),
                                stride=stride, padding=padding)
    check_bound(layers)
    return layers


class IntOps(PlainOps):
    """Integer arithmetic: tensors are (values, scale) with float32 integer values and a float64 scale
    (per channel) that is only used to derive the float32 rescaling factors."""

    def __init__(self, net: nn.Module, layers: dict[str, IntLayer], scales: dict[str, float]):
        super().__init__(net)
        self.ilayers, self.scales = layers, scales
        self._mult: dict[tuple[str, str], torch.Tensor] = {}
        self._scale = {k: torch.tensor(v, dtype=torch.float64) for k, v in scales.items()}

    def _requant(self, key: tuple[str, str], y: torch.Tensor, s_in: torch.Tensor, s_out: float,
                 fresh: bool = False) -> torch.Tensor:
        """round(y · s_in / s_out): one IEEE multiply and a round per element; `fresh`: y is a temporary
        (a convolution's output) that may be overwritten."""
        m = self._mult.get((key, y.dim()))
        if m is None:
            m = (s_in / s_out).to(torch.float32).reshape(-1)
            m = per_channel(m, y.dim()) if m.numel() > 1 else m.view((1,) * y.dim())
            self._mult[key, y.dim()] = m
        return (y.mul_(m) if fresh else y * m).round_()

    def conv(self, name, in_name, a):
        t, _ = a
        L = self.ilayers[name]
        acc = _CONV[t.dim()](t, L.weight, L.bias, L.stride, L.padding)
        probe_integral(name, acc)
        return acc, L.scale

    def act(self, name, y):
        # relu then requantise = requantise then clamp at 0 (the multiplier is positive and round(0) = 0)
        t, s = y
        return self._requant((name, "act"), t, s, self.scales[name]).clamp_(0, ACT_MAX), self._scale[name]

    def stream(self, name, y):  # always a convolution's output
        t, s = y
        return (self._requant((name, "stream"), t, s, self.scales[name], fresh=True)
                .clamp_(-STREAM_MAX, STREAM_MAX), self._scale[name])

    def add(self, name, h, r):  # h: the residual stream (kept), r: a convolution's (upsampled) output
        s = self.scales[name]
        a = self._requant((name, "h"), h[0], h[1], s)
        b = self._requant((name, "r"), r[0], r[1], s, fresh=True)
        return a.add_(b).clamp_(-STREAM_MAX, STREAM_MAX), self._scale[name]

    def upsample(self, u):
        return self.net.upsample(u[0]), u[1]

    def head(self, y):
        t, s = y
        k = self.net.cfg.mixtures
        c = self.net.cfg.channels
        B, _, H, W = t.shape
        s = s.view(c, 3, k)
        t = t.reshape(B, c, 3, k, H, W)
        logit = self._requant(("head", "logit"), t[:, :, 0].reshape(B, c * k, H, W), s[:, 0].reshape(-1), 1.0 / LOGIT_UNIT)
        mu = self._requant(("head", "mu"), t[:, :, 1].reshape(B, c * k, H, W), s[:, 1].reshape(-1), 1.0 / (127.5 * MU_UNIT))
        logs = self._requant(("head", "logs"), t[:, :, 2].reshape(B, c * k, H, W), s[:, 2].reshape(-1), 1.0 / LOGS_UNIT)
        # means are offsets from value −0.5·... : the float mean μ ∈ [−1, 1] is (mu_q / (127.5·16)) − 1
        logit = logit.clamp_(-2048, 2048).view(B, c, k, H, W)
        mu = (mu + 127.5 * MU_UNIT).clamp_(MU_MIN, MU_MAX).view(B, c, k, H, W)
        logs = logs.clamp_(LOGS_MIN, LOGS_MAX).view(B, c, k, H, W)
        return torch.cat([logit, mu, logs], 2)  # (B, C, 3K, H, W) integers


class ExactNet:
    """An int-exact model: integer inputs in, integer head parameters out, identical everywhere."""

    def __init__(self, cfg: NetConfig, blob: dict):
        self.cfg = cfg
        self.skeleton = ARDMNet(cfg)  # topology only (names, strides); its float weights are unused
        self.scales = {k: float(v) for k, v in blob["scales"].items()}
        self.layers = int_layers(blob, self.skeleton, self.scales)
        self.ops = IntOps(self.skeleton, self.layers, self.scales)

    @torch.inference_mode()
    def __call__(self, v: torch.Tensor, known: torch.Tensor, fi: torch.Tensor, stage: torch.Tensor | None = None
                 ) -> torch.Tensor:
        """v, known: (B, C, H, W); fi: (B,) integers; stage: (B,) for a depth-upscaling net (int_inputs).
        Returns (B, C, 3K, H, W) float32 integers."""
        H, W = v.shape[2:]
        inp, pri = int_inputs(v, known, fi, self.cfg.prior, stage)
        out = walk(self.skeleton, self.ops, (inp, torch.tensor(INPUT_SCALE, dtype=torch.float64)))
        if pri is not None:
            out = add_prior(out, *pri, self.cfg.mixtures, integer=True)
        return out[..., :H, :W]


def dequantised(exact_net, net: nn.Module | None = None) -> tuple[nn.Module, dict[str, float]]:
    """A float net whose fake-quantised forward (QuantNet with the returned scales) reproduces the
    int-exact model: for resuming quantisation-aware training from a shipped model. `net`: the float
    skeleton to fill (default: an ARDMNet of the model's config; an audio model passes its AudioNet,
    whose 1-D weights the integer layers hold as one-row 2-D ones)."""
    net = ARDMNet(exact_net.cfg) if net is None else net
    mods = dict(net.named_modules())
    with torch.no_grad():
        for name, L in exact_net.layers.items():
            s_in = np.float32(exact_net.scales[input_point(name)])
            w = L.weight.double() * per_output(L.scale / float(s_in), L.weight.dim())
            mods[name].weight.copy_(w.reshape(mods[name].weight.shape))
            mods[name].bias.copy_(L.bias.double() * L.scale)
    return net, dict(exact_net.scales)


def bound(layer: IntLayer, input_max: int = ACT_MAX) -> int:
    """The largest |partial sum| any output channel of a conv can reach: max_o Σ|w_o|·max|a| + |b_o|."""
    w = layer.weight.abs().to(torch.int64).flatten(1).sum(1)
    return int((w * input_max + layer.bias.abs().to(torch.int64)).max())


def check_bound(layers: dict[str, IntLayer]) -> None:
    """Refuse a model any of whose convolutions could leave float32's exact-integer range."""
    for name, layer in layers.items():
        b = bound(layer)
        if b >= EXACT_LIMIT:
            raise ValueError(f"layer {name}: partial sums up to {b} ≥ 2^24, float32 would round them")
