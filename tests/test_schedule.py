import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from ardmzip.schedule import expected_bits, optimal_boundaries, reference_dp, step_boundaries


class TestDynamicProgram:
    def test_golden_costs_from_the_paper(self):
        # PAPER.md: L = [5, 4, 3, 2.85, 2.80] -> optimal costs for budgets 1..5
        assert [reference_dp([5, 4, 3, 2.85, 2.80], b)[1] for b in range(1, 6)] == pytest.approx(
            [25, 19, 18, 17.7, 17.65])
        curve = np.array([500, 400, 300, 285, 280])
        assert [optimal_boundaries(curve, b)[1] for b in range(1, 6)] == [2500, 1900, 1800, 1770, 1765]

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.integers(0, 9000), min_size=1, max_size=24), st.integers(1, 30))
    def test_fast_version_matches_reference(self, curve, budget):
        curve = sorted(curve, reverse=True)
        bounds, cost = optimal_boundaries(np.array(curve), budget)
        ref_bounds, ref_cost = reference_dp(curve, budget)
        assert cost == ref_cost
        assert bounds[0] == 0 and bounds[-1] == len(curve) and np.all(np.diff(bounds) > 0)
        assert len(bounds) - 1 <= budget
        assert sum((bounds[i + 1] - bounds[i]) * curve[bounds[i]] for i in range(len(bounds) - 1)) == cost


CURVE = [int(8000 * np.exp(-6 * g / 512)) + 2500 for g in range(512)]


class TestStepBoundaries:
    @pytest.mark.parametrize("n_vars", [1, 2, 3, 7, 511, 512, 513, 3072, 12288, 10**7])
    @pytest.mark.parametrize("budget", [1, 2, 10, 50, 512, 600, 5000])
    def test_valid_steps_within_budget(self, n_vars, budget):
        b = step_boundaries(CURVE, n_vars, budget)
        assert b[0] == 0 and b[-1] == n_vars
        assert np.all(np.diff(b) > 0), "empty steps must be dropped"
        assert len(b) - 1 <= min(budget, n_vars)
        if budget >= n_vars:
            assert len(b) - 1 == n_vars
        elif budget <= 50:  # the DP drops a step only when it saves nothing (a flat curve)
            assert len(b) - 1 == budget

    def test_full_budget_reveals_one_variable_per_step(self):
        assert np.array_equal(step_boundaries(CURVE, 100, 100), np.arange(101))

    def test_more_budget_never_predicts_more_bits(self):
        d = 3 * 64 * 64
        bits = [expected_bits(CURVE, step_boundaries(CURVE, d, b), d) for b in (1, 2, 5, 10, 50, 200, 512)]
        assert all(a >= b for a, b in zip(bits, bits[1:]))
        assert bits[-1] / d == pytest.approx(np.mean(CURVE) / 1000, rel=0.02)

    def test_noisy_curve_is_sorted_first(self):
        rng = np.random.default_rng(0)
        noisy = [c + int(rng.integers(-300, 300)) for c in CURVE]
        b = step_boundaries(noisy, 3072, 20)
        assert np.array_equal(b, step_boundaries(sorted(noisy, reverse=True), 3072, 20))

    def test_rejects_nonsense(self):
        with pytest.raises(ValueError):
            step_boundaries(CURVE, 0, 10)
        with pytest.raises(ValueError):
            step_boundaries(CURVE, 10, 0)
