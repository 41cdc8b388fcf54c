import math

import numpy as np
import pytest
import torch

from ardmzip.ardm import (group_edges, dyadic_groups, grouped_order, log_prob, order, probabilities,
                          training_loss)
from ardmzip.nets import ARDMNet, NetConfig


class TestOrder:
    def test_is_a_permutation_and_reproducible(self):
        o = order(7, 10_000)
        assert np.array_equal(np.sort(o), np.arange(10_000))
        assert np.array_equal(o, order(7, 10_000))
        assert not np.array_equal(o, order(8, 10_000))

    def test_golden_values(self):
        # pinned: a change here breaks every released file
        assert order(0, 8).tolist() == GOLDEN_ORDER_0_8
        assert order(123456789, 5).tolist() == GOLDEN_ORDER_123456789_5

    def test_fast_for_millions(self):
        import time
        t = time.time()
        order(1, 3 * 2000 * 1500)
        assert time.time() - t < 10


GOLDEN_ORDER_0_8 = [1, 4, 5, 7, 6, 0, 3, 2]
GOLDEN_ORDER_123456789_5 = [2, 4, 0, 1, 3]


class TestDyadicOrder:
    def test_groups_coarse_to_fine(self):
        assert dyadic_groups(17, top=8).tolist() == [0, 3, 2, 3, 1, 3, 2, 3, 0, 3, 2, 3, 1, 3, 2, 3, 0]
        g = dyadic_groups(1 << 15)
        assert np.bincount(g).tolist() == [512, 512, 1024, 2048, 4096, 8192, 16384]
        assert group_edges() == (0, 8, 16, 32, 64, 128, 256, 512)
        with pytest.raises(ValueError):
            group_edges(100)

    def test_grouped_order_is_the_random_order_within_each_group(self):
        groups = dyadic_groups(5000)
        sigma = grouped_order(9, groups)
        assert np.array_equal(np.sort(sigma), np.arange(5000))
        assert np.all(np.diff(groups[sigma]) >= 0)
        plain = order(9, 5000)
        for k in range(7):
            assert np.array_equal(sigma[groups[sigma] == k], plain[groups[plain] == k])

    def test_golden_values(self):
        """Part of the file format (dyadic audio models): never changes."""
        assert grouped_order(5, dyadic_groups(16, 8)).tolist() == GOLDEN_DYADIC


class TestMixtureHead:
    def test_probabilities_are_distributions_matching_log_prob(self):
        torch.manual_seed(0)
        k = 4
        p = torch.randn(50, 3 * k) * torch.tensor([1.0] * k + [0.5] * k + [1.0] * k)
        probs = probabilities(p, k)
        assert probs.shape == (50, 256) and probs.flags.c_contiguous and probs.dtype == np.float64
        assert np.allclose(probs.sum(1), 1.0) and (probs >= 0).all()
        x = torch.randint(0, 256, (50,))
        lp = log_prob(p.T.reshape(3 * k, 50, 1), x.view(50, 1), k).view(50)
        assert np.allclose(np.exp(lp.numpy()), probs[np.arange(50), x.numpy()], rtol=1e-3, atol=1e-6)


class TestTrainingLoss:
    def test_loss_is_finite_and_trains(self):
        torch.manual_seed(0)
        net = ARDMNet(NetConfig(widths=(8, 8, 8), blocks=(1, 1, 1), mixtures=2))
        x = torch.randint(0, 256, (4, 3, 8, 8))
        grey = torch.tensor([False, True, False, True])
        loss, frac, lt = training_loss(net, x, grey)
        assert torch.isfinite(loss) and frac.shape == (4,) and (frac < 1).all()
        loss.backward()
        assert all(p.grad is not None for p in net.parameters())


GOLDEN_DYADIC = [8, 0, 12, 4, 14, 2, 10, 6, 11, 15, 3, 7, 9, 13, 5, 1]


def test_depth_upscaling_digits_multiply_to_the_value_distribution():
    """Stage 1 (coarse digit) times stage 2 (fine digit given the coarse one) under the same parameters is
    the 256-way mixture of log_prob, and each stage's distribution sums to one, tails included."""
    from ardmzip.ardm import DIGIT, digit_log_prob, log_prob
    g = torch.Generator().manual_seed(0)
    k = 3
    p = torch.cat([torch.randn(1, 1, k, 1, 1, generator=g), torch.rand(1, 1, k, 1, 1, generator=g) * 2.4 - 1.2,
                   torch.rand(1, 1, k, 1, 1, generator=g) * 3 - 4.5], 2).expand(1, 1, 3 * k, 1, 256)
    x = torch.arange(256).view(1, 1, 1, 256)
    one, two = (digit_log_prob(p, x, torch.tensor([s]), k)[0, 0, 0] for s in (1, 2))
    full = log_prob(p, x, k)[0, 0, 0]
    likely = full > math.log(1e-4)  # log_prob approximates the far tails by the density
    assert likely.sum() > 20 and torch.allclose((one + two)[likely], full[likely], atol=2e-3)
    assert torch.allclose(one[::DIGIT].exp().sum(), torch.tensor(1.0), atol=1e-5)
    for h in range(256 // DIGIT):
        assert torch.allclose(two[h * DIGIT:(h + 1) * DIGIT].exp().sum(), torch.tensor(1.0), atol=1e-4)
