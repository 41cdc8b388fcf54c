"""Per-step adaptation of an int-exact image head to the image being coded (format version 5, FLAG_ADAPT).

A net trained on 32×32 crops is one fixed predictor; a whole photo is 10⁵–10⁶ variables of one source,
enough to fit a few dozen numbers to it, as classical codecs adapt their contexts. At every network step
the encoder may (mode 1) store, besides the step's network call:
- **a mean correction**: a linear function of the known subpixels near each variable, added to every
  mixture component's mean. Features (`feature_list`): for the step's channel the known subpixels within
  OWN_RADIUS, for the other channels those within OTHER_RADIUS, each as 16·v − ref16 (ref16: the mean of
  the variable's most probable component, on the head's 1/16 grid), plus a constant 16. A feature is
  used when the step's variables know that neighbour at least half the time (where one does not, its
  feature is 0); both sides count it from the known mask, so nothing is stored about which are used.
  δ16 = ⌊(Σ_j c_j·f_j + 2^(Q−1)) / 2^Q⌋, c_j integers (Q = 14 fractional bits), stored by their size
  (interp.coefficient_symbols).
- **a scale offset per bucket**: the variables are put into BUCKETS by their mean component log-scale
  (the net's own confidence) and each bucket's log-scales move by its own offset (codec.OFFSETS), where
  mode 0, the one offset per step of format version 2, moves them all alike.

The encoder fits the coefficients on at most FIT_VARS of the step's variables by minimising their code
length under the (dequantised, float32) head with L-BFGS, picks the buckets' offsets on at most
CHOICE_VARS of them, and keeps mode 1 only where its estimated saving there passes the cost of what it
stores. The decoder reads them and
computes the correction in integers, so every machine gets the same distributions.

Format version 6 (FLAG_PHASES) adapts a step of PHASE_MIN_VARS or more variables per class of a
partition the encoder picks (PARTITIONS, `phase_classes`): whole; by phase, (y mod 2, x mod 2); or by
phase and 8×8-block edge. Many photos were JPEGs or Bayer mosaics once: their colour repeats every 2
pixels (4:2:0 subsampling, demosaicing) and JPEG's blocks every 8, so the neighbours relate differently
at each phase, and one fit per class beats one per step. The encoder fits every partition (the classes
of one on FIT_VARS subpixels in all, CLASS_FIT_VARS each at least) and keeps the one estimated smallest.

Measured (img7 at 18 calls, benchmarks/adapt_validation.py, whole files against one offset per step):
version 5: 320×320 crops of validation photos at their source resolution −2.2%, whole validation
photos (2× downscaled, ~160×110) −1.75%, 64×64 validation crops −0.04% (−1.2% upscaled 1–3×); the
evaluation's whole photos −3.3%. Version 6 against 5 (benchmarks/results/adapt/v6-*.md): validation
photos from JPEG sources −3.1%, 320×320 crops at source resolution −1.2%, 2×-downscaled photos −0.1%,
64×64 crops the same files; the evaluation's whole photos −1.5%.
"""
from __future__ import annotations

from typing import Iterator, NamedTuple

import numpy as np
import torch

from . import interp
from .ardm import log_prob
from .exact import log_probabilities_torch
from .prior import MU_MAX, MU_MIN

Q = 14
COEF_LIMIT = (1 << 23) - 1       # |c| < 2^23: interp.SIZE_PROBS covers bit lengths 0 … 23
OWN_RADIUS, OTHER_RADIUS = 2, 1
BUCKET_EDGES = (-96, -80, -64, -56, -48, -40, -32)  # on the mean component log-scale (1/16 nat grid)
BUCKETS = len(BUCKET_EDGES) + 1
FIT_VARS = 65536                 # the encoder fits on an evenly spaced sample of at most this many
FIT_ITERATIONS = 60
CHOICE_VARS = 16384              # the offsets and the mode are chosen on at most this many of those
RIDGE = 1e-3                     # per variable, on the coefficients (value units)
MODE_PROBS = np.full((1, 2), 0.5)  # per step: 0 one scale offset, 1 adapted
PHASE_MIN_VARS = 4096            # (FLAG_PHASES) a smaller step is adapted whole (no partition symbol)
PARTITIONS = ("whole", "phase", "phase and block edge")   # (FLAG_PHASES) how a larger step is split
PARTITION_PROBS = np.full((1, len(PARTITIONS)), 1.0 / len(PARTITIONS))
BLOCK = 8                        # the block grid of partition 2 (JPEG's 8×8 transform blocks)
GRID_PROBS = np.full((2, BLOCK), 1.0 / BLOCK)   # partition 2's grid offset (rows, columns)
CLASS_FIT_VARS = 16384           # a class of a partition is fitted on at least this many (FIT_VARS in all)


class Adaptation(NamedTuple):
    """Mode 1's side information of one step: the coefficients (p,) int64 and BUCKETS offset indices."""
    coefs: np.ndarray
    buckets: np.ndarray


def _coords(positions: np.ndarray, shape: tuple[int, int], grey: bool) -> tuple[np.ndarray, ...]:
    h, w = shape
    c, yx = (np.zeros_like(positions), positions) if grey else np.divmod(positions, h * w)
    y, x = np.divmod(yx, w)
    return c, y, x


def _candidates(channel: int, channels: int) -> Iterator[tuple[int, int, int]]:
    for cc in range(channels):
        r = OWN_RADIUS if cc == channel else OTHER_RADIUS
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                if dy or dx or cc != channel:
                    yield cc, dy, dx


def feature_list(known: np.ndarray, positions: np.ndarray, shape: tuple[int, int], grey: bool
                 ) -> list[tuple[int, int, int]]:
    """The (channel, dy, dx) neighbours whose features this step uses: known (clamped to the plane) for
    at least half of its variables; the channel of the step's first variable is its own."""
    c, y, x = _coords(positions, shape, grey)
    h, w = shape
    k = known.reshape(-1, h, w)
    out = []
    for cc, dy, dx in _candidates(int(c[0]), k.shape[0]):
        seen = k[cc, np.clip(y + dy, 0, h - 1), np.clip(x + dx, 0, w - 1)]
        if 2 * int(np.count_nonzero(seen)) >= len(positions):
            out.append((cc, dy, dx))
    return out


def phase_classes(positions: np.ndarray, shape: tuple[int, int], grey: bool, partition: int,
                  grid: tuple[int, int] = (0, 0)) -> list[np.ndarray]:
    """(FLAG_PHASES) The classes a step's variables are adapted in under `partition` (PARTITIONS), each
    as indices into `positions`, the empty ones left out: 0, one class; 1, by phase, (y mod 2, x mod 2);
    2, by phase and then by whether the row, and the column, is on an edge of the BLOCK×BLOCK grid that
    starts at `grid` ((y − gy) mod 8 ∈ {0, 7}; the same for x). Many photos repeat every 2 pixels (colour
    subsampled 2×2 by JPEG, a Bayer mosaic's demosaicing) or have JPEG's 8×8 blocks, so one linear
    correction for all positions fits none of them well."""
    if partition == 0:
        return [np.arange(len(positions))]
    _, y, x = _coords(positions, shape, grey)
    key = 2 * (y % 2) + x % 2
    if partition == 2:
        ey, ex = ((y - grid[0]) % BLOCK) % (BLOCK - 1) == 0, ((x - grid[1]) % BLOCK) % (BLOCK - 1) == 0
        key = 4 * key + 2 * ey + ex
    return [idx for k in range(16) if len(idx := np.flatnonzero(key == k))]


def block_grid(values: np.ndarray, shape: tuple[int, int]) -> tuple[int, int]:
    """The encoder's guess of where a plane's BLOCK×BLOCK grid starts (row, column offsets): where the
    steps between neighbouring rows (columns), summed over the plane, are largest on average."""
    h, w = shape
    v = values.reshape(-1, h, w).astype(np.float64)

    def offset(d: np.ndarray) -> int:          # d[i]: the step between lines i and i + 1
        if len(d) < 2 * BLOCK:
            return 0
        means = [d[k::BLOCK].mean() for k in range(BLOCK)]
        return (int(np.argmax(means)) + 1) % BLOCK                 # the step before line k + 1

    return (offset(np.abs(np.diff(v, axis=1)).sum((0, 2))), offset(np.abs(np.diff(v, axis=2)).sum((0, 1))))


def reference(params: torch.Tensor, k: int) -> torch.Tensor:
    """(n,) int64: the mean (1/16 grid) of each variable's most probable component (the first of equals)."""
    q = params.to(torch.int64)
    return q[:, k:2 * k].gather(1, q[:, :k].argmax(1, keepdim=True))[:, 0]


def _columns(values: np.ndarray, known: np.ndarray, positions: np.ndarray, shape: tuple[int, int], grey: bool,
             feats: list[tuple[int, int, int]], ref16: np.ndarray) -> Iterator[np.ndarray]:
    """Each feature's (n,) int64 column, then the constant's."""
    c, y, x = _coords(positions, shape, grey)
    h, w = shape
    v, k = values.reshape(-1, h, w), known.reshape(-1, h, w)
    for cc, dy, dx in feats:
        yy, xx = np.clip(y + dy, 0, h - 1), np.clip(x + dx, 0, w - 1)
        yield np.where(k[cc, yy, xx], 16 * v[cc, yy, xx] - ref16, 0)
    yield np.full(len(positions), 16, dtype=np.int64)


def correction(values: np.ndarray, known: np.ndarray, positions: np.ndarray, shape: tuple[int, int], grey: bool,
               feats: list[tuple[int, int, int]], ref16: np.ndarray, coefs: np.ndarray) -> np.ndarray:
    """(n,) int64 δ16 of the step's variables (integers only)."""
    acc = np.zeros(len(positions), dtype=np.int64)
    for col, cj in zip(_columns(values, known, positions, shape, grey, feats, ref16), coefs):
        if cj:
            acc += int(cj) * col
    return (acc + (1 << (Q - 1))) >> Q


def _bucket(params: torch.Tensor, k: int) -> torch.Tensor:
    logs = params[:, 2 * k:].to(torch.int64).sum(1)
    return torch.bucketize(logs, torch.tensor(BUCKET_EDGES, dtype=torch.int64) * k, right=True)


def apply(params: torch.Tensor, delta16: np.ndarray, buckets: np.ndarray, offsets: tuple[int, ...], k: int,
          logs_min: int, logs_max: int) -> torch.Tensor:
    """Int-exact head params (n, 3K) with δ16 added to every mean and the bucket's offset to every
    log-scale, both clamped to their grids."""
    q = params.to(torch.int64)
    off = torch.tensor(offsets, dtype=torch.int64)[torch.from_numpy(np.asarray(buckets, dtype=np.int64))]
    shift = off[_bucket(q, k)]
    mu = (q[:, k:2 * k] + torch.from_numpy(delta16)[:, None]).clamp(MU_MIN, MU_MAX)
    ls = (q[:, 2 * k:] + shift[:, None]).clamp(logs_min, logs_max)
    return torch.cat([q[:, :k], mu, ls], 1).to(params.dtype)


# ------------------------------------------------------------------------------------- the encoder's fit
def _head(q: torch.Tensor, k: int) -> torch.Tensor:
    """Dequantised float32 head (n, 3K) of int-exact params (the encoder's estimates only)."""
    return log_probabilities_torch(q.float()[..., None, None], k)[..., 0, 0]


def _nats(head: torch.Tensor, x: torch.Tensor, k: int) -> torch.Tensor:
    return -log_prob(head[..., None, None], x[:, None, None], k).reshape(-1)


def fit(params: torch.Tensor, values: np.ndarray, known: np.ndarray, positions: np.ndarray,
        shape: tuple[int, int], grey: bool, feats: list[tuple[int, int, int]], offsets: tuple[int, ...], k: int,
        logs_min: int, logs_max: int, fit_vars: int | None = None) -> tuple[Adaptation, float, float]:
    """The encoder's mode-1 choice for a step: (its Adaptation, estimated bits of the step's variables
    with it, and with the best single offset), both estimated on the sample (at most `fit_vars`, by
    default FIT_VARS) and scaled to the step."""
    n = len(positions)
    sel = np.arange(0, n, max(1, n // (fit_vars or FIT_VARS)))
    q = params[torch.from_numpy(sel)].to(torch.int64)
    pos = positions[sel]
    x = torch.from_numpy(values[pos])
    ref16 = reference(q, k).numpy()
    cols = np.stack(list(_columns(values, known, pos, shape, grey, feats, ref16)), 1)
    f = torch.from_numpy(cols).float() / 16.0                        # value units
    head = _head(q, k)
    c = torch.zeros(f.shape[1], dtype=torch.float32, requires_grad=True)
    opt = torch.optim.LBFGS([c], max_iter=FIT_ITERATIONS, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        opt.zero_grad()
        mu = head[:, k:2 * k] + (f @ c)[:, None] / 127.5
        value = _nats(torch.cat([head[:, :k], mu, head[:, 2 * k:]], 1), x, k).sum() + RIDGE * len(sel) * (c * c).sum()
        value.backward()
        return value

    opt.step(loss)
    coefs = np.clip(np.round(np.nan_to_num(c.detach().numpy()) * (1 << Q)), -COEF_LIMIT, COEF_LIMIT).astype(np.int64)
    sub = np.arange(0, len(sel), max(1, len(sel) // CHOICE_VARS))
    q, x = q[torch.from_numpy(sub)], x[torch.from_numpy(sub)]
    delta16 = correction(values, known, pos[sub], shape, grey, feats, ref16[sub], coefs)
    adapted = apply(q, delta16, np.zeros(BUCKETS, np.int64), (0,), k, logs_min, logs_max)

    def per_offset(p: torch.Tensor) -> torch.Tensor:       # (len(offsets), n) nats
        zero = np.zeros(len(p), dtype=np.int64)
        return torch.stack([_nats(_head(apply(p, zero, np.zeros(BUCKETS, np.int64), (o,), k, logs_min, logs_max), k),
                                  x, k) for o in offsets])

    plain, fitted = per_offset(q), per_offset(adapted)
    b = _bucket(q, k)
    buckets = np.zeros(BUCKETS, dtype=np.int64)
    for j in range(BUCKETS):
        on = b == j
        if on.any():
            buckets[j] = int(fitted[:, on].sum(1).argmin())
    best = sum(float(fitted[buckets[j], b == j].sum()) for j in range(BUCKETS))
    scale = n / len(sub) / np.log(2)
    return Adaptation(coefs, buckets), best * scale, float(plain.sum(1).min()) * scale


# ------------------------------------------------------------------------------------- the side information
def side_bits(a: Adaptation, offsets: int) -> float:
    """What mode 1 stores, in bits (less the mode symbol both modes pay)."""
    sizes, bits = interp.coefficient_symbols(a.coefs)
    return (BUCKETS * np.log2(offsets) - float(np.log2(interp.SIZE_PROBS[sizes]).sum()) + len(bits))


def symbols(a: Adaptation, offsets: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Mode 1's side information as (symbols, distributions) in the order they are pushed (popped in
    reverse: the buckets' offsets, the coefficients' sizes, their sign and mantissa bits); the mode
    symbol, pushed after them, is the caller's."""
    sizes, bits = interp.coefficient_symbols(a.coefs)
    return [(bits, np.full((len(bits), 2), 0.5)),
            (sizes, np.broadcast_to(interp.SIZE_PROBS, (len(sizes), len(interp.SIZE_PROBS)))),
            (a.buckets, np.full((BUCKETS, offsets), 1.0 / offsets))]


def pop(dec, count: int, offsets: int) -> Adaptation:
    """Inverse of `symbols`, for a step with `count` coefficients (len(feature_list) + 1)."""
    buckets = dec.pop(np.full((BUCKETS, offsets), 1.0 / offsets))
    sizes = dec.pop(np.broadcast_to(interp.SIZE_PROBS, (count, len(interp.SIZE_PROBS))))
    bits = dec.pop(np.full((interp.bit_count(sizes), 2), 0.5))
    return Adaptation(interp.coefficients_from_symbols(sizes, bits), buckets)
