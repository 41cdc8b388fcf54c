"""The dynamic-programming step schedule (PAPER.md), in integer arithmetic so that the encoder and the
decoder derive exactly the same step boundaries on any machine.

A model stores its loss curve L as integers (millibits per variable) on a grid of G revealed fractions:
L[g] is the expected cost of a variable revealed when g/G of the variables are known. For D variables
and a budget of B network calls we pick boundaries 0 = s_0 < s_1 < … < s_S = D (S ≤ B) minimising
Σ_i (s_{i+1} − s_i)·L(s_i): every variable of a step is predicted from what was known at its start.

A structured order (ardm.grouped_order) reveals groups of positions one after another, each occupying a
fixed range of the grid (`Groups.edges`); its schedule keeps every step inside one group (the positions
of a group are exchangeable, so L at the step's start prices all of them), hence at least one step per
group, and maps each group's grid range onto that group's actual number of variables.
"""
from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple, Sequence

import numpy as np


class Groups(NamedTuple):
    """The groups of a structured order: edges (0 = e_0 < … < e_K = G) on the curve's grid of G points,
    group j covering grid points e_j … e_{j+1} − 1; counts: the variables of each group in this instance."""
    edges: tuple[int, ...]
    counts: tuple[int, ...]


def reference_dp(curve: Sequence[float], budget: int, group: Sequence[int] | None = None) -> tuple[list[int], float]:
    """Readable O(B·N²) reference: optimal boundaries [0, …, N] and cost for N = len(curve) variables.

    cost[k][t] = min over s < t of cost[k−1][s] + (t − s)·curve[s]  (k steps cover the first t variables),
    where a step [s, t) must not cross groups (group[s] == group[t − 1]) when `group` (per point) is given.
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
                if group is not None and group[s] != group[t - 1]:
                    continue
                c = cost[k - 1][s] + (t - s) * curve[s]
                if c < cost[k][t]:
                    cost[k][t], arg[k][t] = c, s
    best_k = min(range(1, budget + 1), key=lambda k: (cost[k][n], k))
    bounds, t = [n], n
    for k in range(best_k, 0, -1):
        t = arg[k][t]
        bounds.append(t)
    return bounds[::-1], cost[best_k][n]


def optimal_boundaries(curve: np.ndarray, budget: int, group: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """The same DP vectorised over t, exact in int64. curve: (N,) int64. Returns (bounds, cost).

    Ties are broken towards the smallest s (np.argmin), identically on every platform.
    """
    curve = np.asarray(curve, dtype=np.int64)
    args, totals = _dp(curve, min(budget, len(curve)), group)
    return _backtrack(args, totals, len(curve), group)


def _dp(curve: np.ndarray, budget: int, group: np.ndarray | None) -> tuple[list[np.ndarray], list[int]]:
    """The DP's tables for 1 … budget steps: (per k, the best s of every t; per k, the cost of all N).
    The tables of k steps do not depend on `budget`, so one run serves every smaller budget."""
    n = len(curve)
    big = np.iinfo(np.int64).max // 4
    s = np.arange(n + 1)
    # step[s, t] = (t − s)·curve[s] for s < t, "infinite" otherwise
    allowed = s[None, :] > s[:, None]
    if group is not None:  # [s, t) inside one group
        g = np.asarray(group, dtype=np.int64)
        allowed &= np.append(g, -1)[:, None] == np.append(-2, g)[None, :]
    step = np.where(allowed, (s[None, :] - s[:, None]) * np.append(curve, 0)[:, None], big)
    cost = np.full(n + 1, big, dtype=np.int64)
    cost[0] = 0
    args, totals = [], []
    for _ in range(budget):
        total = cost[:, None] + step             # (s, t)
        arg = np.argmin(total, axis=0)
        cost = np.minimum(total[arg, s], big)
        args.append(arg)
        totals.append(int(cost[n]))
    return args, totals


def _backtrack(args: list[np.ndarray], totals: list[int], n: int, group: np.ndarray | None
               ) -> tuple[np.ndarray, int]:
    """The best boundaries with at most len(totals) steps (fewest steps among equal costs), and their cost."""
    if min(totals) >= np.iinfo(np.int64).max // 4:
        raise ValueError(f"{len(totals)} steps cannot cover {len(set(np.asarray(group).tolist()))} groups")
    best_k = int(np.argmin(totals)) + 1
    bounds, t = [n], n
    for k in range(best_k - 1, -1, -1):
        t = int(args[k][t])
        bounds.append(t)
    return np.array(bounds[::-1], dtype=np.int64), totals[best_k - 1]


def _table_budget(budget: int, n: int) -> int:
    """The budget the cached DP tables are computed for: a power of two ≥ 32 (≤ n), so that the budgets a
    plan tries (e.g. the splits of a depth-upscaling plane's calls) share one DP run."""
    return min(n, max(32, 1 << (budget - 1).bit_length()))


@lru_cache(maxsize=16)
def _grid_tables(curve: tuple[int, ...], n: int, cap: int) -> tuple[list[np.ndarray], list[int]]:
    g = len(curve)
    sorted_curve = np.sort(np.asarray(curve, dtype=np.int64))[::-1]   # monotone: sorting removes noise
    return _dp(sorted_curve[(np.arange(n, dtype=np.int64) * g) // n], cap, None)


@lru_cache(maxsize=256)
def _grid_boundaries(curve: tuple[int, ...], n: int, budget: int) -> tuple[int, ...]:
    """DP on the curve resampled to n ≤ G points (integer index mapping), cached per (curve, n, budget)."""
    args, totals = _grid_tables(curve, n, _table_budget(budget, n))
    return tuple(int(b) for b in _backtrack(args[:budget], totals[:budget], n, None)[0])


def step_boundaries(curve: Sequence[int], n_vars: int, budget: int, groups: Groups | None = None) -> np.ndarray:
    """Step boundaries (S+1,) int64 for n_vars variables and at most `budget` network calls.

    Integer arithmetic only. B ≥ D: one variable per step. Otherwise the DP runs on N = min(D, G) grid
    points with budget min(B, N), grid boundaries map to variables by g·D // N; for B > N each step is
    split further in proportion to its size (largest remainders, ties to the earlier step). Empty steps
    are dropped. With `groups` (a structured order; see the module's docstring) the groups without
    variables are left out, the budget is raised to the number of groups if lower, the DP runs on their
    grid points, and a grid point x of group j maps to
    Σ_{i<j} counts_i + (x − e_j)·counts_j // (e_{j+1} − e_j).
    """
    if n_vars < 1 or budget < 1:
        raise ValueError(f"need at least one variable and one step (got D={n_vars}, budget={budget})")
    if groups is not None:
        if sum(groups.counts) != n_vars or groups.edges[0] != 0 or groups.edges[-1] != len(curve):
            raise ValueError(f"groups {groups} do not fit {n_vars} variables and a grid of {len(curve)}")
        curve, groups = _drop_empty(curve, groups)
        budget = max(budget, len(groups.counts))
    if budget >= n_vars:
        return np.arange(n_vars + 1, dtype=np.int64)
    curve_key = tuple(int(c) for c in curve)
    if groups is None:
        n = min(n_vars, len(curve))
        grid = np.array(_grid_boundaries(curve_key, n, min(budget, n)), dtype=np.int64)
        bounds = grid * n_vars // n
    else:
        grid = np.array(_grouped_grid_boundaries(curve_key, tuple(groups.edges), min(budget, len(curve))),
                        dtype=np.int64)
        bounds = _grid_to_variables(grid, groups)
    bounds = np.unique(bounds)
    extra = budget - (len(bounds) - 1)
    if extra > 0:
        bounds = _split_steps(bounds, extra, n_vars)
    return np.unique(bounds)  # sorted; drops empty steps


def _drop_empty(curve: Sequence[int], groups: Groups) -> tuple[list[int], Groups]:
    """The curve and groups without the groups that hold no variable (a short clip's missing levels)."""
    keep = [j for j, c in enumerate(groups.counts) if c > 0]
    e = groups.edges
    sub = [int(v) for j in keep for v in curve[e[j]:e[j + 1]]]
    edges = tuple(int(x) for x in np.cumsum([0] + [e[j + 1] - e[j] for j in keep]))
    return sub, Groups(edges, tuple(groups.counts[j] for j in keep))


def _group_of(edges: Sequence[int], g: int) -> np.ndarray:
    """(g,) group index of every grid point."""
    return np.searchsorted(np.asarray(edges[1:], dtype=np.int64), np.arange(g), side="right")


def _sorted_within(curve: tuple[int, ...], edges: Sequence[int]) -> np.ndarray:
    """The curve sorted in decreasing order inside each group (noise removal, as for a single group)."""
    c = np.asarray(curve, dtype=np.int64)
    return np.concatenate([np.sort(c[a:b])[::-1] for a, b in zip(edges[:-1], edges[1:])])


@lru_cache(maxsize=16)
def _grouped_tables(curve: tuple[int, ...], edges: tuple[int, ...], cap: int) -> tuple[list[np.ndarray], list[int]]:
    return _dp(_sorted_within(curve, edges), cap, _group_of(edges, len(curve)))


@lru_cache(maxsize=256)
def _grouped_grid_boundaries(curve: tuple[int, ...], edges: tuple[int, ...], budget: int) -> tuple[int, ...]:
    args, totals = _grouped_tables(curve, edges, _table_budget(budget, len(curve)))
    return tuple(int(b) for b in _backtrack(args[:budget], totals[:budget], len(curve), _group_of(edges, len(curve)))[0])


def _grid_to_variables(points: np.ndarray, groups: Groups) -> np.ndarray:
    """Grid points (0 … G) -> variable indices, group by group (integer arithmetic)."""
    edges = np.asarray(groups.edges, dtype=np.int64)
    counts = np.asarray(groups.counts, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)])
    j = np.minimum(np.searchsorted(edges, points, side="right") - 1, len(counts) - 1)
    return starts[j] + (points - edges[j]) * counts[j] // (edges[j + 1] - edges[j])


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


def expected_bits(curve: Sequence[int], bounds: np.ndarray, n_vars: int, groups: Groups | None = None) -> float:
    """Bits the schedule predicts from the curve: Σ_steps size·L(start) (curve in millibits, sorted as the
    schedule sorts it; with `groups`, a step's start is placed on its group's grid range)."""
    return expected_millibits(curve, bounds, n_vars, groups) / 1000.0


def expected_millibits(curve: Sequence[int], bounds: np.ndarray, n_vars: int, groups: Groups | None = None) -> int:
    """expected_bits in integer millibits: what both sides of a codec may compare."""
    b = np.asarray(bounds, dtype=np.int64)
    if groups is None:
        c = np.sort(np.asarray(curve, dtype=np.int64))[::-1]
        starts = c[np.minimum(b[:-1] * len(c) // n_vars, len(c) - 1)]
    else:
        c = _sorted_within(tuple(int(v) for v in curve), groups.edges)
        edges, counts = np.asarray(groups.edges, dtype=np.int64), np.asarray(groups.counts, dtype=np.int64)
        ends = np.cumsum(counts)
        j = np.searchsorted(ends, b[:-1], side="right")                # group of each step's first variable
        pos = b[:-1] - (ends[j] - counts[j])
        starts = c[edges[j] + pos * (edges[j + 1] - edges[j]) // counts[j]]
    return int((np.diff(b) * starts).sum())
