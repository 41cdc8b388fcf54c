"""Depth upscaling for images (issue 5): a plane coded as coarse digits v // 16, then fine digits v % 16,
with integer-exact inputs and distributions, end to end from a training run to api round trips."""
import dataclasses
import json

import numpy as np
import pytest
import torch

from ardmzip import api, codec, exact, registry
from ardmzip import export as export_mod
from ardmzip import train as train_mod
from ardmzip.ardm import DIGIT, curve_grid, digit_log_prob, stage_inputs
from ardmzip.coder import Decoder, Encoder
from ardmzip.nets import ARDMNet, NetConfig, normconv_features


def _staged_model(order: str = "uniform", seed: int = 0, prior: int = 0) -> registry.Model:
    """A tiny int-exact depth-upscaling model (random weights, calibrated) with made-up decreasing curves."""
    torch.manual_seed(seed)
    cfg = NetConfig(widths=(8, 8, 8), blocks=(1, 1, 1), mixtures=2, order=order, prior=prior, stages=2)
    net = ARDMNet(cfg).eval()
    g = torch.Generator().manual_seed(seed)
    batches = [(torch.randint(0, 256, (4, 3, 16, 16), generator=g).float(),
                (torch.rand(4, 3, 16, 16, generator=g) < 0.5).float(),
                torch.randint(0, 256, (4,), generator=g), torch.tensor([1, 2, 1, 2]))]
    blob = exact.export_int(exact.QuantNet(net, exact.calibrate(net, batches)))
    grid = curve_grid(order)
    curves = (tuple(4000 - 3000 * i // grid for i in range(grid)), tuple(3000 - 1000 * i // grid for i in range(grid)))
    return registry.Model(id="up-test", media="image", cfg=cfg, net=None, exact=exact.ExactNet(cfg, blob),
                          curve=curves[0], default_budget=6, sha256="0" * 64, info={}, stage_curves=curves)


@pytest.fixture(scope="module")
def staged():
    return _staged_model()


def test_integer_inputs_are_the_float_stage_inputs():
    """int_inputs' value channel, mask and stage feature are ardm.stage_inputs' on the integer scale; the
    normalised convolutions average the known positions only, as normconv_features does."""
    g = torch.Generator().manual_seed(3)
    v = torch.randint(0, 256, (2, 3, 16, 16), generator=g)
    m = (torch.rand(2, 3, 16, 16, generator=g) < 0.4).float()
    stage = torch.tensor([1, 2])
    inp, _ = exact.int_inputs(v.float(), m, torch.tensor([10, 20]), stage=stage)
    x = stage_inputs(v, m, stage)
    feats = inp.float() * exact.INPUT_SCALE
    assert torch.allclose(feats[:, :3], x, atol=1e-6)
    assert torch.equal(feats[:, 3:6], m)
    norm = normconv_features(x, m)
    assert (feats[:, 7:7 + norm.shape[1]] - norm).abs().max() < 0.01   # rounding and the float's 1e-3
    assert torch.equal(inp[:, -1].amax((1, 2)), torch.tensor([0.0, 255.0]))


def test_stage_two_reads_only_the_coarse_digit_where_unknown():
    g = torch.Generator().manual_seed(4)
    v = torch.randint(0, 256, (1, 3, 16, 16), generator=g)
    m = (torch.rand(1, 3, 16, 16, generator=g) < 0.5).float()
    other = torch.where(m.bool(), v, v - v % DIGIT + torch.randint(0, DIGIT, v.shape, generator=g))
    two = torch.tensor([2])
    assert torch.equal(exact.int_inputs(v.float(), m, torch.tensor([5]), stage=two)[0],
                       exact.int_inputs(other.float(), m, torch.tensor([5]), stage=two)[0])
    one = torch.tensor([1])  # stage 1 reads only the known coarse digits
    coarse_only = torch.where(m.bool(), v - v % DIGIT, torch.randint(0, 256, v.shape, generator=g))
    assert torch.equal(exact.int_inputs(v.float(), m, torch.tensor([5]), stage=one)[0],
                       exact.int_inputs(coarse_only.float(), m, torch.tensor([5]), stage=one)[0])


def test_digit_distributions_come_from_the_integer_frequencies():
    """Coarse × fine is the 256-way distribution (to rounding), each sums to one, and both follow the
    dequantised head's digit_log_prob, as the training loss scores them."""
    rng = np.random.default_rng(0)
    k, n = 3, 40
    mu = rng.integers(20 * 16, 235 * 16, (n, k))                       # means in 1/16 of a value
    q = np.concatenate([rng.integers(-40, 40, (n, k)), mu, rng.integers(-40, 20, (n, k))], 1)
    full = exact.probabilities(q, k)
    coarse = exact.digit_probabilities(exact.frequencies(q, k), 1)
    values = np.clip(mu[:, 0] // 16 + rng.integers(-8, 9, n), 0, 255)  # near a component: likely values
    fine = exact.digit_probabilities(exact.frequencies(q, k), 2, values // DIGIT)
    assert np.allclose(coarse.sum(1), 1) and np.allclose(fine.sum(1), 1)
    rows = np.arange(n)
    assert np.allclose(coarse[rows, values // DIGIT] * fine[rows, values % DIGIT], full[rows, values], rtol=1e-9)
    head = exact.log_probabilities_torch(torch.from_numpy(q).float()[..., None, None], k)
    x = torch.from_numpy(values)[:, None, None]
    for stage, p in ((1, coarse[rows, values // DIGIT]), (2, fine[rows, values % DIGIT])):
        ref = digit_log_prob(head, x, torch.tensor(stage), k).exp().reshape(-1).numpy()
        likely = ref > 0.01
        assert likely.sum() > 10 and np.allclose(p[likely], ref[likely], rtol=0.05)


@pytest.mark.parametrize("prior", [0, 3])
def test_the_quantised_staged_net_matches_its_integer_export(staged, prior):
    """QuantNet (training) and ExactNet (coding) agree on a depth-upscaling net's inputs of both stages,
    and so does the float net where it adds the prior's prediction (the same one, from the same inputs)."""
    torch.manual_seed(5)
    cfg = dataclasses.replace(staged.cfg, prior=prior)
    net = ARDMNet(cfg).eval()
    g = torch.Generator().manual_seed(5)
    batches = [(torch.randint(0, 256, (4, 3, 16, 16), generator=g).float(),
                (torch.rand(4, 3, 16, 16, generator=g) < 0.5).float(),
                torch.randint(0, 256, (4,), generator=g), torch.tensor([1, 2, 2, 1]))]
    q = exact.QuantNet(net, exact.calibrate(net, batches))
    en = exact.ExactNet(cfg, exact.export_int(q))
    v = torch.randint(0, 256, (2, 3, 16, 16), generator=g)
    m = (torch.rand(2, 3, 16, 16, generator=g) < 0.5).float()
    stage = torch.tensor([1, 2])
    ints = en(v.float(), m, torch.tensor([100.0, 100.0]), stage)
    with torch.no_grad():
        fake = q(stage_inputs(v, m, stage), m, torch.full((2,), 100 / 255), stage)
    deq = exact.log_probabilities_torch(ints, 2)
    assert (deq - fake).abs().max() <= 1 / 16 + 1e-6
    assert (deq - fake).abs().gt(1e-4).float().mean() < 0.02
    if prior:  # the prior's rows: the float net's from round((x + 1)·127.5), the integer ones from v
        x = stage_inputs(v, m, stage)
        inp, pri = exact.int_inputs(v.float(), m, torch.tensor([100, 100]), prior, stage)
        seen = {}
        hook = net.stem.register_forward_pre_hook(lambda mod, a: seen.update(inp=a[0]))
        with torch.no_grad():
            net(x, m, torch.full((2,), 100 / 255), stage)
        hook.remove()
        rows = 2 * 3
        assert torch.allclose(seen["inp"][:, -rows:] * 255, inp[:, -rows:].float(), atol=1e-3)


def _round_trip(model, plane, budget, offsets=False):
    plan = codec.make_plan(model, plane.shape, budget, seed=9, offsets=offsets)
    enc = Encoder()
    bits = codec.encode_plane(model, plane, plan, enc)
    dec = Decoder(enc.words())
    out = codec.decode_plane(model, plan, dec)
    dec.finish()
    return plan, bits, out


@pytest.mark.parametrize("shape,budget,offsets", [((13, 11, 3), 6, False), ((9, 7), 1, False),
                                                  ((12, 10, 3), 40, True), ((1, 1, 3), 3, True)])
def test_staged_planes_round_trip(staged, shape, budget, offsets):
    rng = np.random.default_rng(budget)
    plane = rng.integers(0, 256, shape, dtype=np.uint8)
    plan, bits, out = _round_trip(staged, plane, budget, offsets)
    assert np.array_equal(out, plane)
    assert isinstance(plan, codec.StagedPlan) and [p.stage for p in plan.stages] == [1, 2]
    assert plan.calls == min(max(budget, 2), 2 * plane.size)   # the budget is all network calls, one per stage at least
    assert not np.array_equal(plan.stages[0].order, plan.stages[1].order) or plane.size == 1
    assert 0 < bits < 20 * plane.size


@pytest.mark.parametrize("prior", [0, 3])
def test_a_structured_staged_order_round_trips(prior):
    model = _staged_model("quincunx-grb", seed=1, prior=prior)
    plane = np.random.default_rng(2).integers(0, 256, (20, 18, 3), dtype=np.uint8)
    plan, _, out = _round_trip(model, plane, 50)
    assert np.array_equal(out, plane) and plan.stages[0].groups is not None
    assert plan.calls == 50 and min(p.calls for p in plan.stages) >= 21    # a call per group, the budget in all


@pytest.mark.parametrize("shape,budget", [((20, 18, 3), 10), ((20, 18, 3), 60), ((20, 18), 30)])
def test_structured_staged_plans_spend_exactly_the_budget(shape, budget):
    """Each stage takes at least a call per group that holds variables, and the two together the budget
    (or each its least, where the budget is below both leasts)."""
    model = _staged_model("quincunx-grb" if len(shape) == 3 else "quincunx")
    plan = codec.make_plan(model, shape, budget, 4)
    least = 21 if len(shape) == 3 else 7
    assert [p.calls >= least for p in plan.stages] == [True, True]
    assert plan.calls == max(budget, 2 * least)


def test_tiled_staged_planes_round_trip(staged, monkeypatch):
    """Planes larger than a tile run through the net tile by tile (with halos), in both stages."""
    monkeypatch.setattr(codec, "TILE", 16)
    monkeypatch.setattr(codec, "HALO", 8)
    plane = np.random.default_rng(5).integers(0, 256, (37, 29, 3), dtype=np.uint8)
    assert np.array_equal(_round_trip(staged, plane, 7, offsets=True)[2], plane)


def test_the_staged_format_is_pinned(staged):
    """What FORMAT.md specifies for depth-upscaling planes: the stage seeds, the splits tried, and the
    split chosen for fixed curves (a change here breaks every file of a released staged model)."""
    assert [codec.stage_seed(s, k) for s, k in ((0, 1), (0, 2), (5, 1), ((1 << 64) - 1, 2))] == \
        [1, 2, 21, (1 << 64) - 2]
    assert codec.budget_splits(10, 3) == [3, 4, 5, 6, 7] and codec.budget_splits(5, 3) == [3]
    assert codec.budget_splits(100) == [1, 7, 13, 19, 25, 31, 37, 43, 50, 56, 62, 68, 74, 80, 86, 92, 99]
    plan = codec.make_plan(staged, (16, 16, 3), 10, 0)
    assert [p.calls for p in plan.stages] == [6, 4]   # stage 1's curve falls the more steeply
    assert plan.stages[0].order[:4].tolist() == codec.order(codec.stage_seed(0, 1), 768)[:4].tolist()


def test_digit_frequencies_are_the_reference_integers():
    """frequencies() is reference_probabilities' integer table, bit for bit (the digit distributions are
    sums of it)."""
    rng = np.random.default_rng(3)
    k, n = 4, 64
    q = np.concatenate([rng.integers(-200, 200, (n, k)), rng.integers(-400, 4500, (n, k)),
                        rng.integers(exact.LOGS_MIN, exact.LOGS_MAX + 1, (n, k))], 1)
    freq = exact.frequencies(q, k)
    assert np.array_equal(freq, np.round(freq)) and freq.min() >= 1
    assert np.array_equal(freq / freq.sum(1, keepdims=True), exact.reference_probabilities(q, k))


def test_the_budget_goes_where_the_curves_predict_fewer_bits(staged):
    """A stage whose loss falls steeply with what is known gets more of the calls; the split is the best
    of those tried."""
    curves = (tuple(3000 - i // 8 for i in range(512)), tuple(100 + int(8000 * np.exp(-i / 40)) for i in range(512)))
    steep = dataclasses.replace(staged, curve=curves[0], stage_curves=curves)
    flat_first = codec.make_plan(steep, (16, 16, 3), 12, 0)
    calls = [p.calls for p in flat_first.stages]
    assert sum(calls) == 12 and calls[1] > 2 * calls[0]
    best = min(codec._plan(steep, steep.curves[0], (16, 16, 3), b, 1).predicted_millibits(steep.curves[0])
               + codec._plan(steep, steep.curves[1], (16, 16, 3), 12 - b, 1).predicted_millibits(steep.curves[1])
               for b in range(1, 12))
    assert sum(p.predicted_millibits(c) for p, c in zip(flat_first.stages, steep.curves)) == best


def test_budget_splits_stay_few_at_large_budgets():
    assert codec.budget_splits(5) == [1, 2, 3, 4] and codec.budget_splits(1) == [1]
    big = codec.budget_splits(400)
    assert len(big) <= 17 and big[0] == 1 and big[-1] == 399


def test_a_float_model_cannot_upscale(staged):
    with pytest.raises(ValueError, match="int-exact"):
        codec.make_plan(dataclasses.replace(staged, exact=None), (4, 4, 3), 4, 0)


def _tiny_photo_sets(tmp_path, monkeypatch) -> None:
    rng = np.random.default_rng(7)
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "val"):
        # smooth gradients plus noise: something a few training steps can learn a little of
        y, x = np.mgrid[:40, :48]
        np.savez(data / f"images_{split}.npz", **{
            f"p{i}": np.clip(np.stack([x * 4 + i * 20, y * 5, x + y + 60], -1) + rng.integers(-6, 7, (40, 48, 3)),
                             0, 255).astype(np.uint8) for i in range(3)})
    monkeypatch.setattr(train_mod, "CACHE", tmp_path)
    monkeypatch.setattr(export_mod, "CACHE", tmp_path)


def test_a_staged_run_exports_and_codes_through_the_api(tmp_path, monkeypatch):
    """train (float, then --qat) → export_image → the manifest's loss curves per stage → api round trips
    of an RGB and a grey image with the model named in the file."""
    _tiny_photo_sets(tmp_path, monkeypatch)
    monkeypatch.setattr(export_mod, "LOSS_PER_BIN", 1)
    models = tmp_path / "models"
    models.mkdir()
    shipped = registry.models_dir() / "manifest.json"
    (models / "manifest.json").write_text(shipped.read_text())
    for m in json.loads(shipped.read_text())["models"].values():
        (models / m["file"]).symlink_to(registry.models_dir() / m["file"])
    monkeypatch.setenv("ARDMZIP_MODELS", str(models))
    registry.load_model.cache_clear()
    threads = torch.get_num_threads()
    net_cfg = NetConfig(widths=(8, 8, 8), blocks=(1, 1, 1), mixtures=2, stages=2)
    cfg = train_mod.TrainConfig(run="s", minutes=10.0, steps=20, batch=4, crop=16, eval_every=1e9)
    try:
        train_mod.train(cfg, net_cfg)
        train_mod.train(dataclasses.replace(cfg, qat=True), net_cfg)
        entry = export_mod.export_image("s", "up-tiny", models=models)
    finally:
        torch.set_num_threads(threads)
    assert entry["arithmetic"] == "int-exact" and len(entry["loss_curves"]) == 2 and "loss_curve" not in entry
    assert entry["kind"].startswith("depth-upscaling") and entry["default_budget"] >= 2
    try:
        m = registry.load_model("up-tiny")
        assert m.cfg.stages == 2 and m.curves == tuple(tuple(c) for c in entry["loss_curves"])
        rng = np.random.default_rng(1)
        for a in (rng.integers(0, 256, (10, 13, 3), dtype=np.uint8), rng.integers(0, 256, (7, 9), dtype=np.uint8)):
            blob = api.compress(a, model="up-tiny", budget=5)
            assert np.array_equal(api.decompress_array(blob), a)
    finally:
        registry.load_model.cache_clear()


def test_a_float_staged_run_is_not_exported(tmp_path, monkeypatch):
    _tiny_photo_sets(tmp_path, monkeypatch)
    threads = torch.get_num_threads()
    try:
        train_mod.train(train_mod.TrainConfig(run="f", minutes=10.0, steps=2, batch=4, crop=16, eval_every=1e9),
                        NetConfig(widths=(8, 8, 8), blocks=(1, 1, 1), mixtures=2, stages=2))
    finally:
        torch.set_num_threads(threads)
    with pytest.raises(SystemExit, match="--qat"):
        export_mod.export_image("f", "up-float", models=tmp_path)


@pytest.mark.parametrize("prior", [0, 3])
def test_a_staged_net_starts_from_a_one_stage_one(prior):
    """init_from: every weight carried over and the stage input's column zero, so the staged net computes
    what the one-stage net did (stage 2, where its inputs are the same) until training tells the stages
    apart."""
    one = ARDMNet(NetConfig(widths=(8, 8, 8), blocks=(1, 1, 1), mixtures=2, prior=prior))
    two = ARDMNet(NetConfig(widths=(8, 8, 8), blocks=(1, 1, 1), mixtures=2, prior=prior, stages=2))
    train_mod.init_from(two, one.state_dict(), one.cfg)
    at = NetConfig().in_features
    assert torch.equal(two.stem.weight[:, :at], one.stem.weight[:, :at]) and not two.stem.weight[:, at].any()
    assert torch.equal(two.stem.weight[:, at + 1:], one.stem.weight[:, at:])
    g = torch.Generator().manual_seed(0)
    x, m = torch.rand(1, 3, 16, 16, generator=g) * 2 - 1, torch.ones(1, 3, 16, 16)
    with torch.no_grad():
        # up to float rounding: a stem of 32 input channels may run another convolution kernel than one of 31
        assert torch.allclose(one(x, m, torch.tensor([0.5])), two(x, m, torch.tensor([0.5]), torch.tensor([2])),
                              rtol=1e-5, atol=1e-6)
