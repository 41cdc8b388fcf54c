"""Joint audio models (AudioNetConfig.joint): one net-coded stage over whole 16-bit values, whose code is
split into the high byte and the low byte given it. The heads (float and integer) agree with each
other and with the training loss; nothing unknown reaches the net's inputs; round trips of tiny random
int-exact and float joint models at every sample width."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from ardmzip import audio_codec, exact
from ardmzip import audio_model as am
from ardmzip.ardm import dyadic_groups

CFG = am.AudioNetConfig(widths=(8, 16), blocks=(1, 1), kernel=3, mixtures=2, scales=(2, 16), neighbours=2,
                        order="dyadic", prior=True, interp=True, joint=True, coefs="sizes")
CURVE = tuple(int(9000 * (1 - i / 600)) for i in range(512))


def _audio(frames: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A few loud low partials plus noise: int64 (frames, channels) in the 16-bit range."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None]
    x = sum(a * np.sin(2 * np.pi * f * t / 8000 + p) for a, f, p in
            zip(rng.uniform(1000, 6000, 4), rng.uniform(50, 900, 4), rng.uniform(0, 6, 4)))
    return np.clip(np.round(x + rng.normal(0, 30, (frames, channels))), -32768, 32767).astype(np.int64)


def _random_joint_heads(n: int, k: int, seed: int = 0) -> np.ndarray:
    """(n, 3K) integer joint head outputs: means anywhere in the 16-bit range, log-scales over the whole
    joint range (stage 2's narrowest to stage 1's widest)."""
    rng = np.random.default_rng(seed)
    centre = rng.integers(0, 65536, (n, 1)) * 16
    return np.concatenate([rng.integers(-300, 300, (n, k)),
                           np.clip(centre + rng.integers(-4000, 4000, (n, k)), am.JOINT_MU_MIN, am.JOINT_MU_MAX),
                           rng.integers(exact.LOGS_MIN, am.JOINT_LOGS_MAX + 1, (n, k))], 1)


def test_joint_needs_the_prior():
    with pytest.raises(ValueError, match="joint"):
        dataclasses.replace(CFG, prior=False, interp=False)
    assert CFG.stages == 1 and dataclasses.replace(CFG, joint=False).stages == 2


def test_nothing_unknown_reaches_the_features():
    g = torch.Generator().manual_seed(0)
    u = torch.from_numpy(_audio(256, 2).T.copy() + 32768).view(1, 2, 256)
    m = torch.rand(1, 2, 256, generator=g) < 0.4
    other = torch.where(m, u, torch.randint(0, 65536, u.shape, generator=g))
    side = am.segment_side(u)
    a, b = (am.features(v >> 8, m, v & 255, m, torch.tensor([100]), torch.tensor([2]), CFG, side) for v in (u, other))
    assert torch.equal(a, b)


def test_integer_high_bytes_are_a_distribution_close_to_the_float_head():
    k = 3
    q = _random_joint_heads(400, k)
    pi = am.int_hi_probabilities(q, k)
    assert (pi > 0).all() and np.allclose(pi.sum(1), 1)
    pf = am.float_probabilities(am.dequantise(torch.tensor(q, dtype=torch.float64), k), k, 1, am._HI_EDGES)
    kl = (pf * np.log2(pf / pi)).sum(1)
    assert kl.max() < 0.01
    # in chunks or all at once: the same numbers
    assert np.array_equal(np.concatenate([am.int_hi_probabilities(q[i:i + 7], k) for i in range(0, 400, 7)]), pi)


def test_the_low_byte_is_stage_2_with_the_means_moved_into_the_bin():
    k = 2
    q = _random_joint_heads(300, k, seed=1)
    hi = np.random.default_rng(2).integers(0, 256, 300)
    rel = am.int_in_bin(q, hi, k).numpy()
    assert np.array_equal(rel[:, k:2 * k], np.clip(q[:, k:2 * k] - 4096 * hi[:, None], exact.MU_MIN, exact.MU_MAX))
    assert np.array_equal(rel[:, 2 * k:], np.minimum(q[:, 2 * k:], exact.LOGS_MAX))
    pi = am.int_probabilities(rel, k, 2)
    pf = am.float_probabilities(am.in_bin(am.dequantise(torch.tensor(q, dtype=torch.float64), k),
                                          torch.from_numpy(hi), k), k, 2)
    assert (pf * np.log2(pf / pi)).sum(1).max() < 0.01


def test_the_training_loss_is_the_codes_length():
    """joint_log_prob = log P(high byte) + log P(low byte | high byte) of the float distributions the
    codec uses, for values anywhere (the outer bins included)."""
    k = 2
    q = _random_joint_heads(200, k, seed=3)
    p = am.dequantise(torch.tensor(q, dtype=torch.float64), k)
    u = torch.from_numpy(np.random.default_rng(4).integers(0, 65536, 200))
    u[:3] = torch.tensor([0, 65535, 255])
    hi, lo = u >> 8, u & 255
    lp = am.joint_log_prob(p.unsqueeze(-1), hi.view(-1, 1), lo.view(-1, 1), k)[:, 0].numpy()
    ph = am.float_probabilities(p, k, 1, am._HI_EDGES)[np.arange(200), hi.numpy()]
    pl = am.float_probabilities(am.in_bin(p, hi, k), k, 2)[np.arange(200), lo.numpy()]
    assert np.allclose(lp, np.log(ph) + np.log(pl), atol=1e-6)


def test_training_scores_whole_values_and_learns():
    torch.manual_seed(0)
    net = am.AudioNet(CFG)
    u = torch.from_numpy(_audio(128, 1, seed=5).T.copy() + 32768).view(1, 1, 128).repeat(4, 1, 1)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    t = torch.tensor([0, 20, 60, 100])
    first = None
    for _ in range(30):
        loss, frac, lt = am.training_loss(net, u, torch.ones(4, dtype=torch.int64), generator=g, t=t, penalty=True)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert 0 < loss.item() < first and torch.equal(frac, t / 128)


def test_scale_offsets_keep_a_joint_heads_wide_scales():
    from ardmzip.codec import with_offset
    model = _models()[0]
    q = torch.tensor(_random_joint_heads(5, 2, seed=6))
    q[:, 4:] = torch.tensor([[100, 137]])
    out = with_offset(model, q, 4)
    assert out[:, 4:].tolist() == [[104, 137]] * 5 and torch.equal(out[:, :4], q[:, :4])


def _models(cfg: am.AudioNetConfig = CFG) -> list[am.AudioModel]:
    torch.manual_seed(0)
    net = am.AudioNet(cfg).eval().requires_grad_(False)
    g = torch.Generator().manual_seed(1)
    u = torch.from_numpy(_audio(256, 2).T.copy() + 32768).view(2, 1, 256)
    m = torch.rand(2, 1, 256, generator=g) < 0.5
    inp = am.features(u >> 8, m, u & 255, m, torch.tensor([9, 200]), torch.tensor([2, 2]), cfg,
                      am.segment_side(u) if cfg.interp else None)
    q = am.QuantAudioNet(net, am.calibrate(net, [inp]))
    return [am.AudioModel(cfg, (CURVE,), exact=am.ExactAudioNet(cfg, exact.export_int(q)), default_budget=7),
            am.AudioModel(cfg, (CURVE,), net=net, default_budget=7)]


@pytest.mark.parametrize("bits,channels,frames", [(16, 1, 3000), (16, 2, 700), (8, 1, 300), (24, 2, 129),
                                                   (16, 1, 1), (16, 3, 5)])
def test_round_trips(bits, channels, frames):
    x = _audio(frames, channels, seed=bits + channels)
    x[:2] = np.array([[-32768] * channels, [32767] * channels])[:frames]  # the outer high-byte bins
    x = {8: x // 256, 16: x, 24: x * 256 + np.arange(frames)[:, None] % 256}[bits]
    x = x.astype({8: np.int8, 16: np.int16, 24: np.int32}[bits])
    for model in _models():
        for ct, low in ((False, False), (True, bits == 24)):
            words, model_bits = audio_codec.compress_samples(model, x, bits, 7, seed=5, offsets=model.exact is not None,
                                                             channel_transform=ct, low_modes=low)
            out = audio_codec.decompress_samples(model, words, frames, channels, bits, 7, seed=5,
                                                 offsets=model.exact is not None, channel_transform=ct, low_modes=low)
            assert out.dtype == x.dtype and np.array_equal(out, x)
            assert 32 * len(words) < model_bits + 64 + 32 * audio_codec.interp.MAX_TAPS  # the ANS code is the model's


def test_a_joint_model_without_side_information_or_groups_round_trips():
    cfg = dataclasses.replace(CFG, interp=False, order="uniform", coefs="bytes")
    x = _audio(500, 2, seed=9).astype(np.int16)
    for model in _models(cfg):
        for budget in (1, 5):
            words, _ = audio_codec.compress_samples(model, x, 16, budget, offsets=model.exact is not None)
            out = audio_codec.decompress_samples(model, words, 500, 2, 16, budget, offsets=model.exact is not None)
            assert np.array_equal(out, x)


def test_one_network_call_per_step_codes_both_bytes():
    model = _models()[0]
    calls = []
    real = model.exact.__call__
    model.exact = type("Counting", (), {"__call__": lambda self, inp: calls.append(1) or real(inp),
                                        "blob": model.exact.blob})()
    x = _audio(2048, 1, seed=3).astype(np.int16)
    audio_codec.compress_samples(model, x, 16, 7, offsets=True)
    groups = len(np.unique(dyadic_groups(2048)))
    assert len(calls) == groups == audio_codec.schedule_cost(model, 2048, 1, 16, 7)[0]
    assert math.isfinite(audio_codec.schedule_cost(model, 2048, 1, 16, 7)[1])
