"""Log-probabilities of the model likelihoods against scipy.stats."""

import numpy as np
import torch
from scipy import stats
from scipy.special import expit

from workflow_lib.models.distributions import (
    bernoulli_depth_log_prob_logits,
    bernoulli_log_prob,
    depth_scaled_prob,
    kl_standard_normal,
    nb_log_prob,
    zinb_log_prob,
)

RNG = np.random.default_rng(0)
N = 500
X = RNG.poisson(RNG.gamma(1.0, 5.0, N)).astype(np.float64)
X[:50] = 0
MU = RNG.gamma(2.0, 3.0, N)
THETA = RNG.gamma(2.0, 1.0, N) + 0.05
LOGITS = RNG.normal(0, 2, N)


def t(a):
    return torch.tensor(a, dtype=torch.float64)


def test_nb_matches_scipy():
    ours = nb_log_prob(t(X), t(MU), t(THETA), eps=0.0).numpy()
    ref = stats.nbinom.logpmf(X, THETA, THETA / (THETA + MU))
    np.testing.assert_allclose(ours, ref, rtol=1e-8, atol=1e-8)


def test_zinb_is_the_zero_inflated_mixture():
    ours = zinb_log_prob(t(X), t(MU), t(THETA), t(LOGITS), eps=0.0).numpy()
    pi = expit(LOGITS)
    pmf = stats.nbinom.pmf(X, THETA, THETA / (THETA + MU))
    ref = np.log(pi * (X == 0) + (1 - pi) * pmf)
    np.testing.assert_allclose(ours, ref, rtol=1e-7, atol=1e-8)


def test_zinb_large_logits_stable():
    x = t(np.array([0.0, 3.0]))
    out = zinb_log_prob(x, t(np.array([2.0, 2.0])), t(np.array([1.0, 1.0])), t(np.array([40.0, -40.0])))
    assert torch.isfinite(out).all()
    assert abs(out[0].item()) < 1e-6  # pi ~ 1: zero has probability ~1


def test_bernoulli_matches_scipy():
    y = (RNG.random(N) < 0.3).astype(float)
    p = RNG.uniform(0.01, 0.99, N)
    np.testing.assert_allclose(bernoulli_log_prob(t(y), t(p)).numpy(), stats.bernoulli.logpmf(y, p), rtol=1e-6)


def test_depth_scaled_bernoulli():
    p_norm = expit(LOGITS)
    d = RNG.gamma(3.0, 0.4, N)
    p = depth_scaled_prob(t(p_norm), t(d)).numpy()
    np.testing.assert_allclose(p, 1 - (1 - p_norm) ** d, rtol=1e-6, atol=1e-10)
    assert (p >= 0).all() and (p <= 1).all()
    # depth factor 1 leaves the probability unchanged; larger depth -> larger probability
    np.testing.assert_allclose(depth_scaled_prob(t(p_norm), t(np.ones(N))).numpy(), p_norm, rtol=1e-6)
    assert (depth_scaled_prob(t(p_norm), t(d * 2)).numpy() >= p - 1e-12).all()
    y = (RNG.random(N) < p).astype(float)
    ours = bernoulli_depth_log_prob_logits(t(y), t(LOGITS), t(d), eps=1e-12).numpy()
    np.testing.assert_allclose(ours, stats.bernoulli.logpmf(y, p), rtol=1e-6, atol=1e-9)


def test_kl_standard_normal_closed_form():
    mu, logvar = RNG.normal(size=(4, 3)), RNG.normal(size=(4, 3))
    ours = kl_standard_normal(t(mu), t(logvar)).numpy()
    # KL via Monte Carlo-free formula per dim: log(1/sigma) + (sigma^2 + mu^2 - 1) / 2
    sig = np.exp(0.5 * logvar)
    ref = np.sum(-np.log(sig) + (sig**2 + mu**2 - 1) / 2, axis=1)
    np.testing.assert_allclose(ours, ref, rtol=1e-10)
    assert kl_standard_normal(torch.zeros(2, 5), torch.zeros(2, 5)).abs().max() == 0
