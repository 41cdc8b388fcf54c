"""The first group of a quincunx image plane, coded without the net: the pixels at multiples of
QUINCUNX_TOP (the group-0 lattice), lattice row by lattice row, each subpixel predicted from the row
above by an exact integer rule.

Why: the first network call knows nothing, so it can only code the lattice with the net's marginal:
img6 spent 8.9 bits per green subpixel there (R 6.8, B 7.2; validation 64×64 crops), about 5% of all the
bits, on 1/64 of the pixels. Neighbours 8 pixels apart are still correlated: a probe on the same crops
coded green from the row above in 6.6 bits and R given G in 4.8 (rows after the first). Coding the
lattice row by row takes one vectorised push or pop per row and channel, and no network call.

Decoding order (the encoder pushes the same units in reverse): lattice row 0 in two halves (even
columns, then odd ones between them), every later row whole; within each, the channels G, R, B (grey:
the one channel). Per subpixel, in 1/16 of a value (the head's mean grid) and through the image prior's
log-scale rule (`prior.log_scale`, s = 0.6·spread + 0.4 values):
- rows after the first: above-left a, above b, above-right d (edge columns repeat): mean 16·(a + 2b + d)/4,
  spread 16·(|a − b| + |d − b|)/2 (times SPREAD_NUM / SPREAD_DEN);
- row 0, odd columns: left l and right r (r = l at the right edge): mean 16·(l + r)/2, spread 16·|l − r|/2;
  even columns: nothing known: value 127.5 with the prior's wide spread;
- R and B (green known at the pixel): green plus the same rule applied to (channel − green), clamped to
  the value range; even columns of row 0: green itself with the prior's colour-only spread. Blue also
  moves by 5/16 of red's miss at the pixel (as prior version 3).
Each subpixel's distribution is a single logistic on the head's integer grids, through the int-exact
models' probability table (`exact.probabilities`), so it is the same on every machine.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from .ardm import CHANNEL_RANK, QUINCUNX_TOP
from .prior import COLOUR_ONLY_SPREAD16, GREEN, MID16, MU_UNIT, NOTHING_KNOWN_SPREAD16, blue_shift, log_scale

SPREAD_NUM, SPREAD_DEN = 7, 4  # the probe's best on validation crops lay between 3/2 (R, B) and 2 (G)


def lattice_index(h: int, w: int, grey: bool) -> np.ndarray:
    """(C, h0, w0) flat codec indices (c·H·W + y·W + x; grey: y·W + x) of the lattice's subpixels."""
    ys, xs = np.arange(0, h, QUINCUNX_TOP), np.arange(0, w, QUINCUNX_TOP)
    yx = ys[:, None] * w + xs[None, :]
    return yx[None] if grey else np.stack([c * h * w + yx for c in range(3)])


def lattice_units(h0: int, w0: int, grey: bool) -> Iterator[tuple[int, int, np.ndarray]]:
    """(channel, lattice row, lattice columns) in decoding order."""
    channels = [0] if grey else sorted(range(3), key=lambda c: CHANNEL_RANK[c])  # G, R, B
    for r in range(h0):
        for cols in ((np.arange(0, w0, 2), np.arange(1, w0, 2)) if r == 0 else (np.arange(w0),)):
            if len(cols):
                for c in channels:
                    yield c, r, cols


def _rule(v: np.ndarray, r: int, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(16·mean, 16·spread) of plane v (h0, w0) at (r, cols) from the row above, or from the left and
    right neighbours in row 0's odd columns; None in row 0's even columns (nothing known)."""
    w0 = v.shape[1]
    if r == 0:
        if cols[0] % 2 == 0:
            return None
        left, right = v[0, cols - 1], v[0, np.where(cols + 1 < w0, cols + 1, cols - 1)]
        return 8 * (left + right), 8 * np.abs(left - right)
    a, b, d = v[r - 1, np.maximum(cols - 1, 0)], v[r - 1, cols], v[r - 1, np.minimum(cols + 1, w0 - 1)]
    return 4 * (a + 2 * b + d), 8 * (np.abs(a - b) + np.abs(d - b))


def unit_params(lat: np.ndarray, c: int, r: int, cols: np.ndarray, grey: bool) -> np.ndarray:
    """(n, 3) integer head parameters (logit 0, mean on the 1/16 grid, log-scale) of channel c at lattice
    row r, columns cols, reading only units decoded before (lat: (C, h0, w0) int64 values)."""
    colour = not grey and c != GREEN
    if colour:
        g = lat[GREEN, r, cols]
        lo = max(r - 1, 0)  # the rule reads this row and the one above
        found = _rule(lat[c, lo:r + 1] - lat[GREEN, lo:r + 1], r - lo, cols)
        if found is None:
            mean16, spread16 = 16 * g, np.full(len(cols), COLOUR_ONLY_SPREAD16)
        else:
            mean16, spread16 = np.clip(16 * g + found[0], 0, 255 * MU_UNIT), found[1]
        if c == 2:  # blue: red's miss (red is decoded before blue in every unit)
            red = unit_params(lat, 0, r, cols, grey)[:, 1]
            mean16 = np.clip(mean16 + blue_shift(16 * lat[0, r, cols] - red), 0, 255 * MU_UNIT)
    else:
        found = _rule(lat[c], r, cols)
        mean16, spread16 = found if found is not None else (np.full(len(cols), MID16), np.full(len(cols), NOTHING_KNOWN_SPREAD16))
    logs = log_scale(torch.from_numpy(spread16 * SPREAD_NUM // SPREAD_DEN)).numpy()
    return np.stack([np.zeros(len(cols), dtype=np.int64), mean16.astype(np.int64), logs], 1)
