"""Polarbear's two beta-VAEs (Zhang et al. 2022, Section 2.1), as the authors built them.

Defaults follow the paper and, where it is silent, the authors' TensorFlow code
(Noble-Lab/Polarbear ``bin/train_model.py``). Every departure is a named constructor option,
saved in the model config, so a model is always rebuilt as it was trained.

RNA VAE (:class:`RNAVAE`)
    input  : raw counts x (``input_transform="counts"``, the authors'), log1p(x) (``"log1p"``)
             or log1p of x scaled to ``norm_target`` counts per cell (``"log1p_norm"``; the
             workflow sets norm_target to the median library size of the VAE's training cells),
             concatenated with the batch one-hot b.
    encoder: 2 x (Linear - LayerNorm - LeakyReLU(0.2) - Dropout), width
             ``int(sqrt((n_genes + n_batches) * latent) / 2)`` -> mean and variance of z_x
             (variance ``exp(h) + 1e-4`` as in the authors' code).
    decoder: [z_x, b] -> 2 x (Linear - LayerNorm - LeakyReLU), no dropout -> Linear - ReLU ->
             softmax scale s (depth-normalised expression, the "norm estimation") and zero-inflation
             logits; inverse dispersion theta per gene and batch. ZINB(x; mu = s * l, theta_b, pi)
             with l = the cell's library size.
ATAC VAE (:class:`ATACVAE`)
    input  : binarised peaks y (``input_transform="idf"`` weights them by inverse document
             frequency, our earlier choice), and the batch one-hot into every chromosome block.
    encoder: per chromosome 2 x (Linear - LayerNorm - LeakyReLU - Dropout) of width
             ``int(sqrt((n_peaks_chrom + n_batches) * latent) / 2)`` (``hidden_rule="per_chromosome"``;
             ``"total"`` shares half the geometric mean of ALL peaks and the latent size over the
             chromosomes), then per chromosome Linear(latent) - LayerNorm - LeakyReLU - Dropout;
             the chromosome outputs are concatenated -> mean and log-variance of z_y.
    decoder: [z_y, b] -> Linear(22 * latent) - LayerNorm -> per chromosome 2 x (Linear - LayerNorm -
             LeakyReLU - Dropout) -> per chromosome Linear -> logits of the depth-normalised
             probability p_norm = sigmoid(logits). Depth factor d = n_open_peaks / depth_ref;
             ``depth_model="linear"`` (authors): p = clip(p_norm * d), depth_ref = 1000;
             ``"complement"`` (our earlier choice): p = 1 - (1 - p_norm) ** d. Loss: Bernoulli NLL.
    LayerNorms of chromosome blocks normalise each chromosome separately (as in the authors' code).
Loss of both: reconstruction NLL (summed over features) + w * KL(q(z|.) || N(0, I)), averaged over
cells (w warms up to beta, see ``workflow_lib.polarbear``). In training z is sampled
(reparameterisation); in eval mode z = mean (deterministic inference, a named departure: the
authors sample z also at prediction time).

Known departure kept on purpose: the authors' ATAC encoder means to append the batch one-hot to
every chromosome block, but its column index takes the last peaks of the genome instead; here the
batch one-hot does reach every block.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from ..sparse import row_nnz, row_sums
from ..fileutils import atomic_path, write_json
from .chromsplit import BlockLayerNorm, ChromSplitLinear, proportional_sizes
from .distributions import (DEPTH_MODELS, bernoulli_depth_log_prob_logits, bernoulli_linear_depth_log_prob_logits,
                            depth_prob, kl_standard_normal, zinb_log_prob)

ACTIVATIONS = ("leaky_relu", "relu")
RNA_INPUTS = ("counts", "log1p", "log1p_norm")
ATAC_INPUTS = ("binary", "idf")
ATAC_DECODER_WIDTH = 22  # the authors' first ATAC decoder layer has 22 x latent units (fixed)
# the variance epsilon of every LayerNorm: tf.contrib.layers.layer_norm's (the authors'), not
# torch's 1e-5 (ours until 2026-12-03; a saved model's outputs move by ~1e-6 relative)
LAYER_NORM_EPS = 1e-12


def hidden_width(n_in: int, latent: int) -> int:
    """Half the geometric mean of the input and latent dimensions (at least 2), truncated as the
    authors' ``int(sqrt(n_in * latent) / 2)``."""
    return max(2, int(math.sqrt(n_in * latent) / 2))


ATAC_HIDDEN_RULES = ("total", "per_chromosome")
WEIGHT_INITS = ("glorot", "torch")


def glorot_(weight: torch.Tensor, fan_in: int, fan_out: int) -> None:
    """In place: U(-a, a) with a = sqrt(6 / (fan_in + fan_out)), TensorFlow's default kernel
    initialiser (``glorot_uniform``) for a dense layer of these fans."""
    bound = math.sqrt(6.0 / (int(fan_in) + int(fan_out)))
    with torch.no_grad():
        weight.uniform_(-bound, bound)


def glorot_init_(module: nn.Module) -> None:
    """TensorFlow's dense-layer initialisation, which the authors' layers (``tf.layers.Dense``
    without initialiser arguments) get: Glorot-uniform weights, zero biases. Every ``nn.Linear``
    uses its own fans, every block of a ``ChromSplitLinear`` the fans of its block (one dense
    layer per chromosome in the authors' code). LayerNorms and other parameters are left as
    they are."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            glorot_(m.weight, m.in_features, m.out_features)
        elif isinstance(m, ChromSplitLinear):
            for w in m.weights:
                glorot_(w, w.shape[1], w.shape[0])
        else:
            continue
        if m.bias is not None:
            with torch.no_grad():
                m.bias.zero_()


def atac_block_widths(chrom_sizes: Sequence[int], latent: int, rule: str = "per_chromosome",
                      hidden: int | None = None, n_batches: int = 0) -> list[int]:
    """Hidden units per chromosome block of the ATAC VAE's within-chromosome layers.

    ``per_chromosome`` (the authors' code, default): each chromosome gets
    ``int(sqrt((its peaks + n_batches) * latent) / 2)`` units (~5,100 at 220k peaks, latent 25).
    ``total`` (our reading of the paper's text): half the geometric mean of ALL peaks and the
    latent size, shared over chromosomes in proportion to their peaks (1,174 units).
    """
    if rule == "total":
        return proportional_sizes(hidden or hidden_width(sum(chrom_sizes), latent), chrom_sizes)
    if rule == "per_chromosome":
        return [hidden_width(int(n) + int(n_batches), latent) for n in chrom_sizes]
    raise ValueError(f"atac hidden rule must be one of {ATAC_HIDDEN_RULES}, not {rule!r}")


def batch_theta(b, log_theta, bias=None):
    """ZINB inverse dispersion per cell and gene from batch one-hots ``b``, a (batches, genes)
    ``log_theta`` and an optional per-gene ``bias``: exp(b @ log_theta + bias), log theta clipped at
    15, as the authors' dense layer of the batch one-hot (``tf.layers.Dense``, which has a bias)."""
    lt = b @ log_theta
    if bias is not None:
        lt = lt + bias
    return torch.exp(lt.clamp(max=15.0))


def reset_log_theta_(log_theta, scheme: str, bias=None) -> None:
    """In place: a (batches, genes) log dispersion as the authors' dense layer of the batch
    one-hot starts, Glorot-uniform (``glorot``), or 0 (``torch``), its ``bias`` at 0; ``None`` is
    left alone."""
    if bias is not None:
        nn.init.zeros_(bias)
    if log_theta is None:
        return
    if scheme == "glorot":
        glorot_(log_theta.data, *log_theta.shape)
    else:
        nn.init.zeros_(log_theta)


def check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, not {value!r}")
    return value


def _act(name: str) -> nn.Module:
    check_choice("activation", name, ACTIVATIONS)
    return nn.LeakyReLU(0.2) if name == "leaky_relu" else nn.ReLU()


def _block(n_in, n_out, dropout, act="leaky_relu"):
    return nn.Sequential(nn.Linear(n_in, n_out), nn.LayerNorm(n_out, eps=LAYER_NORM_EPS), _act(act),
                         nn.Dropout(dropout))


def _post(sizes, dropout, act="leaky_relu"):
    """Per-block LayerNorm - activation - dropout after a within-chromosome layer."""
    return nn.Sequential(BlockLayerNorm(sizes, eps=LAYER_NORM_EPS), _act(act), nn.Dropout(dropout))


class _VAEBase(nn.Module):
    kind = ""

    def reparameterize(self, mu, logvar):
        if self.training:
            return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        return mu

    def loss_terms(self, x, b, size):
        """(reconstruction NLL per cell, KL per cell)."""
        mu, logvar = self.encode(x, b)
        z = self.reparameterize(mu, logvar)
        nll = -self.recon_log_prob(x, z, b, size)
        return nll, kl_standard_normal(mu, logvar)

    def config(self) -> dict:
        return dict(self._config)

    def reset_parameters(self, scheme: str = "glorot") -> None:
        """Re-initialise the weights: ``glorot`` (the authors' TensorFlow dense layers, see
        :func:`glorot_init_`) or ``torch`` (PyTorch's defaults, as constructed). The RNA
        dispersion ``log_theta`` is the authors' ``px_r_genebatch_x``, a dense layer of the batch
        one-hot: Glorot-uniform under ``glorot`` (0 under ``torch``), its bias
        (``log_theta_bias``, with ``dispersion_bias``) at 0."""
        check_choice("weight init", scheme, WEIGHT_INITS)
        for m in self.modules():
            if m is not self and hasattr(m, "reset_parameters"):
                m.reset_parameters()
        if scheme == "glorot":
            glorot_init_(self)
        reset_log_theta_(getattr(self, "log_theta", None), scheme, getattr(self, "log_theta_bias", None))


class RNAVAE(_VAEBase):
    kind = "rna"

    def __init__(self, n_genes: int, n_batches: int, latent: int, hidden: int | None = None,
                 dropout: float = 0.1, input_transform: str = "counts", activation: str = "leaky_relu",
                 decoder_dropout: float = 0.0, norm_target: float = 1e4, dispersion_bias: bool = False, **meta):
        super().__init__()
        check_choice("RNA input_transform", input_transform, RNA_INPUTS)
        hidden = hidden or hidden_width(n_genes + n_batches, latent)
        self._config = dict(kind=self.kind, n_genes=int(n_genes), n_batches=int(n_batches), latent=int(latent),
                            hidden=int(hidden), dropout=float(dropout), input_transform=input_transform,
                            activation=activation, decoder_dropout=float(decoder_dropout),
                            norm_target=float(norm_target), dispersion_bias=bool(dispersion_bias), **meta)
        self.n_genes, self.n_batches, self.latent = n_genes, n_batches, latent
        self.input_transform = input_transform
        if not norm_target > 0:
            raise ValueError(f"RNA norm_target must be positive, got {norm_target}")
        self.norm_target = float(norm_target)
        self.encoder = nn.Sequential(_block(n_genes + n_batches, hidden, dropout, activation),
                                     _block(hidden, hidden, dropout, activation))
        self.enc_mu = nn.Linear(hidden, latent)
        self.enc_logvar = nn.Linear(hidden, latent)
        self.decoder = nn.Sequential(_block(latent + n_batches, hidden, decoder_dropout, activation),
                                     _block(hidden, hidden, decoder_dropout, activation),
                                     nn.Linear(hidden, hidden), nn.ReLU())
        self.dec_scale = nn.Linear(hidden, n_genes)
        self.dec_dropout = nn.Linear(hidden, n_genes)
        # log theta = b @ log_theta (+ log_theta_bias): the authors' Dense(n_genes) of the batch
        # one-hot, whose bias (one value per gene, shared by all batches) is trained too
        self.log_theta = nn.Parameter(torch.zeros(n_batches, n_genes))
        self.log_theta_bias = nn.Parameter(torch.zeros(n_genes)) if dispersion_bias else None

    def encode(self, x, b):
        h = self.encoder(torch.cat([self.encoder_input(x), b], dim=-1))
        # variance exp(h) + 1e-4 (h clipped at 15), as the authors' RNA encoder
        logvar = torch.logaddexp(self.enc_logvar(h).clamp(max=15.0), torch.tensor(math.log(1e-4), device=h.device))
        return self.enc_mu(h), logvar

    def encoder_input(self, x):
        """What the encoder reads: counts, log1p(counts), or (``log1p_norm``) log1p of the counts
        scaled to a library size of ``norm_target`` (the workflow sets it to the median library
        size of the training cells, as scanpy's ``normalize_total``; the decoder is given each
        cell's library size, so the latent need not carry it)."""
        if self.input_transform == "log1p":
            return torch.log1p(x)
        if self.input_transform == "log1p_norm":
            return torch.log1p(x * (self.norm_target / x.sum(-1, keepdim=True).clamp(min=1.0)))
        return x

    def decode(self, z, b):
        """(scale rows summing to 1, zero-inflation logits, theta)."""
        h = self.decoder(torch.cat([z, b], dim=-1))
        scale = torch.softmax(self.dec_scale(h), dim=-1)
        return scale, self.dec_dropout(h), batch_theta(b, self.log_theta, self.log_theta_bias)

    def recon_log_prob(self, x, z, b, size, theta=None):
        """log p(x | z, b, library size) summed over genes (per cell); ``theta`` replaces the
        VAE's own inverse dispersion (a translator's, see ``models.translator``)."""
        scale, zi, own_theta = self.decode(z, b)
        theta = own_theta if theta is None else theta
        mu = scale * size.reshape(-1, 1)
        return zinb_log_prob(x, mu, theta, zi).sum(-1)

    def normalized(self, z, b):
        """Norm estimation: expected frequency of each gene (rows sum to 1)."""
        return self.decode(z, b)[0]

    @staticmethod
    def size_covariate(X, depth_ref=None) -> np.ndarray:
        """Library size per cell (sum of counts), float32 (at least 1)."""
        return np.maximum(row_sums(X), 1.0).astype(np.float32)


class ATACVAE(_VAEBase):
    kind = "atac"

    def __init__(self, n_peaks: int, n_batches: int, latent: int, chrom_sizes: Sequence[int],
                 hidden: int | None = None, dropout: float = 0.1, depth_ref: float = 1000.0,
                 hidden_rule: str = "per_chromosome", input_transform: str = "binary",
                 depth_model: str = "linear", activation: str = "leaky_relu", **meta):
        super().__init__()
        chrom_sizes = [int(c) for c in chrom_sizes]
        if sum(chrom_sizes) != n_peaks:
            raise ValueError(f"chromosome block sizes sum to {sum(chrom_sizes)}, expected {n_peaks} peaks")
        check_choice("ATAC input_transform", input_transform, ATAC_INPUTS)
        check_choice("ATAC depth_model", depth_model, DEPTH_MODELS)
        hs = atac_block_widths(chrom_sizes, latent, hidden_rule, hidden if hidden_rule == "total" else None,
                               n_batches=n_batches)
        h = sum(hs)
        hidden = h if hidden_rule == "per_chromosome" else (hidden or hidden_width(n_peaks, latent))
        self._config = dict(kind=self.kind, n_peaks=int(n_peaks), n_batches=int(n_batches), latent=int(latent),
                            chrom_sizes=chrom_sizes, hidden=int(hidden), dropout=float(dropout),
                            depth_ref=float(depth_ref), hidden_rule=str(hidden_rule),
                            input_transform=input_transform, depth_model=depth_model, activation=activation,
                            **meta)
        self.n_peaks, self.n_batches, self.latent = n_peaks, n_batches, latent
        self.depth_ref = float(depth_ref)
        self.depth_model = depth_model
        self.input_transform = input_transform
        n_chr = len(chrom_sizes)
        lat_blocks = [int(latent)] * n_chr
        # encoder: per chromosome 2 hidden layers, then a per-chromosome latent-sized layer
        self.enc1 = ChromSplitLinear(chrom_sizes, hs)
        self.enc1_batch = nn.Linear(n_batches, h, bias=False)
        self.enc1_post = _post(hs, dropout, activation)
        self.enc2 = nn.Sequential(ChromSplitLinear(hs, hs), _post(hs, dropout, activation))
        self.enc3 = nn.Sequential(ChromSplitLinear(hs, lat_blocks), _post(lat_blocks, dropout, activation))
        self.enc_mu = nn.Linear(latent * n_chr, latent)
        self.enc_logvar = nn.Linear(latent * n_chr, latent)
        # decoder: shared Linear(22 * latent) - LayerNorm, then per chromosome 2 hidden layers -> logits
        w0 = ATAC_DECODER_WIDTH * int(latent)
        self.dec1 = nn.Sequential(nn.Linear(latent + n_batches, w0), nn.LayerNorm(w0, eps=LAYER_NORM_EPS))
        self.dec2 = nn.Sequential(nn.Linear(w0, h), _post(hs, dropout, activation))
        self.dec3 = nn.Sequential(ChromSplitLinear(hs, hs), _post(hs, dropout, activation))
        self.dec_out = ChromSplitLinear(hs, chrom_sizes)
        # encoder input weights (inverse document frequency of each peak), used only with
        # input_transform="idf"; set from the training cells by set_idf
        self.register_buffer("idf", torch.ones(n_peaks))

    def reset_parameters(self, scheme: str = "glorot") -> None:
        """As :meth:`_VAEBase.reset_parameters`; with ``glorot`` the layers that are one dense layer
        per chromosome in the authors' code get the fans of that layer: the first encoder layer
        (peaks of the chromosome + batch one-hot -> its units; here ``enc1`` + ``enc1_batch``) and
        the decoder's first per-chromosome layer (22 x latent -> its units; here one ``dec2``)."""
        super().reset_parameters(scheme)
        if scheme != "glorot":
            return
        hs = self.enc1.out_sizes
        for w, w_batch, w_dec, n_in, n_out in zip(self.enc1.weights, self.enc1_batch.weight.split(hs),
                                                  self.dec2[0].weight.split(hs), self.enc1.in_sizes, hs):
            glorot_(w, n_in + self.n_batches, n_out)
            glorot_(w_batch, n_in + self.n_batches, n_out)
            glorot_(w_dec, self.dec2[0].in_features, n_out)

    @torch.no_grad()
    def set_idf(self, X, rows=None) -> None:
        """idf = log(1 + n_cells / (1 + n_cells_with_peak)) over ``rows`` of the binarised CSR ``X``."""
        sub = X if rows is None else X[rows]
        df = np.bincount(sub.indices, minlength=self.n_peaks) if sp.issparse(sub) else (np.asarray(sub) > 0).sum(0)
        idf = np.log1p(sub.shape[0] / (1.0 + np.asarray(df, dtype=np.float64)))
        self.idf.copy_(torch.from_numpy((idf / idf.mean()).astype(np.float32)))

    def encode(self, y, b):
        x = y * self.idf if self.input_transform == "idf" else y
        h = self.enc1_post(self.enc1(x) + self.enc1_batch(b))
        h = self.enc3(self.enc2(h))
        # log-variance clipped at 15 from above only, as the authors' (their lower clip is -2e6)
        return self.enc_mu(h), self.enc_logvar(h).clamp(max=15.0)

    def decode_logits(self, z, b):
        h = self.dec3(self.dec2(self.dec1(torch.cat([z, b], dim=-1))))
        return self.dec_out(h)

    def recon_log_prob(self, y, z, b, size):
        """log p(y | z, b, depth factor) summed over peaks (per cell)."""
        logits = self.decode_logits(z, b)
        if self.depth_model == "linear":
            return bernoulli_linear_depth_log_prob_logits(y, logits, size.reshape(-1, 1)).sum(-1)
        return bernoulli_depth_log_prob_logits(y, logits, size.reshape(-1, 1)).sum(-1)

    def normalized(self, z, b):
        """Depth-normalised accessibility probabilities (depth factor 1)."""
        return torch.sigmoid(self.decode_logits(z, b))

    def depth_prob(self, p_norm, depth_factor):
        """Probability of a peak being open in a cell of the given depth factor (this VAE's depth model)."""
        return depth_prob(p_norm, depth_factor, self.depth_model)

    @staticmethod
    def raw_depth(X) -> np.ndarray:
        """Number of open (non-zero) peaks per cell."""
        return row_nnz(X)

    def size_covariate(self, X, depth_ref=None) -> np.ndarray:
        """Depth factor d = n_open_peaks / depth_ref (at least 1 / depth_ref)."""
        ref = self.depth_ref if depth_ref is None else depth_ref
        return (np.maximum(row_nnz(X), 1.0) / ref).astype(np.float32)


def build_vae(config: dict):
    cfg = dict(config)
    kind = cfg.pop("kind")
    if kind == "rna":
        return RNAVAE(**cfg)
    if kind == "atac":
        return ATACVAE(**cfg)
    raise ValueError(f"unknown VAE kind {kind!r}")


def features_digest(names) -> str:
    return hashlib.sha1("\n".join(map(str, names)).encode()).hexdigest()


def config_path(pt_path) -> Path:
    return Path(pt_path).with_suffix(".json")


def save_module(module: nn.Module, config: dict, pt_path, json_path=None) -> None:
    """Save ``state_dict`` (loadable with ``torch.load(weights_only=True)``) and a JSON config next to it."""
    sd = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    with atomic_path(pt_path) as tmp:
        torch.save(sd, tmp)
    write_json(config, json_path or config_path(pt_path))


def load_vae(pt_path, json_path=None, device="cpu"):
    """Rebuild a VAE from its JSON config and load its weights (``weights_only=True``); eval mode."""
    cfg = json.loads(Path(json_path or config_path(pt_path)).read_text())
    model = build_vae(cfg)
    model.load_state_dict(torch.load(pt_path, map_location=device, weights_only=True))
    return model.to(device).eval()
