"""The audio codec core (issue 6): one clip (frames, channels) of 8-, 16- or 24-bit PCM through the
depth-upscaling ARDM of audio_model.py, pushed onto / popped from the ANS stack of coder.py.

**Segments.** A clip is cut into segments of SEGMENT frames (the last one shorter), coded one after
another and independently (no context across a boundary: it would help at most the first few hundred
samples of 2^15), so memory is bounded by one segment whatever the clip's length.

**Stages** of a segment, in decoding order (D = frames · channels variables each; variable p is
channel p // frames, frame p % frames):
- 8-bit: stage 1 codes u = x + 128 (the net's high-byte stage).
- 16-bit: u = x + 32768; stage 1 codes u >> 8, stage 2 codes u & 255 given every high byte.
- A joint model (AudioNetConfig.joint): one net-coded stage; each step pops, from one network call,
  its variables' high bytes and then (16- and 24-bit) their low bytes given them.
- 24-bit: u = x + 2^23; stages 1 and 2 code the top 16 bits u >> 8 as for 16-bit audio, stage 3 the
  low byte u & 255 with an exact model of lowbyte.py (no training data here has 24 bits): the
  block-adaptive counts, or (files with FLAG_LOW, `low_modes`) whichever of the counts and the
  interpolation from the decoded samples codes the segment shorter, its LOW_MODES index popped first.

**Channel transform** (format version 3, clips of 2+ channels): each segment is coded in one of
CHANNEL_MODES, chosen by the encoder and pushed after (so popped before) the segment's stages: 0 codes
the channels as they are; 1 codes channel 0 as it is and every other channel c as its difference from
channel 0, wrapped into the sample width (x_c − x_0 mod 2^bits, in the signed range), which the decoder
undoes exactly after the segment's stages. Identical channels then cost almost nothing, and correlated
ones (most stereo) less: FLAC's left/side. The wrap keeps every coded value within the width, so
the stages and the net are the same as for mono (mid/side would need a 17th bit).

**Side information** (models with `interp` in their net config, interp.py): each segment stores its
fitted interpolation filters and block scales, pushed after its stages and before its channel mode (so
popped after the mode and before the stages); both stages' priors read them.

**Halved levels** (models of a dyadic-split order, `AudioNetConfig.split` levels; ardm.py): each segment
codes its finest levels halved or whole, a bit popped just before its side information (which depends
on it). The encoder decides per segment: it runs the net on those levels both ways (the steps of one
call per group, every coarser frame known) and keeps the way whose bits, side information included,
are fewer. Halving reads the residual left above a quarter of the sample rate (most of 44.1 kHz audio
gains); on 8 kHz speech it can cost, the scale blocks spanning twice the frames. A segment that keeps
its levels whole takes as many network calls fewer as it has groups fewer (the schedule's budget). The
calls made for the way kept are not made again (`_step_params`' memo): per net-coded stage, encoding
takes one call more than decoding where a segment halves its finest level, two where it keeps it whole.

Each net-coded stage has its own random order (with a seed derived from (seed, segment, stage)) of the
model's order family (`AudioNetConfig.order`: "uniform", ardm.order over all variables; or "dyadic"
(-split…), ardm.grouped_order over the coarse-to-fine groups of the frames, every channel of a frame in
its group) and its own schedule (schedule.step_boundaries on the stage's loss curve, `budget` network
calls per stage per segment; a dyadic model takes at least one call per group: 7 per stage, 7 + N in a
segment with N halved levels). The encoder walks
everything last to first and calls the net exactly as the decoder will (same function, same tensors;
float models with a fixed thread count).
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import Callable, Iterator

import numpy as np
import torch

from . import interp, lowbyte
from .ardm import dyadic_groups, grouped_order, order, schedule_groups
from .audio_model import AudioModel, dequantise, features, hi_log_prob, joint_log_prob
from .coder import Decoder, Encoder
from .codec import OFFSET_PROBS, OFFSETS, SEARCH_VARS, fixed_threads, with_offset
from .schedule import Groups, expected_bits, step_boundaries

SEGMENT = 1 << 15       # frames per independently coded segment
SPLIT_PROBS = np.full((1, 2), 0.5)   # a segment of a dyadic-split model: its levels whole (0) or halved (1)
CHUNK = 4096            # variables per push / pop
CHANNEL_MODES = ("as they are", "differences from channel 0")
MODE_PROBS = np.full((1, len(CHANNEL_MODES)), 1.0 / len(CHANNEL_MODES))

Progress = Callable[[int], None] | None


def to_digits(samples: np.ndarray, bits: int) -> list[np.ndarray]:
    """(F, C) signed samples -> the stage digits, each (C, F) int64 in 0..255, in decoding order."""
    off = {8: 128, 16: 1 << 15, 24: 1 << 23}[bits]
    u = samples.astype(np.int64).T + off
    if bits == 8:
        return [u]
    if bits == 16:
        return [u >> 8, u & 255]
    return [u >> 16, (u >> 8) & 255, u & 255]


def from_digits(digits: list[np.ndarray], bits: int) -> np.ndarray:
    """Inverse of to_digits: (F, C) samples of the dtype audio.py uses (int8, int16, int32)."""
    u = 0
    for d in digits:
        u = (u << 8) | d
    off, dtype = {8: (128, np.int8), 16: (1 << 15, np.int16), 24: (1 << 23, np.int32)}[bits]
    return np.ascontiguousarray((u - off).T).astype(dtype)


def _wrap(v: np.ndarray, bits: int) -> np.ndarray:
    """int64 values modulo 2^bits, in the signed range of `bits`-bit samples."""
    half = 1 << (bits - 1)
    return ((v + half) & ((1 << bits) - 1)) - half


def mix(samples: np.ndarray, bits: int, mode: int) -> np.ndarray:
    """(F, C) samples -> the values coded in channel mode `mode` (CHANNEL_MODES), int64 of the same width."""
    x = samples.astype(np.int64)
    if mode == 1:
        x[:, 1:] = _wrap(x[:, 1:] - x[:, :1], bits)
    return x


def unmix(coded: np.ndarray, bits: int, mode: int) -> np.ndarray:
    """Inverse of mix: the samples, int64."""
    x = coded.astype(np.int64)
    if mode == 1:
        x[:, 1:] = _wrap(x[:, 1:] + x[:, :1], bits)
    return x


def choose_mode(samples: np.ndarray, bits: int) -> int:
    """The encoder's channel mode for a segment: the one whose channels 1.. change least from frame to
    frame (Σ |first differences|, a cheap stand-in for their code length); the first among equals."""
    cost = [np.abs(np.diff(mix(samples, bits, m)[:, 1:], axis=0)).sum() for m in range(len(CHANNEL_MODES))]
    return int(np.argmin(cost))


def segments(frames: int) -> list[slice]:
    return [slice(a, min(frames, a + SEGMENT)) for a in range(0, frames, SEGMENT)]


def stage_seed(seed: int, segment: int, stage: int) -> int:
    """The order seed of one net-coded stage of one segment (distinct for seeds below 2^40)."""
    return ((seed << 24) | (segment << 2) | stage) & ((1 << 64) - 1)


def _groups(model: AudioModel, frames: int, channels: int, split: int = 0) -> tuple[np.ndarray, Groups] | None:
    """A dyadic model's group of every variable (p = channel·frames + frame) and the schedule's Groups;
    split: the segment's halved levels."""
    if model.cfg.order == "uniform":
        return None
    per_var = np.tile(dyadic_groups(frames, split=split), channels)
    return per_var, schedule_groups(per_var, len(model.curves[0]), split=split)


def _bounds(model: AudioModel, stage: int, frames: int, channels: int, budget: int,
            groups: tuple[np.ndarray, Groups] | None) -> np.ndarray:
    return step_boundaries(model.curves[stage - 1], frames * channels, budget, groups and groups[1])


def _steps(model: AudioModel, stage: int, frames: int, channels: int, budget: int, seed: int, segment: int,
           split: int = 0) -> Iterator[tuple[int, np.ndarray]]:
    """(start, positions) of each step of a net-coded stage, first to last (split: the segment's halved
    levels; a segment of a dyadic-split model that keeps them whole has that many calls fewer)."""
    budget = max(1, budget - (model.cfg.split - split))
    groups = _groups(model, frames, channels, split)
    key = stage_seed(seed, segment, stage)
    sigma = order(key, frames * channels) if groups is None else grouped_order(key, groups[0])
    bounds = _bounds(model, stage, frames, channels, budget, groups)
    for i in range(len(bounds) - 1):
        yield int(bounds[i]), sigma[bounds[i]:bounds[i + 1]]


def schedule_cost(model: AudioModel, frames: int, channels: int, bits: int, budget: int) -> tuple[int, float]:
    """(network calls, predicted bits) of a clip: Σ over segments and net-coded stages of the stage's
    steps, and of the bits its loss curve predicts for them (the 24-bit adaptive low byte not included)."""
    calls, predicted = 0, 0.0
    for seg in segments(frames):
        f = seg.stop - seg.start
        groups = _groups(model, f, channels, model.cfg.split)   # predicted as if halved
        for stage in range(1, net_stages(model, bits) + 1):
            bounds = _bounds(model, stage, f, channels, budget, groups)
            calls += len(bounds) - 1
            predicted += expected_bits(model.curves[stage - 1], bounds, f * channels, groups and groups[1])
    return calls, predicted


def net_stages(model: AudioModel, bits: int) -> int:
    """Net-coded stages of a segment: one for 8-bit audio and for a joint model, else two."""
    return 1 if bits == 8 else model.cfg.stages


def _step_params(model: AudioModel, stage: int, hi: np.ndarray, lo: np.ndarray, known: np.ndarray, start: int,
                 positions: np.ndarray, side: interp.Side | None, memo: dict | None = None,
                 reuse: dict | None = None) -> torch.Tensor:
    """(n, 3K) head outputs of the variables at `positions` given the stage's digits known at `start`.

    hi, lo: (C, F) digits (read only where known); known: (C, F) bool, this stage's known digits (stage 1:
    high bytes; stage 2: low bytes, every high byte being known; a joint model: whole values); side: the
    segment's (interp.py), or None. The encoder's memo of a segment and its side information: `memo`
    keeps the net's whole output by (stage, start), `reuse` hands such an output over (and drops it)
    instead of calling the net again; so a call that _choose_split made is not made twice. (stage, start)
    suffices as the key: within a segment's stage, `start` fixes what is known (the first `start`
    variables of the order; at a group's first step the groups before it, which _choose_split computes)."""
    out = reuse.pop((stage, start), None) if reuse is not None else None
    if out is None:
        out = _net_outputs(model, stage, hi, lo, known, start, side)
        if memo is not None:
            memo[stage, start] = out
    c, n = np.divmod(positions, hi.shape[1])
    return out[torch.from_numpy(c), :, torch.from_numpy(n)]


def _net_outputs(model: AudioModel, stage: int, hi: np.ndarray, lo: np.ndarray, known: np.ndarray, start: int,
                 side: interp.Side | None) -> torch.Tensor:
    """The net's (C, 3K, Lp) head outputs for every frame given the stage's digits known at `start`."""
    C, f = hi.shape
    everything, nothing = torch.ones(1, C, f, dtype=torch.bool), torch.zeros(1, C, f, dtype=torch.bool)
    k = torch.from_numpy(known)[None]
    if model.cfg.joint:
        mh, ml, stage = k, k, 2
    else:
        mh, ml = (k, nothing) if stage == 1 else (everything, k)
    inp = features(torch.from_numpy(hi)[None], mh, torch.from_numpy(lo)[None], ml,
                   torch.tensor([(255 * start) // (C * f)]), torch.tensor([stage]), model.cfg,
                   None if side is None else interp.Side(*(torch.from_numpy(a)[None] for a in side)))
    return model.params(inp)                                                 # (C, 3K, Lp)


def _chunks(n: int) -> list[slice]:
    return [slice(i, min(n, i + CHUNK)) for i in range(0, n, CHUNK)]


def _threads(model: AudioModel):
    return fixed_threads() if model.exact is None else nullcontext()


def _bits(probs: np.ndarray, symbols: np.ndarray) -> float:
    # a probability that underflowed to 0 still gets constriction's smallest slot (~2^-24)
    return -float(np.log2(np.maximum(probs[np.arange(len(symbols)), symbols], 2.0 ** -24)).sum())


def _coded(model: AudioModel, stage: int, bits: int, hi: np.ndarray, lo: np.ndarray) -> list[np.ndarray]:
    """Flat views of the digits that each step of a net-coded stage codes per variable, in decoding order:
    the stage's own, or a joint model's high bytes and then (16- and 24-bit) low bytes. Digit d of the
    list takes its distributions from `model.probabilities(params, stage + d, high bytes)`."""
    if model.cfg.joint:
        return [hi.reshape(-1), lo.reshape(-1)][:2 if bits > 8 else 1]
    return [(hi if stage == 1 else lo).reshape(-1)]


def _low_of_8bit(model: AudioModel, hi: np.ndarray) -> np.ndarray:
    """The low bytes that 8-bit audio's net inputs hold: none are read in a stage-1 step of a two-stage
    model (zeros); a joint model reads every known value whole, and an 8-bit sample is the centre of its
    high-byte bin (128)."""
    return np.full_like(hi, 128 if model.cfg.joint else 0)


def _push_low(x: np.ndarray, side: interp.Side | None, low_modes: bool, push: Callable) -> None:
    """Push a 24-bit segment's low bytes (x (C, F) int64: its centred values, after the channel
    transform) with the count model, or with `low_modes` with the LOW_MODES model that codes them
    shorter, its index pushed after them (popped before)."""
    filters = None if side is None else side.filters
    modes = range(len(lowbyte.LOW_MODES)) if low_modes else range(1)
    flat = x.reshape(-1)
    cost = [sum(_bits(probs, flat[sel] & 255) for sel, probs in lowbyte.steps(m, x, filters)) for m in modes]
    best = int(np.argmin(cost))
    for sel, probs in reversed(list(lowbyte.steps(best, x, filters))):
        push(flat[sel] & 255, probs)
    if low_modes:
        push(np.array([best]), lowbyte.LOW_MODE_PROBS)


def _pop_low(dec: Decoder, x: np.ndarray, side: interp.Side | None, low_modes: bool) -> np.ndarray:
    """Inverse of _push_low: x (C, F) int64 the centred values with their top 16 bits (low bytes 0).
    Returns the low bytes (C, F)."""
    mode = int(dec.pop(lowbyte.LOW_MODE_PROBS)[0]) if low_modes else 0
    flat = x.reshape(-1)
    for sel, probs in lowbyte.steps(mode, x, None if side is None else side.filters):
        flat[sel] += dec.pop(probs)
    return x & 255


def _side(model: AudioModel, digits: list[np.ndarray], split: int = 0) -> interp.Side | None:
    """The encoder's side information of a segment (interp.side) on the 16-bit values the net sees:
    256·(stage-1 digit) + (stage-2 digit, or 128 for 8-bit audio: the bin centre), with `split` halved
    levels; None for models without it."""
    if not model.cfg.interp:
        return None
    x = torch.from_numpy(256 * digits[0] + (digits[1] if len(digits) > 1 else 128) - 32768)
    return interp.Side(*(t.numpy() for t in interp.side(x, model.cfg.coef_bits, model.cfg.tap_choices, split,
                                                        model.cfg.symmetric)))


def _choose_split(model: AudioModel, bits: int, hi: np.ndarray, lo: np.ndarray, digits: list[np.ndarray]
                  ) -> tuple[int, interp.Side | None, dict]:
    """The encoder's (halved levels, side information, memo) of a segment: the model's split or 0, whichever
    codes the levels it halves in fewer bits under the net (module docstring, "Halved levels"); memo holds
    the net calls made for the chosen way (_step_params), which coding it at one call per group makes again."""
    if not model.cfg.split:
        return 0, _side(model, digits), {}
    C, f = hi.shape
    first = interp.GROUPS - model.cfg.split         # the first halved level: the same group number either way
    cost = {}
    for split in (0, model.cfg.split):
        side, memo = _side(model, digits, split), {}
        total = 0.0

        def count(symbols: np.ndarray, probs: np.ndarray) -> None:
            nonlocal total
            total += _bits(probs, symbols)

        _push_side(model, side, count)
        groups = _groups(model, f, C, split)[0]
        for stage in range(1, net_stages(model, bits) + 1):
            coded = _coded(model, stage, bits, hi, lo)
            for k in range(first, int(groups.max()) + 1):
                positions = np.flatnonzero(groups == k)
                params = _step_params(model, stage, hi, lo, (groups < k).reshape(C, f), int((groups < k).sum()),
                                      positions, side, memo)
                for d in range(len(coded)):
                    for c in _chunks(len(positions)):
                        count(coded[d][positions[c]], model.probabilities(params[c], stage + d, coded[0][positions[c]]))
        cost[split] = (total, side, memo)
    split = min(cost, key=lambda s: cost[s][0])
    return split, cost[split][1], cost[split][2]


def _push_side(model: AudioModel, side: interp.Side, push: Callable) -> None:
    """Push a segment's side information: popped as the filters' choices, their coefficients (three bytes
    each, or with net config `coefs` "sizes" their bit lengths and then their sign and mantissa bits;
    "symmetric": the same for one coefficient per pair of taps), then the block levels (FORMAT.md, "Fitted
    filters and block scales")."""
    deltas = interp.level_symbols(side.levels)
    push(deltas, np.broadcast_to(interp.DELTA_PROBS, (len(deltas), interp.LEVELS)))
    allowed = model.cfg.tap_choices
    if model.cfg.coefs != "bytes":
        choices, sizes, bits = interp.size_symbols(side.filters, allowed, model.cfg.symmetric)
        push(bits, np.full((len(bits), 2), 0.5))
        push(sizes, np.broadcast_to(interp.SIZE_PROBS, (len(sizes), len(interp.SIZE_PROBS))))
    else:
        choices, coef = interp.symbols(side.filters)
        push(coef, np.full((len(coef), 256), 1 / 256))
    push(choices, np.full((len(choices), len(allowed)), 1 / len(allowed)))


def _pop_side(model: AudioModel, dec: Decoder, channels: int, frames: int, split: int = 0) -> interp.Side:
    allowed = model.cfg.tap_choices
    choices = dec.pop(np.full((channels * (interp.group_count(split) - 1), len(allowed)), 1 / len(allowed)))
    if model.cfg.coefs != "bytes":
        n = interp.coefficient_count(choices, allowed, model.cfg.symmetric)
        sizes = dec.pop(np.broadcast_to(interp.SIZE_PROBS, (n, len(interp.SIZE_PROBS))))
        bits = dec.pop(np.full((interp.bit_count(sizes), 2), 0.5))
        filters = interp.from_size_symbols(choices, sizes, bits, channels, allowed, model.cfg.symmetric)
    else:
        coef = dec.pop(np.full((interp.coef_count(choices), 256), 1 / 256))
        filters = interp.from_symbols(choices, coef, channels)
    n = channels * interp.block_count(frames, split)
    deltas = dec.pop(np.broadcast_to(interp.DELTA_PROBS, (n, interp.LEVELS)))
    return interp.Side(filters, interp.from_level_symbols(deltas, channels))


def best_offset(model: AudioModel, params: torch.Tensor, digits: list[np.ndarray], stage: int) -> int:
    """The encoder's scale offset for a step (codec.OFFSETS, index): the one that codes an evenly spaced
    sample of at most SEARCH_VARS of the step's variables in the fewest bits. For a joint model the bits
    are the float head's (`joint_log_prob` of the dequantised head: 10x faster than the integer high-byte
    tables, and the choice is the encoder's own; the decoder only reads it)."""
    sel = slice(None, None, max(1, len(digits[0]) // SEARCH_VARS))
    q, x = params[sel], [d[sel] for d in digits]
    if model.cfg.joint:
        k = model.cfg.mixtures
        hi = torch.from_numpy(np.asarray(x[0], dtype=np.int64)).view(-1, 1)
        lo = torch.from_numpy(np.asarray(x[1] if len(x) > 1 else [], dtype=np.int64)).view(-1, 1)

        def bits(o: int) -> float:
            p = dequantise(with_offset(model, q, o).to(torch.float64), k).unsqueeze(-1)
            if len(x) == 1:
                return -float(hi_log_prob(p, hi.unsqueeze(1), k).sum())
            return -float(joint_log_prob(p, hi, lo, k).sum())
        return int(np.argmin([bits(o) for o in OFFSETS]))
    return int(np.argmin([_bits(model.probabilities(with_offset(model, q, o), stage), x[0]) for o in OFFSETS]))


def encode_audio(model: AudioModel, samples: np.ndarray, bits: int, budget: int, seed: int, enc: Encoder,
                 progress: Progress = None, offsets: bool = False, channel_transform: bool = False,
                 low_modes: bool = False) -> float:
    """Push a clip's samples (F, C) onto the ANS stack, last segment and step first.

    samples: int8 / int16 / int32 (24-bit values) as audio.py holds them; budget: network calls per
    net-coded stage per segment; offsets: a scale offset per network step (int-exact models; format
    version 2), its index pushed after (so popped before) the step's digits; channel_transform: a
    channel mode per segment (2+ channels; format version 3); low_modes: a low-byte model per segment
    (24-bit; format version 4). Returns the model's −log2 p of the clip in bits."""
    return encode_audio_ways(model, samples, bits, budget, seed, {offsets: enc}, progress, channel_transform,
                             low_modes)[offsets]


def encode_audio_ways(model: AudioModel, samples: np.ndarray, bits: int, budget: int, seed: int,
                      ways: dict[bool, Encoder], progress: Progress = None, channel_transform: bool = False,
                      low_modes: bool = False) -> dict[bool, float]:
    """encode_audio onto one ANS stack per way of coding (ways: with scale offsets → its encoder), each
    step's network call made once for all of them. Returns the bits of each."""
    samples = np.asarray(samples)
    if samples.ndim != 2:
        raise ValueError(f"samples must be (frames, channels), got shape {samples.shape}")
    total = dict.fromkeys(ways, 0.0)

    def push(symbols: np.ndarray, probs: np.ndarray, to: list[bool]) -> None:
        for use in to:
            ways[use].push(symbols, probs)
            total[use] += _bits(probs, symbols)

    with _threads(model):
        for s, seg in reversed(list(enumerate(segments(len(samples))))):
            mode = choose_mode(samples[seg], bits) if channel_transform else 0
            mixed = mix(samples[seg], bits, mode)
            digits = to_digits(mixed, bits)
            C, f = digits[0].shape
            hi, lo = digits[0], digits[1] if bits > 8 else _low_of_8bit(model, digits[0])
            split, side, memo = _choose_split(model, bits, hi, lo, digits[:2])
            if bits == 24:  # stage 3 is decoded last: pushed first
                _push_low(np.ascontiguousarray(mixed.T, dtype=np.int64), side, low_modes,
                          lambda sym, probs: push(sym, probs, list(ways)))
            for stage in reversed(range(1, net_stages(model, bits) + 1)):
                coded = _coded(model, stage, bits, hi, lo)
                steps = list(_steps(model, stage, f, C, budget, seed, s, split))
                rank = np.empty(C * f, dtype=np.int64)
                rank[np.concatenate([p for _, p in steps])] = np.arange(C * f)
                for start, positions in reversed(steps):
                    known = (rank < start).reshape(C, f)
                    params = _step_params(model, stage, hi, lo, known, start, positions, side, reuse=memo)
                    step_digits = [d[positions] for d in coded]
                    for use in ways:
                        if use:
                            o = best_offset(model, params, step_digits, stage)
                        shifted = with_offset(model, params, OFFSETS[o]) if use else params
                        for d in reversed(range(len(coded))):
                            for c in reversed(_chunks(len(positions))):
                                probs = model.probabilities(shifted[c], stage + d, step_digits[0][c])
                                push(step_digits[d][c], probs, [use])
                        if use:
                            push(np.array([o]), OFFSET_PROBS, [use])
                    if progress:
                        progress(1)
            if side is not None:  # popped after the channel mode, before the stages
                _push_side(model, side, lambda sym, probs: push(sym, probs, list(ways)))
            if model.cfg.split:   # popped before the side information
                push(np.array([int(split > 0)]), SPLIT_PROBS, list(ways))
            if channel_transform:
                push(np.array([mode]), MODE_PROBS, list(ways))
    return total


def decode_audio(model: AudioModel, frames: int, channels: int, bits: int, budget: int, seed: int, dec: Decoder,
                 progress: Progress = None, offsets: bool = False, channel_transform: bool = False,
                 low_modes: bool = False) -> np.ndarray:
    """Pop a clip (inverse of encode_audio): (frames, channels) samples of audio.py's dtype for `bits`."""
    out = np.zeros((frames, channels), dtype={8: np.int8, 16: np.int16, 24: np.int32}[bits])
    with _threads(model):
        for s, seg in enumerate(segments(frames)):
            f = seg.stop - seg.start
            mode = int(dec.pop(MODE_PROBS)[0]) if channel_transform else 0
            split = model.cfg.split * int(dec.pop(SPLIT_PROBS)[0]) if model.cfg.split else 0
            side = _pop_side(model, dec, channels, f, split) if model.cfg.interp else None
            hi = np.zeros((channels, f), np.int64)
            lo = np.zeros((channels, f), np.int64) if bits > 8 else _low_of_8bit(model, hi)
            for stage in range(1, net_stages(model, bits) + 1):
                coded = _coded(model, stage, bits, hi, lo)               # views: filled in place
                known = np.zeros(channels * f, dtype=bool)
                for start, positions in _steps(model, stage, f, channels, budget, seed, s, split):
                    params = _step_params(model, stage, hi, lo, known.reshape(channels, f), start, positions, side)
                    if offsets:
                        params = with_offset(model, params, OFFSETS[int(dec.pop(OFFSET_PROBS)[0])])
                    for d, values in enumerate(coded):
                        for c in _chunks(len(positions)):
                            probs = model.probabilities(params[c], stage + d, coded[0][positions[c]])
                            values[positions[c]] = dec.pop(probs)
                    known[positions] = True
                    if progress:
                        progress(1)
            digits = [hi] if bits == 8 else [hi, lo]
            if bits == 24:
                digits.append(_pop_low(dec, (hi << 16 | lo << 8) - (1 << 23), side, low_modes))
            out[seg] = unmix(from_digits(digits, bits), bits, mode)
    return out


def compress_samples(model: AudioModel, samples: np.ndarray, bits: int, budget: int, seed: int = 0,
                     offsets: bool = False, channel_transform: bool = False, low_modes: bool = False
                     ) -> tuple[np.ndarray, float]:
    """The compressed uint32 words of a clip and the model's bits (for tests and measurements; the
    container adds the header, payload length and checksums)."""
    enc = Encoder()
    model_bits = encode_audio(model, samples, bits, budget, seed, enc, offsets=offsets,
                              channel_transform=channel_transform, low_modes=low_modes)
    return enc.words(), model_bits


def decompress_samples(model: AudioModel, words: np.ndarray, frames: int, channels: int, bits: int, budget: int,
                       seed: int = 0, offsets: bool = False, channel_transform: bool = False,
                       low_modes: bool = False) -> np.ndarray:
    dec = Decoder(words)
    out = decode_audio(model, frames, channels, bits, budget, seed, dec, offsets=offsets,
                       channel_transform=channel_transform, low_modes=low_modes)
    dec.finish()
    return out
