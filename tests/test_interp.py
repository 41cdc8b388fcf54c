"""Stored side information (interp.py): fitted interpolation filters and block scales, the prior's mean
and scale of `interp` audio models; their stream symbols; round trips of models that use them (tiny
random int-exact and float nets)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from ardmzip import audio_codec, exact, interp
from ardmzip.ardm import dyadic_groups
from ardmzip import audio_model as am
from ardmzip import audio_train as at

CFG = am.AudioNetConfig(widths=(8, 16), blocks=(1, 1), kernel=3, mixtures=2, scales=(2, 16), neighbours=2,
                        order="dyadic", prior=True, interp=True)
CURVE = tuple(int(9000 * (1 - i / 600)) for i in range(512))


def _oversampled(frames: int, channels: int = 1, seed: int = 0, noise: float = 3.0) -> np.ndarray:
    """Smooth, loud, band-limited audio (a few low partials) plus a little noise: int64 (frames, channels)."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None]
    x = sum(a * np.sin(2 * np.pi * f * t / 8000 + p) for a, f, p in
            zip(rng.uniform(1000, 6000, 4), rng.uniform(50, 900, 4), rng.uniform(0, 6, 4)))
    x = x + rng.normal(0, noise, (frames, channels))
    return np.clip(np.round(x), -32768, 32767).astype(np.int64)


def test_taps_sit_on_the_known_lattice_inside_the_segment():
    for frames in (1, 7, 64, 65, 300, 4096):
        for k in range(1, interp.GROUPS):
            h = interp.spacing(k)
            pos, idx = interp.taps(frames, k, 16)
            assert (pos % (2 * h) == h).all() and (pos < frames).all()
            assert (idx % (2 * h) == 0).all() and (idx >= 0).all() and (idx < frames).all()
    pos, idx = interp.taps(4096, 6, 2)                    # h = 1: −1, +1, −3, +3; mirrored at 0
    assert pos[0] == 1 and idx[0].tolist() == [0, 2, 2, 4]


def test_prediction_is_the_integer_formula():
    rng = np.random.default_rng(3)
    L = 500
    value = torch.from_numpy(rng.integers(0, 65536, (1, 1, L)))
    filters = torch.zeros(1, 1, interp.GROUPS, 1 + 2 * interp.MAX_TAPS, dtype=torch.int64)
    for k in range(1, interp.GROUPS):
        m = interp.CHOICES_64[k % len(interp.CHOICES_64)]   # 2, 4, 8, 16, 32, 64
        filters[0, 0, k, 0] = m
        filters[0, 0, k, 1:1 + 2 * m] = torch.from_numpy(rng.integers(-(1 << 15), 1 << 15, 2 * m))
    p16, applies = interp.predict(value, torch.ones(1, 1, L, dtype=torch.bool), filters)
    for k in range(1, interp.GROUPS):
        m = int(filters[0, 0, k, 0])
        pos, idx = interp.taps(L, k, max(m, 1))
        for i in (0, len(pos) // 2, len(pos) - 1):
            if m == 0:
                assert not applies[0, 0, pos[i]]
                continue
            acc = sum(int(filters[0, 0, k, 1 + j]) * (int(value[0, 0, idx[i, j]]) - 32768) for j in range(2 * m))
            assert applies[0, 0, pos[i]] and int(p16[0, 0, pos[i]]) == 16 * 32768 + (16 * acc + (1 << 13)) // (1 << 14)
    assert not applies[0, 0, ::64].any()                 # group 0 has no filter


def test_a_filter_applies_only_where_all_its_taps_are_known():
    x = torch.from_numpy(_oversampled(1024)[:, 0] + 32768).view(1, 1, -1)
    filters = torch.from_numpy(interp.choose(x.view(1, -1) - 32768).numpy()).view(1, 1, interp.GROUPS, -1)
    known = torch.ones_like(x, dtype=torch.bool)
    known[0, 0, 512] = False                              # a multiple of 64: a tap of many frames
    _, applies = interp.predict(x, known, filters)
    _, all_known = interp.predict(x, torch.ones_like(known), filters)
    assert all_known[0, 0, 511] and not applies[0, 0, 511]
    assert applies.sum() < all_known.sum()


def test_the_encoder_fits_long_filters_to_smooth_audio_and_short_flat_ones_to_noise():
    smooth = torch.from_numpy(_oversampled(1 << 15)[:, 0])
    noise = torch.from_numpy(np.random.default_rng(1).integers(-20000, 20000, 1 << 15))
    f = interp.choose(torch.stack([smooth, noise]))
    assert (f[0, 1:, 0] > 0).all() and f[0, 1:, 0].max() >= 4
    # white noise: predicting its mean (about 0) beats the cubic, whose taps add their noise
    assert f[1, 1:, 0].max() <= 2 and f[1, :, 1:].abs().max() < 0.15 * (1 << interp.Q)
    # the fitted filters beat the cubic on the smooth signal, at every group
    u = (smooth + 32768).view(1, 1, -1)
    p16, applies = interp.predict(u, torch.ones_like(u, dtype=torch.bool), f[:1].view(1, 1, interp.GROUPS, -1))
    cubic, _, _ = am.prior(u >> 8, torch.ones_like(u), u & 255, torch.ones_like(u), torch.tensor([2]))
    for k in range(1, interp.GROUPS):
        pos = torch.from_numpy(interp.taps(u.shape[-1], k, 1)[0])
        fitted = (16 * u[0, 0, pos] - p16[0, 0, pos]).abs().double().mean()
        fixed = (16 * u[0, 0, pos] - cubic[0, 0, pos]).abs().double().mean()
        assert fitted < fixed


def test_stream_symbols_round_trip():
    x = torch.from_numpy(np.stack([_oversampled(3000, seed=s)[:, 0] for s in range(3)]))
    f = interp.choose(x)
    choices, coef = interp.symbols(f.numpy())
    assert len(choices) == 3 * (interp.GROUPS - 1) and len(coef) == interp.coef_count(choices)
    assert choices.max() < len(interp.CHOICES) and coef.min() >= 0 and coef.max() < 256
    assert (interp.from_symbols(choices, coef, 3) == f.numpy()).all()
    levels = interp.block_levels(x, f).numpy()
    assert levels.shape == (3, interp.block_count(3000)) and levels.min() >= 0 and levels.max() < interp.LEVELS
    deltas = interp.level_symbols(levels)
    assert deltas.min() >= 0 and deltas.max() < interp.LEVELS
    assert (interp.from_level_symbols(deltas, 3) == levels).all()


def test_coefficients_coded_by_their_size_round_trip_and_cost_less():
    f = interp.choose(torch.from_numpy(_oversampled(6000, 2, noise=1.0).T.copy()))
    assert f[0, 6, 0] > 1 and f[1, 6, 0] > 0
    f[0, 6, 1:3] = torch.tensor([0, -1])     # a zero and the smallest negative coefficient
    f[1, 6, 1] = -interp.COEF_LIMIT
    choices, sizes, bits = interp.size_symbols(f.numpy())
    assert np.array_equal(choices, interp.symbols(f.numpy())[0])
    assert len(sizes) == interp.coefficient_count(choices) > 0 and len(bits) == interp.bit_count(sizes)
    assert np.array_equal(interp.from_size_symbols(choices, sizes, bits, 2), f.numpy())
    assert (-np.log2(interp.SIZE_PROBS[sizes])).sum() + len(bits) < 0.8 * 24 * len(sizes)
    with pytest.raises(ValueError, match="coefs"):
        dataclasses.replace(CFG, coefs="sizes", interp=False)
    with pytest.raises(ValueError, match="coefs"):
        dataclasses.replace(CFG, coefs="nibbles")


def test_long_filters_are_chosen_for_smooth_audio_and_round_trip():
    x = torch.from_numpy(_oversampled(1 << 14, 2, noise=0.5).T.copy())
    short, long_ = interp._fit(x, interp.SIZE_COEF_BITS), interp._fit(x, interp.SIZE_COEF_BITS, interp.CHOICES_64)
    assert short[0][:, 1:, 0].max() == 16 and long_[0][:, 1:, 0].max() >= 32
    bits = [sum(float(interp._estimated_bits(r[k]).sum()) for k in r) for _, r in (short, long_)]
    assert bits[1] < bits[0]
    f = long_[0].numpy()
    choices, sizes, signs = interp.size_symbols(f, interp.CHOICES_64)
    assert choices.max() < len(interp.CHOICES_64) and len(sizes) == interp.coefficient_count(choices, interp.CHOICES_64)
    assert np.array_equal(interp.from_size_symbols(choices, sizes, signs, 2, interp.CHOICES_64), f)
    cfg = dataclasses.replace(CFG, coefs="sizes", max_taps=64)
    assert cfg.tap_choices == interp.CHOICES_64 and am.AudioNetConfig.from_dict(cfg.to_dict()) == cfg
    y = _oversampled(3000, 2, seed=8, noise=0.5).astype(np.int16)
    for model in _models():
        model = dataclasses.replace(model, cfg=cfg)
        words, _ = audio_codec.compress_samples(model, y, 16, 7, offsets=model.exact is not None)
        assert np.array_equal(audio_codec.decompress_samples(model, words, 3000, 2, 16, 7,
                                                             offsets=model.exact is not None), y)
    for bad in ({"max_taps": 32, "coefs": "sizes"}, {"max_taps": 64}):
        with pytest.raises(ValueError, match="max_taps"):
            dataclasses.replace(CFG, **bad)


def test_a_model_with_coefficients_by_size_round_trips(monkeypatch):
    monkeypatch.setattr(interp, "SIZE_COEF_BITS", interp.COEF_BITS)   # the same filters, stored two ways
    cfg = dataclasses.replace(CFG, coefs="sizes")
    x = _oversampled(1500, 2, seed=4).astype(np.int16)
    for model in _models():
        model = dataclasses.replace(model, cfg=cfg)
        words, _ = audio_codec.compress_samples(model, x, 16, 7, offsets=model.exact is not None)
        plain, _ = audio_codec.compress_samples(dataclasses.replace(model, cfg=CFG), x, 16, 7,
                                                offsets=model.exact is not None)
        assert len(words) < len(plain)
        out = audio_codec.decompress_samples(model, words, 1500, 2, 16, 7, offsets=model.exact is not None)
        assert np.array_equal(out, x)


def test_block_levels_are_the_groups_own_residual_scale():
    """Each stored level is the quarter octave of its block's mean |residual| (16ths of a value) under the
    prediction the prior makes for that group, and the prior takes it as its scale at every frame."""
    x = torch.from_numpy(_oversampled(2000, seed=4)[:, 0])
    f = interp.choose(x[None])
    levels = interp.block_levels(x[None], f)
    u = (x + 32768).view(1, 1, -1)
    every = torch.ones_like(u, dtype=torch.bool)
    group = torch.from_numpy(dyadic_groups(2000))
    side = interp.Side(f.view(1, 1, interp.GROUPS, -1), levels.view(1, 1, -1))
    rows, has = interp.level_rows(levels.view(1, 1, -1), 2000)
    at = 0
    for k in range(1, interp.GROUPS):
        pos = torch.from_numpy(interp.taps(2000, k, 1)[0])
        for b in range(0, len(pos), interp.BLOCK):
            p = pos[b:b + interp.BLOCK]
            coarser = (group < k).view(1, 1, -1)        # what is known when group k is coded
            pred, _, _ = am.prior(u >> 8, every, u & 255, coarser, torch.tensor([2]), side)
            mean = int((16 * u[0, 0, p] - pred[0, 0, p]).abs().sum()) // len(p)
            if b + interp.BLOCK < len(pos) and b > 0:   # at the ends the prior's rule is not the cubic
                assert abs(int(levels[0, at]) - int(interp.quarter_octaves(torch.tensor(mean)))) <= 1
            assert (rows[0, 0, p] == levels[0, at]).all()
            at += 1
    assert at == levels.shape[1] and not has[0, 0, ::64].any() and has[0, 0, 1::2].all()
    _, prior_levels, _ = am.prior(u >> 8, every, u & 255, every, torch.tensor([2]), side)
    assert torch.equal(prior_levels[1][has], rows[has])


def test_interp_needs_the_prior_and_the_dyadic_order():
    with pytest.raises(ValueError, match="interp"):
        dataclasses.replace(CFG, prior=False)
    with pytest.raises(ValueError, match="interp"):
        dataclasses.replace(CFG, order="uniform")
    u = torch.randint(0, 65536, (1, 1, 64))
    m = torch.ones(1, 1, 64, dtype=torch.bool)
    with pytest.raises(ValueError, match="filters"):
        am.features(u >> 8, m, u & 255, m, torch.tensor([0]), torch.tensor([2]), CFG)


def _models(cfg: am.AudioNetConfig = CFG) -> list[am.AudioModel]:
    CFG = cfg
    torch.manual_seed(0)
    net = am.AudioNet(CFG).eval().requires_grad_(False)
    g = torch.Generator().manual_seed(1)
    u = torch.from_numpy(_oversampled(256, 2).T.copy() + 32768).view(2, 1, 256)
    m = torch.rand(2, 1, 256, generator=g) < 0.5
    stage = torch.tensor([1, 2])
    s1 = (stage == 1).view(2, 1, 1)
    inp = am.features(u >> 8, torch.where(s1, m, True), u & 255, torch.where(s1, False, m), torch.tensor([9, 200]),
                      stage, CFG, am.segment_side(u, CFG))
    q = am.QuantAudioNet(net, am.calibrate(net, [inp]))
    return [am.AudioModel(CFG, (CURVE, CURVE), exact=am.ExactAudioNet(CFG, exact.export_int(q)), default_budget=7),
            am.AudioModel(CFG, (CURVE, CURVE), net=net, default_budget=7)]


@pytest.mark.parametrize("bits,channels,frames", [(16, 1, 3000), (16, 2, 700), (8, 1, 300), (24, 2, 129),
                                                   (16, 1, 1), (16, 3, 5)])
def test_round_trips(bits, channels, frames):
    x = _oversampled(frames, channels, seed=bits + channels)
    x = {8: x // 256, 16: x, 24: x * 256 + np.arange(frames)[:, None] % 256}[bits]
    x = x.astype({8: np.int8, 16: np.int16, 24: np.int32}[bits])
    for model in _models():
        for ct, low in ((False, False), (True, bits == 24)):
            words, _ = audio_codec.compress_samples(model, x, bits, 7, seed=5, offsets=model.exact is not None,
                                                    channel_transform=ct, low_modes=low)
            out = audio_codec.decompress_samples(model, words, frames, channels, bits, 7, seed=5,
                                                 offsets=model.exact is not None, channel_transform=ct, low_modes=low)
            assert out.dtype == x.dtype and np.array_equal(out, x)


def test_segments_each_carry_their_own_side_information(monkeypatch):
    monkeypatch.setattr(audio_codec, "SEGMENT", 512)
    x = np.concatenate([_oversampled(700, seed=1), np.random.default_rng(2).integers(-3000, 3000, (600, 1))])
    x = x.astype(np.int16)
    model = _models()[0]
    seen = []
    real = audio_codec._side
    monkeypatch.setattr(audio_codec, "_side", lambda m, d: seen.append(real(m, d)) or seen[-1])
    words, _ = audio_codec.compress_samples(model, x, 16, 7, offsets=True)
    assert len(seen) == 3 and not all((s.filters == seen[0].filters).all() for s in seen)
    assert [s.levels.shape[1] for s in seen] == [interp.block_count(1300 - 1024)] + [interp.block_count(512)] * 2  # last first
    assert np.array_equal(audio_codec.decompress_samples(model, words, len(x), 1, 16, 7, offsets=True), x)


def test_a_shipped_model_dequantises_to_the_integers_it_codes_with():
    q = [m for m in [_models()[0]]][0]
    blob = q.exact.blob
    net = am.AudioNet(CFG)
    net.load_state_dict(at.dequantised(blob, CFG))
    again = exact.export_int(am.QuantAudioNet(net, q.exact.scales))
    for name, d in blob["layers"].items():
        for key in ("weight", "bias"):
            assert torch.equal(again["layers"][name][key], d[key]), (name, key)


# ------------------------------------------------------------------------------ the dyadic-split order
SPLIT = dataclasses.replace(CFG, order="dyadic-split")


def _high_band(frames: int, seed: int = 0) -> np.ndarray:
    """A resonance just above a quarter of the sample rate (AR(2): poles at radius 0.98, frequency 0.26)
    driven by white noise: int64 (frames,). Interpolating the odd frames from the even ones leaves most
    of it; the odd frames' neighbours among themselves carry it."""
    rng = np.random.default_rng(seed)
    a1, a2 = 2 * 0.98 * np.cos(2 * np.pi * 0.26), -0.98 ** 2
    e, x = rng.normal(0, 300, frames), np.zeros(frames + 2)
    for i in range(frames):
        x[i + 2] = a1 * x[i + 1] + a2 * x[i] + e[i]
    return np.clip(np.round(x[2:]), -32768, 32767).astype(np.int64)


def test_split_groups_halve_the_odd_frames_and_add_a_step():
    from ardmzip import ardm
    plain, split = dyadic_groups(4096), dyadic_groups(4096, split=1)
    f = np.arange(4096)
    assert np.array_equal(split[f % 4 != 3], plain[f % 4 != 3]) and (split[f % 4 == 3] == 7).all()
    assert ardm.group_edges(split=1) == (0, 8, 16, 32, 64, 128, 256, 384, 512)
    assert ardm.min_budget("dyadic-split") == 8 and ardm.min_budget("dyadic") == 7
    assert ardm.group_edges(split=3) == (0, 8, 16, 32, 64, 96, 128, 192, 256, 384, 512)
    assert ardm.min_budget("dyadic-split3") == 10 and np.bincount(dyadic_groups(4096, split=3)).tolist() == [
        64, 64, 128, 256, 256, 256, 512, 512, 1024, 1024]
    assert SPLIT.split and not CFG.split and am.AudioNetConfig.from_dict(SPLIT.to_dict()) == SPLIT
    with pytest.raises(ValueError, match="order"):
        dataclasses.replace(CFG, order="dyadic-triple")
    with pytest.raises(ValueError, match="interp"):
        dataclasses.replace(CFG, order="dyadic-split", interp=False)


@pytest.mark.parametrize("split", [1, 2, 3])
def test_split_taps_read_only_frames_known_when_their_group_is_coded(split):
    for frames in (2, 3, 4, 7, 64, 65, 300, 4097):
        groups = dyadic_groups(frames, split=split)
        for k in range(1, interp.group_count(split)):
            for m in (1, 2, 16, 64):
                pos, idx = interp.taps(frames, k, m, split)
                assert (groups[pos] == k).all() and len(pos) == (groups == k).sum()
                if len(pos):
                    assert (idx >= 0).all() and (idx < frames).all() and (groups[idx] < k).all()
    k = interp.group_count(split) - 1                      # the finest level's second half: h = 1
    pos, idx = interp.taps(4096, k, 3, split)              # −1, +1, −2, +2, −3, +3 of frame 3
    assert pos[0] == 3 and idx[0].tolist() == [2, 4, 1, 5, 0, 6]
    assert idx[1].tolist() == [6, 8, 5, 9, 4, 10]
    pos, idx = interp.taps(4096, k, 3, split, lattice=True)   # the cubic's: even frames only
    assert idx[0].tolist() == [2, 4, 0, 6, 2, 8]
    if split >= 2:                                         # level 5 (h = 2): its second half, f ≡ 6 (mod 8)
        assert interp.level(k - 2, split) == (5, 2) and interp.spacing(k - 2, split) == 2
        pos, idx = interp.taps(4096, k - 2, 2, split)
        assert pos[0] == 6 and idx[0].tolist() == [4, 8, 2, 10]
    f = np.arange(interp.group_count(split) * 3).reshape(1, -1, 3)
    assert interp.level_filters(f).shape == (1, interp.GROUPS, 3)
    assert [interp.level(k, split)[0] for k in interp.level_filters(f)[0, :, 0] // 3][1:] == [1, 2, 3, 4, 5, 6]


def test_the_second_half_reads_the_first_where_the_signal_lies_above_a_quarter_of_the_rate():
    x = torch.from_numpy(_high_band(1 << 13))[None]
    plain, split = interp.choose(x), interp.choose(x, split=1)
    assert plain.shape[1] == interp.GROUPS and split.shape[1] == interp.group_count(1)
    u = (x + 32768).view(1, 1, -1)
    every = torch.ones_like(u, dtype=torch.bool)
    p_plain, _ = interp.predict(u, every, plain.view(1, 1, interp.GROUPS, -1))
    p_split, ok = interp.predict(u, every, split.view(1, 1, interp.group_count(1), -1))
    pos = torch.from_numpy(interp.taps(u.shape[-1], 7, 1, split=1)[0])
    assert ok[0, 0, pos].all()
    err = [(16 * u[0, 0, pos] - p[0, 0, pos]).abs().double().mean() for p in (p_plain, p_split)]
    assert err[1] < 0.5 * err[0]


def test_split_side_information_round_trips():
    x = torch.from_numpy(np.stack([_high_band(3000, seed=s) for s in range(2)]))
    side = interp.side(x, interp.SIZE_COEF_BITS, interp.CHOICES_64, split=1)
    f = side.filters.numpy()
    assert f[:, 7, 0].min() > 0
    choices, sizes, bits = interp.size_symbols(f, interp.CHOICES_64)
    assert len(choices) == 2 * (interp.group_count(1) - 1)
    assert np.array_equal(interp.from_size_symbols(choices, sizes, bits, 2, interp.CHOICES_64), f)
    assert side.levels.shape == (2, interp.block_count(3000, split=1))
    assert torch.equal(interp.block_levels(x, side.filters), side.levels)
    rows, has = interp.level_rows(side.levels.view(1, 2, -1), 3000, split=1)
    assert has[0, 0, 1::2].all() and not has[0, 0, ::64].any()


def test_split_masks_score_the_second_half_with_the_first_known():
    t = torch.tensor([3 * 1024 // 4 + 5, 1024 // 2 + 3])           # inside groups 7 and 6 of 1024 frames
    known, scored = am.dyadic_masks(2, 1, 1024, t, torch.Generator().manual_seed(0), split=1)
    f = torch.arange(1024)
    assert known[0, 0, f % 4 == 1].all() and scored[0, 0].sum() == 256 - 5 and (f[scored[0, 0]] % 4 == 3).all()
    assert not known[1, 0, f % 4 == 3].any() and (f[scored[1, 0]] % 4 == 1).all()


@pytest.mark.parametrize("bits,channels,frames,budget", [(16, 1, 3000, 8), (16, 2, 700, 20), (24, 2, 129, 8),
                                                         (8, 1, 300, 8), (16, 1, 1, 8), (16, 1, 6, 8), (16, 1, 900, 1),
                                                         (16, 1, 900, 2)])
@pytest.mark.parametrize("order", ["dyadic-split", "dyadic-split3"])
def test_split_models_round_trip(bits, channels, frames, budget, order, monkeypatch):
    x = np.stack([_high_band(frames, seed=c) for c in range(channels)], 1)
    x = {8: x // 256, 16: x, 24: x * 256 + np.arange(frames)[:, None] % 256}[bits]
    x = x.astype({8: np.int8, 16: np.int16, 24: np.int32}[bits])
    cfg = dataclasses.replace(SPLIT, order=order)
    for model in _models(cfg):
        halved = list(audio_codec._steps(model, 1, frames, channels, budget + cfg.split - 1, 5, 0, cfg.split))
        whole = list(audio_codec._steps(model, 1, frames, channels, budget + cfg.split - 1, 5, 0, 0))
        if frames >= 64 and budget == 8:   # one call per group either way
            assert len(halved) == 7 + cfg.split and (halved[-1][1] % frames % 4 == 3).all() and len(whole) == 7
        words, _ = audio_codec.compress_samples(model, x, bits, budget, seed=5, offsets=model.exact is not None,
                                                channel_transform=channels > 1, low_modes=bits == 24)
        out = audio_codec.decompress_samples(model, words, frames, channels, bits, budget, seed=5,
                                             offsets=model.exact is not None, channel_transform=channels > 1,
                                             low_modes=bits == 24)
        assert out.dtype == x.dtype and np.array_equal(out, x)
    # each segment halves its levels or not, whichever the net codes shorter: both ways round-trip
    model = _models(cfg)[0]
    for forced in (0, cfg.split):
        monkeypatch.setattr(audio_codec, "_choose_split", lambda m, b, hi, lo, d, s=forced: (s, audio_codec._side(m, d, s), {}))
        words, _ = audio_codec.compress_samples(model, x, bits, budget, seed=5, offsets=True,
                                                channel_transform=channels > 1, low_modes=bits == 24)
        out = audio_codec.decompress_samples(model, words, frames, channels, bits, budget, seed=5, offsets=True,
                                             channel_transform=channels > 1, low_modes=bits == 24)
        assert np.array_equal(out, x)


def test_the_encoder_halves_the_finest_level_where_the_net_codes_it_shorter(monkeypatch):
    """Per segment, the encoder's choice codes about as short as the better of the two ways forced."""
    model = _models(SPLIT)[0]
    real = audio_codec._choose_split
    for x in (_high_band(4096, seed=3), _oversampled(4096, seed=5)[:, 0]):
        x = x[:, None].astype(np.int16)
        sizes = {}
        for way in (0, 1, None):
            choose = real if way is None else (lambda m, b, hi, lo, d, s=way: (s, audio_codec._side(m, d, s), {}))
            monkeypatch.setattr(audio_codec, "_choose_split", choose)
            sizes[way] = len(audio_codec.compress_samples(model, x, 16, 8, offsets=True)[0])
        assert sizes[None] <= 1.002 * min(sizes[0], sizes[1]), sizes


@pytest.mark.parametrize("keep", ["chosen", "halved"])
def test_the_encoder_reuses_the_split_choices_net_calls_without_changing_the_file(monkeypatch, keep):
    """The net calls _choose_split made for the way it keeps are not made again (its memo): one per
    stage and group from the first halved level on, and the words are exactly those of an encoder that
    makes every call afresh. "halved" makes _choose_split keep the halved way (its bits negated)."""
    model = _models(SPLIT)[0]
    real = audio_codec._choose_split

    def halving(*a):
        bits = audio_codec._bits
        monkeypatch.setattr(audio_codec, "_bits", lambda probs, symbols: -bits(probs, symbols))
        try:
            return real(*a)
        finally:
            monkeypatch.setattr(audio_codec, "_bits", bits)
    choose = real if keep == "chosen" else halving
    x = _high_band(4096, seed=3)[:, None].astype(np.int16)
    calls, words, kept = {}, {}, []
    for reuse in (True, False):
        count = [0]
        params = model.params

        def counted(inp, params=params, count=count):
            count[0] += 1
            return params(inp)

        def spy(*a, reuse=reuse):
            split, side, memo = choose(*a)
            kept.append(split)
            return (split, side, memo) if reuse else (split, side, {})
        monkeypatch.setattr(model, "params", counted)
        monkeypatch.setattr(audio_codec, "_choose_split", spy)
        words[reuse] = audio_codec.compress_samples(model, x, 16, 8, offsets=True)[0]
        calls[reuse] = count[0]
        monkeypatch.undo()
    assert len(set(kept)) == 1 and (kept[0] > 0) == (keep == "halved"), kept
    assert np.array_equal(words[True], words[False])
    out = audio_codec.decompress_samples(model, words[True], len(x), 1, 16, 8, offsets=True)
    assert np.array_equal(out, x)
    groups = SPLIT.split * (2 if kept[0] else 1)       # the kept way's groups from the first halved level on
    assert calls[False] - calls[True] == audio_codec.net_stages(model, 16) * groups, calls
