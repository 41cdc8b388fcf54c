"""The image prior: an exact integer prediction of every subpixel from its known neighbours, which an
image net with `NetConfig.prior` corrects instead of predicting means and scales outright.

Why: a probe on validation crops (session 6) found that a plain predictor beats the trained img4 net
by far on the colour planes coded after green: at the finest quincunx level R given G costs 1.56 bits
per subpixel with "G here + mean of (R − G) over the 4 neighbours" and a Laplace scale from the
neighbours' spread, 2.68 bits with img4's net; green itself 3.26 vs 3.23. The net keeps everything it
sees and adds corrections, so it can only gain on what the prior knows.

For subpixel (c, y, x), in integers only (identical on every machine):
- **Neighbour ring.** The 8 positions at (±d, 0), (0, ±d), (±d, ±d) for the smallest d in DISTANCES
  with at least one known neighbour. In a quincunx order that is exactly the lattice the current group
  interpolates from (its diagonal or axis neighbours at the group's spacing).
- **Spatial mean.** The mean of channel c over the known ring, mean16 = round(16·Σv / n) (in 1/16 of a
  value, the head's mean grid MU_UNIT); the spread16 = round(Σ|16·v − mean16| / n).
- **Colour.** For R and B (channels 0 and 2) where green at (y, x) is known and some ring position
  knows both: 16·G(y, x) + round(16·Σ(v − G) / n) over those positions, and the spread of (v − G).
- **Nothing known** within the largest ring: mid-scale (127.5) with a wide scale; for R and B with
  green known here but no ring position knowing both, green's value with a moderate scale.
- **Lines (version 2).** For d in LINE_DISTANCES, at unknown subpixels where at least one of the ring's 4 lines through the
  position (vertical, horizontal, both diagonals) has both neighbours a, b known, the spatial mean is
  replaced by an interpolation along the lines: per complete line the cubic (−a₃ + 9a + 9b − b₃)/16 where
  the taps a₃, b₃ at 3d are known too, else (a + b)/2; lines weighted by ⌊2²⁰ / (g + 2)⌋ with the line's
  gradient g = 2|a − b| + |a₃ − a| + |b₃ − b| (cubic) or 4|a − b|, so the flattest direction dominates.
  Probe on validation crops (session 7, green at the finest quincunx level, prior alone): 3.277 → 3.198
  bits on the training photos' scale, 2.032 → 1.816 on 1–3× upscaled ones (native-resolution photos).
- **Blue from red (version 3).** Where green and red are known at the pixel, blue's colour mean (after the
  above) moves by round(5·(16·R − red's prior mean16) / 16), clamped to the value range: the colour
  planes' misses correlate. Probe (finest two quincunx levels, prior alone): blue 1.407 → 1.328 and
  2.023 → 1.909 bits; λ = 5/16 was the best of 1/8 … 5/16 … 1/2 there.
- **Scale.** s = 0.6·spread + 0.4 values, as a log-scale on the head's grid (1/16 of ln s, s in [−1, 1]
  units, LOGS_UNIT): a threshold table computed with `decimal` at import, compared in int64.

`prior(v, known, version)` returns the mean and log-scale on the head's grids and two feature rows per channel
for the net (the mean on the value scale of the other inputs, and the log-scale).
"""
from __future__ import annotations

from decimal import ROUND_CEILING, Decimal, localcontext

import torch
import torch.nn.functional as F

DISTANCES = (1, 2, 4, 8, 16, 32)
GREEN = 1                      # the reference channel of the colour prediction (coded first in quincunx-grb)
NOTHING_KNOWN_SPREAD16 = 16 * 64
COLOUR_ONLY_SPREAD16 = 16 * 16
# the head's integer grids (exact.py codes with them; defined here, below it, so the prior can use them)
MU_UNIT = 16                   # means in 1/16 of a value: mu_q = 16·(value position)
MU_MIN, MU_MAX = -64 * MU_UNIT, (255 + 64) * MU_UNIT
LOGS_UNIT = 16                 # log-scales (of [-1, 1] units) in 1/16
LOGS_MIN, LOGS_MAX = -7 * LOGS_UNIT, 3 * LOGS_UNIT
MID16 = 2040                   # value 127.5 on the mean grid: the float mean μ ∈ [−1, 1] is mu_q / 2040 − 1
VERSIONS = (1, 2, 3)           # 1 ring means (img6); 2 + lines; 3 + blue from red (NetConfig.prior names one)
BLUE_FROM_RED = 5              # version 3: blue's colour mean moves by 5/16 of red's miss at the pixel
LINE_DISTANCES = (1, 2, 4, 8)  # version 2 interpolates along lines at these ring distances (taps at 3d ≤ _PAD)
LINES = ((1, 6), (3, 4), (0, 7), (2, 5))  # opposite ring positions (_ring's order): vertical, horizontal, diagonals
LINE_WEIGHT = 1 << 20
_LINE_WEIGHTS = torch.div(LINE_WEIGHT, torch.arange(4 * 255 + 1) + 2, rounding_mode="floor")  # by gradient g


def _log_thresholds() -> torch.Tensor:
    """T[i]: the smallest integer 80·s (s the scale in values) whose log-scale grid point is
    LOGS_MIN + i + 1 or more: round(16·ln(s / 127.5)) reaches j + 1 where s ≥ 127.5·e^((j + 0.5)/16)."""
    with localcontext() as ctx:
        ctx.prec = 40
        return torch.tensor([int((Decimal(10200) * ((Decimal(j) + Decimal("0.5")) / LOGS_UNIT).exp())
                                 .to_integral_value(rounding=ROUND_CEILING))
                             for j in range(LOGS_MIN, LOGS_MAX)], dtype=torch.int64)


_THRESHOLDS = _log_thresholds()


def log_scale(spread16: torch.Tensor) -> torch.Tensor:
    """Log-scale grid points (int64) of spreads in 1/16 of a value: round(16·ln((0.6·spread + 0.4)/127.5))."""
    val = 3 * spread16.to(torch.int64) + 32  # 80·s = 80·(0.6·spread16/16 + 0.4)
    return LOGS_MIN + torch.bucketize(val, _THRESHOLDS.to(val.device), right=True)


def _ring(t: torch.Tensor, d: int) -> torch.Tensor:
    """The 8 ring neighbours at distance d of every position: (8, B, C, H, W), zero outside the image."""
    H, W = t.shape[-2:]
    p = F.pad(t, (d, d, d, d))
    return torch.stack([p[..., d + dy:d + dy + H, d + dx:d + dx + W]
                        for dy in (-d, 0, d) for dx in (-d, 0, d) if dy or dx])


def _round_div(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """round(num / den) for den > 0, halves up, in integers."""
    return torch.div(2 * num + den, 2 * den, rounding_mode="floor")


def _line_estimate(a, b, a3, b3, ka, kb, ka3, kb3):
    """Per line: (weight, 16·estimate) from neighbours a, b at ±d and taps a3, b3 at ±3d (int64, any shape;
    k* their known flags): weight 0 unless a and b are known."""
    cubic = (ka3 * kb3).bool()
    s, dab = a + b, (a - b).abs()
    e16 = 8 * s + torch.where(cubic, s - a3 - b3, 0)
    g = 2 * dab + torch.where(cubic, (a3 - a).abs() + (b3 - b).abs(), 2 * dab)
    return ka * kb * _LINE_WEIGHTS.to(g.device)[g], e16


def _line_mean(terms) -> tuple[torch.Tensor, torch.Tensor]:
    """(16·weighted mean clamped to the value range, whether any line was complete) of (weight, e16) pairs."""
    num = sum(w * e for w, e in terms)
    den = sum(w for w, _ in terms)
    return _round_div(num, den.clamp(min=1)).clamp(0, 255 * MU_UNIT), den > 0


def reference_prior(v: torch.Tensor, known: torch.Tensor, version: int = 1
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`prior`, written plainly (every ring as a stack of 8 shifted copies, every distance over the whole
    plane): the definition that `prior` must reproduce exactly (tests/test_prior.py)."""
    assert version in VERSIONS, version
    k = known.to(torch.int64)
    x = v.to(torch.int64) * k
    mean16 = torch.full_like(x, MID16)
    spread16 = torch.full_like(x, NOTHING_KNOWN_SPREAD16)
    todo = torch.ones_like(x, dtype=torch.bool)
    for d in DISTANCES:  # spatial: the nearest ring with anything known
        kr, xr = _ring(k, d), _ring(x, d)
        n = kr.sum(0)
        hit = todo & (n > 0)
        if hit.any():
            m = _round_div(16 * xr.sum(0), n.clamp(min=1))
            s = _round_div(((16 * xr - m) * kr).abs().sum(0), n.clamp(min=1))
            mean16, spread16 = torch.where(hit, m, mean16), torch.where(hit, s, spread16)
            if version >= 2 and d in LINE_DISTANCES:
                k3, x3 = _ring(k, 3 * d), _ring(x, 3 * d)
                est, full = _line_mean([_line_estimate(xr[i], xr[j], x3[i], x3[j], kr[i], kr[j], k3[i], k3[j])
                                        for i, j in LINES])
                mean16 = torch.where(hit & full & (k == 0), est, mean16)
            todo &= ~hit
        if not todo.any():
            break
    if x.shape[1] == 3:  # colour: R and B from green here and the (channel − green) of the ring
        g, kg = x[:, GREEN:GREEN + 1], k[:, GREEN:GREEN + 1]
        todo = kg.bool().expand_as(x).clone()
        todo[:, GREEN] = False
        for d in DISTANCES:
            kr = _ring(k * kg, d)                     # ring positions knowing the channel and green
            dr = _ring((x - g) * k * kg, d)
            n = kr.sum(0)
            hit = todo & (n > 0)
            if hit.any():
                m = _round_div(16 * dr.sum(0), n.clamp(min=1))
                s = _round_div(((16 * dr - m) * kr).abs().sum(0), n.clamp(min=1))
                mean16 = torch.where(hit, (16 * g + m).clamp(0, 255 * MU_UNIT), mean16)
                spread16 = torch.where(hit, s, spread16)
                todo &= ~hit
            if not todo.any():
                break
        # green here but no ring position knowing both: green itself, with a moderate scale
        mean16 = torch.where(todo, (16 * g).expand_as(x), mean16)
        spread16 = torch.where(todo, torch.full_like(x, COLOUR_ONLY_SPREAD16), spread16)
        if version >= 3:
            mean16 = _blue_from_red(mean16, x, k)
    return _finish(mean16, spread16)


def blue_shift(miss16):
    """round(5·miss16 / 16), halves up (numpy or torch integers): how far blue's mean moves (1/16 of a value)
    for red's miss 16·R − red's mean16 (prior version 3; lattice.py)."""
    return (2 * BLUE_FROM_RED * miss16 + 16) // 32


def _blue_from_red(mean16: torch.Tensor, x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Version 3: where green and red are known at the pixel, blue's mean plus 5/16 of red's miss."""
    ok = (k[:, GREEN] * k[:, 0]).bool()
    moved = (mean16[:, 2] + blue_shift(16 * x[:, 0] - mean16[:, 0])).clamp(0, 255 * MU_UNIT)
    return torch.cat([mean16[:, :2], torch.where(ok, moved, mean16[:, 2]).unsqueeze(1)], 1)


def _finish(mean16: torch.Tensor, spread16: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    logs = log_scale(spread16)
    rows = torch.cat([torch.div(mean16.to(torch.int64), 8, rounding_mode="floor") - 255, 2 * logs + 96], 1)
    return mean16.to(torch.int64), logs, rows.clamp(-255, 255).to(torch.int32)


_PAD = DISTANCES[-1]
_OFFSETS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]


def _ring_sum(tp: torch.Tensor, d: int, H: int, W: int) -> torch.Tensor:
    """Σ over the 8 ring positions at distance d, for a plane padded by _PAD: a separable 3×3 sum on the
    lattice of spacing d, less the centre."""
    P = _PAD
    r = tp[..., P - d:P - d + H, :] + tp[..., P:P + H, :] + tp[..., P + d:P + d + H, :]
    return r[..., P - d:P - d + W] + r[..., P:P + W] + r[..., P + d:P + d + W] - tp[..., P:P + H, P:P + W]


def _fill(mean16, spread16, todo, vp, kp, d, H, W, base=None):
    """Where todo and the ring at distance d knows something: the ring's mean (plus 16·base) and spread.
    vp, kp: padded values (already multiplied by kp) and known flags. The spreads are gathered for the
    hit positions when they are few, computed on the whole plane when they are many (the same integers)."""
    n = _ring_sum(kp, d, H, W)
    hit = todo & (n > 0)
    hits = int(hit.sum())
    if not hits:
        return todo
    P = _PAD
    if 4 * hits > hit.numel():  # dense: whole-plane shifted slices
        nc = n.clamp(min=1)
        m = _round_div(16 * _ring_sum(vp, d, H, W), nc)
        dev = torch.zeros_like(m)
        for dy, dx in _OFFSETS:
            ys, xs = P + dy * d, P + dx * d
            dev += (16 * vp[..., ys:ys + H, xs:xs + W] - m).abs() * kp[..., ys:ys + H, xs:xs + W]
        if base is not None:
            m = (16 * base + m).clamp(0, 255 * MU_UNIT)
        mean16.copy_(torch.where(hit, m, mean16))
        spread16.copy_(torch.where(hit, _round_div(dev, nc), spread16))
        return todo & ~hit
    idx = hit.nonzero(as_tuple=True)
    nh = n[idx]
    m = _round_div(16 * _ring_sum(vp, d, H, W)[idx], nh)
    flat_v, flat_k = vp.reshape(-1), kp.reshape(-1)
    Hp, Wp = vp.shape[-2:]
    b, c, y, x = idx
    centre = ((b * vp.shape[1] + c) * Hp + y + P) * Wp + x + P
    dev = torch.zeros_like(m)
    for dy, dx in _OFFSETS:
        at = centre + (dy * d) * Wp + dx * d
        dev += (16 * flat_v[at] - m).abs() * flat_k[at]
    mean16[idx] = m if base is None else (16 * base[idx] + m).clamp(0, 255 * MU_UNIT)
    spread16[idx] = _round_div(dev, nh)
    return todo & ~hit


def _lines(mean16, hit, vp, kp, d):
    """Version 2: where hit (unknown subpixels served at distance d), the line interpolation at distance d replaces the ring mean (gathered at the
    hit positions; vp, kp padded by _PAD as in _fill)."""
    idx = hit.nonzero(as_tuple=True)
    if not len(idx[0]):
        return
    P, (Hp, Wp) = _PAD, vp.shape[-2:]
    b, c, y, x = idx
    centre = ((b * vp.shape[1] + c) * Hp + y + P) * Wp + x + P
    flat_v, flat_k = vp.reshape(-1), kp.reshape(-1)
    terms = []
    for i, j in LINES:
        (dy, dx) = _OFFSETS[i]
        at = [centre + (f * dy * d) * Wp + f * dx * d for f in (-1, 1, -3, 3)]
        terms.append(_line_estimate(*(flat_v[a].long() for a in at), *(flat_k[a].long() for a in at)))
    est, full = _line_mean(terms)
    mean16[b[full], c[full], y[full], x[full]] = est[full].to(mean16.dtype)


def prior(v: torch.Tensor, known: torch.Tensor, version: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """v, known: (B, C, H, W) values 0..255 (read only where known) and 0/1; version: VERSIONS.

    Returns (mean16, logs, rows): the prior mean on the head's mean grid (1/16 of a value, int64), its
    log-scale on the log-scale grid (int64), both (B, C, H, W), and the net's feature rows (B, 2C, H, W)
    int32 in [−255, 255]: per channel the mean as 2·value − 255, then 2·log-scale + 96.
    Ring sums are separable; each position's spread is gathered once, at the distance that serves it."""
    B, C, H, W = v.shape
    k = known.to(torch.int32)
    x = v.to(torch.int32) * k
    pad = (_PAD,) * 4
    xp, kp = F.pad(x, pad), F.pad(k, pad)
    mean16 = torch.full_like(x, MID16)
    spread16 = torch.full_like(x, NOTHING_KNOWN_SPREAD16)
    todo = torch.ones_like(x, dtype=torch.bool)
    assert version in VERSIONS, version
    lines = k == 0  # version 2's line interpolation: unknown subpixels that the colour prior will not replace
    if C == 3:
        lines &= ~k[:, GREEN:GREEN + 1].bool() | (torch.arange(3, device=k.device) == GREEN).view(1, 3, 1, 1)
    for d in DISTANCES:
        was, todo = todo, _fill(mean16, spread16, todo, xp, kp, d, H, W)
        if version >= 2 and d in LINE_DISTANCES:
            _lines(mean16, was & ~todo & lines, xp, kp, d)
        if not todo.any():
            break
    if C == 3:
        g, kg = x[:, GREEN:GREEN + 1], k[:, GREEN:GREEN + 1]
        kb = k * kg
        dp, kbp = F.pad((x - g) * kb, pad), F.pad(kb, pad)
        todo = kg.bool().expand_as(x).clone()
        todo[:, GREEN] = False
        base = g.expand_as(x)
        for d in DISTANCES:
            todo = _fill(mean16, spread16, todo, dp, kbp, d, H, W, base=base)
            if not todo.any():
                break
        mean16 = torch.where(todo, 16 * base, mean16)
        spread16 = torch.where(todo, torch.full_like(x, COLOUR_ONLY_SPREAD16), spread16)
        if version >= 3:
            mean16 = _blue_from_red(mean16, x, k)
    return _finish(mean16, spread16)


def correct(mu: torch.Tensor, ls: torch.Tensor, pm: torch.Tensor, pl: torch.Tensor, integer: bool = False,
            clamp: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and log-scale corrections plus a prior's mean pm and log-scale pl (on the head's integer grids):
    integers: μ − MID16 + pm and log-scale + pl, clamped to the grids' ranges (a zero mean correction is
    μ = MID16, as IntOps' head yields it); floats ([−1, 1] units): the same values dequantised, clamped
    the same way if `clamp`. Shared by the image prior and the audio prior (audio_model.add_prior)."""
    if integer:
        return (mu - MID16 + pm).clamp(MU_MIN, MU_MAX), (ls + pl).clamp(LOGS_MIN, LOGS_MAX)
    mu, ls = mu + pm / MID16 - 1.0, ls + pl / LOGS_UNIT
    if clamp:
        mu = mu.clamp(MU_MIN / MID16 - 1.0, MU_MAX / MID16 - 1.0)
        ls = ls.clamp(LOGS_MIN / LOGS_UNIT, LOGS_MAX / LOGS_UNIT)
    return mu, ls


def add_prior(p: torch.Tensor, mean16: torch.Tensor, logs: torch.Tensor, k: int, integer: bool = False) -> torch.Tensor:
    """Head params that are corrections -> params that include the prior (`correct`, always clamped).

    p: (B, C, 3K, H, W) logits, means, log-scales (floats in [−1, 1] units, or integers on the head's grids
    with integer=True); mean16, logs: (B, C, H, W) from `prior`."""
    logit, mu, ls = p.split(k, dim=2)
    mu, ls = correct(mu, ls, mean16.unsqueeze(2), logs.unsqueeze(2), integer)
    return torch.cat([logit, mu, ls], 2)
