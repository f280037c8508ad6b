"""The report's statistics against values computed by hand."""

from __future__ import annotations

import pytest

from looptool.stats import mcnemar_exact, paired, wilson_interval


def test_wilson_interval_of_half_of_ten():
    # p = 0.5, z^2/n = 0.38416: centre 0.5, half-width 1.96 * sqrt(0.025 + 0.0096040) / 1.38416
    low, high = wilson_interval(5, 10)
    assert (round(low, 4), round(high, 4)) == (0.2366, 0.7634)


def test_wilson_interval_at_the_ends_of_the_range():
    # At 0/n the interval is [0, (z^2/n) / (1 + z^2/n)] = [0, 3.8416 / 13.8416].
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(3.8416 / 13.8416)
    low, high = wilson_interval(10, 10)
    assert low == pytest.approx(1 - 3.8416 / 13.8416) and high == 1.0


def test_wilson_interval_of_a_larger_sample_and_another_z():
    low, high = wilson_interval(62, 150)
    assert (round(100 * low, 1), round(100 * high, 1)) == (33.8, 49.3)
    wider = wilson_interval(62, 150, z=2.576)
    assert wider[0] < low and wider[1] > high


def test_wilson_interval_without_items_is_the_whole_range():
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_wilson_interval_refuses_impossible_counts():
    with pytest.raises(ValueError):
        wilson_interval(11, 10)
    with pytest.raises(ValueError):
        wilson_interval(-1, 10)


@pytest.mark.parametrize(("b", "c", "p"), [
    (1, 9, 2 * (1 + 10) / 1024),  # 0.021484375
    (9, 1, 0.021484375),  # symmetric
    (2, 8, 2 * (1 + 10 + 45) / 1024),  # 0.109375
    (0, 5, 2 / 32),  # 0.0625
    (5, 5, 1.0),  # 2 * P[X <= 5] > 1: capped
    (0, 1, 1.0),
    (0, 0, 1.0),  # no discordant item: no evidence either way
])
def test_mcnemar_exact_against_hand_computed_values(b, c, p):
    assert mcnemar_exact(b, c) == pytest.approx(p, abs=1e-12)


@pytest.mark.slow
def test_mcnemar_exact_stays_finite_for_many_discordant_items():
    p = mcnemar_exact(3000, 3300)
    assert 0.0 < p < 0.001


def test_mcnemar_exact_refuses_negative_counts():
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 2)


def test_paired_uses_only_the_items_both_runs_have():
    a = {"x1": True, "x2": True, "x3": False, "x4": True, "x5": False, "only_a": True}
    b = {"x1": True, "x2": False, "x3": True, "x4": False, "x5": False, "only_b": False}
    result = paired(a, b)
    assert (result.n, result.a_correct, result.b_correct) == (5, 3, 2)
    assert (result.only_a, result.only_b, result.dropped) == (2, 1, 2)
    assert result.diff_points == pytest.approx(20.0)
    assert result.p_value == mcnemar_exact(2, 1) == 1.0


def test_paired_without_common_items():
    result = paired({"a": True}, {"b": True})
    assert (result.n, result.dropped, result.diff_points, result.p_value) == (0, 2, None, 1.0)


def test_paired_of_a_clear_difference():
    a = {i: i < 10 for i in range(20)}  # right on 0-9
    b = {i: i == 0 for i in range(20)}  # right on 0 only
    result = paired(a, b)
    assert (result.only_a, result.only_b) == (9, 0)
    assert result.diff_points == pytest.approx(45.0)
    assert result.p_value == pytest.approx(2 / 512)
