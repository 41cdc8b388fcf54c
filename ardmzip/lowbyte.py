"""The low byte of 24-bit audio (issue 6): coded after the net-coded stages, which give the top 16 bits of
every sample. No training data here has 24 bits, so no net codes it; two exact models, both without
side information, walk the same protocol (`steps`).

**Counts** (`count_steps`, every format version): positions in order p = 0 … D−1, in blocks of 64, 128,
… doubling to 4096; each block's distribution is (1 + 32·count of each value in the segment's earlier
blocks) / total. A padded 16-in-24 file (all low bytes 0) costs ~620 bits per segment of 2^15 frames,
a uniformly random low byte 8.07 bits per sample.

**Interpolated** (`interpolated_steps`, files with FLAG_LOW, format version 4): the low bytes in the
dyadic order of the frames (ardm.dyadic_groups; every channel of a frame together), group by group, and
within a group in blocks of BLOCK frames. A frame of group k ≥ 1 is predicted from the full 24-bit
values of the coarser groups (all decoded by then) with the segment's fitted filter of (channel, k)
(interp.py; models with stored filters) or else the cubic (−1, 9, 9, −1)/16 of the nearest known frames
at ±h, ±3h (mirrored at the segment's ends as interp.taps does): the prediction P in 16ths of the
24-bit unit. Group 0 is "predicted" at the centre of its top-16 bin. The low byte's distribution is the
integer logistic of audio_model.int_probabilities (one component, closed bins: restricted to the 256
values that the known top 16 bits leave) with mean P − 16·256·t (t the top 16 bits, clamped to the
head's mean range) and the scale of the mean |16·x − P| of the channel's previous block (the previous
group's last block for a group's first; LOGS_MAX, nearly uniform, for the segment's first), through
audio_model.prior_params' quarter-octave map. Where the fine structure below the top 16 bits is
predictable (quiet passages, synthesized or band-limited sound) this codes it in a few bits; where it
is noise it costs about 8 bits, like the counts.

The encoder codes a segment's low bytes both ways and keeps the shorter; with FLAG_LOW each 24-bit
segment pops a LOW_MODES symbol (uniform over 2) right before its low bytes.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from . import interp
from .ardm import dyadic_groups
from .audio_model import LN2_QUARTER, int_probabilities
from .prior import LOGS_MAX, LOGS_MIN, MU_MAX, MU_MIN

LOW_MODES = ("counts", "interpolated")
LOW_MODE_PROBS = np.full((1, len(LOW_MODES)), 1.0 / len(LOW_MODES))
ADAPT_FIRST, ADAPT_LAST, ADAPT_GAIN = 64, 4096, 32   # the count model's block sizes and count increment
BLOCK = 64                                           # frames per block of the interpolated model's scale

# A step: (flat indices into the segment's values (C·F,), channel-major; their (n, 256) distributions).
# The caller codes the low bytes of those positions before it asks for the next step: the encoder reads
# them from its values, the decoder writes them in (`x.flat[sel] += low`). A generator reads the low
# bytes of a step only after it has been coded.
Steps = Iterator[tuple[np.ndarray, np.ndarray]]


def _count_blocks(n: int) -> list[slice]:
    out, a, size = [], 0, ADAPT_FIRST
    while a < n:
        out.append(slice(a, min(n, a + size)))
        a, size = a + size, min(2 * size, ADAPT_LAST)
    return out


def count_steps(x: np.ndarray) -> Steps:
    """The count model's steps over x (C, F) int64, the segment's centred 24-bit values."""
    flat = x.reshape(-1)
    counts = np.zeros(256, np.int64)
    for b in _count_blocks(flat.size):
        freq = 1 + ADAPT_GAIN * counts.astype(np.float64)
        sel = np.arange(b.start, b.stop)
        yield sel, np.broadcast_to(freq / freq.sum(), (len(sel), 256))   # integers: identical everywhere
        counts += np.bincount(flat[sel] & 255, minlength=256)


def _scale(mean_abs16: np.ndarray) -> np.ndarray:
    """Log-scales (stage-2 units: one step of the low byte) of mean |residuals| in 16ths, as the prior's."""
    q = interp.quarter_octaves(torch.from_numpy(mean_abs16)).numpy()
    return np.clip((q * LN2_QUARTER) // 1024 - 122, LOGS_MIN, LOGS_MAX)


def interpolated_steps(x: np.ndarray, filters: np.ndarray | None = None) -> Steps:
    """The interpolated model's steps over x (C, F) int64 centred 24-bit values whose top 16 bits are
    known; filters: the segment's (C, GROUPS, 1 + 2·MAX_TAPS) fitted filters, or None (the cubic); a
    dyadic-split model's (C, G, …): its group-k filter serves level k here (the first half's, for a
    halved level)."""
    C, F = x.shape
    groups = dyadic_groups(F)
    filters = None if filters is None else interp.level_filters(filters)
    logs = np.full(C, LOGS_MAX, np.int64)
    for k in range(interp.GROUPS):
        pos = np.flatnonzero(groups == k)
        if len(pos) == 0:
            continue
        top = x[:, pos] >> 8                           # (C, n): known top 16 bits (the low bytes are not read)
        p16 = 16 * (256 * top + 128) - 8 if k == 0 else _prediction(x, k, filters)   # group 0: bin centres
        mu = np.clip(p16 - 4096 * top, MU_MIN, MU_MAX)
        for a in range(0, len(pos), BLOCK):
            b = slice(a, a + BLOCK)
            q = np.stack([np.zeros_like(mu[:, b]), mu[:, b], np.broadcast_to(logs[:, None], mu[:, b].shape)], -1)
            sel = (np.arange(C)[:, None] * F + pos[None, b]).reshape(-1)
            yield sel, int_probabilities(q.reshape(-1, 3), 1, 2)
            r = np.abs(16 * x[:, pos[b]] - p16[:, b])
            logs = _scale(r.sum(1) // r.shape[1])


def _prediction(x: np.ndarray, k: int, filters: np.ndarray | None) -> np.ndarray:
    """(C, n_k) predictions in 16ths of group k ≥ 1 from the full values of the coarser groups."""
    xt = torch.from_numpy(x)
    p16 = interp._apply(xt, torch.tensor(interp.CUBIC).expand(len(x), 4), torch.from_numpy(interp.taps(x.shape[1], k, 2)[1]))
    m = int(filters[:, k, 0].max()) if filters is not None else 0
    if m:
        fitted = interp._apply(xt, torch.from_numpy(filters[:, k, 1:1 + 2 * m]),
                               torch.from_numpy(interp.taps(x.shape[1], k, m)[1]))
        p16 = torch.where(torch.from_numpy(filters[:, k, 0] > 0)[:, None], fitted, p16)
    return p16.numpy()


def steps(mode: int, x: np.ndarray, filters: np.ndarray | None = None) -> Steps:
    """The steps of LOW_MODES[mode]."""
    return interpolated_steps(x, filters) if mode == 1 else count_steps(x)
