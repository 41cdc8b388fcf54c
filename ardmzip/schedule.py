"""The dynamic-programming step schedule (PAPER.md), in integer arithmetic so that the encoder and the
decoder derive exactly the same step boundaries on any machine.

A model stores its loss curve L as integers (millibits per variable) on a grid of G revealed fractions:
L[g] is the expected cost of a variable revealed when g/G of the variables are known. For D variables
and a budget of B network calls we pick boundaries 0 = s_0 < s_1 < … < s_S = D (S ≤ B) minimising
Σ_i (s_{i+1} − s_i)·L(s_i): every variable of a step is predicted from what was known at its start.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np


def reference_dp(curve: Sequence[float], budget: int) -> tuple[list[int], float]:
    """Readable O(B·N²) reference: optimal boundaries [0, …, N] and cost for N = len(curve) variables.

    cost[k][t] = min over s < t of cost[k−1][s] + (t − s)·curve[s]  (k steps cover the first t variables).
    """
    n = len(curve)
    budget = min(budget, n)
    inf = float("inf")
    cost = [[inf] * (n + 1) for _ in range(budget + 1)]
    arg = [[0] * (n + 1) for _ in range(budget + 1)]
    cost[0][0] = 0
    for k in range(1, budget + 1):
        for t in range(1, n + 1):
            for s in range(t):
                c = cost[k - 1][s] + (t - s) * curve[s]
                if c < cost[k][t]:
                    cost[k][t], arg[k][t] = c, s
    best_k = min(range(1, budget + 1), key=lambda k: (cost[k][n], k))
    bounds, t = [n], n
    for k in range(best_k, 0, -1):
        t = arg[k][t]
        bounds.append(t)
    return bounds[::-1], cost[best_k][n]


def optimal_boundaries(curve: np.ndarray, budget: int) -> tuple[np.ndarray, int]:
    """The same DP vectorised over t, exact in int64. curve: (N,) int64. Returns (bounds, cost).

    Ties are broken towards the smallest s (np.argmin), identically on every platform.
    """
    curve = np.asarray(curve, dtype=np.int64)
    n = len(curve)
    budget = min(budget, n)
    big = np.iinfo(np.int64).max // 4
    s = np.arange(n + 1)
    # step[s, t] = (t − s)·curve[s] for s < t, "infinite" otherwise
    step = np.where(s[None, :] > s[:, None], (s[None, :] - s[:, None]) * np.append(curve, 0)[:, None], big)
    cost = np.full(n + 1, big, dtype=np.int64)
    cost[0] = 0
    args, totals = [], []
    for _ in range(budget):
        total = cost[:, None] + step             # (s, t)
        arg = np.argmin(total, axis=0)
        cost = np.minimum(total[arg, s], big)
        args.append(arg)
        totals.append(int(cost[n]))
    best_k = int(np.argmin(totals)) + 1          # fewest steps among equal costs
    bounds, t = [n], n
    for k in range(best_k - 1, -1, -1):
        t = int(args[k][t])
        bounds.append(t)
    return np.array(bounds[::-1], dtype=np.int64), totals[best_k - 1]


@lru_cache(maxsize=256)
def _grid_boundaries(curve: tuple[int, ...], n: int, budget: int) -> tuple[int, ...]:
    """DP on the curve resampled to n ≤ G points (integer index mapping), cached per (curve, n, budget)."""
    g = len(curve)
    sorted_curve = np.sort(np.asarray(curve, dtype=np.int64))[::-1]   # monotone: sorting removes noise
    resampled = sorted_curve[(np.arange(n, dtype=np.int64) * g) // n]
    return tuple(int(b) for b in optimal_boundaries(resampled, budget)[0])


def step_boundaries(curve: Sequence[int], n_vars: int, budget: int) -> np.ndarray:
    """Step boundaries (S+1,) int64 for n_vars variables and at most `budget` network calls.

    Integer arithmetic only. B ≥ D: one variable per step. Otherwise the DP runs on N = min(D, G) grid
    points with budget min(B, N), grid boundaries map to variables by g·D // N; for B > N each step is
    split further in proportion to its size (largest remainders, ties to the earlier step). Empty steps
    are dropped.
    """
    if n_vars < 1 or budget < 1:
        raise ValueError(f"need at least one variable and one step (got D={n_vars}, budget={budget})")
    if budget >= n_vars:
        return np.arange(n_vars + 1, dtype=np.int64)
    n = min(n_vars, len(curve))
    grid = np.array(_grid_boundaries(tuple(int(c) for c in curve), n, min(budget, n)), dtype=np.int64)
    bounds = grid * n_vars // n
    extra = budget - (len(bounds) - 1)
    if extra > 0:
        bounds = _split_steps(bounds, extra, n_vars)
    return np.unique(bounds)  # sorted; drops empty steps


def _split_steps(bounds: np.ndarray, extra: int, n_vars: int) -> np.ndarray:
    sizes = np.diff(bounds)
    quota = extra * sizes
    parts = 1 + quota // n_vars
    leftover = extra - int((quota // n_vars).sum())
    by_remainder = np.lexsort((np.arange(len(sizes)), -(quota % n_vars)))
    parts[by_remainder[:leftover]] += 1
    out = [bounds[:1]]
    for start, size, k in zip(bounds[:-1], sizes, parts):
        out.append(start + (np.arange(1, k + 1, dtype=np.int64) * size) // k)
    return np.concatenate(out)


def expected_bits(curve: Sequence[int], bounds: np.ndarray, n_vars: int) -> float:
    """Bits the schedule predicts from the curve: Σ_steps size·L(start) (curve in millibits, sorted)."""
    c = np.sort(np.asarray(curve, dtype=np.int64))[::-1]
    b = np.asarray(bounds, dtype=np.int64)
    starts = c[np.minimum(b[:-1] * len(c) // n_vars, len(c) - 1)]
    return float((np.diff(b) * starts).sum()) / 1000.0
