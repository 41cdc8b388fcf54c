"""The audio ARDM (issue 6): heads, integer-exact net, codec round trips, trainer."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math

import numpy as np
import pytest
import torch

from ardmzip import audio_codec as ac
from ardmzip import audio_model as am
from ardmzip import ardm, exact
from ardmzip.coder import Decoder, Encoder
from ardmzip.errors import CorruptError

TINY = am.AudioNetConfig(widths=(8, 16), blocks=(1, 1), kernel=3, mixtures=2, scales=(2, 16), neighbours=2)
CURVE = tuple(int(9000 * (1 - i / 600)) for i in range(512))   # decreasing, millibits
# a dyadic model's curve: flat inside each group, lower for finer groups
DYADIC_CURVE = tuple(int(9000 - 900 * int(np.searchsorted(ardm.group_edges(), i, side="right")) - i) for i in range(512))


def _heads(rng, n, k, mu=(exact.MU_MIN, exact.MU_MAX + 1), logs=(exact.LOGS_MIN, exact.LOGS_MAX + 1)):
    return np.concatenate([rng.integers(-2048, 2049, (n, k)), rng.integers(*mu, (n, k)), rng.integers(*logs, (n, k))], 1)


def _random_state(g: torch.Generator, n: int, C: int, L: int, cfg: am.AudioNetConfig = TINY) -> torch.Tensor:
    u = torch.randint(0, 65536, (n, C, L), generator=g)
    m = torch.rand(n, C, L, generator=g) < torch.rand(n, 1, 1, generator=g)
    stage = torch.randint(1, 3, (n,), generator=g)
    s1 = (stage == 1).view(n, 1, 1)
    return am.features(u >> 8, torch.where(s1, m, True), u & 255, torch.where(s1, False, m),
                       torch.randint(0, 256, (n,), generator=g), stage, cfg)


@pytest.fixture(scope="module")
def nets():
    """A tiny random float net, its calibration scales and the int-exact net exported from it."""
    torch.manual_seed(0)
    net = am.AudioNet(TINY).eval().requires_grad_(False)
    g = torch.Generator().manual_seed(1)
    scales = am.calibrate(net, [_random_state(g, 4, 2, 256) for _ in range(3)])
    qnet = am.QuantAudioNet(net, scales)
    return net, qnet, am.ExactAudioNet(TINY, exact.export_int(qnet))


PRIOR = dataclasses.replace(TINY, order="dyadic", prior=True)


@pytest.fixture(scope="module")
def prior_nets():
    """As `nets`, for a dyadic net that corrects the exact prior."""
    torch.manual_seed(0)
    net = am.AudioNet(PRIOR).eval().requires_grad_(False)
    g = torch.Generator().manual_seed(1)
    qnet = am.QuantAudioNet(net, am.calibrate(net, [_random_state(g, 4, 2, 256, PRIOR) for _ in range(3)]))
    return net, qnet, am.ExactAudioNet(PRIOR, exact.export_int(qnet))


@pytest.fixture(scope="module")
def models(nets, prior_nets):
    net, qnet, ex = nets
    dyadic = dataclasses.replace(TINY, order="dyadic")
    return {"float": am.AudioModel(TINY, (CURVE, CURVE), net=net), "exact": am.AudioModel(TINY, (CURVE, CURVE), exact=ex),
            "dyadic": am.AudioModel(dyadic, (DYADIC_CURVE, DYADIC_CURVE), exact=am.ExactAudioNet(dyadic, exact.export_int(qnet))),
            "prior": am.AudioModel(PRIOR, (DYADIC_CURVE, DYADIC_CURVE), exact=prior_nets[2])}


# ----------------------------------------------------------------------------------------- heads
class TestIntegerHead:
    def test_table_is_pinned(self):
        """The sigmoid table is part of the format: a change would break every exact audio file."""
        t = am.sigmoid_table()
        assert hashlib.sha256(t.astype("<i8").tobytes()).hexdigest() == SIGMOID_SHA256
        assert t[0] > 0 and t[-1] < 1 << am.SIG_BITS and (np.diff(t) >= 0).all()

    @pytest.mark.parametrize("stage", [1, 2])
    @pytest.mark.parametrize("k", [1, 4])
    def test_fast_equals_reference(self, stage, k):
        rng = np.random.default_rng(k + 10 * stage)
        q = _heads(rng, 2000, k)
        q[:8, 2 * k:], q[8:16, 2 * k:] = exact.LOGS_MIN, exact.LOGS_MAX    # extremes
        q[16:24, k:2 * k], q[24:32, k:2 * k] = exact.MU_MIN, exact.MU_MAX
        p = am.int_probabilities(q, k, stage)
        assert np.array_equal(p, am.reference_int_probabilities(q, k, stage))
        assert p.shape == (2000, 256) and (p > 0).all() and np.allclose(p.sum(1), 1.0)

    def test_stages_follow_the_parameters(self):
        """Stage 1: a narrow component on class 100 puts its mass there. Stage 2: a narrow component
        outside the bin (mean above 255) puts the bin's mass on its top value: restricted, not tails."""
        p1 = am.int_probabilities(np.array([[0, 16 * 100, exact.LOGS_MIN]]), 1, 1)[0]
        p2 = am.int_probabilities(np.array([[0, 16 * 257, -60]]), 1, 2)[0]
        assert p1.argmax() == 100 and p1[100] > 0.95  # logistic tails: σ(4.3) − σ(−4.3) at the narrowest scale
        assert p2.argmax() == 255 and p2[255] > 0.15 and np.all(np.diff(p2) >= 0) and p2[:200].sum() < 1e-6

    @pytest.mark.parametrize("stage", [1, 2])
    def test_float_head_is_the_integer_head_without_grids(self, stage):
        """The training loss's distribution (float) and the coded one (integer) differ by < 0.01 bit per
        variable (KL) on heads anywhere on the grids: QAT optimises what will be coded."""
        rng = np.random.default_rng(stage)
        k = 4
        q = _heads(rng, 3000, k, logs=(exact.LOGS_MIN, 49))
        pi = am.int_probabilities(q, k, stage)
        pf = am.float_probabilities(am.dequantise(torch.tensor(q, dtype=torch.float64), k), k, stage)
        kl = (pf * np.log2(pf / pi)).sum(1)
        assert kl.max() < 0.01 and kl.mean() < 1e-3

    @pytest.mark.parametrize("stage", [1, 2])
    def test_loss_is_the_coding_distribution(self, stage):
        rng = np.random.default_rng(5)
        p = am.dequantise(torch.tensor(_heads(rng, 500, 3, logs=(exact.LOGS_MIN, 49)), dtype=torch.float64), 3)
        v = torch.from_numpy(rng.integers(0, 256, 500))
        lp = am.log_prob(p[:, :, None], v[:, None], 3, stage)[:, 0].exp().numpy()
        probs = am.float_probabilities(p, 3, stage)[np.arange(500), v.numpy()]
        assert np.allclose(lp, probs, rtol=1e-3)


SIGMOID_SHA256 = "99dfa4dd5f4c54b57ccfa348e06f8d50fadb43a3a9626b51682f4840508c3bf6"


# ---------------------------------------------------------------------------------------- network
class TestNet:
    @pytest.mark.parametrize("neighbours,prior", [(0, False), (2, False), (1, True), (2, True)])
    def test_features_read_only_known_values(self, neighbours, prior):
        cfg = dataclasses.replace(TINY, neighbours=neighbours, prior=prior)
        g = torch.Generator().manual_seed(0)
        hi, lo = torch.randint(0, 256, (2, 2, 100), generator=g), torch.randint(0, 256, (2, 2, 100), generator=g)
        mh, ml = torch.rand(2, 2, 100, generator=g) < 0.3, torch.rand(2, 2, 100, generator=g) < 0.3
        mh[1] = True                                        # example 1 is at stage 2: every high byte known
        args = (torch.tensor([10, 200]), torch.tensor([1, 2]), cfg)
        f = am.features(hi, mh, lo, ml, *args)
        f2 = am.features(torch.where(mh, hi, 255 - hi), mh, torch.where(ml, lo, 0), ml, *args)
        assert torch.equal(f, f2) and f.shape == (4, cfg.in_features + 2 * prior, 100)
        net_rows, _ = am.split_prior(f, cfg)
        assert torch.equal(f, f.round()) and net_rows.abs().max() <= 255 and net_rows.shape[1] == cfg.in_features

    def test_range_penalty_pulls_dead_parameters_back(self):
        """A stage-2 head far outside its bin has no loss gradient; the penalty has one, and is 0 inside."""
        k = 2
        inside = torch.tensor([[0.5, -0.5, 0.2, -1.4, -3.0, 2.5]]).view(1, 3 * k, 1)
        assert am.range_penalty(inside, k).item() == 0.0
        dead = torch.tensor([[0.0, 0.0, 40.0, -40.0, -60.0, 50.0]]).view(1, 3 * k, 1).requires_grad_()
        nll = -am.log_prob(dead, torch.tensor([[100]]), k, 2)
        assert abs(nll.item() / math.log(2) - 8) < 1e-3           # uniform: the floor decides
        g_loss, = torch.autograd.grad(nll.sum(), dead)
        assert g_loss.abs().max() < 1e-6
        g_pen, = torch.autograd.grad(am.range_penalty(dead, k), dead)
        assert (g_pen[0, k:, 0].abs() > 0).all()

    def test_training_loss_is_finite_with_gradients(self):
        torch.manual_seed(0)
        net = am.AudioNet(TINY)
        u = torch.randint(0, 65536, (4, 2, 64))
        loss, frac, lt = am.training_loss(net, u, torch.tensor([1, 2, 1, 2]))
        loss.backward()
        assert torch.isfinite(loss) and 4 < loss.item() < 30 and lt.shape == (4,)
        assert all(torch.isfinite(p.grad).all() for p in net.parameters())

    def test_exact_net_matches_fake_quantisation(self, nets):
        _, qnet, ex = nets
        g = torch.Generator().manual_seed(2)
        inp = _random_state(g, 3, 2, 500)
        fake = am.dequantise(ex(inp), TINY.mixtures)
        with torch.no_grad():
            ref = qnet(inp * exact.INPUT_SCALE)
        close = (fake - ref).abs() < 1e-4
        assert close.float().mean() > 0.999  # a handful may round the other way at a .5

    def test_exact_prior_net_matches_fake_quantisation(self, prior_nets):
        _, qnet, ex = prior_nets
        inp = _random_state(torch.Generator().manual_seed(2), 3, 2, 500, PRIOR)
        fake = am.dequantise(ex(inp), PRIOR.mixtures)
        with torch.no_grad():
            ref = qnet(inp * exact.INPUT_SCALE)
        assert ((fake - ref).abs() < 1e-4).float().mean() > 0.999

    def test_exact_net_ignores_batch_composition(self, nets):
        _, _, ex = nets
        g = torch.Generator().manual_seed(3)
        inp = _random_state(g, 4, 1, 256)
        assert torch.equal(ex(inp)[1:3], ex(inp[1:3]))

    def test_model_breaking_the_bound_is_refused(self, nets):
        _, qnet, _ = nets
        blob = exact.export_int(qnet)
        blob["layers"]["stem"]["bias"][0] = 1 << 24
        with pytest.raises(ValueError, match="2\\^24"):
            am.ExactAudioNet(TINY, blob)


# ------------------------------------------------------------------------------------------ prior
class TestPrior:
    def test_quarter_octaves_are_exact(self):
        v = torch.tensor([0, 1, 2, 3, 4, 5, 16, 19, 20, 1 << 20, (1 << 20) + 1, 1 << 40])
        # 2^(j/4) ≤ v  ⇔  2^j ≤ v^4 for integers: count the j
        expected = [sum(1 for j in range(160) if (1 << j) <= int(x) ** 4) if x > 0 else 0 for x in v]
        assert am.quarter_octaves(v).tolist() == expected
        assert am.quarter_octaves(torch.tensor([1 << 20])).item() == 81

    def _prior(self, x: np.ndarray, known: np.ndarray, stage: int = 2):
        u = torch.from_numpy(x.astype(np.int64) + 32768).view(1, 1, -1)
        k = torch.from_numpy(known).view(1, 1, -1)
        everything = torch.ones_like(k)
        mh, ml = (k, ~everything) if stage == 1 else (everything, k)
        return am.prior(u >> 8, mh, u & 255, ml, torch.tensor([stage]))

    def test_cubic_on_a_regular_lattice_linear_elsewhere(self):
        x = (np.arange(64) ** 3 // 50 - 2000).astype(np.int64)           # a cubic: the 4-point rule is exact
        known = np.arange(64) % 4 == 0
        p16, levels, _ = self._prior(x, known)
        p = p16[0, 0].numpy()
        mid = np.arange(10, 54, 4)                                         # known at ±2 and ±6
        assert np.abs(p[mid] - 16 * (x[mid] + 32768)).max() <= 16         # exact up to x's own rounding
        assert (levels[0][0, 0] >= 0).all()
        one = np.zeros(9, dtype=bool)
        one[[2, 7]] = True                                                 # irregular: linear between 2 and 7
        x = np.arange(9, dtype=np.int64) * 100
        p16, _, _ = self._prior(x, one)
        assert p16[0, 0, 4].item() == 16 * (32768 + 400) and p16[0, 0, 0].item() == 16 * (32768 + 200)
        p16, levels, _ = self._prior(x, np.zeros(9, dtype=bool))           # nothing known: mid-scale, full-scale level
        assert (p16 == 16 * 32768).all() and (levels[1] == am.quarter_octaves(torch.tensor(16 << 15))).all()

    def test_stage_1_predicts_from_bin_centres(self):
        x = np.full(16, 1000, dtype=np.int64)
        known = np.arange(16) % 2 == 0
        p16, _, _ = self._prior(x, known, stage=1)
        centre = ((1000 + 32768) >> 8) * 256 + 128
        assert (p16[0, 0, 3:13] == 16 * centre).all()
        mu, _ = am.prior_params(p16, torch.zeros_like(p16), torch.full_like(p16, (1000 + 32768) >> 8), torch.tensor([1]))
        assert (mu[0, 0, 3:13] == 16 * ((1000 + 32768) >> 8)).all()       # the bin's own value on the mean grid

    def test_a_net_started_from_one_without_the_prior_predicts_the_prior(self, nets):
        from ardmzip.audio_train import init_from
        net = am.AudioNet(PRIOR)
        init_from(net, nets[0].state_dict(), TINY)
        inp = _random_state(torch.Generator().manual_seed(5), 2, 1, 64, PRIOR)
        with torch.no_grad():
            p = net(inp * exact.INPUT_SCALE)
        k = PRIOR.mixtures
        prior_mu = inp[:, -2:-1] / (127.5 * exact.MU_UNIT) - 1.0
        assert torch.allclose(p[:, k:2 * k], prior_mu.expand(-1, k, -1), atol=1e-5)


# ------------------------------------------------------------------------------------------ codec
def _signal(kind: str, frames: int, channels: int, bits: int, seed: int = 0) -> np.ndarray:
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if kind == "random":
        x = np.random.default_rng(seed).integers(lo, hi, (frames, channels), endpoint=True)
        if frames > 1:
            x[0, 0], x[-1, -1] = lo, hi
    else:
        t = np.arange(frames)[:, None]
        x = np.rint(0.7 * hi * np.sin(2 * np.pi * t * (0.01 + 0.003 * np.arange(channels)))).astype(np.int64)
    return x.astype({8: np.int8, 16: np.int16, 24: np.int32}[bits])


def assert_round_trip(model: am.AudioModel, x: np.ndarray, bits: int, budget: int = 4, seed: int = 7) -> np.ndarray:
    """Push, pop, and check that the same samples and an empty stack come back; returns the words."""
    enc = Encoder()
    model_bits = ac.encode_audio(model, x, bits, budget, seed, enc)
    words = enc.words()
    dec = Decoder(words)
    y = ac.decode_audio(model, x.shape[0], x.shape[1], bits, budget, seed, dec)
    dec.finish()
    assert y.dtype == x.dtype and np.array_equal(x, y)
    assert len(words) * 32 <= 1.01 * model_bits + 64   # the coder adds almost nothing to the model's bits
    return words


@pytest.mark.parametrize("bits", [8, 16, 24])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("frames", [0, 1, 7, 1000])
def test_round_trip(models, frames, channels, bits):
    for kind in ("random", "sine"):
        for arithmetic in ("exact", "float", "dyadic", "prior"):
            assert_round_trip(models[arithmetic], _signal(kind, frames, channels, bits), bits)


@pytest.mark.parametrize("arithmetic,kind,channels,bits", [("exact", "sine", 2, 16), ("exact", "random", 1, 24),
                                                          ("float", "sine", 1, 8), ("dyadic", "sine", 2, 16),
                                                          ("prior", "sine", 2, 16)])
def test_round_trip_over_segments(models, arithmetic, kind, channels, bits):
    """70000 frames: three segments of 2^15 frames, the last one short."""
    assert_round_trip(models[arithmetic], _signal(kind, 70000, channels, bits), bits, budget=3)


@pytest.mark.parametrize("frames,channels", [(4096, 1), (1000, 2), (70, 1), (3, 2)])
@pytest.mark.parametrize("budget", [1, 7, 10, 40])
def test_dyadic_steps_go_coarse_to_fine(models, frames, channels, budget):
    """Every step of a dyadic stage lies inside one group, groups come coarse to fine, each variable once,
    and a budget below the 7 groups is raised to one call per group."""
    model = models["dyadic"]
    groups = np.tile(ardm.dyadic_groups(frames), channels)
    steps = list(ac._steps(model, 1, frames, channels, budget, 7, 0))
    seen = np.concatenate([p for _, p in steps])
    assert np.array_equal(np.sort(seen), np.arange(frames * channels))
    step_groups = [np.unique(groups[p]) for _, p in steps]
    assert all(len(g) == 1 for g in step_groups)
    assert all(a[0] <= b[0] for a, b in zip(step_groups, step_groups[1:]))
    assert [start for start, _ in steps] == list(np.cumsum([0] + [len(p) for _, p in steps[:-1]]))
    n_groups = len(np.unique(groups))
    assert len(steps) <= max(budget, n_groups) and (len(steps) >= n_groups)
    calls, _ = ac.schedule_cost(model, frames, channels, 16, budget)
    assert calls == 2 * len(steps)


def test_dyadic_masks_score_the_current_group():
    g = torch.Generator().manual_seed(0)
    B, C, L = 64, 2, 256
    t = torch.randint(0, C * L, (B,), generator=g)
    known, scored = am.dyadic_masks(B, C, L, t, g)
    groups = torch.from_numpy(ardm.dyadic_groups(L)).expand(C, L)
    assert torch.equal(known.sum((1, 2)), t)
    for b in range(B):
        current = int(groups[~known[b]].min())       # the coarsest unknown group is σ(t)'s
        assert torch.equal(scored[b], ~known[b] & (groups == current))
        assert not (known[b] & (groups > current)).any()        # nothing finer is known yet


def test_wrong_seed_does_not_decode(models):
    x = _signal("sine", 300, 1, 16)
    words = assert_round_trip(models["exact"], x, 16)
    dec = Decoder(words)
    try:
        y = ac.decode_audio(models["exact"], 300, 1, 16, 4, 8, dec)   # another seed: other orders
        dec.finish()
        assert not np.array_equal(x, y)
    except CorruptError:
        pass


def test_padded_24_bit_low_byte_is_almost_free(models):
    """24-bit files holding 16-bit audio (low byte 0) pay ~nothing for it: the adaptive stage learns."""
    x16 = _signal("sine", 5000, 1, 16)
    x24 = x16.astype(np.int32) << 8
    b16 = len(assert_round_trip(models["exact"], x16, 16)) * 32
    b24 = len(assert_round_trip(models["exact"], x24, 24)) * 32
    assert b24 - b16 < 0.05 * 5000


def test_digits_invert():
    for bits in (8, 16, 24):
        x = _signal("random", 999, 3, bits)
        d = ac.to_digits(x, bits)
        assert all(a.shape == (3, 999) and a.min() >= 0 and a.max() <= 255 for a in d)
        assert np.array_equal(ac.from_digits(d, bits), x)


# ---------------------------------------------------------------------------------------- trainer
def test_trainer_checkpoints_resumes_quantises_and_measures_curves(tmp_path, monkeypatch):
    from ardmzip import audio_train
    from ardmzip.data import Clip, save_clips

    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "val"):
        clips = [Clip(f"c{i}", f"c{i}", 8000, (rng.normal(0, 2000, (3000, 1 + i % 2))).astype(np.int16)) for i in range(4)]
        save_clips(data / f"audio_{split}.npz", {"speech": clips})
    monkeypatch.setattr(audio_train, "CACHE", tmp_path)
    threads = torch.get_num_threads()
    base = dict(run="t", kind="speech", minutes=0.02, batch=2, segment=256, eval_every=1.0, val_segments=4)
    try:
        audio_train.train(audio_train.TrainConfig(**base), TINY)
        log = [json.loads(line) for line in (tmp_path / "runs/t/log.jsonl").read_text().splitlines()]
        first = log[-1]["step"]
        assert first > 0 and np.isfinite(log[-1]["val_bits_per_sample"]) and log[-1]["samples_per_s"] > 0
        audio_train.train(audio_train.TrainConfig(**base, qat=True), TINY)       # resumes, calibrates
        audio_train.train(audio_train.TrainConfig(**base), TINY)                 # stays quantised
        ck = torch.load(tmp_path / "runs/t/ckpt.pt")
        assert "scales" in ck and ck["state"]["step"] > first
        out = audio_train.measure_curves(audio_train.TrainConfig(**base))
        assert len(out["loss_curves"]) == 2 and len(out["loss_curves"][0]) == 512
        model = audio_train.run_model("t")
    finally:
        torch.set_num_threads(threads)
    assert model.arithmetic == "int-exact"
    assert_round_trip(model, _signal("sine", 500, 1, 16), 16)


def test_dyadic_loss_curve_is_measured_inside_each_group(nets):
    """A dyadic net's curve: 512 points, measured at 4 points in every group's range and interpolated
    within the group only — the value just before a group's end is not pulled towards the next group."""
    from ardmzip import audio_train
    net = am.AudioNet(dataclasses.replace(TINY, order="dyadic")).eval()
    net.load_state_dict(nets[0].state_dict())
    segs = torch.randint(0, 65536, (2, 1, 256), generator=torch.Generator().manual_seed(0))
    curve = audio_train.loss_curve(net, segs, 1)
    assert curve.shape == (512,) and np.isfinite(curve).all()
    for a, b in zip(ardm.group_edges()[:-1], ardm.group_edges()[1:]):
        inner = (np.arange(a, b) + 0.5) / 512
        first, last = (a + 0.125 * (b - a)) / 512, (a + 0.875 * (b - a)) / 512
        assert np.allclose(curve[a:b][inner <= first], curve[a]) and np.allclose(curve[a:b][inner >= last], curve[b - 1])
