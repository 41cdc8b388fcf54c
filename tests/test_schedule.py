import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from ardmzip.schedule import Groups, expected_bits, optimal_boundaries, reference_dp, step_boundaries


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


class TestGroupedSchedule:
    """Structured orders: steps never cross a group, every group gets a step, groups map onto their counts."""

    EDGES = (0, 8, 16, 32, 64, 128, 256, 512)

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.integers(0, 9000), min_size=2, max_size=20), st.integers(1, 25), st.data())
    def test_fast_version_matches_reference(self, curve, budget, data):
        cuts = sorted(data.draw(st.sets(st.integers(1, len(curve) - 1), max_size=min(5, budget - 1))))
        group = np.searchsorted(np.array(cuts), np.arange(len(curve)), side="right")
        bounds, cost = optimal_boundaries(np.array(curve), budget, group)
        ref_bounds, ref_cost = reference_dp(curve, budget, group.tolist())
        assert cost == ref_cost
        assert all(group[s] == group[t - 1] for s, t in zip(bounds[:-1], bounds[1:]))
        assert set(cuts) <= set(bounds.tolist())

    def test_too_few_steps_for_the_groups_is_an_error(self):
        with pytest.raises(ValueError, match="groups"):
            optimal_boundaries(np.array([5, 4, 3]), 2, np.array([0, 1, 2]))

    @pytest.mark.parametrize("counts", [(64, 64, 128, 256, 512, 1024, 2048), (1, 0, 0, 0, 0, 0, 0),
                                        (2, 1, 1, 2, 3, 5, 9), (512, 512, 1024, 2048, 4096, 8192, 16384)])
    @pytest.mark.parametrize("budget", [1, 3, 7, 10, 20, 100, 5000])
    def test_steps_stay_inside_groups(self, counts, budget):
        groups = Groups(self.EDGES, counts)
        n = sum(counts)
        b = step_boundaries(CURVE, n, budget, groups)
        ends = np.cumsum(counts)
        assert b[0] == 0 and b[-1] == n and np.all(np.diff(b) > 0)
        assert set(e for e in ends.tolist() if e > 0) <= set(b.tolist()), "each group ends a step"
        nonempty = sum(c > 0 for c in counts)
        assert len(b) - 1 == min(n, max(budget, nonempty)) or (budget > 20 and len(b) - 1 <= budget)
        assert expected_bits(CURVE, b, n, groups) > 0

    def test_group_ranges_price_their_own_variables(self):
        """A flat curve per group: the predicted bits are Σ count·level, whatever the budget."""
        level = [9000, 8000, 7000, 6000, 5000, 4000, 3000]
        curve = [level[int(np.searchsorted(self.EDGES, g, side="right")) - 1] for g in range(512)]
        counts = (5, 5, 10, 20, 40, 80, 160)
        groups = Groups(self.EDGES, counts)
        for budget in (7, 12, 50):
            b = step_boundaries(curve, 320, budget, groups)
            assert expected_bits(curve, b, 320, groups) == pytest.approx(sum(c * v for c, v in zip(counts, level)) / 1000)

    def test_rejects_groups_that_do_not_fit(self):
        with pytest.raises(ValueError, match="do not fit"):
            step_boundaries(CURVE, 100, 10, Groups(self.EDGES, (1, 2, 3, 4, 5, 6, 7)))
