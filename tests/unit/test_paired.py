"""Paired significance: McNemar on right/wrong scores, paired bootstrap on graded ones."""

from __future__ import annotations

import numpy as np
import pytest

from tunewise.evaluation.paired import mcnemar, paired_bootstrap, paired_test


def test_mcnemar_counts_flips_and_uses_the_exact_binomial() -> None:
    a = [1] * 10 + [0] * 10
    b = [1] * 9 + [0] + [1] * 0 + [0] * 10  # one broken, nothing fixed
    test = mcnemar(a, b)
    assert (test.fixed, test.broken) == (0, 1)
    assert test.p_value == pytest.approx(1.0)  # one flip is never significant
    many = mcnemar([1] * 12 + [0] * 8, [0] * 12 + [0] * 8)  # 12 broken, 0 fixed
    assert many.broken == 12 and many.p_value == pytest.approx(2 * 0.5**12)
    assert many.delta == pytest.approx(-0.6)
    assert many.ci_high < 0


def test_no_flips_is_no_evidence() -> None:
    test = mcnemar([1, 0, 1], [1, 0, 1])
    assert test.p_value == 1.0 and test.delta == 0


def test_balanced_flips_are_noise() -> None:
    a = [1, 0] * 20
    b = [0, 1] * 20  # 20 fixed, 20 broken
    assert mcnemar(a, b).p_value == pytest.approx(1.0)


def test_paired_bootstrap_detects_a_consistent_shift_but_not_noise() -> None:
    rng = np.random.default_rng(0)
    a = rng.uniform(0.3, 0.9, size=80)
    shifted = paired_bootstrap(a, a - 0.1, seed=1)
    assert shifted.delta == pytest.approx(-0.1)
    assert shifted.p_value < 0.01 and shifted.ci_high < 0
    noise = paired_bootstrap(a, a + rng.normal(0, 0.05, size=80), seed=1)
    assert noise.p_value > 0.05 and noise.ci_low < 0 < noise.ci_high


def test_paired_test_chooses_by_the_scores() -> None:
    assert paired_test([1, 0, 1], [1, 1, 1]).test == "mcnemar"
    assert paired_test([0.5, 0.2], [0.4, 0.2]).test == "paired-bootstrap"
    with pytest.raises(ValueError, match="equal, non-zero lengths"):
        paired_test([1, 0], [1])
