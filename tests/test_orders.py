"""Structured (coarse-to-fine) order families: the image quincunx family end to end (groups, training
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


@pytest.mark.parametrize("grey", [False, True])
def test_training_masks_follow_the_groups(grey):
    """Known variables are a prefix of the grouped order (nothing finer than σ(t)'s group) and the loss
    scores exactly the unknown variables of σ(t)'s group."""
    torch.manual_seed(0)
    net = ARDMNet(NetConfig(widths=(8, 8, 8), blocks=(1, 1, 1), mixtures=2, order="quincunx"))
    captured = {}

    def forward(x, m, f):  # record the mask; flat distributions
        captured["m"] = m
        return torch.zeros(len(m), 3, 6, 16, 16)

    net.forward = forward
    x = torch.randint(0, 256, (32, 3, 16, 16))
    t = torch.randint(0, 256 if grey else 768, (32,))
    ardm.training_loss(net, x, torch.full((32,), grey), t=t)
    m = captured["m"].bool()
    groups = torch.from_numpy(ardm.quincunx_groups(16, 16))
    per = 1 if grey else 3
    for b in range(32):
        known = m[b, 0] if grey else m[b]
        assert int(known.sum()) == int(t[b])
        if grey:
            assert torch.equal(m[b, 0], m[b, 1]) and torch.equal(m[b, 0], m[b, 2])
        current = int(groups.expand_as(known)[~known].min())
        assert not (known & (groups > current)).any() and (known | (groups >= current)).all()
        ends = np.cumsum(np.bincount(groups.reshape(-1).numpy())) * per
        assert current == int((int(t[b]) >= ends).sum())


@pytest.fixture(scope="module")
def quincunx_img2():
    """img2's weights with the quincunx order: a valid (if not retrained) model for coding tests."""
    m = registry.load_model("img2")
    return dataclasses.replace(m, cfg=dataclasses.replace(m.cfg, order="quincunx"))


@pytest.mark.parametrize("shape,budget", [((1, 1), 1), ((1, 9), 7), ((7, 13), 5000), ((7, 13), 3), ((16, 16, 3), 1),
                                          ((16, 16, 3), 12), ((33, 20, 3), 7), ((33, 20, 3), 20)])
def test_plans_stay_inside_groups_and_round_trip(quincunx_img2, shape, budget):
    plan = codec.make_plan(quincunx_img2, shape, budget, seed=3)
    per_var = np.tile(ardm.quincunx_groups(*shape[:2]).reshape(-1), 3 if len(shape) == 3 else 1)
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
