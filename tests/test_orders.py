"""Structured (coarse-to-fine) order families: the image quincunx families end to end (groups, training
masks, plans whose steps stay inside a group, lossless round trips). The audio dyadic family has its
tests in test_audio_model.py, the grouped schedule in test_schedule.py."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from ardmzip import ardm, codec, registry
from ardmzip.coder import Decoder, Encoder
from ardmzip.nets import ARDMNet, NetConfig


def test_quincunx_groups_coarse_to_fine():
    g = ardm.quincunx_groups(16, 16)
    assert np.bincount(g.ravel()).tolist() == [4, 4, 8, 16, 32, 64, 128]   # 1, 1, 2, 4, 8, 16, 32 /64
    assert g[0, 0] == 0 and g[4, 4] == 1 and g[0, 4] == g[4, 0] == 2 and g[2, 2] == 3 and g[1, 1] == 5 and g[0, 1] == 6
    # each group's pixels have their interpolation neighbours in earlier groups
    for y, x in [(4, 4), (2, 6), (5, 3)]:         # centres: 4 diagonal neighbours
        d = {1: 4, 3: 2, 5: 1}[g[y, x]]
        assert all(g[y + a * d, x + b * d] < g[y, x] for a in (-1, 1) for b in (-1, 1))
    for y, x in [(0, 4), (2, 4), (3, 2)]:         # edges: 4 axial neighbours
        d = {2: 4, 4: 2, 6: 1}[g[y, x]]
        assert all(g[(y + a) % 16, (x + b) % 16] < g[y, x] for a, b in [(d, 0), (-d, 0), (0, d), (0, -d)])
    assert ardm.quincunx_groups(1, 1).tolist() == [[0]] and ardm.quincunx_groups(3, 1).tolist() == [[0], [6], [4]]


def test_quincunx_grb_splits_groups_by_channel():
    g = ardm.image_groups("quincunx-grb", 16, 16, grey=False).reshape(3, 16, 16)
    q = ardm.quincunx_groups(16, 16)
    assert np.array_equal(g[1], 3 * q) and np.array_equal(g[0], 3 * q + 1) and np.array_equal(g[2], 3 * q + 2)
    assert np.array_equal(ardm.image_groups("quincunx-grb", 16, 16, grey=True), q.reshape(-1))
    assert np.array_equal(ardm.image_groups("quincunx", 16, 16, grey=False), np.tile(q.reshape(-1), 3))
    edges = ardm.group_edges(ardm.curve_grid("quincunx-grb"), 3)
    assert len(edges) == 22 and edges[:4] == (0, 4, 8, 12) and edges[-1] == 768
    assert ardm.group_edges(512, 1) == ardm.group_edges() == (0, 8, 16, 32, 64, 128, 256, 512)
    assert ardm.min_budget("quincunx-grb") == 21 and ardm.min_budget("quincunx") == 7
    with pytest.raises(ValueError):
        ardm.group_edges(512, 3)


@pytest.mark.parametrize("family", ["quincunx", "quincunx-grb"])
@pytest.mark.parametrize("grey", [False, True])
def test_training_masks_follow_the_groups(grey, family):
    """Known variables are a prefix of the grouped order (nothing finer than σ(t)'s group) and the loss
    scores exactly the unknown variables of σ(t)'s group."""
    torch.manual_seed(0)
    net = ARDMNet(NetConfig(widths=(8, 8, 8), blocks=(1, 1, 1), mixtures=2, order=family))
    captured = {}

    def forward(x, m, f):  # record the mask; flat distributions
        captured["m"] = m
        return torch.zeros(len(m), 3, 6, 16, 16)

    net.forward = forward
    x = torch.randint(0, 256, (32, 3, 16, 16))
    t = torch.randint(0, 256 if grey else 768, (32,))
    loss, _, lt = ardm.training_loss(net, x, torch.full((32,), grey), t=t)
    m = captured["m"].bool()
    groups = torch.from_numpy(ardm.image_groups(family, 16, 16, grey)).view(-1, 16, 16)  # per variable
    uniform_nats = -float(ardm.log_prob(torch.zeros(1, 6, 1, 1), torch.tensor([[[128]]]), 2))
    for b in range(32):
        known = m[b, :1] if grey else m[b]
        assert int(known.sum()) == int(t[b])
        if grey:
            assert torch.equal(m[b, 0], m[b, 1]) and torch.equal(m[b, 0], m[b, 2])
        current = int(groups[~known].min())
        assert not (known & (groups > current)).any() and (known | (groups >= current)).all()
        ends = np.cumsum(np.bincount(groups.reshape(-1).numpy()))
        assert current == int((int(t[b]) >= ends).sum())
    assert lt.shape == (32,) and torch.isfinite(loss) and float(lt.min()) > 0.5 * uniform_nats


@pytest.fixture(scope="module", params=["quincunx", "quincunx-grb"])
def quincunx_img2(request):
    """img2's weights with a quincunx order (its curve stretched onto that family's grid): a valid (if not
    retrained) model for coding tests."""
    m = registry.load_model("img2")
    grid = ardm.curve_grid(request.param)
    curve = np.interp((np.arange(grid) + 0.5) / grid, (np.arange(len(m.curve)) + 0.5) / len(m.curve), m.curve)
    return dataclasses.replace(m, cfg=dataclasses.replace(m.cfg, order=request.param),
                               curve=tuple(int(v) for v in curve))


@pytest.mark.parametrize("shape,budget", [((1, 1), 1), ((1, 9), 7), ((7, 13), 5000), ((7, 13), 3), ((16, 16, 3), 1),
                                          ((16, 16, 3), 12), ((33, 20, 3), 7), ((33, 20, 3), 20), ((33, 20, 3), 40)])
def test_plans_stay_inside_groups_and_round_trip(quincunx_img2, shape, budget):
    plan = codec.make_plan(quincunx_img2, shape, budget, seed=3)
    per_var = ardm.image_groups(quincunx_img2.cfg.order, *shape[:2], grey=len(shape) == 2)
    if len(shape) == 3 and quincunx_img2.cfg.order == "quincunx-grb":  # G, then R, then B of each pixel
        rank = np.empty(plan.n_vars, dtype=np.int64)
        rank[plan.order] = np.arange(plan.n_vars)
        r, g, b = rank.reshape(3, -1)
        assert (g < r).all() and (r < b).all()
    assert np.array_equal(np.sort(plan.order), np.arange(plan.n_vars))
    steps = [plan.order[a:b] for a, b in zip(plan.bounds[:-1], plan.bounds[1:])]
    assert all(len(np.unique(per_var[s])) == 1 for s in steps)
    assert plan.steps <= max(budget, len(np.unique(per_var)))
    img = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    img[: shape[0] // 2] //= 8
    enc = Encoder()
    bits = codec.encode_plane(quincunx_img2, img, plan, enc)
    words = enc.words()
    dec = Decoder(words)
    out = codec.decode_plane(quincunx_img2, plan, dec)
    dec.finish()
    assert np.array_equal(out, img)
    assert len(words) * 32 <= 1.01 * bits + 64
    assert plan.predicted_bits(quincunx_img2.curve) > 0
