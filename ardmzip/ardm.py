"""The ARDM process (PAPER.md): orders, masks, the training loss, and per-step distributions.

Variables are subpixels. An RGB image has D = H·W·3 variables, each revealed on its own; an L image
has D = H·W variables, shown to the net as grey replicated into its 3 channels with tied masks.
Distributions are discretised logistic mixtures over the 256 values of a subpixel.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .nets import DIGIT, ARDMNet  # noqa: F401  (DIGIT: values per digit of a depth-upscaling net)
from .schedule import Groups

K_VALUES = 256
LOSS_GRID = 512  # the per-step loss curve is kept on this grid of revealed fractions


# ---------------------------------------------------------------------------------------------- orders
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _splitmix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on uint64 arrays: a counter-based hash, identical on every platform."""
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def order(seed: int, n: int) -> np.ndarray:
    """The random order σ of n positions for a seed: positions sorted by hash(seed, position).

    Returns int64 (n,) position indices, first-revealed first. Depends only on (seed, n): stable sort
    of 64-bit integer keys, no RNG library involved, vectorised for millions of positions.
    """
    return np.argsort(_keys(seed, n), kind="stable")


def _keys(seed: int, n: int) -> np.ndarray:
    return _splitmix64(np.arange(n, dtype=np.uint64) ^ _splitmix64(np.full(n, seed, dtype=np.uint64)))


# A structured order reveals its positions group after group, in a random order (the same hash) within
# each group: the net learns a few regular tasks instead of every density pattern, and each step of the
# schedule stays inside one group (schedule.step_boundaries with `groups`), where the positions are
# exchangeable, so one loss curve value per step start still prices the whole step.
#
# Both families below have 7 groups holding 1/64, 1/64, 2/64, 4/64, 8/64, 16/64 and 32/64 of the
# positions (exactly so for sizes that are multiples of 64, resp. 8×8), so they share one set of loss-curve
# grid edges (`group_edges`; the dyadic-split families halve the last ranges).
#
# dyadic (1-D, audio frames), coarse to fine: group 0 holds the multiples of 64 (a uniformly random order
# among themselves), group k = 1 … 6 the odd multiples of 64 / 2^k, whose nearest known neighbours are
# at distance 64 / 2^k on both sides.
#
# dyadic-split (dyadic-split2, dyadic-split3): dyadic with its finest level (two, three finest levels)
# cut in two halves: a level of spacing h, the odd multiples of h, becomes the frames ≡ h (mod 4h), then
# those ≡ 3h (mod 4h), which then also know the first half's frames at ±2h, ±6h, … Coding a level in
# one step treats its frames as independent given the coarser ones; where the signal has content above
# what the coarser lattice can resolve their residuals are not, and the second half's fitted filters
# (interp.py) read it from the first half's. dyadic-split has 8 groups (1/64, 1/64, 2/64, 4/64, 8/64,
# 16/64, 16/64, 16/64 of the frames), dyadic-split3 has 10.
#
# quincunx (2-D, image pixels): group 0 holds the pixels (y, x) with y and x multiples of 8; then for
# d = 4, 2, 1 in turn, the centres of the known 2d×2d squares (y ≡ x ≡ d mod 2d: their 4 diagonal
# neighbours are known), then the rest of the d-lattice (their 4 axial neighbours at distance d are
# known): groups 1, 2 (d = 4), 3, 4 (d = 2), 5, 6 (d = 1). Every subpixel of a pixel is in its group.
#
# quincunx-grb: quincunx with every group of an RGB plane split in three by channel, G first, then R, then
# B, so the net predicts R knowing G, and B knowing both (21 groups; grey planes keep the 7 of quincunx).
DYADIC_TOP = 64
SPLIT_LEVELS = {"dyadic": 0, "dyadic-split": 1, "dyadic-split2": 2, "dyadic-split3": 3}  # finest levels halved
DYADIC_FAMILIES = tuple(SPLIT_LEVELS)
QUINCUNX_TOP = 8
CHANNEL_RANK = (1, 0, 2)  # quincunx-grb: the place of R, G, B within a group (G first)
GROUP_PARTS = {"quincunx-grb": 3}  # families whose groups split into parts (by channel)


def dyadic_groups(frames: int, top: int = DYADIC_TOP, split: int = 0) -> np.ndarray:
    """(frames,) int64 group of every frame (see above); split: how many of the finest levels are halved
    (SPLIT_LEVELS of the family)."""
    f = np.arange(frames, dtype=np.int64)
    g = np.zeros(frames, dtype=np.int64)
    k, d = 1, top // 2
    while d >= 1:
        on = f % (2 * d) == d
        if d < 1 << split:                       # a halved level: f ≡ d, then f ≡ 3d (mod 4d)
            g[on & (f % (4 * d) == d)], g[on & (f % (4 * d) == 3 * d)] = k, k + 1
            k += 2
        else:
            g[on] = k
            k += 1
        d //= 2
    return g


def quincunx_groups(h: int, w: int, top: int = QUINCUNX_TOP) -> np.ndarray:
    """(h, w) int64 group of every pixel (see above)."""
    y, x = np.arange(h, dtype=np.int64)[:, None], np.arange(w, dtype=np.int64)[None, :]
    g = np.zeros((h, w), dtype=np.int64)
    k, d = 1, top // 2
    while d >= 1:
        on = (y % d == 0) & (x % d == 0) & ~((y % (2 * d) == 0) & (x % (2 * d) == 0))
        centre = on & (y % (2 * d) == d) & (x % (2 * d) == d)
        g[centre], g[on & ~centre] = k, k + 1
        k, d = k + 2, d // 2
    return g


def group_parts(family: str, grey: bool = False) -> int:
    """How many parts each group of this family has (by channel; grey planes have one channel)."""
    return 1 if grey else GROUP_PARTS.get(family, 1)


def image_groups(family: str, h: int, w: int, grey: bool) -> np.ndarray:
    """(D,) int64 group of every variable of an image plane of a structured family, in the codec's flat
    order (c·H·W + y·W + x; grey planes: y·W + x)."""
    g = quincunx_groups(h, w).reshape(-1)
    parts = group_parts(family, grey)
    if parts == 1:
        return g if grey else np.tile(g, 3)
    return np.concatenate([g * parts + CHANNEL_RANK[c] for c in range(3)])


def curve_grid(family: str) -> int:
    """The loss-curve grid of a model of this order family: LOSS_GRID, or 256 points per part of a group
    split into parts (so each part of the smallest group spans whole grid points)."""
    parts = group_parts(family)
    return LOSS_GRID if parts == 1 else 256 * parts


def group_edges(grid: int = LOSS_GRID, parts: int = 1, split: int = 0) -> tuple[int, ...]:
    """The groups' nominal ranges on a loss-curve grid of `grid` revealed fractions: 0, grid/64,
    2·grid/64, 4·grid/64, … grid (each group from one edge to the next), each range cut into `parts`
    equal parts when the groups are split (quincunx-grb); split: the last `split` ranges halved
    (dyadic-split…)."""
    if grid % (64 * parts):
        raise ValueError(f"a grid of {grid} points cannot hold groups of 1/64 in {parts} parts")
    out, e = [0, grid // 64], grid // 64
    while e < grid:
        e *= 2
        out.append(e)
    for j in range(len(out) - 1, len(out) - 1 - split, -1):
        out.insert(j, (out[j - 1] + out[j]) // 2)
    return tuple([a + (b - a) * i // parts for a, b in zip(out[:-1], out[1:]) for i in range(parts)] + [grid])


def min_budget(order_family: str) -> int:
    """The fewest network calls a model of this order family takes per plane / stage (an RGB plane for
    images): one per group."""
    if order_family == "uniform":
        return 1
    return (len(group_edges(split=SPLIT_LEVELS.get(order_family, 0))) - 1) * group_parts(order_family)


def schedule_groups(groups: np.ndarray, grid: int, parts: int = 1, split: int = 0) -> Groups:
    """The schedule's Groups of a structured order: group_edges on the model's loss-curve grid, and the
    number of variables in each group (groups: the group of every variable)."""
    edges = group_edges(grid, parts, split)
    return Groups(edges, tuple(int(c) for c in np.bincount(groups, minlength=len(edges) - 1)))


def revealing_group(groups: torch.Tensor, t: torch.Tensor, per: torch.Tensor | int) -> torch.Tensor:
    """(B,) the group of σ(t) for t[b] known variables of a structured order (training): groups holds the
    group of every position (any shape), each position standing for `per` variables (an int, or (B,))."""
    ends = torch.cumsum(torch.bincount(groups.reshape(-1)), 0).view(1, -1) * torch.as_tensor(per).view(-1, 1)
    return (t.view(-1, 1) >= ends).sum(1)


def grouped_order(seed: int, groups: np.ndarray) -> np.ndarray:
    """σ of a structured order: positions sorted by (group, hash(seed, position)) — `order` within each
    group. groups: (n,) int64 per position. Returns int64 (n,) positions, first-revealed first."""
    return np.lexsort((_keys(seed, len(groups)), groups))


# ------------------------------------------------------------------------------ logistic mixture head
def split_params(p: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(..., 3K, H, W) -> log mixture weights, means (in [-1,1] units), log-scales, each (..., K, H, W)."""
    logit, mu, log_s = p.split(k, dim=-3)
    return F.log_softmax(logit, dim=-3), mu, log_s.clamp(min=-7.0)


def log_prob(p: torch.Tensor, x: torch.Tensor, k: int) -> torch.Tensor:
    """Log-probability (nats) of integer subpixels x (..., H, W) in 0..255 under params p (..., 3K, H, W)."""
    log_w, mu, log_s = split_params(p, k)
    c = (x.float() / 127.5 - 1.0).unsqueeze(-3)
    inv_s = torch.exp(-log_s)
    plus = inv_s * (c - mu + 1 / 255)
    minus = inv_s * (c - mu - 1 / 255)
    cdf_delta = torch.sigmoid(plus) - torch.sigmoid(minus)
    log_cdf_plus = plus - F.softplus(plus)       # log σ(plus), for x = 0
    log_one_minus_cdf_min = -F.softplus(minus)   # log(1 − σ(minus)), for x = 255
    mid = inv_s * (c - mu)
    log_pdf_mid = mid - log_s - 2 * F.softplus(mid) - math.log(127.5)  # fallback in the tails
    inner = torch.where(cdf_delta > 1e-5, torch.log(cdf_delta.clamp(min=1e-12)), log_pdf_mid)
    xb = c.expand_as(mu)
    lp = torch.where(xb < -0.999, log_cdf_plus, torch.where(xb > 0.999, log_one_minus_cdf_min, inner))
    return torch.logsumexp(lp + log_w, dim=-3)


_EDGES = (torch.arange(1, K_VALUES, dtype=torch.float32) - 0.5) / 127.5 - 1.0  # inner bin edges, [-1, 1] units


def probabilities(p: torch.Tensor, k: int) -> np.ndarray:
    """Categorical distributions over 0..255 from mixture params p (n, 3K): (n, 256) float64, C order.

    Each row is Σ_j w_j·(σ((e_{v+1} − μ_j)/s_j) − σ((e_v − μ_j)/s_j)) with e_0 = −∞, e_256 = +∞, computed in
    float32 in place (about 5 µs per variable; call it on chunks of a few thousand rows to stay in
    cache). float32 suffices: constriction quantises to 24-bit fixed point, and both sides compute
    the same floats from the same params.
    """
    logit, mu, log_s = p.float().split(k, dim=1)
    w = torch.softmax(logit, dim=1)
    z = (_EDGES[None, None, :] - mu[:, :, None]) * torch.exp(-log_s.clamp(min=-7.0))[:, :, None]
    cdf = torch.bmm(w[:, None, :], z.sigmoid_())[:, 0]                  # (n, 255)
    out = torch.empty(len(p), K_VALUES, dtype=torch.float64)
    out[:, 0] = cdf[:, 0]
    out[:, 1:-1] = cdf[:, 1:] - cdf[:, :-1]
    out[:, -1] = 1.0 - cdf[:, -1]
    return out.clamp_(min=0.0).numpy()


# ---------------------------------------------------------------------------------- depth upscaling
# A depth-upscaling image net (NetConfig.stages = 2, PAPER.md) reveals each subpixel as two base-16
# digits: stage 1 the coarse digit v // 16 of every subpixel, stage 2 the fine digit v % 16 given every
# coarse one, each stage with its own order (any order family; with the prior, which sees stage 1's
# known bins as their centres). The head is the same logistic mixture over the value, integrated over
# the coarse bin (outer bins open) in stage 1 and restricted to the known bin in stage 2, so the two
# stages' product is log_prob's distribution when both see the same parameters. The codec codes stage 1
# of a plane, then stage 2, from the int-exact head's 256 frequencies (exact.digit_probabilities).
_FAR = 1e3      # an outer bin's open edge, [-1, 1] units: finite, so gradients stay finite


def _log_mass(log_w: torch.Tensor, mu: torch.Tensor, inv_s: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor
              ) -> torch.Tensor:
    """log Σ_k w_k·(σ((hi − μ_k)/s_k) − σ((lo − μ_k)/s_k)) for edges lo < hi in [-1, 1] units, stably:
    σ(b) − σ(a) = σ(b)·σ(−a)·(1 − e^(a−b))."""
    a, b = (lo - mu) * inv_s, (hi - mu) * inv_s
    return torch.logsumexp(log_w + F.logsigmoid(b) + F.logsigmoid(-a) + torch.log(-torch.expm1((lo - hi) * inv_s)),
                           dim=-3)


def digit_log_prob(p: torch.Tensor, x: torch.Tensor, stage: torch.Tensor, k: int) -> torch.Tensor:
    """Log-probability (nats) of one stage's digit of integer subpixels x (B, C, H, W) in 0..255 under
    params p (B, C, 3K, H, W): stage (B,) 1, the coarse digit x // 16; 2, the fine digit x % 16 given
    the coarse one."""
    log_w, mu, log_s = split_params(p, k)
    inv_s = torch.exp(-log_s)
    v = x.float().unsqueeze(-3)
    lo = v - v.remainder(DIGIT)                                               # the coarse bin's first value
    coarse = _log_mass(log_w, mu, inv_s, torch.where(lo > 0, (lo - 0.5) / 127.5 - 1.0, -_FAR),
                       torch.where(lo < 256 - DIGIT, (lo + DIGIT - 0.5) / 127.5 - 1.0, _FAR))
    value = _log_mass(log_w, mu, inv_s, torch.where(v > 0, (v - 0.5) / 127.5 - 1.0, -_FAR),
                      torch.where(v < 255, (v + 0.5) / 127.5 - 1.0, _FAR))
    return torch.where((stage == 1).view(-1, 1, 1, 1), coarse, value - coarse)


def stage_inputs(x: torch.Tensor, m: torch.Tensor, stage: torch.Tensor) -> torch.Tensor:
    """The value input of a depth-upscaling net ([-1, 1] units): stage 1, the coarse bin's centre where
    its digit is known (m), else 0; stage 2, the value where known, else its (known) bin's centre."""
    centre = (x - x.remainder(DIGIT) + (DIGIT - 1) / 2).float() / 127.5 - 1.0
    value = x.float() / 127.5 - 1.0
    return torch.where((stage == 1).view(-1, 1, 1, 1), centre * m, value * m + centre * (1 - m))


# ----------------------------------------------------------------------------------------- training
def training_loss(net: ARDMNet, x: torch.Tensor, grey: torch.Tensor, generator: torch.Generator | None = None,
                  t: torch.Tensor | None = None, stage: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Order-agnostic ARDM loss for a batch.

    x: (B, 3, H, W) uint8-valued subpixels; grey: (B,) bool, True where the image is grey replicated
    into 3 channels (its variables are the H·W pixels, masks tied across channels); t: (B,) optional
    fixed numbers of known variables (default: t ~ U{0..D−1}). The net's order family
    (`NetConfig.order`) gives the masks: uniformly random, or a structured family (groups coarse to
    fine, random within; only the unknown variables of σ(t)'s group are scored). A depth-upscaling net
    (cfg.stages = 2) scores one stage per example (stage: (B,) 1 or 2, default drawn uniformly), t
    counting that stage's known digits.
    Returns (loss: scalar, the bound in bits per dimension averaged over the batch (all stages: the
             scored stage's term times the number of stages);
             frac: (B,) revealed fraction t/D; lt: (B,) mean nats per masked variable at that t).
    """
    B, C, H, W = x.shape
    dev = x.device
    stages = net.cfg.stages
    if stages > 1:
        if stage is None:
            stage = torch.randint(1, stages + 1, (B,), generator=generator, device=dev)
    n_var = torch.where(grey, H * W, C * H * W)                       # D per example
    if t is None:
        t = (torch.rand(B, generator=generator, device=dev) * n_var).long()  # t ~ U{0..D−1}
    noise = torch.rand(B, C, H, W, generator=generator, device=dev)
    noise = torch.where(grey.view(B, 1, 1, 1), noise[:, :1].expand(B, C, H, W), noise)
    grouped = net.cfg.order != "uniform"
    if grouped:  # group first, random within (a structured order: see image_groups)
        rgb = torch.from_numpy(image_groups(net.cfg.order, H, W, grey=False).reshape(C, H, W)).to(dev)
        spatial = torch.from_numpy(image_groups(net.cfg.order, H, W, grey=True).reshape(1, H, W)).to(dev)
        groups = torch.where(grey.view(B, 1, 1, 1), spatial, rgb)    # (B, C, H, W)
        noise = noise + groups
    # rank of each variable in a uniformly random order; tied channels of grey pixels share a rank
    flat = noise.reshape(B, -1)
    rank = flat.argsort(1).argsort(1).reshape(B, C, H, W)
    rank = torch.where(grey.view(B, 1, 1, 1), rank // C, rank)
    m = (rank < t.view(B, 1, 1, 1)).float()
    frac = t.float() / n_var.float()
    if stages > 1:
        p = net(stage_inputs(x, m, stage), m, frac, stage)
        nll = -digit_log_prob(p, x, stage, net.cfg.mixtures)
    else:
        p = net((x.float() / 127.5 - 1.0) * m, m, frac)
        nll = -log_prob(p, x, net.cfg.mixtures)                        # (B, C, H, W) nats
    counted = (1 - m) * torch.where(grey.view(B, 1, 1, 1), (torch.arange(C, device=dev) == 0).view(1, C, 1, 1).float(),
                                    torch.ones(1, C, 1, 1, device=dev))
    if grouped:  # score only the unknown variables of σ(t)'s group: the ones exchangeable with σ(t)
        current = torch.where(rank == t.view(B, 1, 1, 1), groups, 0).amax((1, 2, 3))
        counted = counted * (groups == current.view(B, 1, 1, 1)).float()
    masked_sum = (nll * counted).sum((1, 2, 3))
    n_masked = counted.sum((1, 2, 3))
    lt = masked_sum / n_masked  # D/(D−t)·Σ_masked/D: per example an unbiased term of the bound (nats/dim)
    loss = lt.mean() / math.log(2) * stages
    return loss, frac.detach(), lt.detach()
