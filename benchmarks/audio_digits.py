"""How a 16-bit sample is split into digits, measured without any net: the depth-upscaling question of
issue 6 (2 stages of 256 values, or 4 of 16, or one stage over whole values).

    python benchmarks/audio_digits.py --out benchmarks/results/audio_digits.md

On validation excerpts (benchmarks/audio_validation.py's, channel 0) every frame of dyadic groups 1 … 6
is coded with the prior of the shipped audio models: the segment's fitted interpolation filter of its
group (interp.py), a logistic with the block's mean |residual| / 1.386 as its scale (the logistic's
mean |x| is 2 ln 2 · s), that is with ideal block scales and no net. Group 0 (1/64 of the frames, the
same for every split) is left out. A split into digits of widths W_1 > W_2 > … > 1 codes, per stage s,
the digit of bin width W_s of every frame, the groups coarse to fine, knowing the coarser groups'
values only to W_s (the centres of their known bins) and the frame's own earlier digits (the
distribution restricted to the known bin, outer bins open in stage 1). "Per group" codes a group's
digits one after another with its coarser groups known exactly: the same distribution for every
digit, so the digits only split the code. "Head limits" adds what the integer heads of
audio_model.py can express per digit: means on a grid of W/16, scales at least 0.116·W
(e^−7 · 127.5 digit units); a joint model's head (audio_model.py, "joint head") has the limits of
W = 1 for both of its digits.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ardmzip import interp  # noqa: E402
from audio_validation import excerpts  # noqa: E402

SPLITS = [("one stage of 65536 (joint)", (1,), False, False),
          ("one stage of 65536, head limits (a joint model's head)", (1,), False, True),
          ("2 stages of 256", (256, 1), False, False),
          ("4 stages of 16", (4096, 256, 16, 1), False, False),
          ("2 stages of 256, head limits", (256, 1), False, True),
          ("4 stages of 16, head limits", (4096, 256, 16, 1), False, True),
          ("2 digits of 256 per group, head limits", (256, 1), True, True)]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-np.clip(z, -40, 40)))


def _block_mean(a: np.ndarray, block: int = interp.BLOCK) -> np.ndarray:
    n = len(a)
    pad = (-n) % block
    sums = np.pad(a, (0, pad)).reshape(-1, block).sum(1)
    counts = np.full(len(sums), float(block))
    if pad:
        counts[-1] = block - pad
    return np.repeat(sums / counts, block)[:n]


def _prediction(xq: np.ndarray, k: int, filters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(frames of group k, their prediction from xq by the segment's filter, or the cubic)."""
    m = int(filters[k, 0])
    pos, idx = interp.taps(len(xq), k, m or 2)
    coef = filters[k, 1:1 + 2 * m] if m else np.array(interp.CUBIC)
    return pos, (xq[idx] * coef / (1 << interp.Q)).sum(1)


def split_bits(x: np.ndarray, filters: np.ndarray, widths: tuple[int, ...], per_group: bool, limits: bool) -> float:
    """Bits of groups 1 … 6 of x (centred int64 samples) under one split (module docstring)."""
    u = x + 32768
    total = 0.0
    for s, w in enumerate(widths):
        w_prev = widths[s - 1] if s else 65536
        xq = x.astype(np.float64) if per_group or w == 1 else (u // w) * w + (w - 1) / 2 - 32768
        for k in range(1, interp.GROUPS):
            pos, p = _prediction(xq, k, filters)
            if len(pos) == 0:
                continue
            if limits:
                p = np.round(p / (w / 16)) * (w / 16)
            scale = np.maximum(_block_mean(np.abs(x[pos] - p)) / 1.386, 0.3)
            if limits:
                scale = np.maximum(scale, 0.116 * w)
            lo = (u[pos] // w) * w - 32768 - 0.5
            num = _sigmoid((lo + w - p) / scale) - _sigmoid((lo - p) / scale)
            if s == 0:
                num = np.where(u[pos] // w == 0, _sigmoid((lo + w - p) / scale), num)
                num = np.where(u[pos] // w == 65536 // w - 1, 1 - _sigmoid((lo - p) / scale), num)
                den = 1.0
            else:
                lo_prev = (u[pos] // w_prev) * w_prev - 32768 - 0.5
                den = _sigmoid((lo_prev + w_prev - p) / scale) - _sigmoid((lo_prev - p) / scale)
            total += -np.log2(np.maximum(num, 1e-12) / np.maximum(den, 1e-12)).sum()
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=100_000, help="samples per kind")
    ap.add_argument("--out", type=Path, default=None, help="write the table here (markdown)")
    a = ap.parse_args()
    rows = {}
    for kind in ("speech", "music"):
        bits, n = np.zeros(len(SPLITS)), 0
        for _, _, clip in excerpts(kind, a.samples, 1 << 14):
            x = clip[:, 0].astype(np.int64)
            filters = interp.side(torch.from_numpy(x)[None]).filters[0].numpy()
            n += len(x)
            bits += [split_bits(x, filters, w, g, lim) for _, w, g, lim in SPLITS]
        rows[kind] = (bits / n, n)
    lines = ["| split | speech | music |", "|---|---|---|"]
    for i, (name, *_) in enumerate(SPLITS):
        lines.append(f"| {name} | {rows['speech'][0][i]:.3f} | {rows['music'][0][i]:.3f} |")
    text = (f"Bits per sample of dyadic groups 1–6 (of all samples; group 0 left out), prior with ideal block "
            f"scales, no net; {rows['speech'][1]} speech and {rows['music'][1]} music samples of validation "
            f"excerpts (`python benchmarks/audio_digits.py`).\n\n" + "\n".join(lines) + "\n")
    print(text)
    if a.out:
        a.out.write_text(text)


if __name__ == "__main__":
    main()
