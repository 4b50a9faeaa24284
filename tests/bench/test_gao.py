"""Gao et al.'s functional forms: the closed-form fit recovers known (α, β), the peaks are the forms'
maxima, and the bootstrap intervals over seeds cover the truth and are reproducible."""

import numpy as np
import pytest

from bench.report import gao
from bench.report.stats import bootstrap_rng

D = np.linspace(0.0, 4.0, 21)


@pytest.mark.parametrize("form, alpha, beta", [("bon", 1.3, 0.4), ("rl", 0.9, 0.35), ("bon", 0.5, -0.1)])
def test_a_noiseless_curve_is_recovered_exactly(form, alpha, beta):
    gain = gao.predict(form, D, alpha, beta)
    a, b = gao.fit(form, D, gain)
    assert a == pytest.approx(alpha, abs=1e-12) and b == pytest.approx(beta, abs=1e-12)
    result = gao.fit_curves(form, [(D, gain)] * 3, np.random.default_rng(0), resamples=200)
    assert result.r2 == pytest.approx(1.0) and result.rmse < 1e-12
    assert result.alpha_ci == pytest.approx((alpha, alpha)) and result.beta_ci == pytest.approx((beta, beta))


def test_the_forms_are_written_as_gao_et_al_write_them():
    d = np.array([0.0, 0.5, 1.0, 2.0, 3.0])
    np.testing.assert_allclose(gao.predict("bon", d, 1.3, 0.4), d * (1.3 - 0.4 * d))
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = np.where(d > 0, d * (0.9 - 0.35 * np.log(d)), 0.0)
    np.testing.assert_allclose(gao.predict("rl", d, 0.9, 0.35), expected)


@pytest.mark.parametrize("form, alpha, beta", [("bon", 1.3, 0.4), ("rl", 0.9, 0.35)])
def test_the_peak_is_the_forms_maximum(form, alpha, beta):
    """bon: d(α − βd)' = α − 2βd = 0 at d* = α/(2β); rl: (d(α − β log d))' = α − β log d − β = 0 at
    d* = exp(α/β − 1), where R = d*·β. Checked against a fine grid."""
    d_star, top = (float(v) for v in gao.peak(form, alpha, beta))
    grid = np.linspace(1e-9, 4 * d_star, 400001)
    values = gao.predict(form, grid, alpha, beta)
    assert d_star == pytest.approx(grid[values.argmax()], abs=1e-4 * d_star)
    assert top == pytest.approx(values.max(), rel=1e-9)
    assert gao.peak(form, alpha, -0.1) == (np.inf, np.inf)


def test_noisy_seeds_give_intervals_that_cover_the_truth_and_are_reproducible():
    rng = np.random.default_rng(7)
    alpha, beta = 1.0, 0.3
    curves = [(D, gao.predict("bon", D, alpha, beta) + rng.normal(0, 0.05, D.shape)) for _ in range(10)]
    result = gao.fit_curves("bon", curves, bootstrap_rng({"test": "gao"}))
    assert result.seeds == 10 and result.points == 10 * len(D)
    assert result.alpha_ci[0] < alpha < result.alpha_ci[1] and result.beta_ci[0] < beta < result.beta_ci[1]
    d_star = alpha / (2 * beta)
    assert result.d_star_ci[0] < d_star < result.d_star_ci[1]
    assert result.alpha_ci[1] - result.alpha_ci[0] < 0.1 and result.r2 > 0.9
    assert gao.fit_curves("bon", curves, bootstrap_rng({"test": "gao"})) == result


def test_a_curve_that_never_turns_down_has_an_infinite_peak_with_discrete_ends():
    flat = gao.fit_curves("bon", [(D, 0.5 * D + 0.02 * D * D)] * 2, np.random.default_rng(0), resamples=100)
    assert flat.d_star == np.inf and flat.d_star_ci == (np.inf, np.inf)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="form"):
        gao.fit("ppo", D, D)
    with pytest.raises(ValueError, match="d must be"):
        gao.fit("bon", -D, D)
    with pytest.raises(ValueError, match="one gain per distance"):
        gao.fit("rl", D, D[:-1])
    with pytest.raises(ValueError, match="curves"):
        gao.fit_curves("bon", [], np.random.default_rng(0))
