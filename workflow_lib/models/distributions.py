"""Element-wise log-probabilities used by the Polarbear and BABEL models (torch).

All functions broadcast their arguments and return a tensor of element-wise log-probabilities
(no reduction), except :func:`kl_standard_normal` which sums over the latent dimensions.

Parametrisations
----------------
* Negative binomial ``NB(mu, theta)``: mean ``mu``, inverse dispersion ``theta`` (variance
  ``mu + mu^2 / theta``). In scipy terms ``nbinom(n=theta, p=theta / (theta + mu))``.
* Zero-inflated NB: ``pi * 1[x = 0] + (1 - pi) * NB(x; mu, theta)`` with ``pi = sigmoid(zi_logits)``.
* Bernoulli with sequencing depth (scATAC): the decoder gives a depth-normalised probability
  ``p_norm`` (the probability of a peak being seen in a cell of average depth, depth factor 1).
  A cell with depth factor ``d`` (its number of accessible peaks divided by the reference mean)
  is treated as ``d`` independent draws of an average cell, so the success probability is

      p = 1 - (1 - p_norm) ** d

  which equals ``p_norm`` at ``d = 1``, is ``~ d * p_norm`` for small ``p_norm`` (the paper's
  "multiply the depth with the normalised prediction") and always stays inside [0, 1]
  (``depth_model="complement"``).
* Bernoulli with linear depth (the authors' code, ``depth_model="linear"``, the default):
  ``p = clip(p_norm * d, eps, 1 - eps)`` with ``d = n_open_peaks / 1000``; the clip is Keras'
  ``BinaryCrossentropy`` clip of the prediction.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def nb_log_prob(x, mu, theta, eps: float = 1e-8):
    """log NB(x; mean mu, inverse dispersion theta), element-wise."""
    log_theta_mu = torch.log(theta + mu + eps)
    return (
        torch.lgamma(x + theta)
        - torch.lgamma(theta)
        - torch.lgamma(x + 1.0)
        + theta * (torch.log(theta + eps) - log_theta_mu)
        + x * (torch.log(mu + eps) - log_theta_mu)
    )


def zinb_log_prob(x, mu, theta, zi_logits, eps: float = 1e-8):
    """log ZINB(x; mu, theta, pi = sigmoid(zi_logits)), element-wise and numerically stable."""
    log_pi = -F.softplus(-zi_logits)          # log sigmoid(l)
    log_one_minus_pi = -F.softplus(zi_logits)  # log (1 - sigmoid(l))
    nb = nb_log_prob(x, mu, theta, eps)
    nb_zero = theta * (torch.log(theta + eps) - torch.log(theta + mu + eps))
    log_zero = torch.logaddexp(log_pi, log_one_minus_pi + nb_zero)
    return torch.where(x < 0.5, log_zero, log_one_minus_pi + nb)


def bernoulli_log_prob(y, p, eps: float = 1e-7):
    """log Bernoulli(y; p) = y log p + (1 - y) log(1 - p), with p clamped to [eps, 1 - eps]."""
    p = p.clamp(eps, 1.0 - eps)
    return y * torch.log(p) + (1.0 - y) * torch.log1p(-p)


def depth_scaled_prob(p_norm, depth_factor):
    """Success probability of a cell with depth factor d: ``1 - (1 - p_norm) ** d``."""
    p_norm = p_norm.clamp(0.0, 1.0 - 1e-7)
    return -torch.expm1(depth_factor * torch.log1p(-p_norm))


def bernoulli_depth_log_prob_logits(y, logits, depth_factor, eps: float = 1e-7):
    """log Bernoulli(y; 1 - (1 - sigmoid(logits)) ** d) computed stably from the decoder logits.

    log(1 - p) = d * log(1 - sigmoid(l)) = -d * softplus(l);  log p = log(-expm1(log(1 - p))).
    """
    log_q = -depth_factor * F.softplus(logits)           # log(1 - p) <= 0
    log_p = torch.log((-torch.expm1(log_q)).clamp_min(eps))
    log_q = log_q.clamp_min(math.log(eps))
    return y * log_p + (1.0 - y) * log_q


def linear_depth_prob(p_norm, depth_factor, eps: float = 1e-7):
    """Success probability ``clip(p_norm * d, eps, 1 - eps)`` (the authors' depth model)."""
    return (p_norm * depth_factor).clamp(eps, 1.0 - eps)


def bernoulli_linear_depth_log_prob_logits(y, logits, depth_factor, eps: float = 1e-7):
    """log Bernoulli(y; clip(sigmoid(logits) * d, eps, 1 - eps)), stable in the logits."""
    log_p = (F.logsigmoid(logits) + torch.log(depth_factor.clamp_min(eps))).clamp(math.log(eps), math.log1p(-eps))
    log_q = torch.log1p(-torch.exp(log_p))
    return y * log_p + (1.0 - y) * log_q


DEPTH_MODELS = ("linear", "complement")


def depth_prob(p_norm, depth_factor, depth_model: str):
    """Depth-scaled success probability for a depth model name (see the module docstring)."""
    if depth_model == "linear":
        return linear_depth_prob(p_norm, depth_factor)
    if depth_model == "complement":
        return depth_scaled_prob(p_norm, depth_factor)
    raise ValueError(f"depth model must be one of {DEPTH_MODELS}, not {depth_model!r}")


def kl_standard_normal(mu, logvar):
    """KL(N(mu, exp(logvar)) || N(0, I)) per cell (summed over the last dimension)."""
    return 0.5 * torch.sum(torch.exp(logvar) + mu * mu - 1.0 - logvar, dim=-1)
