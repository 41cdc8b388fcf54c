"""The image prior (prior.py): exact integer predictions from the known neighbours, the log-scale table,
and nets that correct it, in float, fake-quantised and integer arithmetic."""
import dataclasses
import numpy as np
import pytest
import torch

from ardmzip import exact
from ardmzip.nets import ARDMNet, NetConfig
from ardmzip.ardm import image_groups
from ardmzip.prior import MID16, NOTHING_KNOWN_SPREAD16, add_prior, log_scale, prior, reference_prior
from ardmzip.train import init_from


def _img(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a), dtype=torch.int64)


def test_constant_image_predicts_its_value_with_the_smallest_scale():
    v = torch.full((1, 3, 9, 11), 77, dtype=torch.int64)
    known = torch.zeros_like(v)
    known[..., ::2, ::2] = 1  # a lattice: the others see it on their ring at distance 1
    mean16, logs, rows = prior(v * known, known)
    assert (mean16 == 16 * 77).all()
    assert (logs == log_scale(torch.zeros(1, dtype=torch.int64))).all()
    assert rows.shape == (1, 6, 9, 11) and (rows[:, :3] == 2 * 77 - 255).all()  # 16·77 // 8 − 255


def test_nothing_known_is_mid_scale_and_wide():
    v = torch.zeros((1, 3, 5, 5), dtype=torch.int64)
    mean16, logs, _ = prior(v, torch.zeros_like(v))
    assert (mean16 == MID16).all() and (logs == log_scale(torch.tensor([NOTHING_KNOWN_SPREAD16]))).all()
    assert float(torch.exp(logs[0, 0, 0, 0] / 16.0)) * 127.5 > 30  # a scale of tens of values


def test_nearest_ring_wins_and_means_round_half_up():
    v = torch.zeros((1, 1, 7, 7), dtype=torch.int64)
    known = torch.zeros_like(v)
    v[0, 0, 3, 2], v[0, 0, 3, 4], v[0, 0, 0, 0] = 10, 13, 200  # ring 1 of (3, 3): 10 and 13; far: 200
    known[0, 0, 3, 2] = known[0, 0, 3, 4] = known[0, 0, 0, 0] = 1
    mean16, logs, _ = prior(v, known)
    assert int(mean16[0, 0, 3, 3]) == 184                         # 16·11.5
    spread16 = (abs(160 - 184) + abs(208 - 184) + 1) // 2          # mean |16·v − mean16|, rounded: 24
    assert int(logs[0, 0, 3, 3]) == int(log_scale(torch.tensor([spread16]))[0])


def test_colour_planes_follow_green_here():
    """R and B: green at the pixel plus the ring's mean (channel − green) difference."""
    rng = np.random.default_rng(0)
    g = rng.integers(40, 200, (8, 8))
    v = _img(np.stack([g + 7, g, g - 30]))[None]                  # R = G + 7, B = G − 30 everywhere
    known = torch.ones_like(v)
    known[0, 0, 4, 4] = known[0, 2, 4, 4] = 0                     # R and B unknown at (4, 4), green known
    mean16, _, _ = prior(v * known, known)
    assert int(mean16[0, 0, 4, 4]) == 16 * (g[4, 4] + 7) and int(mean16[0, 2, 4, 4]) == 16 * (g[4, 4] - 30)
    known[0, 1, 4, 4] = 0                                         # without green here: spatial means
    mean16, _, _ = prior(v * known, known)
    ring = [(3, 3), (3, 4), (3, 5), (4, 3), (4, 5), (5, 3), (5, 4), (5, 5)]
    assert int(mean16[0, 0, 4, 4]) == (32 * sum(g[p] + 7 for p in ring) + 8) // 16


def test_log_scale_table_matches_the_formula_away_from_ties():
    spread16 = torch.arange(0, 4000, 7)
    s = 0.6 * spread16.double() / 16 + 0.4
    want = torch.clamp(torch.round(16 * torch.log(s / 127.5)), -112, 48).long()
    got = log_scale(spread16)
    near_tie = ((16 * torch.log(s / 127.5)) % 1 - 0.5).abs() < 1e-6
    assert torch.equal(got[~near_tie], want[~near_tie])


def _tiny(prior_on: bool = True) -> ARDMNet:
    torch.manual_seed(0)
    return ARDMNet(NetConfig(widths=(8, 8, 8), blocks=(1, 1, 1), mixtures=2, prior=prior_on)).eval()


def test_a_net_initialised_from_one_without_the_prior_starts_as_the_prior():
    plain = _tiny(False)
    net = ARDMNet(dataclasses.replace(plain.cfg, prior=True))
    init_from(net, plain.state_dict(), plain.cfg)
    g = torch.Generator().manual_seed(1)
    v = torch.randint(0, 256, (2, 3, 16, 16), generator=g)
    m = (torch.rand(2, 3, 16, 16, generator=g) < 0.5).float()
    with torch.no_grad():
        out = net((v / 127.5 - 1) * m, m, torch.full((2,), 0.5))
    mean16, logs, _ = prior(v * m.long(), m.long())
    mu = out[:, :, 2:4]
    assert torch.allclose(mu, (mean16.unsqueeze(2).double() / MID16 - 1).float().expand_as(mu), atol=1e-6)
    spread = out[:, :, 4:6] - logs.unsqueeze(2) / 16
    assert torch.allclose(spread[:, :, 0], torch.full_like(spread[:, :, 0], -0.7), atol=1e-5)


@pytest.mark.parametrize("seed", [0, 1])
def test_exact_prior_net_matches_its_fake_quantised_twin(seed):
    net = _tiny()
    g = torch.Generator().manual_seed(seed)
    batches = [(torch.randint(0, 256, (4, 3, 16, 16), generator=g).float(),
                (torch.rand(4, 3, 16, 16, generator=g) < 0.4).float(), torch.randint(0, 256, (4,), generator=g))
               for _ in range(2)]
    scales = exact.calibrate(net, batches)
    q = exact.QuantNet(net, scales)
    en = exact.ExactNet(net.cfg, exact.export_int(q))
    v, known, fi = batches[0]
    ints = en(v, known, fi)
    with torch.no_grad():
        fake = q((v / 127.5 - 1) * known, known, fi / 255)
    deq = exact.log_probabilities_torch(ints, 2)
    mean16, _, _ = prior(v.long() * known.long(), known.long())
    assert (deq - fake).abs().max() <= 1 / 16 + 1e-6
    assert (deq - fake).abs().gt(1e-4).float().mean() < 0.02
    # the means are the prior plus integer corrections on the grid
    assert torch.equal(ints[:, :, 2:4], torch.round(ints[:, :, 2:4]))


def test_add_prior_integer_and_float_agree_on_the_grid():
    g = torch.Generator().manual_seed(3)
    k = 2
    ints = torch.cat([torch.randint(-50, 50, (1, 3, k, 4, 4), generator=g),
                      torch.randint(1500, 2500, (1, 3, k, 4, 4), generator=g),
                      torch.randint(-60, 20, (1, 3, k, 4, 4), generator=g)], 2)
    mean16 = torch.randint(0, 4081, (1, 3, 4, 4), generator=g)
    logs = torch.randint(-90, 10, (1, 3, 4, 4), generator=g)
    a = exact.log_probabilities_torch(add_prior(ints, mean16, logs, k, integer=True).float(), k)
    b = add_prior(exact.log_probabilities_torch(ints.float(), k), mean16, logs, k)
    assert torch.allclose(a, b, atol=1e-5)


def _same(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("version", [1, 2, 3])
@pytest.mark.parametrize("density", [0.0, 0.002, 0.05, 0.3, 0.9, 1.0])
def test_fast_prior_equals_the_reference(density, version):
    """Random sizes, grey and colour, tied and untied masks: both the gathered (sparse) and the
    whole-plane (dense) paths of `prior` give the reference's integers."""
    g = torch.Generator().manual_seed(int(density * 1000))
    for trial in range(4):
        B, C = (2, 3) if trial % 2 else (1, 1)
        H, W = (int(n) for n in torch.randint(1, 70, (2,), generator=g))
        v = torch.randint(0, 256, (B, C, H, W), generator=g)
        k = (torch.rand(B, C, H, W, generator=g) < density).long()
        if trial == 3:
            k = k[:, :1].expand(B, C, H, W).contiguous()  # a grey image's tied masks
        assert _same(prior(v * k, k, version), reference_prior(v * k, k, version)), (trial, H, W)


@pytest.mark.parametrize("version", [1, 2, 3])
def test_fast_prior_equals_the_reference_on_quincunx_masks(version):
    grp = torch.from_numpy(image_groups("quincunx-grb", 40, 56, grey=False).reshape(3, 40, 56))
    v = torch.randint(0, 256, (1, 3, 40, 56), generator=torch.Generator().manual_seed(9))
    for gi in range(21):
        k = (grp < gi).long()[None]
        assert _same(prior(v * k, k, version), reference_prior(v * k, k, version)), gi


def test_version_2_interpolates_along_the_flattest_line():
    """A vertical edge: the column is flat, the row jumps. Version 1 averages all 4 neighbours; version 2
    follows the column (its cubic, taps at ±3), weighting the row's linear estimate by ⌊2²⁰/(g + 2)⌋."""
    col = torch.tensor([100, 100, 100, 100, 104, 100, 100, 100, 100])  # (4, 4) hidden; column nearly flat
    v = torch.zeros((1, 1, 9, 9), dtype=torch.int64)
    v[0, 0, :, :4], v[0, 0, :, 5:] = 20, 220                          # left dark, right bright
    v[0, 0, :, 4] = col
    known = torch.zeros_like(v)
    known[0, 0, :, 4] = known[0, 0, 4, :] = 1
    known[0, 0, 4, 4] = 0
    m1, _, _ = prior(v * known, known, 1)
    m2, _, _ = prior(v * known, known, 2)
    assert int(m1[0, 0, 4, 4]) == (16 * (100 + 100 + 20 + 220) + 2) // 4        # ring mean: 110 values
    w_col, e_col = (1 << 20) // (0 + 2), 9 * 200 - 200                        # cubic along the column: 100
    w_row, e_row = (1 << 20) // (2 * 200 + 0 + 2), 9 * 240 - 240            # row: 20 | 220, taps 20, 220
    assert int(m2[0, 0, 4, 4]) == (2 * (w_col * e_col + w_row * e_row) + w_col + w_row) // (2 * (w_col + w_row))
    assert abs(int(m2[0, 0, 4, 4]) - 1600) < 4                                   # ≈ 100 values


def test_log_scale_table_is_pinned():
    """Files made with a prior model depend on these thresholds: they never change."""
    import hashlib

    from ardmzip.prior import _THRESHOLDS
    assert len(_THRESHOLDS) == 160 and int(_THRESHOLDS.sum()) == 3277354
    assert hashlib.sha256(_THRESHOLDS.numpy().tobytes()).hexdigest()[:16] == "643c61a0910110e8"


def test_version_3_moves_blue_by_5_16_of_reds_miss():
    rng = np.random.default_rng(4)
    g = rng.integers(60, 180, (8, 8))
    v = _img(np.stack([g + 10, g, g - 20]))[None]                 # R = G + 10, B = G − 20 on the ring
    v[0, 0, 4, 4] = g[4, 4] + 26                                  # red misses its prediction by 16 here
    known = torch.ones_like(v)
    known[0, 2, 4, 4] = 0                                          # blue unknown; red and green known
    m2, _, _ = prior(v * known, known, 2)
    m3, _, _ = prior(v * known, known, 3)
    assert int(m2[0, 2, 4, 4]) == 16 * (g[4, 4] - 20)
    assert int(m3[0, 2, 4, 4]) == 16 * (g[4, 4] - 20) + 5 * 16     # + round(5 · 256 / 16)
    known[0, 0, 4, 4] = 0                                          # red unknown too: no move
    assert torch.equal(prior(v * known, known, 3)[0], prior(v * known, known, 2)[0])
