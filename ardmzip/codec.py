"""The ARDM codec for one plane: walk the schedule, call the net once per step, push/pop the variables
revealed in that step. Encoder and decoder build every network input with the same function, so the
decoder sees exactly the tensors the encoder saw.

A plane is (H, W, 3) uint8 "rgb" (D = 3·H·W subpixels, flat index c·H·W + y·W + x) or (H, W) uint8
"grey" (D = H·W pixels, shown to the net replicated into 3 channels with tied masks).

A depth-upscaling model (cfg.stages = 2) codes a plane in two walks (a StagedPlan): the coarse digit
v // 16 of every variable, then the fine digit v % 16 given all the coarse ones, each walk with its own
order and schedule; the budget's network calls are split between them where the loss curves predict the
fewest bits (integer arithmetic, so both sides split alike).
"""
from __future__ import annotations

import dataclasses
import math
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from enum import IntEnum
from functools import partial
from types import SimpleNamespace
from typing import Callable, Iterator

import numpy as np
import torch

from . import adapt
from .ardm import DIGIT, digit_log_prob, group_parts, grouped_order, image_groups, log_prob, order, schedule_groups
from .coder import Decoder, Encoder
from .exact import LOGS_MIN, log_probabilities_torch, probabilities
from .lattice import lattice_index, lattice_units, unit_params
from .registry import Model
from .schedule import Groups, expected_bits, expected_millibits, step_boundaries

CODING_THREADS = 1  # float32 models' outputs depend on the thread count: both sides use this many
TILE = 512   # larger planes are run through the net in tiles of this size ...
HALO = 64    # ... each with this much context on every side (≥ the net's receptive field)
CHUNK = 4096  # variables per push/pop: bounds memory to a few MB per step on any image size
ENCODE_BATCH_PIXELS = 1 << 17  # int-exact encoder: up to this many pixels of states per network call
# Scale offsets (files with FLAG_OFFSETS): the encoder picks, per network step, one offset added to every
# log-scale of the step's int-exact head (1/16 nat units) and codes its index before the step's variables
# (uniform, log2 17 ≈ 4.1 bits). A static net cannot know whether a whole image is smoother or noisier
# than its training crops; the encoder can: on validation photos this sharpened smooth ones by ~4%.
OFFSETS = tuple(range(-48, 17, 4))
SEARCH_VARS = 1024  # the encoder picks a step's offset on at most this many of its variables
OFFSET_PROBS = np.full((1, len(OFFSETS)), 1.0 / len(OFFSETS))  # an index's distribution: uniform

Progress = Callable[[int], None] | None


class Coding(IntEnum):
    """How a plane's network steps are coded: the ways the encoder may try at once (encode_plane_ways;
    False and True, as audio passes them, are PLAIN and OFFSET)."""
    PLAIN = 0    # the head as the net gives it
    OFFSET = 1   # a scale offset per step (FLAG_OFFSETS)
    ADAPT = 2    # per step a mode: one scale offset, or a mean correction and bucket offsets (FLAG_ADAPT, adapt.py)
    PHASES = 3   # ADAPT per class of a step's partition (FLAG_ADAPT | FLAG_PHASES, adapt.phase_classes)


@dataclass
class Plan:
    """Everything both sides derive from (plane shape, model, budget, seed)."""
    shape: tuple[int, int]
    grey: bool
    order: np.ndarray      # (D,) variable indices, first revealed first
    bounds: np.ndarray     # (S+1,) step boundaries
    groups: Groups | None = None  # a structured order's groups (the schedule keeps steps inside them)
    first: int = 0         # the first `first` variables of the order (group 0) are coded by lattice.py, not the net
    offsets: bool = False  # each network step starts with its scale offset's index (OFFSETS)
    adapt: bool = False    # each network step starts with its mode (adapt.py); implies offsets
    phases: bool = False   # with adapt: a step of PHASE_MIN_VARS+ variables adapted per class of a partition
    stage: int = 0         # 0: a 256-way model's walk; 1, 2: that digit stage of a depth-upscaling model

    @property
    def calls(self) -> int:
        """Network calls: the steps after the lattice's."""
        return int(np.count_nonzero(self.bounds[:-1] >= self.first))

    @property
    def n_vars(self) -> int:
        return len(self.order)

    @property
    def steps(self) -> int:
        return len(self.bounds) - 1

    def predicted_bits(self, curve) -> float:
        return expected_bits(curve, self.bounds, self.n_vars, self.groups)

    def predicted_millibits(self, curve) -> int:
        return expected_millibits(curve, self.bounds, self.n_vars, self.groups)


@dataclass
class StagedPlan:
    """A depth-upscaling model's plane: one Plan per digit stage (stage 1, the coarse digits, decoded first)."""
    stages: tuple[Plan, ...]

    shape = property(lambda self: self.stages[0].shape)
    grey = property(lambda self: self.stages[0].grey)
    offsets = property(lambda self: self.stages[0].offsets)
    adapt = property(lambda self: self.stages[0].adapt)   # always False: make_plan refuses it for staged models
    phases = property(lambda self: self.stages[0].phases)  # always False, as adapt
    n_vars = property(lambda self: self.stages[0].n_vars)
    calls = property(lambda self: sum(p.calls for p in self.stages))
    steps = property(lambda self: sum(p.steps for p in self.stages))

    def predicted_bits(self, curves) -> float:
        """curves: one per stage."""
        return sum(p.predicted_bits(c) for p, c in zip(self.stages, curves))


def make_plan(model: Model, shape: tuple[int, ...], budget: int, seed: int, offsets: bool = False,
              adapt: bool = False, phases: bool = False) -> Plan | StagedPlan:
    """The plan of a plane: the model's order family ("uniform": ardm.order over the D variables;
    structured: ardm.grouped_order over the variables' groups, ardm.image_groups) and the schedule of
    `budget` network calls; `offsets`: with a scale offset per step, `adapt`: with a mode per step
    (adapt.py; int-exact one-stage models only), `phases` (with adapt): per class of a partition. A
    depth-upscaling model: a StagedPlan, its stages' orders drawn from stage_seed(seed, stage)."""
    if (offsets or model.cfg.stages > 1) and model.exact is None:
        raise ValueError(f"scale offsets and depth upscaling need an int-exact model; {model.id} is {model.arithmetic}")
    if adapt and (model.exact is None or model.cfg.stages > 1):
        raise ValueError(f"adapted steps need an int-exact one-stage model; {model.id} is not")
    if phases and not adapt:
        raise ValueError("phase classes are defined for adapted steps only")
    if model.cfg.stages == 1:
        return dataclasses.replace(_plan(model, model.curve, shape, budget, seed), offsets=offsets or adapt, adapt=adapt,
                                   phases=phases)
    return StagedPlan(tuple(dataclasses.replace(p, offsets=offsets) for p in _staged_plans(model, shape, budget, seed)))


def stage_seed(seed: int, stage: int) -> int:
    """The order seed of one digit stage of a plane (distinct for seeds below 2^62)."""
    return ((seed << 2) | stage) & ((1 << 64) - 1)


def budget_splits(budget: int, least: int = 1) -> list[int]:
    """The calls of stage 1 tried when `budget` calls are split between two stages that need `least`
    calls each (a call per group of a structured order): b₁ in least … budget − least, every one where
    they are at most 33, else both ends and 15 evenly spaced between (planning stays fast at large
    budgets); [least] where the budget is below 2·least (each stage then takes its least)."""
    lo, hi = least, budget - least
    if hi <= lo:
        return [lo]
    if hi - lo <= 32:
        return list(range(lo, hi + 1))
    return sorted({lo, hi, *(lo + (hi - lo) * i // 16 for i in range(1, 16))})


def _staged_plans(model: Model, shape: tuple[int, ...], budget: int, seed: int) -> tuple[Plan, Plan]:
    """The two stages' plans: `budget` calls split where the curves predict the fewest millibits (ties:
    fewer calls on stage 1), each stage taking at least a call per non-empty group; the splits are
    scored on their step boundaries alone, and the two orders drawn once, for the chosen one."""
    if model.info.get("first_group"):
        raise ValueError(f"model {model.id}: a depth-upscaling model codes every variable with the net")
    h, w = shape[:2]
    grey = len(shape) == 2
    n = h * w * (1 if grey else 3)
    per_var = None if model.cfg.order == "uniform" else image_groups(model.cfg.order, h, w, grey)
    groups = [None if per_var is None else schedule_groups(per_var, len(c), group_parts(model.cfg.order, grey))
              for c in model.curves]
    least = 1 if per_var is None else sum(1 for c in groups[0].counts if c > 0)

    def bounds(b1: int) -> list[np.ndarray]:
        return [step_boundaries(c, n, b, g) for c, b, g in zip(model.curves, (b1, max(least, budget - b1)), groups)]

    def cost(b1: int) -> int:
        return sum(expected_millibits(c, b, n, g) for c, b, g in zip(model.curves, bounds(b1), groups))

    best = min(budget_splits(budget, least), key=cost)  # min keeps the first of equal costs
    return tuple(Plan((h, w), grey, order(stage_seed(seed, s), n) if per_var is None
                      else grouped_order(stage_seed(seed, s), per_var), b, g, stage=s)
                 for s, (b, g) in enumerate(zip(bounds(best), groups), 1))


def _plan(model: Model, curve: tuple[int, ...], shape: tuple[int, ...], budget: int, seed: int) -> Plan:
    h, w = shape[:2]
    grey = len(shape) == 2
    n = h * w * (1 if grey else 3)
    if model.cfg.order == "uniform":
        return Plan((h, w), grey, order(seed, n), step_boundaries(curve, n, budget))
    per_var = image_groups(model.cfg.order, h, w, grey)
    parts = group_parts(model.cfg.order, grey)
    groups = schedule_groups(per_var, len(curve), parts)
    if model.info.get("first_group") != "lattice":
        return Plan((h, w), grey, grouped_order(seed, per_var), step_boundaries(curve, n, budget, groups), groups)
    # group 0 (its first `parts` groups) is one step of lattice.py; the budget's calls go to the other groups
    first, e0 = lattice_index(h, w, grey).size, groups.edges[parts]
    rest = Groups(tuple(e - e0 for e in groups.edges[parts:]), groups.counts[parts:])
    bounds = np.array([0, first]) if n == first else \
        np.concatenate([[0], first + step_boundaries(curve[e0:], n - first, budget, rest)])
    return Plan((h, w), grey, grouped_order(seed, per_var), bounds, groups, first)


def planning_model(cfg, curves) -> SimpleNamespace:
    """What make_plan and predicted_bits read of a model, from a net config and its loss curves (one per
    stage) without weights: a training run's predictions before it ships (export, benchmarks)."""
    curves = tuple(tuple(int(v) for v in c) for c in curves)
    return SimpleNamespace(id="(a training run)", cfg=cfg, curve=curves[0], curves=curves, info={},
                           exact=True)  # planning needs no arithmetic; this says only "any plan is allowed"


def predicted_bits(model: Model, plan: Plan | StagedPlan) -> float:
    """What the schedule predicts for a plane from the model's loss curve(s)."""
    return plan.predicted_bits(model.curves if isinstance(plan, StagedPlan) else model.curve)


def _net_input(values: np.ndarray, known: np.ndarray, plan: Plan, exact: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """values, known: flat (D,) arrays (values only read where known; in a depth-upscaling plan's stage 2
    the coarse digit of every value too). Returns x, m of (1, 3, H, W): x scaled to [-1, 1] and masked
    for the float net, the plain values 0..255 for the exact one (stage 2: where unknown, the coarse
    bin's first value, which is all exact.int_inputs reads there)."""
    h, w = plan.shape
    if exact:
        x = np.where(known, values, values - values % DIGIT if plan.stage == 2 else 0).astype(np.float32)
    else:
        x = np.where(known, values.astype(np.float32) / np.float32(127.5) - np.float32(1.0), np.float32(0.0))
    m = known.astype(np.float32)
    shape = (1, 1, h, w) if plan.grey else (1, 3, h, w)
    xt, mt = torch.from_numpy(x.reshape(shape)), torch.from_numpy(m.reshape(shape))
    if plan.grey:
        xt, mt = xt.expand(1, 3, h, w), mt.expand(1, 3, h, w)
    return xt.contiguous(), mt.contiguous()


def _tiles(h: int, w: int) -> Iterator[tuple[slice, slice, slice, slice]]:
    """Fixed tiling of a plane: (rows, cols) of each tile's output and of its input with halo."""
    if h <= TILE + 2 * HALO and w <= TILE + 2 * HALO:
        yield slice(0, h), slice(0, w), slice(0, h), slice(0, w)
        return
    for y0 in range(0, h, TILE):
        for x0 in range(0, w, TILE):
            yield (slice(y0, min(h, y0 + TILE)), slice(x0, min(w, x0 + TILE)),
                   slice(max(0, y0 - HALO), min(h, y0 + TILE + HALO)),
                   slice(max(0, x0 - HALO), min(w, x0 + TILE + HALO)))


@torch.inference_mode()
def _step_params(model: Model, plan: Plan, values: np.ndarray, known: np.ndarray, start: int,
                 positions: np.ndarray) -> torch.Tensor:
    """(n, 3K) mixture params of the variables at `positions` given what is known at `start`.

    Large planes run through the net tile by tile (with halos), gathering only the variables revealed
    in this step, so memory stays bounded by a tile and the step's own variables.
    """
    if model.exact is not None:  # integer inputs: values, mask, and the revealed fraction as 255·t // D
        x, m = _net_input(values, known, plan, exact=True)
        f = torch.tensor([(255 * start) // plan.n_vars], dtype=torch.float32)
        net = partial(model.exact, stage=_stage(plan, 1))
    else:
        x, m = _net_input(values, known, plan)
        f = torch.tensor([start / plan.n_vars], dtype=torch.float32)
        net = model.net
    h, w = plan.shape
    c, yx = (np.zeros_like(positions), positions) if plan.grey else np.divmod(positions, h * w)
    y, xx = np.divmod(yx, w)
    out = torch.empty(len(positions), 3 * model.cfg.mixtures)
    for ys, xs, yh, xh in _tiles(h, w):
        sel = np.flatnonzero((y >= ys.start) & (y < ys.stop) & (xx >= xs.start) & (xx < xs.stop))
        if len(sel) == 0:
            continue
        p = net(x[:, :, yh, xh], m[:, :, yh, xh], f)[0]                 # (3, 3K, h', w')
        idx = [torch.from_numpy(v) for v in (c[sel], y[sel] - yh.start, xx[sel] - xh.start)]
        out[torch.from_numpy(sel)] = p[idx[0], :, idx[1], idx[2]]
    return out


@torch.inference_mode()
def _batched_params(model: Model, plan: Plan, values: np.ndarray, rank: np.ndarray,
                    group: list[tuple[int, np.ndarray]]) -> list[torch.Tensor]:
    """The encoder's shortcut for int-exact models on single-tile planes: the states of several steps
    in one network call (the encoder knows them all). Exact arithmetic makes each result independent
    of the batch it was computed in, so the decoder, one step at a time, gets the same integers."""
    if model.exact is None or len(group) == 1 or next(_tiles(*plan.shape))[0].stop < plan.shape[0] \
            or next(_tiles(*plan.shape))[1].stop < plan.shape[1]:
        return [_step_params(model, plan, values, rank < start, start, pos) for start, pos in group]
    pairs = [_net_input(values, rank < start, plan, exact=True) for start, _ in group]
    x, m = torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])
    f = torch.tensor([(255 * start) // plan.n_vars for start, _ in group], dtype=torch.float32)
    p = model.exact(x, m, f, _stage(plan, len(group)))                     # (E, 3, 3K, H, W)
    h, w = plan.shape
    out = []
    for e, (_, positions) in enumerate(group):
        c, yx = (np.zeros_like(positions), positions) if plan.grey else np.divmod(positions, h * w)
        y, xx = np.divmod(yx, w)
        out.append(p[e][torch.from_numpy(c), :, torch.from_numpy(y), torch.from_numpy(xx)])
    return out


def _stage(plan: Plan, n: int) -> torch.Tensor | None:
    """The stage input of n net inputs of a depth-upscaling plan (None for a one-stage model)."""
    return torch.full((n,), plan.stage) if plan.stage else None


def _symbols(values: np.ndarray, plan: Plan) -> np.ndarray:
    """What a walk codes of (full) values: the values, or the stage's digit."""
    return values // DIGIT if plan.stage == 1 else values % DIGIT if plan.stage == 2 else values


def _probabilities(model: Model, params: torch.Tensor, plan: Plan, values: np.ndarray) -> np.ndarray:
    """The distributions of a walk's variables (values: their full values; stage 2 reads the coarse digit)."""
    return model.probabilities(params, plan.stage, values // DIGIT if plan.stage == 2 else None)


def _encode_batch(model: Model, plan: Plan) -> int:
    """States per network call in the encoder: 1 for float models (their outputs depend on the batch)."""
    if model.exact is None:
        return 1
    return max(1, min(16, ENCODE_BATCH_PIXELS // (plan.shape[0] * plan.shape[1])))


def _threads(model: Model):
    """Float models run with a fixed thread count (their outputs depend on it); exact ones use any."""
    return fixed_threads() if model.exact is None else nullcontext()


def _chunks(n: int) -> list[slice]:
    return [slice(i, min(n, i + CHUNK)) for i in range(0, n, CHUNK)]


@contextmanager
def fixed_threads(n: int = CODING_THREADS) -> Iterator[None]:
    """Run the net with a fixed intra-op thread count (restored afterwards)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _flat(plane: np.ndarray) -> np.ndarray:
    return plane.reshape(-1) if plane.ndim == 2 else plane.transpose(2, 0, 1).reshape(-1)


def _unflat(values: np.ndarray, plan: Plan) -> np.ndarray:
    h, w = plan.shape
    return values.reshape(h, w) if plan.grey else values.reshape(3, h, w).transpose(1, 2, 0).copy()


def _steps(plan: Plan) -> Iterator[tuple[int, np.ndarray]]:
    """The net's steps: (variables known before, variables revealed), after the lattice's."""
    for i in range(plan.steps):
        if plan.bounds[i] >= plan.first:
            yield int(plan.bounds[i]), plan.order[plan.bounds[i]:plan.bounds[i + 1]]


def _lattice(plan: Plan) -> tuple[np.ndarray, list[tuple[int, int, np.ndarray]]]:
    """With plan.first: the lattice's flat indices (C, h0, w0) and its units in decoding order."""
    index = lattice_index(*plan.shape, plan.grey)
    return index, list(lattice_units(index.shape[1], index.shape[2], plan.grey))


def _unit_probs(lat: np.ndarray, unit: tuple[int, int, np.ndarray], plan: Plan) -> np.ndarray:
    return probabilities(unit_params(lat, *unit, plan.grey), 1)


def _lattice_steps(plan: Plan) -> int:
    return plan.steps - plan.calls


def with_offset(model: Model, params: torch.Tensor, offset: int) -> torch.Tensor:
    """Int-exact head params (n, 3K) with `offset` added to every log-scale, clamped to their range."""
    k = model.cfg.mixtures
    return torch.cat([params[:, :2 * k], (params[:, 2 * k:] + offset).clamp(LOGS_MIN, model.cfg.logs_max)], 1)


def best_offset(model: Model, params: torch.Tensor, values: np.ndarray, stage: int = 0) -> int:
    """The encoder's choice: the index into OFFSETS whose head codes (an evenly spaced sample of at most
    SEARCH_VARS of) the step's values (a depth-upscaling stage: their digit) in the fewest bits, by the
    dequantised float head: any choice decodes, since the index is stored."""
    sel = slice(None, None, max(1, len(values) // SEARCH_VARS))
    q, x = params[sel].to(torch.int64), torch.from_numpy(np.asarray(values[sel]))
    k = model.cfg.mixtures
    shifted = torch.cat([with_offset(model, q, o) for o in OFFSETS])            # (len(OFFSETS)·n, 3K)
    head = log_probabilities_torch(shifted.float()[..., None, None], k)             # (len(OFFSETS)·n, 3K, 1, 1)
    xs = x.repeat(len(OFFSETS))[:, None, None]
    nats = digit_log_prob(head, xs, torch.tensor(stage), k) if stage else log_prob(head, xs, k)
    return int(nats.reshape(len(OFFSETS), -1).sum(1).argmax())


def _coding(model: Model, plan: Plan, use: Coding, params: torch.Tensor, values: np.ndarray, known: np.ndarray,
            positions: np.ndarray) -> tuple[torch.Tensor, list[tuple[np.ndarray, np.ndarray]]]:
    """The encoder's coding of one step: (the head params it codes with, the side information as
    (symbols, distributions) in push order)."""
    if use == Coding.PLAIN:
        return params, []
    if use == Coding.ADAPT:
        return _adapted_step(model, plan, params, values, known, positions)[:2]
    if use == Coding.PHASES:
        return _phased_step(model, plan, params, values, known, positions)
    o = best_offset(model, params, values[positions], plan.stage)
    return with_offset(model, params, OFFSETS[o]), [(np.array([o]), OFFSET_PROBS)]


def _adapted_step(model: Model, plan: Plan, params: torch.Tensor, values: np.ndarray, known: np.ndarray,
                  positions: np.ndarray, fit_vars: int | None = None
                  ) -> tuple[torch.Tensor, list[tuple[np.ndarray, np.ndarray]], float]:
    """An adapted step (or class of a step): its mode and side information as `_coding` returns them,
    and the bits it is estimated to take (its variables', on the fit's sample, and its side information)."""
    feats = adapt.feature_list(known, positions, plan.shape, plan.grey)
    a, fitted, plain = adapt.fit(params, values, known, positions, plan.shape, plan.grey, feats, OFFSETS,
                                 model.cfg.mixtures, LOGS_MIN, model.cfg.logs_max, fit_vars)
    side_bits = adapt.side_bits(a, len(OFFSETS))
    if fitted + side_bits < plain:                                   # (False for a fit gone NaN)
        return (_adapted(model, plan, params, values, known, positions, feats, a),
                adapt.symbols(a, len(OFFSETS)) + [(np.array([1]), adapt.MODE_PROBS)], fitted + side_bits + 1)
    o = best_offset(model, params, values[positions], plan.stage)
    return (with_offset(model, params, OFFSETS[o]), [(np.array([o]), OFFSET_PROBS), (np.array([0]), adapt.MODE_PROBS)],
            plain + math.log2(len(OFFSETS)) + 1)


def _phased_step(model: Model, plan: Plan, params: torch.Tensor, values: np.ndarray, known: np.ndarray,
                 positions: np.ndarray) -> tuple[torch.Tensor, list[tuple[np.ndarray, np.ndarray]]]:
    """A step of fewer than PHASE_MIN_VARS variables adapted whole; a larger one under the partition
    (adapt.PARTITIONS) whose classes, each adapted on its own, are estimated to take the fewest bits, and
    the partition's index (pushed last: the decoder pops it first) and block grid (partition 2)."""
    if len(positions) < adapt.PHASE_MIN_VARS:
        return _adapted_step(model, plan, params, values, known, positions)[:2]
    grid = adapt.block_grid(values, plan.shape)
    best, seen = None, set()
    for partition in range(len(adapt.PARTITIONS)):
        classes = adapt.phase_classes(positions, plan.shape, plan.grey, partition, grid)
        if (key := tuple(len(c) for c in classes)) in seen and len(classes) == 1:
            continue                                  # one class again: the same as partition 0
        seen.add(key)
        fit_vars = max(adapt.CLASS_FIT_VARS, adapt.FIT_VARS // len(classes))
        parts = [_adapted_step(model, plan, params[torch.from_numpy(idx)], values, known, positions[idx], fit_vars)
                 for idx in classes]
        bits = sum(p[2] for p in parts) + (2 * math.log2(adapt.BLOCK) if partition == 2 else 0)
        if best is None or bits < best[0]:
            best = (bits, partition, classes, parts)
    _, partition, classes, parts = best
    coded, side = params.clone(), []
    for idx, (c, s, _) in zip(classes, parts):        # the decoder pops the last class's side first
        coded[torch.from_numpy(idx)] = c
        side += s
    if partition == 2:
        side.append((np.array(grid), adapt.GRID_PROBS))
    return coded, side + [(np.array([partition]), adapt.PARTITION_PROBS)]


def _adapted(model: Model, plan: Plan, params: torch.Tensor, values: np.ndarray, known: np.ndarray,
             positions: np.ndarray, feats: list, a: adapt.Adaptation) -> torch.Tensor:
    k = model.cfg.mixtures
    delta16 = adapt.correction(values, known, positions, plan.shape, plan.grey, feats,
                               adapt.reference(params, k).numpy(), a.coefs)
    return adapt.apply(params, delta16, a.buckets, OFFSETS, k, LOGS_MIN, model.cfg.logs_max)


def _decoded_coding(model: Model, plan: Plan, dec: Decoder, params: torch.Tensor, values: np.ndarray,
                    known: np.ndarray, positions: np.ndarray) -> torch.Tensor:
    """Pop a step's side information (as `_coding` pushed it) and return the head params to decode with."""
    if plan.phases and len(positions) >= adapt.PHASE_MIN_VARS:
        partition = int(dec.pop(adapt.PARTITION_PROBS)[0])
        grid = tuple(int(g) for g in dec.pop(adapt.GRID_PROBS)) if partition == 2 else (0, 0)
        out = params.clone()
        for idx in reversed(adapt.phase_classes(positions, plan.shape, plan.grey, partition, grid)):
            sel = torch.from_numpy(idx)
            out[sel] = _decoded_step(model, plan, dec, params[sel], values, known, positions[idx])
        return out
    return _decoded_step(model, plan, dec, params, values, known, positions)


def _decoded_step(model: Model, plan: Plan, dec: Decoder, params: torch.Tensor, values: np.ndarray,
                  known: np.ndarray, positions: np.ndarray) -> torch.Tensor:
    if plan.adapt and dec.pop(adapt.MODE_PROBS)[0]:
        feats = adapt.feature_list(known, positions, plan.shape, plan.grey)
        a = adapt.pop(dec, len(feats) + 1, len(OFFSETS))
        return _adapted(model, plan, params, values, known, positions, feats, a)
    if plan.offsets:
        return with_offset(model, params, OFFSETS[int(dec.pop(OFFSET_PROBS)[0])])
    return params


def _push_units(enc: Encoder, symbols: np.ndarray, probs: np.ndarray) -> float:
    """Push one unit's symbols; returns their −log2 p in bits."""
    enc.push(symbols, probs)
    # a probability that underflowed to 0 still gets constriction's smallest slot (~2^-24)
    return -float(np.log2(np.maximum(probs[np.arange(len(symbols)), symbols], 2.0**-24)).sum())


def encode_plane(model: Model, plane: np.ndarray, plan: Plan, enc: Encoder, progress: Progress = None) -> float:
    """Push a plane onto the ANS stack (steps last to first, then the lattice's units last to first),
    with scale offsets if plan.offsets, adapted steps if plan.adapt (per phase class if plan.phases).
    Returns the model's −log2 p in bits."""
    way = Coding.PHASES if plan.phases else Coding.ADAPT if plan.adapt else Coding(plan.offsets)
    return encode_plane_ways(model, plane, plan, {way: enc}, progress)[way]


def encode_plane_ways(model: Model, plane: np.ndarray, plan: Plan | StagedPlan, ways: dict[Coding, Encoder],
                      progress: Progress = None) -> dict[Coding, float]:
    """encode_plane onto one ANS stack per way of coding (ways: Coding → its encoder), each step's network
    call made once for all of them (plan.offsets, plan.adapt and plan.phases are not read). Returns the bits of each."""
    values = _flat(plane).astype(np.int64)
    bits = dict.fromkeys(ways, 0.0)
    for walk in reversed(plan.stages if isinstance(plan, StagedPlan) else (plan,)):  # stage 2 pushed first
        for use, b in _encode_walk(model, values, walk, ways, progress).items():
            bits[use] += b
    return bits


def _encode_walk(model: Model, values: np.ndarray, plan: Plan, ways: dict[Coding, Encoder],
                 progress: Progress) -> dict[Coding, float]:
    """Push one walk over a plane's (full, flat) values: its steps last to first, then the lattice's units."""
    symbols = _symbols(values, plan)
    rank = np.empty(plan.n_vars, dtype=np.int64)
    rank[plan.order] = np.arange(plan.n_vars)
    bits = dict.fromkeys(ways, 0.0)
    steps = list(_steps(plan))
    e = _encode_batch(model, plan)
    with _threads(model):
        for i in reversed(range(0, len(steps), e)):
            group = steps[i:i + e]
            for (start, positions), params in reversed(list(zip(group, _batched_params(model, plan, values, rank, group)))):
                known = rank < start
                for use, enc in ways.items():
                    coded, side = _coding(model, plan, Coding(use), params, values, known, positions)
                    for c in reversed(_chunks(len(positions))):    # the stack: last chunk pushed first
                        pc = positions[c]
                        bits[use] += _push_units(enc, symbols[pc], _probabilities(model, coded[c], plan, values[pc]))
                    for sym, probs in side:                     # popped before the step's variables
                        bits[use] += _push_units(enc, sym, probs)
                if progress:
                    progress(1)
    if plan.first:
        index, units = _lattice(plan)
        lat = values[index]
        for c, r, cols in reversed(units):
            probs = _unit_probs(lat, (c, r, cols), plan)
            for use, enc in ways.items():
                bits[use] += _push_units(enc, lat[c, r, cols], probs)
        if progress:
            progress(_lattice_steps(plan))
    return bits


def decode_plane(model: Model, plan: Plan | StagedPlan, dec: Decoder, progress: Progress = None) -> np.ndarray:
    """Pop a plane (the lattice's units, then the steps first to last; a StagedPlan: stage 1, then stage 2);
    inverse of encode_plane."""
    values = np.zeros(plan.n_vars, dtype=np.int64)
    for walk in plan.stages if isinstance(plan, StagedPlan) else (plan,):
        _decode_walk(model, walk, dec, values, progress)
    return _unflat(values, plan).astype(np.uint8)


def _decode_walk(model: Model, plan: Plan, dec: Decoder, values: np.ndarray, progress: Progress) -> None:
    """Pop one walk into `values` (flat, in place): stage 1 sets 16·coarse digit, stage 2 adds the fine one."""
    scale = DIGIT if plan.stage == 1 else 1
    known = np.zeros(plan.n_vars, dtype=bool)
    if plan.first:
        index, units = _lattice(plan)
        lat = np.zeros(index.shape, dtype=np.int64)
        for c, r, cols in units:
            lat[c, r, cols] = dec.pop(_unit_probs(lat, (c, r, cols), plan))
        values[index], known[index] = lat, True
        if progress:
            progress(_lattice_steps(plan))
    with _threads(model):
        for start, positions in _steps(plan):
            params = _decoded_coding(model, plan, dec, _step_params(model, plan, values, known, start, positions),
                                     values, known, positions)
            for c in _chunks(len(positions)):
                pc = positions[c]
                values[pc] += scale * dec.pop(_probabilities(model, params[c], plan, values[pc]))
            known[positions] = True
            if progress:
                progress(1)
