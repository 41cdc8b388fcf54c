"""The audio ARDM (issue 6): a 1-D fully-convolutional U-Net over PCM samples, with depth upscaling.

**Variables and stages.** A segment of F frames and C channels has D = F·C variables per stage, one per
(frame, channel) position. A 16-bit sample x is two base-256 digits of u = x + 32768: stage 1 reveals the
high byte u >> 8 of every position (its own order and schedule), stage 2 the low byte
u & 255 given every high byte (each stage in the order family of `AudioNetConfig.order`: uniformly random,
or dyadic coarse to fine — ardm.dyadic_groups — where training scores only the unknown variables of the
group being revealed). 8-bit audio is stage 1 alone (u = x + 128); 24-bit audio codes its top
16 bits as two stages and its low byte with a block-adaptive count model (audio_codec.py).
A **joint** model (`AudioNetConfig.joint`) has one stage over whole values instead: one network call
gives a mixture over u, and its code is split into the high byte and the low byte given it ("joint
head" below). In the dyadic order the high bytes are then predicted from exact neighbours rather than
from the centres of their bins: 2.5–2.9% fewer bits with the prior alone (benchmarks/audio_digits.py;
four stages of 16 cost 4–9% more than two of 256).

**Head.** One discretised logistic mixture per variable over the 16-bit value; the net knows the stage
and expresses the mixture in that stage's digit units (same parameter conventions as ardm.py: means in
[-1, 1] units of the digit, log-scales of those units):
- stage 1: the mixture integrated over the 256 bins of width 256 (the high-byte classes), the two outer
  bins extended to ±∞ — exactly the image head of ardm.py / exact.py on the 256 high-byte classes;
- stage 2: the mixture restricted to the known high byte's bin and renormalised over its 256 low values
  (no tails: the mean may lie outside the bin, up to 64 values, the exact head's mean range).

**Inputs** (integers in [-255, 255], one row per (example, target channel); `features`): the target
channel's known high and low bytes and masks, the mean and density of the other channels' known
bytes, the revealed fraction 255·t // D, the stage, and normalised-convolution context: over centred
windows of 2h+1 samples (h in cfg.scales) the mean and density of the known high and low bytes.

**Arithmetic.** The image model's topology and arithmetics (exact.py: `walk`, `PlainOps` for the float
net, `FakeOps` for quantisation-aware training, `IntOps` for coding, with float32 holding integers and
the bound Σ|w|·255 + |b| < 2^24 proven per output channel when a model loads), which are
dimension-agnostic; this module adds the net's time upsampling (`AudioNet.upsample`) and its head's
layout (`FakeOps`, `IntOps` below). The int-exact net runs its 1-D convolutions as 2-D ones over a
single row (`ExactAudioNet`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from decimal import Decimal, getcontext
from functools import lru_cache

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import exact, interp
from .interp import quarter_octaves
from .ardm import DYADIC_FAMILIES, SPLIT_LEVELS, dyadic_groups, revealing_group
from .exact import (EXP_RANGE, INPUT_SCALE, INV_SHIFT, LOGIT_UNIT, LOGS_MAX, LOGS_MIN, LOGS_UNIT, MU_MAX, MU_MIN,
                    MU_UNIT, _ste, walk)
from .prior import MID16, correct

K_DIGIT = 256          # classes per stage
STAGES_16 = 2          # net-coded stages of a 16-bit sample


@dataclass
class AudioNetConfig:
    widths: tuple[int, ...] = (32, 64, 96, 128)  # full, 1/2, 1/4, 1/8 time resolution
    blocks: tuple[int, ...] = (1, 1, 2, 2)       # residual blocks per level (upper levels: half before, half after)
    kernel: int = 5
    mixtures: int = 4
    scales: tuple[int, ...] = (2, 8, 32, 128, 512)  # normconv half-widths: windows of 2h+1 samples
    neighbours: int = 0          # nearest known samples per side given exactly (0: none; see `features`)
    order: str = "uniform"       # order family of every stage: "uniform", "dyadic", "dyadic-split…" (ardm.dyadic_groups)
    prior: bool = False          # an exact interpolation prior: the head corrects its means and scales (`prior`)
    interp: bool = False         # the prior's mean and scale from filters and block scales stored per segment (interp.py)
    joint: bool = False          # one net-coded stage over the full values; the two bytes only split its code (`joint_log_prob`)
    coefs: str = "bytes"         # how the stored filters' coefficients are coded: "bytes" (3 each), "sizes", or
                                 # "symmetric" (sizes, one per pair of taps ±d: c(−d) = c(+d); interp.py)
    max_taps: int = 16           # the most taps per side of a stored filter: 16 (interp.CHOICES) or 64 (CHOICES_64)

    def __post_init__(self) -> None:
        if self.order not in ("uniform",) + DYADIC_FAMILIES:
            raise ValueError(f"order {self.order!r}: 'uniform' or one of {DYADIC_FAMILIES}")
        if self.split and not self.interp:
            raise ValueError(f"order {self.order!r} halves levels per segment for its fitted filters: it needs interp")
        if self.interp and not (self.prior and self.order in DYADIC_FAMILIES):
            raise ValueError("fitted filters (interp) need the prior and the dyadic order")
        if self.joint and not self.prior:
            raise ValueError("a joint model needs the prior (its means are whole 16-bit values)")
        if self.coefs not in ("bytes", "sizes", "symmetric") or (self.coefs != "bytes" and not self.interp):
            raise ValueError(f"coefs {self.coefs!r}: 'bytes', or 'sizes' or 'symmetric' for a model with stored "
                             "filters (interp)")
        if self.max_taps not in (16, 64) or (self.max_taps != 16 and self.coefs == "bytes"):
            raise ValueError(f"max_taps {self.max_taps}: 16, or 64 for a model that codes coefficients by size")

    @property
    def logs_max(self) -> int:
        """The largest log-scale of the int-exact head: a joint head's reaches stage 1's widest."""
        return JOINT_LOGS_MAX if self.joint else LOGS_MAX

    @property
    def coef_bits(self) -> float:
        """What the encoder prices a stored filter coefficient at when it chooses filters (interp.side)."""
        return interp.COEF_BITS if self.coefs == "bytes" else interp.SIZE_COEF_BITS

    @property
    def symmetric(self) -> bool:
        """The stored filters are symmetric (net config `coefs` "symmetric")."""
        return self.coefs == "symmetric"

    @property
    def tap_choices(self) -> tuple[int, ...]:
        """The taps per side a stored filter may have (interp.py), in the order its choice symbol indexes."""
        return interp.choices_up_to(self.max_taps)

    @property
    def split(self) -> int:
        """How many of the finest dyadic levels are coded in two halves (ardm.py, interp.py "Split")."""
        return SPLIT_LEVELS.get(self.order, 0)

    @property
    def stages(self) -> int:
        """Net-coded stages of a 16-bit sample: 2 (depth upscaling), or 1 for a joint model."""
        return 1 if self.joint else STAGES_16

    @property
    def in_features(self) -> int:
        # own hi, mask, lo, mask; others' hi mean, density, lo mean, density; fraction; stage; 4 per scale;
        # value and distance of each of the nearest known neighbours on either side; with the prior: each
        # one's value relative to it and the residual levels (`_prior_rows`). The prior's mean and
        # log-scale ride along as two more rows that the stem does not read (`split_prior`).
        return 10 + 4 * len(self.scales) + 4 * self.neighbours + (2 * self.neighbours + len(PRIOR_SCALES) if self.prior else 0)

    @property
    def pad_multiple(self) -> int:
        return 2 ** (len(self.widths) - 1)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "AudioNetConfig":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


# ---------------------------------------------------------------------------------------------- inputs
def features(hi: torch.Tensor, mh: torch.Tensor, lo: torch.Tensor, ml: torch.Tensor, fi: torch.Tensor,
             stage: torch.Tensor, cfg: AudioNetConfig, side: interp.Side | None = None) -> torch.Tensor:
    """Integer input features: (N·C, cfg.in_features, Lp) float32 holding integers in [-255, 255].

    hi, lo: (N, C, L) digits 0..255 (read only where known); mh, ml: (N, C, L) 0/1 known masks;
    fi: (N,) revealed fraction 255·t // D; stage: (N,) 1 or 2; side: the segments' stored filters and
    scales (interp.Side of tensors (N, C, …)), required by cfg.interp. Row n·C + c has channel c as its
    target. Lp is L padded (as unknown) to cfg.pad_multiple. Integer arithmetic (int64) throughout.
    """
    N, C, L = hi.shape
    mh, ml = mh.to(torch.int64), ml.to(torch.int64)
    if cfg.joint:  # a joint model's target is a whole value: nothing unknown may reach any row
        hi, lo = hi.to(torch.int64) * mh, lo.to(torch.int64) * ml
    xh, xl = (2 * hi.to(torch.int64) - 255) * mh, (2 * lo.to(torch.int64) - 255) * ml
    rows = []
    for x, m in ((xh, mh), (xl, ml)):
        rows += [x, 255 * m]
    for x, m in ((xh, mh), (xl, ml)):  # the other channels: mean of their known values and how many know
        sx, sm = x.sum(1, keepdim=True) - x, m.sum(1, keepdim=True) - m
        rows += [_mean(sx, sm), _density(sm, max(C - 1, 1))]
    stage_code = 510 * (stage.to(torch.int64) - 1) - 255                      # stage 1: −255, stage 2: 255
    rows += [fi.to(torch.int64).view(N, 1, 1).expand(N, C, L), stage_code.view(N, 1, 1).expand(N, C, L)]
    for h in cfg.scales:
        for x, m in ((xh, mh), (xl, ml)):
            sx, sm = _box(x, h), _box(m, h)
            rows += [_mean(sx, sm), _density(sm, 2 * h + 1)]
    if cfg.neighbours:
        rows += _neighbours(hi.to(torch.int64), mh, lo.to(torch.int64), ml,
                            torch.ones_like(stage) if cfg.joint else stage, cfg.neighbours)
    if cfg.prior:
        rows += _prior_rows(hi.to(torch.int64), mh, lo.to(torch.int64), ml, stage, cfg, side)
    out = torch.stack(rows, 2).reshape(N * C, len(rows), L)
    return F.pad(out, (0, (-L) % cfg.pad_multiple)).to(torch.float32)


# ------------------------------------------------------------------------------------ the prior
# With cfg.prior the net does not predict means and scales outright: it corrects an exact integer
# prediction. A 16-bit interpolation is beyond 8-bit activations, and the scale must follow how well
# interpolation works locally, not how loud the signal is: measured on validation audio, a plain cubic
# interpolation with a Laplace scale taken from the interpolation residuals of the known samples nearby
# codes the finest dyadic group in 8.5 bits/sample where aud2's net needed 9.4.
#
# The prediction P, in 16ths of a 16-bit value (p16): the cubic (−1, 9, 9, −1)/16 when the two nearest
# known samples on each side sit at ±d and ±3d (every dyadic group after the first), else the linear
# interpolation of the nearest one on each side, else the one known neighbour, else mid-scale. Known
# samples are full values in stage 2, their high byte's bin centres (256·hi + 128) in stage 1. The same
# rule at a known sample (from the other known samples) gives its residual; the mean |residual| over
# the known samples of centred windows (PRIOR_SCALES) is coded in quarter octaves (`quarter_octaves`);
# a window without known samples gets the level of a full-scale residual.
PRIOR_SCALES = (8, 32, 128)   # half-widths of the residual windows; the middle one sets the prior's scale


def prior(hi: torch.Tensor, mh: torch.Tensor, lo: torch.Tensor, ml: torch.Tensor, stage: torch.Tensor,
          side: interp.Side | None = None
          ) -> tuple[torch.Tensor, list[torch.Tensor], list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]]:
    """(p16 (N, C, L) int64 at every position; the residual level at each of PRIOR_SCALES, in quarter
    octaves of 16ths of a value; the 2 nearest known samples on each side as (value, distance, known):
    left 1, 2, then right 1, 2). With `side` (interp.py), p16 is the fitted filters' prediction wherever
    one applies (residuals included), and the middle residual level (the prior's scale) is the stored
    block level at every frame of groups ≥ 1."""
    N, L = hi.shape[0], hi.shape[-1]
    s2 = (stage.to(torch.int64) == 2).view(N, 1, 1)
    known = torch.where(s2, ml, mh).bool()
    value = torch.where(s2, 256 * hi + lo, 256 * hi + 128)
    near = _nearest(known, value, 2)
    (l1, dl1, okl1), (l2, dl2, okl2), (r1, dr1, okr1), (r2, dr2, okr2) = near
    cubic = okl1 & okr1 & okl2 & okr2 & (dl1 == dr1) & (dl2 == 3 * dl1) & (dr2 == 3 * dr1)
    both = okl1 & okr1
    linear = torch.div(16 * (l1 * dr1 + r1 * dl1), (dl1 + dr1).clamp(min=1), rounding_mode="floor")
    one = 16 * torch.where(okl1, l1, r1)
    p16 = torch.where(cubic, 9 * (l1 + r1) - l2 - r2, torch.where(both, linear, torch.where(okl1 | okr1, one, 16 * 32768)))
    if side is not None:
        fitted, applies = interp.predict(value, known, side.filters)
        p16 = torch.where(applies, fitted, p16)
    residual = (16 * value - p16).abs() * known
    count = known.to(torch.int64)
    levels = []
    for h in PRIOR_SCALES:  # no known sample in the window: the level of a residual of 2^15 (full scale)
        n = _box(count, h)
        levels.append(quarter_octaves(torch.where(n > 0, torch.div(_box(residual, h), n.clamp(min=1), rounding_mode="floor"),
                                                  16 << 15)))
    if side is not None:
        stored, has = interp.level_rows(side.levels, L, interp.split_of(side.filters))
        levels[1] = torch.where(has, stored, levels[1])
    return p16, levels, near


# The prior as head parameters on the integer grids of exact.py: the mean (value v of the stage's digit
# at 16·v) and the log-scale (1/16 of ln of the scale in [-1, 1] units of the digit), from the mean
# |residual| r (16ths of a value) in quarter octaves q: 16·ln(r / 16 / 127.5 / digit) ≈ 2.7726·q − 122
# − (stage 1: 16·ln 256 ≈ 89).
LN2_QUARTER = 2839  # 16·ln 2 / 4 in 1/1024


JOINT_MU_MIN, JOINT_MU_MAX = MU_MIN, 4096 * 255 + MU_MAX   # a joint head's means: any 16-bit value ± 64
JOINT_LOGS_MAX = LOGS_MAX + 89   # and log-scales (of a value) up to stage 1's: 89 ≈ 16·ln 256


def prior_params(p16: torch.Tensor, level: torch.Tensor, hi: torch.Tensor, stage: torch.Tensor, joint: bool = False
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, log-scale) of the prior on the head's integer grids, clamped to their ranges; `joint`: the
    mean is p16 itself (a whole 16-bit value in 1/16) and the log-scale in units of a value, as stage 2's."""
    if joint:
        logs = torch.div(level * LN2_QUARTER, 1024, rounding_mode="floor") - 122
        return p16.clamp(JOINT_MU_MIN, JOINT_MU_MAX), logs.clamp(LOGS_MIN, JOINT_LOGS_MAX)
    s2 = (stage.to(torch.int64) == 2).view(-1, 1, 1)
    mu1 = torch.div(p16 - 2040 + 128, 256, rounding_mode="floor")          # 16·(p − 127.5) / 256, rounded
    mu2 = p16 - 4096 * hi
    logs = torch.div(level * LN2_QUARTER, 1024, rounding_mode="floor") - 122 - torch.where(s2, 0, 89)
    return torch.where(s2, mu2, mu1).clamp(MU_MIN, MU_MAX), logs.clamp(LOGS_MIN, LOGS_MAX)


def _prior_rows(hi: torch.Tensor, mh: torch.Tensor, lo: torch.Tensor, ml: torch.Tensor, stage: torch.Tensor,
                cfg: AudioNetConfig, side: interp.Side | None = None) -> list[torch.Tensor]:
    """The prior's feature rows: each of the cfg.neighbours nearest known samples per side relative to
    the prediction (low-byte values in stage 2, 16ths of a high byte in stage 1, clipped to ±255), the
    residual levels; then the two rows the stem does not read: the prior's mean and log-scale."""
    if cfg.neighbours > 2:
        raise ValueError(f"the prior gives the 2 nearest known samples per side, not {cfg.neighbours}")
    if cfg.interp and side is None:
        raise ValueError("this model's prior needs the segments' stored filters and scales (interp.py)")
    p16, levels, near = prior(hi, mh, lo, ml, stage, side if cfg.interp else None)  # joint: called as stage 2
    unit = torch.where((stage.to(torch.int64) == 2).view(-1, 1, 1), 16, 256)
    sides = near[:cfg.neighbours] + near[2:2 + cfg.neighbours]
    rows = [torch.div(16 * v - p16, unit, rounding_mode="floor").clamp(-255, 255) * ok for v, _, ok in sides]
    return rows + levels + list(prior_params(p16, levels[1], hi, stage, cfg.joint))


def split_prior(inp: torch.Tensor, cfg: AudioNetConfig) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`features(...)` (possibly scaled) -> (the net's input rows, the prior rows (rows, 2, Lp): mean and
    log-scale, or None)."""
    return (inp[:, :-2], inp[:, -2:]) if cfg.prior else (inp, None)


def _unscaled(prior_rows: torch.Tensor | None) -> torch.Tensor | None:
    """The prior rows of features·INPUT_SCALE (what the float nets take) back on their integer grids."""
    return None if prior_rows is None else torch.round(prior_rows / INPUT_SCALE)


def add_prior(p: torch.Tensor, prior_q: torch.Tensor | None, k: int, integer: bool = False,
              clamp: bool = False, joint: bool = False) -> torch.Tensor:
    """Head params that are corrections -> params that include the prior (prior_q: (rows, 2, ...) mean and
    log-scale on the integer grids of `prior_params`). Integer heads: μ − 127.5·16 + prior mean and
    log-scale + prior log-scale, clamped to their ranges (the corrections themselves were clamped to those
    ranges, the mean's around 127.5·16); float heads: the same values dequantised (`clamp`: clamped the
    same way, for quantisation-aware training)."""
    if prior_q is None:
        return p
    logit, mu, logs = p.split(k, dim=1)
    if joint:  # the same sums as `correct`, the mean clamped to a whole 16-bit value's range
        pm, pl = prior_q[:, :1], prior_q[:, 1:]
        if integer:
            mu, logs = (mu - MID16 + pm).clamp(JOINT_MU_MIN, JOINT_MU_MAX), (logs + pl).clamp(LOGS_MIN, JOINT_LOGS_MAX)
        else:
            mu, logs = mu + pm / MID16 - 1.0, logs + pl / LOGS_UNIT
            if clamp:
                mu = mu.clamp(JOINT_MU_MIN / MID16 - 1.0, JOINT_MU_MAX / MID16 - 1.0)
                logs = logs.clamp(LOGS_MIN / LOGS_UNIT, JOINT_LOGS_MAX / LOGS_UNIT)
        return torch.cat([logit, mu, logs], 1)
    mu, logs = correct(mu, logs, prior_q[:, :1], prior_q[:, 1:], integer, clamp=integer or clamp)
    return torch.cat([logit, mu, logs], 1)


def _nearest(known: torch.Tensor, value: torch.Tensor, n: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The n nearest known positions strictly on each side of every position: (value, distance, exists)
    rows, left 1..n then right 1..n; where none exists, value 0 and distance 0."""
    L = known.shape[-1]
    pos = torch.arange(L).expand_as(known)
    out = []
    for flip in (False, True):
        k, v = (known.flip(-1), value.flip(-1)) if flip else (known, value)
        # index of the nearest known position strictly before i (−1: none), then of the one before that
        last = torch.where(k, pos, -1).cummax(-1).values
        prev = F.pad(last[..., :-1], (1, 0), value=-1)
        idx = prev
        for _ in range(n):
            ok = idx >= 0
            safe = idx.clamp(min=0)
            nb, d = torch.gather(v, -1, safe) * ok, (pos - idx) * ok
            out.append((nb.flip(-1), d.flip(-1), ok.flip(-1)) if flip else (nb, d, ok))
            idx = torch.where(ok, torch.gather(prev, -1, safe), -1)
    return out


def _neighbours(hi: torch.Tensor, mh: torch.Tensor, lo: torch.Tensor, ml: torch.Tensor, stage: torch.Tensor,
                n: int) -> list[torch.Tensor]:
    """The n nearest known samples on each side of every position: their value and distance (integers).

    Stage 1 (high bytes being revealed): value 2·hi − 255 of the neighbour's known high byte. Stage 2 (every
    high byte known, low bytes being revealed): the neighbour's full value relative to the centre of this
    position's own high-byte bin, u_nb − (256·hi + 128), clipped to [−255, 255]: the low byte's natural
    predictor (interpolating neighbours), which the 8-bit features of separate bytes cannot carry.
    Distance: min(d, 255); no such neighbour: value 0, distance 255. Rows: left 1..n, then right 1..n,
    each (value, distance)."""
    N = hi.shape[0]
    s2 = (stage.to(torch.int64) == 2).view(N, 1, 1)
    rows = []
    for nb, d, ok in _nearest(torch.where(s2, ml, mh).bool(), torch.where(s2, 256 * hi + lo, 2 * hi - 255), n):
        own = torch.where(s2, (256 * hi + 128 - nb).neg().clamp(-255, 255), nb)
        rows += [own * ok, torch.where(ok, d.clamp(max=255), 255)]
    return rows


def _mean(sx: torch.Tensor, sm: torch.Tensor) -> torch.Tensor:
    """round(sx / sm) (halves up), 0 where nothing is known; integers."""
    return torch.div(2 * sx + sm, 2 * sm.clamp(min=1), rounding_mode="floor") * (sm > 0)


def _density(sm: torch.Tensor, n: int) -> torch.Tensor:
    return torch.div(2 * 255 * sm + n, 2 * n, rounding_mode="floor")


def _box(x: torch.Tensor, h: int) -> torch.Tensor:
    """Sum over the centred window [i − h, i + h] (outside the segment counts as 0), exact in int64."""
    cs = F.pad(x, (h + 1, h)).cumsum(-1)
    return cs[..., 2 * h + 1:] - cs[..., :-2 * h - 1]


# ------------------------------------------------------------------------------------------ network
class ResBlock(nn.Module):
    def __init__(self, c: int, k: int):
        super().__init__()
        self.conv1 = nn.Conv1d(c, c, k, padding=k // 2)
        self.conv2 = nn.Conv1d(c, c, k, padding=k // 2)


class AudioNet(nn.Module):
    """features * INPUT_SCALE (rows, F, Lp) -> mixture parameters (rows, 3K, Lp): K logits, K means,
    K log-scales (ardm.py conventions, in the stage's digit units). The topology is `walk`."""

    def __init__(self, cfg: AudioNetConfig):
        super().__init__()
        self.cfg = cfg
        w, k = cfg.widths, cfg.kernel
        self.stem = nn.Conv1d(cfg.in_features, w[0], k, padding=k // 2)
        self.down = nn.ModuleList(nn.Conv1d(w[i], w[i + 1], k, stride=2, padding=k // 2) for i in range(len(w) - 1))
        self.enc = nn.ModuleList(nn.Sequential(*[ResBlock(wi, k) for _ in range(n // 2 if i < len(w) - 1 else n)])
                                 for i, (wi, n) in enumerate(zip(w, cfg.blocks)))
        self.up = nn.ModuleList(nn.Conv1d(w[i + 1], w[i], 1) for i in range(len(w) - 1))
        self.dec = nn.ModuleList(nn.Sequential(*[ResBlock(w[i], k) for _ in range(n - n // 2)])
                                 for i, n in enumerate(cfg.blocks[:-1]))
        self.head = nn.Conv1d(w[0], 3 * cfg.mixtures, 1)

    @staticmethod
    def upsample(u: torch.Tensor) -> torch.Tensor:
        """The decoder's ×2 upsampling: nearest neighbour along the last dimension (time)."""
        return u.repeat_interleave(2, dim=-1)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x, prior_row = split_prior(inp, self.cfg)
        return add_prior(walk(self, exact.PlainOps(self), x), _unscaled(prior_row), self.cfg.mixtures,
                         joint=self.cfg.joint)


def _quant_head(y: torch.Tensor, k: int) -> torch.Tensor:
    """Fake-quantise head params (rows, 3K, ...) onto the integer grids of exact.py."""
    logit, mu, logs = y.split(k, dim=1)
    logit = _ste(logit, 1.0 / LOGIT_UNIT, -2048, 2048)
    mu = _ste(mu + 1.0, 1.0 / (127.5 * MU_UNIT), MU_MIN, MU_MAX) - 1.0
    logs = _ste(logs, 1.0 / LOGS_UNIT, LOGS_MIN, LOGS_MAX)
    return torch.cat([logit, mu, logs], 1)


class FakeOps(exact.FakeOps):
    """Quantisation-aware training (exact.FakeOps) with the audio head's layout (rows, 3K, ...)."""

    def head(self, y):
        return _quant_head(y, self.net.cfg.mixtures)


class IntOps(exact.IntOps):
    """Integer arithmetic (exact.IntOps) with the audio head's layout (rows, 3K, ...)."""

    def head(self, y):
        """-> (rows, 3K, ...) integers: logits in 1/16, means in 1/16 of a digit value (exact.py's
        grid: value v is at 16·v), log-scales in 1/16."""
        t, s = y
        k = self.net.cfg.mixtures
        logit, mu, logs = t.split(k, dim=1)
        sl, sm, ss = s.split(k)
        logit = self._requant(("head", "logit"), logit, sl, 1.0 / LOGIT_UNIT).clamp_(-2048, 2048)
        mu = (self._requant(("head", "mu"), mu, sm, 1.0 / (127.5 * MU_UNIT)) + 127.5 * MU_UNIT).clamp_(MU_MIN, MU_MAX)
        logs = self._requant(("head", "logs"), logs, ss, 1.0 / LOGS_UNIT).clamp_(LOGS_MIN, LOGS_MAX)
        return torch.cat([logit, mu, logs], 1)


# --------------------------------------------------------------------------- quantisation & export
def calibrate(net: AudioNet, inputs: list[torch.Tensor]) -> dict[str, float]:
    """Scales of every activation and stream point from the float net's ranges on some feature batches
    (`features(...)` outputs, integers)."""
    ops = exact.RangeOps(net)
    with torch.no_grad():
        for inp in inputs:
            walk(net, ops, split_prior(inp, net.cfg)[0] * INPUT_SCALE)
    return exact.point_scales(ops.ranges)


class QuantAudioNet(nn.Module):
    """Quantisation-aware wrapper with AudioNet's interface (features · INPUT_SCALE in, params out)."""

    def __init__(self, net: AudioNet, scales: dict[str, float]):
        super().__init__()
        self.net = net
        self.cfg = net.cfg
        self.scales = dict(scales)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x, prior_row = split_prior(inp, self.cfg)
        return add_prior(walk(self.net, FakeOps(self.net, self.scales), x), _unscaled(prior_row), self.cfg.mixtures,
                         clamp=True, joint=self.cfg.joint)


class ExactAudioNet:
    """An int-exact audio model: integer features in, integer head parameters out, identical everywhere."""

    def __init__(self, cfg: AudioNetConfig, blob: dict):
        self.cfg = cfg
        self.blob = blob  # what export_int made: the integers a model file stores
        self.skeleton = AudioNet(cfg)  # topology only (names, strides); its float weights are unused
        self.scales = {k: float(v) for k, v in blob["scales"].items()}
        # 1-D convolutions run as 2-D ones over a single row (below)
        self.layers = exact.int_layers(blob, self.skeleton, self.scales, one_row=True)
        self.ops = IntOps(self.skeleton, self.layers, self.scales)

    @torch.inference_mode()
    def __call__(self, inp: torch.Tensor) -> torch.Tensor:
        """inp: `features(...)` (rows, F, Lp) integers. Returns (rows, 3K, Lp) float32 integers."""
        x, prior_row = split_prior(inp, self.cfg)
        # time as the width of a one-row image, channels-last: oneDNN's 2-D convolutions in this layout
        # are 1.2-2x faster than its 1-D ones here, and give the same integers
        x = x.unsqueeze(2).contiguous(memory_format=torch.channels_last)
        out = walk(self.skeleton, self.ops, (x, torch.tensor(INPUT_SCALE, dtype=torch.float64)))
        return add_prior(out.squeeze(2), prior_row, self.cfg.mixtures, integer=True, joint=self.cfg.joint)


# --------------------------------------------------------------------------------- float head
# The float head is the integer head without its grids: sigmoid arguments clipped to ±Z_CLIP (beyond
# 12 scales the integer table, in 2^-24 units, has too few levels to keep a shape, so both heads are
# flat there), mixture weights below 2^-17 of the largest dropped (the exp table rounds them to 0), and
# a floor of 2^-40 on every value's probability (the integer frequencies' +1 on a total of ~2^40).
# Without these, training would reward shapes the integer head cannot code (measured: up to 11 bits
# per variable for a narrow stage-2 component outside its bin); with them the two heads agree within
# 0.01 bit per variable on random heads (tests/test_audio_model.py).
Z_CLIP = 12.0
LOG_FLOOR = -40 * math.log(2)
W_CUT = 17 * math.log(2)


def _log_sigmoid(y: torch.Tensor) -> torch.Tensor:
    return -F.softplus(-y)


def _log_mass(a: torch.Tensor, b: torch.Tensor, open_lo: torch.Tensor | bool = False,
              open_hi: torch.Tensor | bool = False) -> torch.Tensor:
    """log(σ(b) − σ(a)) for a ≤ b clipped to ±Z_CLIP (an open end: a = −∞ or b = +∞), stably:
    log σ(b) + log σ(−a) + log(1 − e^(a−b)); a large negative number where the clipped bin is empty."""
    a, b = a.clamp(-Z_CLIP, Z_CLIP), b.clamp(-Z_CLIP, Z_CLIP)
    gap = a - b
    ok = gap < -1e-9
    inner = torch.where(ok, _log_sigmoid(b) + _log_sigmoid(-a) + torch.log(-torch.expm1(torch.where(ok, gap, -1.0))),
                        torch.full_like(a, -1e4))
    return torch.where(torch.as_tensor(open_lo), _log_sigmoid(b), torch.where(torch.as_tensor(open_hi), _log_sigmoid(-a), inner))


def _mixture_log_mass(p: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, k: int,
                      open_lo: torch.Tensor | bool = False, open_hi: torch.Tensor | bool = False) -> torch.Tensor:
    """log of the mixture's mass on [lo, hi] ([-1, 1] units; an open end extends to ±∞). p (rows, 3K, ...),
    lo/hi broadcastable to (rows, 1, ...). Returns (rows, ...)."""
    logit, mu, log_s = p.split(k, dim=1)
    inv_s = torch.exp(-log_s.clamp(min=-7.0))
    return torch.logsumexp(_log_mass((lo - mu) * inv_s, (hi - mu) * inv_s, open_lo, open_hi) + _log_weights(logit), dim=1)


def _log_weights(logit: torch.Tensor) -> torch.Tensor:
    """Mixture log-weights over dim 1, with the components that the integer exp table rounds to 0
    (below 2^-17 of the largest) dropped, as in the integer head."""
    rel = logit - logit.max(1, keepdim=True).values.detach()
    rel = torch.where(rel > -W_CUT, rel, torch.full_like(rel, -1e4))
    return rel - rel.logsumexp(1, keepdim=True)


def _floored(lp: torch.Tensor) -> torch.Tensor:
    return torch.logaddexp(lp, torch.tensor(LOG_FLOOR, dtype=lp.dtype))


def _log_probs(p: torch.Tensor, v: torch.Tensor, k: int, stage: int) -> torch.Tensor:
    """log P(v) of one stage, nats: p (rows, 3K, ...), v digits broadcastable to (rows, 1, ...)."""
    c = v.to(p.dtype) / 127.5 - 1.0
    if stage == 1:   # open outer bins
        lp = _mixture_log_mass(p, c - 1 / 255, c + 1 / 255, k, open_lo=v == 0, open_hi=v == K_DIGIT - 1)
        return _floored(lp) - math.log1p(K_DIGIT * math.exp(LOG_FLOOR))
    lp = _mixture_log_mass(p, c - 1 / 255, c + 1 / 255, k)
    norm = _mixture_log_mass(p, torch.tensor(-1 - 1 / 255), torch.tensor(1 + 1 / 255), k)
    return _floored(lp) - torch.logaddexp(norm, torch.tensor(LOG_FLOOR + math.log(K_DIGIT), dtype=p.dtype))


def log_prob(p: torch.Tensor, v: torch.Tensor, k: int, stage: torch.Tensor | int) -> torch.Tensor:
    """log P(digit) in nats: p (rows, 3K, L) params, v (rows, L) digits 0..255, stage 1 or 2 (an int,
    or a (rows,) tensor). Stage 1: the mixture over 256 classes with open outer bins; stage 2:
    restricted to the 256 values and renormalised. Returns (rows, L)."""
    v = v.unsqueeze(1)
    if isinstance(stage, int):
        return _log_probs(p, v, k, stage)
    return torch.where(stage.view(-1, 1) == 1, _log_probs(p, v, k, 1), _log_probs(p, v, k, 2))


# ------------------------------------------------------------------------------------ joint head
# A joint model (cfg.joint) gives one mixture per variable over its whole 16-bit value u, on stage 2's
# grids without the bin: means in [-1, 1] units of a value (u ↔ u / 127.5 − 1), log-scales of a value.
# Its code still has two digits, so that every distribution has 256 entries: the high byte, the mixture
# integrated over the 256 bins of width 256 (outer bins open, as in stage 1), then the low byte, the
# mixture restricted to the high byte's bin, which is stage 2's head with every mean moved into the bin
# (`in_bin`: μ − 256·hi, clamped to stage 2's range, as the integer head must). Both digits come from
# one network call that sees the whole values of every known sample: in the dyadic order a group's
# high bytes are then predicted from exact neighbours, not from the centres of their high-byte bins
# (measured with the prior alone on validation audio: 2.5–2.9% fewer bits than two stages of 256,
# benchmarks/audio_digits.py).
def in_bin(p: torch.Tensor, hi: torch.Tensor, k: int) -> torch.Tensor:
    """Joint float params (rows, 3K, ...) -> stage-2 params of the low byte given the high byte hi
    (rows, ...): the means relative to the bin's first value and the log-scales clamped to the integer
    stage-2 head's ranges."""
    logit, mu, logs = p.split(k, dim=1)
    mu = (mu - hi.unsqueeze(1).to(p.dtype) * (256 / 127.5)).clamp(MU_MIN / MID16 - 1.0, MU_MAX / MID16 - 1.0)
    return torch.cat([logit, mu, logs.clamp(max=LOGS_MAX / LOGS_UNIT)], 1)


def int_in_bin(q: torch.Tensor, hi: torch.Tensor, k: int) -> torch.Tensor:
    """`in_bin` on the integer grids: q (n, 3K) joint integer params, hi (n,) -> (n, 3K)."""
    q = torch.as_tensor(np.asarray(q, dtype=np.int64)).clone()
    q[:, k:2 * k] = (q[:, k:2 * k] - 4096 * torch.as_tensor(np.asarray(hi, dtype=np.int64)).view(-1, 1)).clamp(MU_MIN, MU_MAX)
    q[:, 2 * k:] = q[:, 2 * k:].clamp(max=LOGS_MAX)
    return q


_HI_EDGES = (256 * torch.arange(K_DIGIT + 1, dtype=torch.float64) - 0.5) / 127.5 - 1.0  # high-byte bins' edges


def hi_log_prob(p: torch.Tensor, hi: torch.Tensor, k: int) -> torch.Tensor:
    """log P(high byte) of joint params (rows, 3K, ...), hi broadcastable to (rows, 1, ...), nats."""
    lo_edge = (256 * hi.to(p.dtype) - 0.5) / 127.5 - 1.0
    lp = _mixture_log_mass(p, lo_edge, lo_edge + 256 / 127.5, k, open_lo=hi == 0, open_hi=hi == K_DIGIT - 1)
    return _floored(lp) - math.log1p(K_DIGIT * math.exp(LOG_FLOOR))


def joint_log_prob(p: torch.Tensor, hi: torch.Tensor, lo: torch.Tensor, k: int) -> torch.Tensor:
    """log P(value) = log P(high byte) + log P(low byte | high byte) of joint params p (rows, 3K, L), nats;
    hi, lo: (rows, L) bytes. Returns (rows, L)."""
    return hi_log_prob(p, hi.unsqueeze(1), k) + _log_probs(in_bin(p, hi, k), lo.unsqueeze(1), k, 2)


_EDGES = (torch.arange(K_DIGIT + 1, dtype=torch.float64) - 0.5) / 127.5 - 1.0  # v − ½ for v = 0 … 256, [-1, 1] units


def float_probabilities(p: torch.Tensor, k: int, stage: int, edges: torch.Tensor = _EDGES) -> np.ndarray:
    """(n, 256) float64 distributions of one stage from float params (n, 3K): the training loss's
    distribution (clipped arguments, dropped weights, floor), from the mixture CDF at the 257 bin edges
    in float64, 256 rows at a time (to stay in cache). Identical on one machine with one thread count
    (the float path only)."""
    out = torch.empty(len(p), K_DIGIT, dtype=torch.float64)
    for i in range(0, len(p), 256):
        logit, mu, log_s = p[i:i + 256].double().split(k, dim=1)
        z = (edges - mu[:, :, None]).mul_(torch.exp(-log_s.clamp(min=-7.0))[:, :, None]).clamp_(-Z_CLIP, Z_CLIP)
        cdf = z.sigmoid_()                                                       # (n, K, 257)
        if stage == 1:  # open outer bins
            cdf[:, :, 0], cdf[:, :, -1] = 0.0, 1.0
        prob = torch.bmm(_log_weights(logit).exp()[:, None, :], cdf.diff(dim=2))[:, 0] + math.exp(LOG_FLOOR)
        out[i:i + 256] = prob / prob.sum(1, keepdim=True)
    return out.numpy()


# ------------------------------------------------------------------------------- integer head
# The audio head needs finer CDFs than the image head (a stage-2 bin spans 256 values of a 16-bit
# mixture): the sigmoid argument is kept in 1/64 with 8 more fractional bits, and the sigmoid table
# (2^-24 units, ±12) is interpolated linearly, in int64. exact.py's grids for logits, means and
# log-scales and its exp table are shared; the inverse-scale table is this head's own (1/64 units).
SIG_BITS = 24              # sigmoid table in units of 2^-24
Z_UNIT = 64                # sigmoid arguments in 1/64 (before the FRAC_BITS extra bits)
SIG_ZMAX = 12 * Z_UNIT
FRAC_BITS = 8              # fractional bits of the sigmoid argument kept for interpolation


@lru_cache(maxsize=2)
def inverse_scale_table(top: int = LOGS_MAX) -> np.ndarray:
    """round(2^INV_SHIFT · Z_UNIT · e^(−j/16) / 2040) for log-scales j = LOGS_MIN … top (int64)."""
    getcontext().prec = 40
    return np.array([int((Decimal(2 ** INV_SHIFT * Z_UNIT) * (Decimal(-j) / LOGS_UNIT).exp()
                          / (Decimal("127.5") * MU_UNIT)).to_integral_value())
                     for j in range(LOGS_MIN, top + 1)], dtype=np.int64)


@lru_cache(maxsize=1)
def sigmoid_table() -> np.ndarray:
    """round(2^24 · σ(z / 64)) for z = −12·64 … 12·64, int64, correctly rounded with `decimal`."""
    getcontext().prec = 40
    one = Decimal(1)
    return np.array([int((one / (one + (Decimal(-z) / Z_UNIT).exp()) * 2 ** SIG_BITS).to_integral_value())
                     for z in range(-SIG_ZMAX, SIG_ZMAX + 1)], dtype=np.int64)


def _sigma(d: np.ndarray, inv: np.ndarray) -> np.ndarray:
    """2^24·σ at distances d (1/16 of a value) for inverse-scale entries inv: int64, monotone in d.

    z = d·inv / 2^20 in 1/64 (kept to 1/2^8 of that), clipped to ±12, then linear interpolation."""
    sig = sigmoid_table()
    zf = np.clip((d * inv + (1 << (INV_SHIFT - FRAC_BITS - 1))) >> (INV_SHIFT - FRAC_BITS),
                 -SIG_ZMAX << FRAC_BITS, SIG_ZMAX << FRAC_BITS)
    zi, frac = (zf >> FRAC_BITS) + SIG_ZMAX, zf & ((1 << FRAC_BITS) - 1)
    lo = sig[zi]
    hi = sig[np.minimum(zi + 1, len(sig) - 1)]
    return lo + (((hi - lo) * frac + (1 << (FRAC_BITS - 1))) >> FRAC_BITS)


def _sigma_saturating(d: np.ndarray, inv: np.ndarray) -> np.ndarray:
    """_sigma(d, inv) (inv broadcast to d's shape), computed in full only where the argument is inside
    the table: elsewhere it is the table's first or last entry, as _sigma's clipping makes it."""
    zf = (d * inv + (1 << (INV_SHIFT - FRAC_BITS - 1))) >> (INV_SHIFT - FRAC_BITS)
    top = SIG_ZMAX << FRAC_BITS
    sig = sigmoid_table()
    out = np.where(zf >= top, sig[-1], sig[0])
    inside = np.abs(zf) < top
    out[inside] = _sigma(d[inside], np.broadcast_to(inv, d.shape)[inside])
    return out


_SPAN2 = 321  # |v − ⌊μ/16⌋| over the 257 edges v = 0 … 256 and μ in [MU_MIN, MU_MAX]


@lru_cache(maxsize=1)
def _edge_table() -> tuple[torch.Tensor, torch.Tensor]:
    """_sigma(e − μ) for every (log-scale, μ mod 16, v − ⌊μ/16⌋) with edges e = 16v − 8, laid out so that
    the 257 edges v = 0 … 256 of one component are contiguous: float64 holding integers ≤ 2^24 (13 MB)."""
    _, _, ex = exact.tables()
    inv = inverse_scale_table()
    m = np.arange(-_SPAN2, _SPAN2 + 1, dtype=np.int64)
    r = np.arange(MU_UNIT, dtype=np.int64)
    d = MU_UNIT * m[None, :] - MU_UNIT // 2 - r[:, None]
    table = _sigma(d[None], inv[:, None, None]).astype(np.float64).reshape(-1)
    return torch.from_numpy(table), torch.from_numpy(ex.astype(np.float64))


def int_probabilities(q: np.ndarray | torch.Tensor, k: int, stage: int) -> np.ndarray:
    """(n, 256) float64 distributions of one stage from integer head outputs q (n, 3K), bit-identical
    everywhere. Mixture CDF at the edges e_v = v − ½ (v = 0 … 256): C_v = Σ_j W_j·_sigma(e_v − μ_j)
    (W: exp-table weights ≤ 2^16; exact.py's grids for logits, means, log-scales); stage 1 opens the
    outer bins (C_0 = 0, C_256 = Σ W·2^24), stage 2 keeps them closed (the mixture restricted to the
    known bin). Frequencies C_{v+1} − C_v + 1. Float64 holds every integer exactly (< 2^48 for K ≤ 256),
    so the sum over components is exact in any order; the final division is one IEEE operation."""
    table, ex = _edge_table()
    q = torch.as_tensor(np.asarray(q, dtype=np.int64))
    logit, mu, logs = q[:, :k], q[:, k:2 * k], q[:, 2 * k:]
    w = ex[(logit.max(1, keepdim=True).values - logit).clamp(max=EXP_RANGE)]       # (n, K)
    a = torch.div(mu, MU_UNIT, rounding_mode="floor")
    base = ((logs - LOGS_MIN) * MU_UNIT + (mu - MU_UNIT * a)) * (2 * _SPAN2 + 1) + _SPAN2 - a
    rows = table.unfold(0, K_DIGIT + 1, 1)                        # view: row i = table[i : i + 257]
    cdf = rows[base[:, 0]] * w[:, :1]                                               # (n, 257)
    for j in range(1, k):  # one (n, 257) gather per component: 1.4x faster than bmm over an (n, K, 257) one
        cdf.addcmul_(rows[base[:, j]], w[:, j:j + 1])
    if stage == 1:
        cdf[:, 0] = 0.0
        cdf[:, -1] = w.sum(1) * float(1 << SIG_BITS)
    freq = torch.diff(cdf, dim=1) + 1
    return (freq / freq.sum(1, keepdim=True)).numpy()


def int_hi_probabilities(q: np.ndarray | torch.Tensor, k: int) -> np.ndarray:
    """(n, 256) float64 distributions of a joint model's high bytes from its integer head outputs q
    (n, 3K), bit-identical everywhere: int_probabilities' formula on the edges 256·h − ½ (h = 0 … 256),
    outer bins open, log-scales up to JOINT_LOGS_MAX. int64 throughout, 1024 rows at a time."""
    _, _, ex = exact.tables()
    inv = inverse_scale_table(JOINT_LOGS_MAX)
    q = np.asarray(q, dtype=np.int64)
    edges = np.arange(K_DIGIT + 1, dtype=np.int64) * (256 * MU_UNIT) - MU_UNIT // 2
    out = np.empty((len(q), K_DIGIT), dtype=np.float64)
    for i in range(0, len(q), 1024):
        logit, mu, logs = q[i:i + 1024, :k], q[i:i + 1024, k:2 * k], q[i:i + 1024, 2 * k:]
        w = ex[np.minimum(logit.max(1, keepdims=True) - logit, EXP_RANGE)]
        sig = _sigma_saturating(edges[None, None, :] - mu[:, :, None], inv[logs - LOGS_MIN][:, :, None])
        # float64 holds the integer products and sums exactly (< 2^48), in any order
        cdf = np.matmul(w.astype(np.float64)[:, None, :], sig.astype(np.float64))[:, 0]
        cdf[:, 0], cdf[:, -1] = 0, w.sum(1) * float(1 << SIG_BITS)
        freq = np.diff(cdf, axis=1) + 1
        out[i:i + 1024] = freq / freq.sum(1, keepdims=True)
    return out


def reference_int_probabilities(q: np.ndarray, k: int, stage: int) -> np.ndarray:
    """The readable definition of int_probabilities (numpy int64, one formula, no layout tricks)."""
    _, _, ex = exact.tables()
    inv = inverse_scale_table()
    q = np.asarray(q, dtype=np.int64)
    logit, mu, logs = q[:, :k], q[:, k:2 * k], q[:, 2 * k:]
    w = ex[np.minimum(logit.max(1, keepdims=True) - logit, EXP_RANGE)]
    edges = np.arange(K_DIGIT + 1, dtype=np.int64) * MU_UNIT - MU_UNIT // 2
    sig = _sigma(edges[None, None, :] - mu[:, :, None], inv[logs - LOGS_MIN][:, :, None])
    cdf = np.einsum("nk,nkv->nv", w, sig)
    if stage == 1:
        cdf[:, 0], cdf[:, -1] = 0, w.sum(1) << SIG_BITS
    freq = np.diff(cdf, axis=1) + 1
    return freq / freq.sum(1, keepdims=True)


def dequantise(q: torch.Tensor, k: int) -> torch.Tensor:
    """Integer head (rows, 3K, ...) -> float params in ardm.py conventions (logits, means in [-1, 1],
    log-scales), the values FakeOps' head produces."""
    logit, mu, logs = q.split(k, dim=1)
    return torch.cat([logit / LOGIT_UNIT, mu / (127.5 * MU_UNIT) - 1.0, logs / LOGS_UNIT], dim=1)


# -------------------------------------------------------------------------------------- training
def random_order_masks(B: int, D: int, t: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, D) bool: True at the t[b] first positions of a uniformly random order per example."""
    rank = torch.rand(B, D, generator=generator).argsort(1).argsort(1)
    return rank < t.view(B, 1)


def dyadic_masks(B: int, C: int, L: int, t: torch.Tensor, generator: torch.Generator | None = None,
                 split: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks of the dyadic order family (ardm.dyadic_groups over frames, every channel of a frame in its
    group; split: the family's halved levels), for t[b] known variables of D = C·L: (known, current), both (B, C, L)
    bool; `current` marks the unknown positions of the group that σ(t) belongs to, the positions
    exchangeable with it."""
    groups = torch.from_numpy(dyadic_groups(L, split=split)).view(1, 1, L).expand(B, C, L)
    key = groups + torch.rand(B, C, L, generator=generator)                    # group first, random within
    rank = key.reshape(B, C * L).argsort(1).argsort(1).view(B, C, L)
    known = rank < t.view(B, 1, 1)
    now = revealing_group(groups[0, 0], t, C)
    return known, ~known & (groups == now.view(B, 1, 1))


# The head parameters the integer head can express: means within 64 values of the digit range, log-scales
# in [LOGS_MIN, LOGS_MAX] / LOGS_UNIT. A stage-2 component far outside its bin (or absurdly wide) gives
# the loss no gradient at all (every clipped bin is empty, the floor decides), and training stalls at
# exactly 8 bits for good; the penalty pulls such parameters back where the loss can see them.
MU_RANGE = MU_MAX / (127.5 * MU_UNIT) - 1.0
LOGS_RANGE = (LOGS_MIN / LOGS_UNIT, LOGS_MAX / LOGS_UNIT)


def range_penalty(p: torch.Tensor, k: int) -> torch.Tensor:
    """Mean squared excess of the head parameters (rows, 3K, ...) over the integer head's ranges."""
    _, mu, log_s = p.split(k, dim=1)
    excess = (F.relu(mu.abs() - MU_RANGE) + F.relu(log_s - LOGS_RANGE[1]) + F.relu(LOGS_RANGE[0] - log_s))
    return excess.square().mean()


def training_loss(net: nn.Module, u: torch.Tensor, stage: torch.Tensor, generator: torch.Generator | None = None,
                  t: torch.Tensor | None = None, penalty: bool = False
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Order-agnostic ARDM loss for a batch of 16-bit segments.

    u: (B, C, L) int64 values 0..65535 (sample + 32768); stage: (B,) 1 or 2 (ignored by a joint model:
    its one stage codes whole values, `joint_log_prob`); t: (B,) optional numbers of known variables of
    the stage (default t ~ U{0..D−1}, D = C·L). The net takes features·INPUT_SCALE.
    Returns (loss: scalar, the bound in bits per variable averaged over the batch (with `penalty`, plus
             range_penalty: what training minimises); frac: (B,) t/D;
             lt: (B,) mean nats per masked variable at that t — in the dyadic family per unknown variable of
             σ(t)'s group — each an unbiased term of the stage's bound).
    """
    B, C, L = u.shape
    D = C * L
    if t is None:
        t = (torch.rand(B, generator=generator) * D).long()
    if net.cfg.order in DYADIC_FAMILIES:
        m, scored = dyadic_masks(B, C, L, t, generator, net.cfg.split)
    else:
        m = random_order_masks(B, D, t, generator).view(B, C, L)
        scored = ~m
    hi, lo = u >> 8, u & 255
    fi = (255 * t) // D
    side = segment_side(u, net.cfg) if net.cfg.interp else None
    if net.cfg.joint:
        inp = features(hi, m, lo, m, fi, torch.full((B,), 2), net.cfg, side) * INPUT_SCALE
        p = net(inp)[:, :, :L]                                                  # (B·C, 3K, L)
        hi_r, lo_r = hi.reshape(B * C, L), lo.reshape(B * C, L)
        nll = -joint_log_prob(p, hi_r, lo_r, net.cfg.mixtures).view(B, C, L)
        lt = (nll * scored).sum((1, 2)) / scored.sum((1, 2)).float()
        loss = lt.mean() / math.log(2)
        if penalty:
            # log-scales only: a mean may well lie beyond the target's bin (in_bin clamps it the same way
            # in both heads), the high byte's term keeps it where the loss can see it
            k = net.cfg.mixtures
            loss = loss + range_penalty(torch.cat([p[:, :k], torch.zeros_like(p[:, k:2 * k]), p[:, 2 * k:]], 1), k)
        return loss, t.float() / D, lt.detach()
    s1 = (stage == 1).view(B, 1, 1)
    mh = torch.where(s1, m, torch.ones_like(m))
    ml = torch.where(s1, torch.zeros_like(m), m)
    inp = features(hi, mh, lo, ml, fi, stage, net.cfg, side) * INPUT_SCALE
    p = net(inp)[:, :, :L]                                                      # (B·C, 3K, L)
    target = torch.where(s1, hi, lo).reshape(B * C, L)
    rows_stage = stage.repeat_interleave(C)
    nll = -log_prob(p, target, net.cfg.mixtures, rows_stage).view(B, C, L)
    lt = (nll * scored).sum((1, 2)) / scored.sum((1, 2)).float()
    loss = lt.mean() / math.log(2)
    if penalty:
        loss = loss + range_penalty(p, net.cfg.mixtures)
    return loss, t.float() / D, lt.detach()


def segment_side(u: torch.Tensor, cfg: AudioNetConfig | None = None) -> interp.Side:
    """The encoder's side information (interp.side, as a model of config cfg chooses it: its coefficient
    price and taps per side; None: the defaults) of segments u (B, C, L) of 16-bit values 0..65535, as
    tensors (B, C, …)."""
    B, C, L = u.shape
    cfg = cfg or AudioNetConfig()
    filters, levels = interp.side((u.to(torch.int64) - 32768).reshape(B * C, L), cfg.coef_bits, cfg.tap_choices,
                                  cfg.split, cfg.symmetric)
    return interp.Side(filters.view(B, C, interp.group_count(cfg.split), -1), levels.view(B, C, -1))


# ------------------------------------------------------------------------------------------- model
@dataclass
class AudioModel:
    """What the audio codec needs: a float `net` or an int-exact `exact` net, and per net-coded stage
    its loss curve (millibits per variable on a grid of revealed fractions, for schedule.step_boundaries)."""
    cfg: AudioNetConfig
    curves: tuple[tuple[int, ...], ...]
    net: AudioNet | None = None
    exact: ExactAudioNet | None = None
    default_budget: int = 20
    id: str = "local"
    sha256: str = ""                                   # of the weights file, for a shipped model
    info: dict = field(default_factory=dict, repr=False)  # its manifest entry

    media = "audio"

    @property
    def arithmetic(self) -> str:
        return "int-exact" if self.exact is not None else "float32"

    @property
    def hash_prefix(self) -> bytes:
        return bytes.fromhex(self.sha256[:8])  # the 4-byte prefix stored in .ardm files

    @torch.inference_mode()
    def params(self, inp: torch.Tensor) -> torch.Tensor:
        """`features(...)` (rows, F, Lp) -> head outputs (rows, 3K, Lp): integers (exact) or floats."""
        if self.exact is not None:
            return self.exact(inp)
        return self.net(inp * INPUT_SCALE)

    def probabilities(self, params: torch.Tensor, stage: int, hi: np.ndarray | None = None) -> np.ndarray:
        """(n, 256) float64 distributions of a stage's digits from the head outputs of n variables. A joint
        model's: stage 1, the high bytes; stage 2, the low bytes given the high bytes hi (n,)."""
        k = self.cfg.mixtures
        if self.cfg.joint:
            if stage == 1:
                if self.exact is not None:
                    return int_hi_probabilities(params, k)
                return float_probabilities(params, k, 1, _HI_EDGES)
            if self.exact is not None:
                params = int_in_bin(params, hi, k)
            else:
                params = in_bin(params, torch.as_tensor(np.asarray(hi, dtype=np.int64)), k)
        if self.exact is not None:
            return int_probabilities(params, k, stage)
        return float_probabilities(params, k, stage)
