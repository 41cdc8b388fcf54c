"""Fitted interpolation filters and block scales: the audio prior's mean and scale for the dyadic order,
stored per segment (issue 6).

In the dyadic order (ardm.dyadic_groups) a frame of group (level) k = 1 … 6 sits at an odd multiple of
h = 64 / 2^k, and when its group is coded every multiple of 2h is known. The prior's fixed cubic
(−1, 9, 9, −1)/16 predicts it from 2 of those known frames per side; a filter fitted to the segment,
m taps per side at ±h, ±3h, …, ±(2m − 1)h, predicts it much better where the signal is smooth at that
spacing (oversampled music and speech). Measured on validation segments of 4096 frames, with the prior's
Laplace code and no net: music 8.86 bits per sample with the cubic, 7.89 with 8 taps per side, 7.67
with 16; speech 9.66, 9.47, 9.44 (FLAC on the same segments: 7.96 and 9.71).

The encoder fits the filters by least squares on each segment's channel (it knows every sample),
quantises them to Q = 14 fractional bits, and stores them in the stream (`symbols`): the decoder reads
them and never fits anything, so the prediction is an integer dot product, identical everywhere. Per
(channel, group k ≥ 1) the encoder picks the taps per side among the model's choices (CHOICES, or
with net config `max_taps` 64 CHOICES_64; 0: the cubic of audio_model.prior, nothing stored) where the residual's estimated code length plus the coefficients'
cost is smallest (`choose`): COEF_BITS each, or SIZE_COEF_BITS for a model that codes them by size.

Prediction (`predict`), on the centred values x = u − 32768 of the prior's known samples (full values
in stage 2, high-byte bin centres in stage 1): p16 = 16·32768 + ⌊(16·Σ_j c_j·x_j + 2^13) / 2^14⌋, in
16ths of a value like the prior's. A tap beyond the segment is mirrored at the segment's ends on the
lattice of multiples of 2h (at 0 and at P, the last multiple of 2h in the segment), then clamped to
[0, P]. A frame whose taps are not all known keeps the prior's own rule.

The prior's scale has the same trouble: it comes from the residuals of the known samples nearby, and
when group k is coded those are all of coarser groups, whose residuals are larger (a wider spacing) by a
factor that depends on the signal. So the encoder also stores the scale of each block of BLOCK frames
of group k in a row (`block_levels`): the mean |residual| of the group's own prediction (the filter, or
the cubic where none was chosen) over the block, in quarter octaves of 16ths of a value
(`quarter_octaves`, 0 … LEVELS − 1), as FLAC stores a Rice parameter per partition. The prior takes it
as its scale at every frame of groups ≥ 1.

**Split** (order families dyadic-split…, ardm.py): each of the `split` finest levels (spacing h) is two
groups: its first half, the frames ≡ h (mod 4h), with taps as above, then its second half, the frames
≡ 3h (mod 4h), whose taps are every known frame nearby, nearest first: ±h, ±2h (the first half), ±3h,
±5h, ±6h, ±7h, ±9h, … (the frames ≡ 3h (mod 4h) are still unknown). Beyond the segment a second-half tap
is mirrored at frame h and at the last frame ≡ h (mod 4h), which keeps the coarser lattice's frames on
it and the first half's in it. With the prior alone (Laplace code, 16 taps), halving the finest level
codes evaluation excerpts in 0.1–0.65 bits per sample fewer, most at 44.1 kHz, where the odd frames'
residuals carry the content above a quarter of the sample rate. A split model has GROUPS + split groups
(`group_count`): group k < GROUPS − split is level k, then each halved level's two halves.

Filters as arrays: (..., G, 1 + 2·MAX_TAPS) int64, G = group_count(split), [..., k, 0] the taps per side m (0 for group 0
and where the cubic is kept), [..., k, 1:1 + 2m] the coefficients of the taps in the order −h, +h, −3h,
+3h, …, zeros after.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import torch

from .ardm import DYADIC_TOP

Q = 14
CHOICES = (0, 2, 4, 8, 16)       # taps per side the encoder may choose (models with max_taps 16)
CHOICES_64 = CHOICES + (32, 64)  # and with max_taps 64: on validation music excerpts −1.8% with aud5's net
MAX_TAPS = CHOICES_64[-1]        # the width of filter arrays
GROUPS = 7                       # dyadic groups: 0 (multiples of 64, no filter) and 1 … 6
COEF_BITS = 24                   # a coefficient in the stream: three uniform bytes of c + 2^23
SIZE_COEF_BITS = 15              # about what one costs coded by its size (coefs "sizes", below)
COEF_LIMIT = (1 << 23) - 1
CUBIC = (9 << (Q - 4), 9 << (Q - 4), -(1 << (Q - 4)), -(1 << (Q - 4)))   # (9, 9, −1, −1)/16 in Q14
BLOCK = 64                       # frames of a group per stored scale (and per block of the estimate)
LEVELS = 80                      # stored scales 0 … 79 (quarter octaves of 16ths: up to 2^19.5)


class Side(NamedTuple):
    """A segment's side information: filters (..., G, 1 + 2·MAX_TAPS), G = group_count(split), and block
    levels (..., S), S = block_count(frames, split); numpy arrays in the codec, tensors in the net's features."""
    filters: np.ndarray | torch.Tensor
    levels: np.ndarray | torch.Tensor


def _quarter_octave_edges(n: int = 160) -> torch.Tensor:
    """⌈2^(j/4)⌉ for j < n, exactly: the least t with t^4 ≥ 2^j."""
    edges = []
    for j in range(n):
        t = math.isqrt(math.isqrt(1 << j))
        while t ** 4 < (1 << j):
            t += 1
        edges.append(t)
    return torch.tensor(edges, dtype=torch.int64)


_QUARTER_OCTAVE_EDGES = _quarter_octave_edges()


def quarter_octaves(v: torch.Tensor) -> torch.Tensor:
    """#{j ≥ 0 : v ≥ ⌈2^(j/4)⌉} for integers v ≥ 0 (0 for v = 0; about 4·log2 v + 1), exactly."""
    return torch.bucketize(v, _QUARTER_OCTAVE_EDGES, right=True)


def group_count(split: int) -> int:
    """Groups of a segment whose `split` finest levels are halved (rows of its filter arrays)."""
    return GROUPS + split


def split_of(filters: np.ndarray | torch.Tensor) -> int:
    """The halved levels of a segment, from the rows of its filter array (..., G, W)."""
    return filters.shape[-2] - GROUPS


def level(k: int, split: int = 0) -> tuple[int, int]:
    """(level 1 … 6, half: 0 whole, 1 first, 2 second) of group k ≥ 1 of a model with `split` halved levels."""
    first = GROUPS - split                      # the first halved level
    if k < first:
        return k, 0
    return first + (k - first) // 2, 1 + (k - first) % 2


def level_filters(filters: np.ndarray) -> np.ndarray:
    """Filters (..., G, W) of a model with G − GROUPS halved levels -> (..., GROUPS, W): each level's own
    filter, a halved level's first half's (what lowbyte.py reads)."""
    split = split_of(filters)
    first = GROUPS - split
    return filters[..., list(range(first)) + list(range(first, first + 2 * split, 2)), :]


def spacing(k: int, split: int = 0) -> int:
    """h of group k ≥ 1: its frames sit at odd multiples of h, every multiple of 2h is known."""
    return DYADIC_TOP >> level(k, split)[0]


def _split_offsets(m: int) -> np.ndarray:
    """A second half's first m taps per side in units of h (module docstring, "Split"): −1, +1, −2, +2,
    −3, +3, −5, +5, −6, …"""
    d = [j for j in range(1, 2 * m + 2) if j % 4 != 0][:m]
    return np.array([s * j for j in d for s in (-1, 1)], dtype=np.int64)


def taps(frames: int, k: int, m: int, split: int = 0, lattice: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(positions (n,), tap frames (n, 2m)) of group k ≥ 1 in a segment of `frames` frames, of a model
    with `split` halved levels; lattice: a second half's taps on the coarser lattice alone (±h, ±3h, …:
    the cubic's)."""
    lev, half = level(k, split)
    return _taps(frames, DYADIC_TOP >> lev, half, m, lattice and half == 2)


@lru_cache(maxsize=256)
def _taps(frames: int, h: int, half: int, m: int, lattice: bool) -> tuple[np.ndarray, np.ndarray]:
    pos = np.arange((h, h, 3 * h)[half], frames, 4 * h if half else 2 * h, dtype=np.int64)
    if half == 2 and not lattice:
        last = h + 4 * h * ((frames - 1 - h) // (4 * h)) if frames > h else 0   # the last frame ≡ h (mod 4h)
        q = pos[:, None] + h * _split_offsets(m)[None, :]
        q = np.where(q < 0, 2 * h - q, q)
        q = np.where(q > last, 2 * last - q, q)
        return pos, np.clip(q, 0, last)
    last = 2 * h * ((frames - 1) // (2 * h))
    off = np.array([s * (2 * j + 1) * h for j in range(m) for s in (-1, 1)], dtype=np.int64)
    q = pos[:, None] + off[None, :]
    q = np.where(q < 0, -q, q)
    q = np.where(q > last, 2 * last - q, q)
    return pos, np.clip(q, 0, last)


def _apply(x: torch.Tensor, coef: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """⌊(16·Σ c·x + 2^13) / 2^14⌋ over the taps: x (..., F) int64, coef (..., 2m), idx (n, 2m) -> (..., n)."""
    g = x[..., idx]                                                        # (..., n, 2m)
    acc = (g * coef.unsqueeze(-2)).sum(-1)
    return torch.div(16 * acc + (1 << (Q - 1)), 1 << Q, rounding_mode="floor")


def _estimated_bits(r: torch.Tensor) -> torch.Tensor:
    """A code-length estimate of residuals r (R, n) in 16ths: a Laplace code with the mean |r| of each
    block of BLOCK as its scale, n_b·log2(2e·max(b, 1/2)) per block. Returns (R,)."""
    R, n = r.shape
    pad = (-n) % BLOCK
    a = torch.nn.functional.pad(r.abs().double() / 16, (0, pad)).view(R, -1, BLOCK)
    cnt = torch.full((a.shape[1],), float(BLOCK), dtype=torch.float64)
    if pad:
        cnt[-1] = BLOCK - pad
    b = (a.sum(-1) / cnt).clamp(min=0.5)
    return (cnt * torch.log2(2 * math.e * b)).sum(-1)


def choices_up_to(max_taps: int) -> tuple[int, ...]:
    """A model's taps per side to choose from (net config `max_taps`)."""
    return {16: CHOICES, 64: CHOICES_64}[max_taps]


def _fit(x: torch.Tensor, coef_bits: float = COEF_BITS, choices: tuple[int, ...] = CHOICES, split: int = 0,
         symmetric: bool = False) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """(the encoder's filters, each group's residuals 16·x − prediction under them (R, n_k)) of x (R, F),
    each coefficient priced at coef_bits, the taps per side among `choices`; split: the model's halved
    levels; symmetric: one coefficient for the taps at −d and +d alike."""
    R, frames = x.shape
    out = torch.zeros(R, group_count(split), 1 + 2 * MAX_TAPS, dtype=torch.int64)
    residuals = {}
    xf = x.double()
    for k in range(1, group_count(split)):
        pos, idx4 = taps(frames, k, 2, split, lattice=True)
        if len(pos) == 0:
            continue
        y16 = 16 * x[:, torch.from_numpy(pos)]
        r_best = y16 - _apply(x, torch.tensor(CUBIC).expand(R, 4), torch.from_numpy(idx4))
        best = _estimated_bits(r_best)
        for m in choices[1:]:
            if len(pos) < 4 * m:  # too few frames to fit 2m coefficients
                break
            pos, idx = taps(frames, k, m, split)
            idx = torch.from_numpy(idx)
            a = xf[:, idx]                                                 # (R, n, 2m)
            if symmetric:                                                  # the pairs (−d, +d) share one
                a = a[..., 0::2] + a[..., 1::2]
            stored = a.shape[-1]
            y = xf[:, torch.from_numpy(pos)]
            ata = a.transpose(1, 2) @ a
            ata = ata + 1e-6 * torch.eye(a.shape[-1], dtype=torch.float64) * (ata.diagonal(dim1=1, dim2=2).mean(-1) + 1).view(R, 1, 1)
            c = torch.linalg.solve(ata, (a.transpose(1, 2) @ y.unsqueeze(-1))).squeeze(-1)
            cq = torch.round(c * (1 << Q)).clamp(-COEF_LIMIT, COEF_LIMIT).to(torch.int64)
            if symmetric:
                cq = cq.repeat_interleave(2, -1)
            r = y16 - _apply(x, cq, idx)
            bits = _estimated_bits(r) + stored * coef_bits
            better = bits < best
            best = torch.where(better, bits, best)
            r_best = torch.where(better.view(R, 1), r, r_best)
            out[better, k, 0] = m
            out[better, k, 1:] = 0
            out[better, k, 1:1 + 2 * m] = cq[better]
        residuals[k] = r_best
    return out, residuals


def choose(x: torch.Tensor, split: int = 0) -> torch.Tensor:
    """The encoder's filters for the rows of x: (R, F) int64 centred values (sample + 32768 − 32768, the
    coded channel). Returns (R, group_count(split), 1 + 2·MAX_TAPS) int64 (module docstring)."""
    return _fit(x, split=split)[0]


def side(x: torch.Tensor, coef_bits: float = COEF_BITS, choices: tuple[int, ...] = CHOICES, split: int = 0,
         symmetric: bool = False) -> Side:
    """The encoder's side information of the rows of x (R, F): Side(choose(x), block_levels(x, those
    filters)), the levels from the residuals the choice already computed; coef_bits: the price of a
    coefficient in the choice (SIZE_COEF_BITS for models that code them by size: a choice of the encoder
    alone, the decoder reads whatever filters it finds); choices: the model's taps per side; split: its
    halved levels; symmetric: filters with c(−d) = c(+d) (net config `coefs` "symmetric")."""
    filters, residuals = _fit(x, coef_bits, choices, split, symmetric)
    return Side(filters, _levels(residuals, len(x)))


def block_count(frames: int, split: int = 0) -> int:
    """Stored scales of a segment's channel: ⌈n_k / BLOCK⌉ for each group k ≥ 1 of n_k frames."""
    return sum(-(-len(taps(frames, k, 1, split)[0]) // BLOCK) for k in range(1, group_count(split)))


def block_levels(x: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
    """The encoder's stored scales: x (R, F) int64 centred values, filters (R, G, ...) -> (R, S) int64
    levels, group 1's blocks first, each group's in frame order (module docstring)."""
    R, frames = x.shape
    split = split_of(filters)
    residuals = {}
    for k in range(1, filters.shape[1]):
        pos, idx4 = taps(frames, k, 2, split, lattice=True)
        if len(pos) == 0:
            continue
        pred = _apply(x, torch.tensor(CUBIC).expand(R, 4), torch.from_numpy(idx4))
        m = int(filters[:, k, 0].max())
        if m:
            fitted = _apply(x, filters[:, k, 1:1 + 2 * m], torch.from_numpy(taps(frames, k, m, split)[1]))
            pred = torch.where((filters[:, k, 0] > 0).view(R, 1), fitted, pred)
        residuals[k] = 16 * x[:, torch.from_numpy(pos)] - pred
    return _levels(residuals, R)


def _levels(residuals: dict[int, torch.Tensor], R: int) -> torch.Tensor:
    """Each group's residuals (R, n_k) -> the quarter octave of the mean |residual| of every block."""
    out = []
    for k in sorted(residuals):
        r = residuals[k].abs()
        n = r.shape[1]
        pad = (-n) % BLOCK
        sums = torch.nn.functional.pad(r, (0, pad)).view(R, -1, BLOCK).sum(-1)
        counts = torch.full((sums.shape[1],), BLOCK, dtype=torch.int64)
        counts[-1] = BLOCK - pad
        out.append(quarter_octaves(torch.div(sums, counts, rounding_mode="floor")).clamp(max=LEVELS - 1))
    return torch.cat(out, 1) if out else torch.zeros(R, 0, dtype=torch.int64)


def level_rows(levels: torch.Tensor, L: int, split: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Stored levels (N, C, S) of segments with `split` halved levels -> (the level of every frame (N, C, L),
    which frames have one: groups ≥ 1)."""
    N, C, _ = levels.shape
    out = torch.zeros(N, C, L, dtype=torch.int64)
    has = torch.zeros(L, dtype=torch.bool)
    at = 0
    for k in range(1, group_count(split)):
        pos = torch.from_numpy(taps(L, k, 1, split)[0])
        nb = -(-len(pos) // BLOCK)
        out[..., pos] = levels[..., at:at + nb].repeat_interleave(BLOCK, -1)[..., :len(pos)]
        has[pos] = True
        at += nb
    return out, has.expand(N, C, L)


def predict(value: torch.Tensor, known: torch.Tensor, filters: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The filters' predictions: value (N, C, L) int64 in 0..65535 (read where known), known (N, C, L)
    bool, filters (N, C, G, 1 + 2·MAX_TAPS), G = group_count(split). Returns (p16 (N, C, L) int64, applies
    (N, C, L) bool: where a filter was chosen and all its taps are known)."""
    N, C, L = value.shape
    p16 = torch.zeros(N, C, L, dtype=torch.int64)
    applies = torch.zeros(N, C, L, dtype=torch.bool)
    x = value - 32768
    split = split_of(filters)
    for k in range(1, filters.shape[-2]):
        m_row = filters[:, :, k, 0]                                        # (N, C)
        m = int(m_row.max()) if m_row.numel() else 0
        if m == 0:
            continue
        pos, idx = taps(L, k, m, split)
        if len(pos) == 0:
            continue
        pos, idx = torch.from_numpy(pos), torch.from_numpy(idx)
        used = torch.arange(2 * m).view(1, 1, 1, -1) < 2 * m_row.view(N, C, 1, 1)
        ok = (known[..., idx] | ~used).all(-1) & (m_row > 0).view(N, C, 1)
        pred = 16 * 32768 + _apply(x * known, filters[:, :, k, 1:1 + 2 * m], idx)
        p16[..., pos] = pred
        applies[..., pos] = ok
    return p16, applies


def level_symbols(levels: np.ndarray) -> np.ndarray:
    """Stored levels (C, S) -> their symbols: each level's difference from the one before it (per
    channel, starting from LEVELS // 2) modulo LEVELS, coded with DELTA_PROBS."""
    levels = np.asarray(levels, dtype=np.int64)
    prev = np.concatenate([np.full((len(levels), 1), LEVELS // 2, np.int64), levels[:, :-1]], 1)
    return ((levels - prev) % LEVELS).reshape(-1)


def from_level_symbols(deltas: np.ndarray, channels: int) -> np.ndarray:
    """Inverse of `level_symbols`."""
    d = np.asarray(deltas, dtype=np.int64).reshape(channels, -1)
    return (LEVELS // 2 + np.cumsum(d, 1)) % LEVELS


def _delta_probs() -> np.ndarray:
    dist = np.minimum(np.arange(LEVELS), LEVELS - np.arange(LEVELS))
    w = 1.0 / (1.0 + dist) ** 2
    return w / w.sum()


DELTA_PROBS = _delta_probs()     # a level's change from the previous block: small changes are cheap


def _coefficients(filters: np.ndarray, allowed: tuple[int, ...] = CHOICES, symmetric: bool = False
                  ) -> tuple[np.ndarray, np.ndarray]:
    """One segment's filters (C, G, 1 + 2·MAX_TAPS), G = group_count(split) -> (choices (C·(G − 1),)
    indices into `allowed` (the model's choices), the stored coefficients in order), both in decoding
    order; symmetric: the filters' taps at −d and +d are equal, and one of each pair is stored."""
    filters = np.asarray(filters, dtype=np.int64)
    G = filters.shape[-2]
    choices, coef = [], []
    for row in filters.reshape(-1, G, filters.shape[-1]):
        for k in range(1, G):
            m = int(row[k, 0])
            choices.append(allowed.index(m))
            c = row[k, 1:1 + 2 * m]
            if symmetric:
                if not np.array_equal(c[0::2], c[1::2]):
                    raise ValueError("a filter of a symmetric model has unequal coefficients at −d and +d")
                c = c[0::2]
            coef.append(c)
    return np.array(choices, dtype=np.int64), np.concatenate(coef + [np.zeros(0, np.int64)])


def _filters(choices: np.ndarray, coef: np.ndarray, channels: int, allowed: tuple[int, ...] = CHOICES,
             symmetric: bool = False) -> np.ndarray:
    """Inverse of `_coefficients` (the groups per channel from the number of choices)."""
    if symmetric:
        coef = np.repeat(coef, 2)
    G = 1 + len(choices) // channels
    out = np.zeros((channels, G, 1 + 2 * MAX_TAPS), dtype=np.int64)
    i = 0
    for j, choice in enumerate(np.asarray(choices, dtype=np.int64)):
        ch, k = divmod(j, G - 1)
        m = allowed[int(choice)]
        out[ch, k + 1, 0] = m
        out[ch, k + 1, 1:1 + 2 * m] = coef[i:i + 2 * m]
        i += 2 * m
    return out


def symbols(filters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One segment's filters (C, G, 1 + 2·MAX_TAPS) -> (choices (C·(G − 1),) indices into
    CHOICES, bytes (3·Σ 2m,) of c + 2^23, most significant first), both in decoding order."""
    choices, c = _coefficients(filters)
    c = c + (1 << 23)
    return choices, np.stack([c >> 16, (c >> 8) & 255, c & 255], 1).reshape(-1)


def from_symbols(choices: np.ndarray, coef_bytes: np.ndarray, channels: int) -> np.ndarray:
    """Inverse of `symbols` (the decoder pops the choices first, then len = coef_count(choices) bytes)."""
    b = np.asarray(coef_bytes, dtype=np.int64).reshape(-1, 3)
    return _filters(choices, (b[:, 0] << 16) + (b[:, 1] << 8) + b[:, 2] - (1 << 23), channels)


# Coefficients coded by their size (net config `coefs` "sizes"): a coefficient c is its bit length
# e = |c|.bit_length() (0 … 23, SIZE_PROBS), then, where e > 0, its sign and the e − 1 bits of |c| below
# the leading one, most significant first, each a uniform bit. On validation excerpts the coefficients
# mostly lie between 2^7 and 2^14: about 15 bits each instead of three bytes' 24.
def _size_probs() -> np.ndarray:
    e = np.arange(24)
    w = np.exp(-((e - 11.0) ** 2) / 12.5) + 1e-3
    return w / w.sum()


SIZE_PROBS = _size_probs()


def size_symbols(filters: np.ndarray, allowed: tuple[int, ...] = CHOICES, symmetric: bool = False
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One segment's filters -> (choices as in `symbols`, indices into `allowed`; each coefficient's bit
    length; the bits: per coefficient with e > 0 its sign (1: negative) and its e − 1 bits below the
    leading one), in decoding order; symmetric: one coefficient per pair of taps ±d."""
    choices, c = _coefficients(filters, allowed, symmetric)
    return (choices, *coefficient_symbols(c))


def coefficient_symbols(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integers (|c| < 2^23) -> (their bit lengths, their sign and mantissa bits) as described above."""
    a = np.abs(np.asarray(c, dtype=np.int64))
    sizes = np.array([int(v).bit_length() for v in a], dtype=np.int64)
    bits = [[int(v < 0)] + [(int(m) >> j) & 1 for j in range(e - 2, -1, -1)]
            for v, m, e in zip(c, a, sizes) if e > 0]
    return sizes, np.array(sum(bits, []), dtype=np.int64)


def coefficients_from_symbols(sizes: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """Inverse of `coefficient_symbols`."""
    coef, i = [], 0
    for e in np.asarray(sizes, dtype=np.int64):
        if e == 0:
            coef.append(0)
            continue
        m = 1
        for b in bits[i + 1:i + int(e)]:
            m = 2 * m + int(b)
        coef.append(-m if bits[i] else m)
        i += int(e)
    return np.array(coef, dtype=np.int64)


def from_size_symbols(choices: np.ndarray, sizes: np.ndarray, bits: np.ndarray, channels: int,
                      allowed: tuple[int, ...] = CHOICES, symmetric: bool = False) -> np.ndarray:
    """Inverse of `size_symbols` (the decoder pops the choices, then coefficient_count(choices, allowed,
    symmetric) sizes, then bit_count(sizes) bits)."""
    return _filters(choices, coefficients_from_symbols(sizes, bits), channels, allowed, symmetric)


def coefficient_count(choices: np.ndarray, allowed: tuple[int, ...] = CHOICES, symmetric: bool = False) -> int:
    return sum((1 if symmetric else 2) * allowed[int(c)] for c in choices)


def bit_count(sizes: np.ndarray) -> int:
    """Sign and mantissa bits that follow these sizes: e for every size e > 0."""
    return int(np.asarray(sizes, dtype=np.int64).sum())


def coef_count(choices: np.ndarray) -> int:
    """How many coefficient bytes follow these choices."""
    return 3 * coefficient_count(choices)
