"""Polarbear's two beta-VAEs (Zhang et al. 2022, Section 2.1).

RNA VAE (:class:`RNAVAE`)
    input  : raw counts x, transformed ``log1p(x)`` (documented choice: stabilises training; the
             likelihood is still on raw counts), concatenated with the batch one-hot b.
    encoder: 2 hidden layers (Linear-LayerNorm-ReLU-Dropout) of width
             ``round(0.5 * sqrt(n_genes * latent))`` -> mean and log-variance of z_x.
    decoder: [z_x, b] -> 2 hidden layers -> softmax scale s (depth-normalised expression, rows sum
             to 1: the "norm estimation"), zero-inflation logits; inverse dispersion theta is one
             parameter per gene per batch. ZINB(x; mu = s * l, theta_b, pi) with l = the cell's
             library size (sum of counts).
ATAC VAE (:class:`ATACVAE`)
    input  : binarised peaks y, weighted per peak by its inverse document frequency over the
             training cells (``y * idf``, TF-IDF style; a fixed buffer saved with the weights); the
             batch one-hot enters the first layer through its own dense weights (identical to
             concatenating b to the input with b connected to every block).
    encoder: 3 hidden layers; the first two are :class:`ChromSplitLinear` (within-chromosome), the
             third dense. Width of each layer ``round(0.5 * sqrt(n_peaks * latent))``, split over
             chromosomes proportionally to their number of peaks.
    decoder: [z_y, b] -> dense -> dense -> ChromSplit -> ChromSplit -> logits of the depth-normalised
             probability p_norm = sigmoid(logits). Success probability of a cell with depth factor
             d = n_open_peaks / depth_ref (depth_ref = mean number of open peaks of the cells the VAE
             was trained on) is p = 1 - (1 - p_norm) ** d; loss = binary cross-entropy.
Loss of both: reconstruction NLL (summed over features) + beta * KL(q(z|.) || N(0, I)), averaged over
cells. In training z is sampled (reparameterisation); in eval mode z = mean (deterministic).
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

from ..data import row_nnz, row_sums
from ..fileutils import atomic_path, write_json
from .chromsplit import ChromSplitLinear, proportional_sizes
from .distributions import bernoulli_depth_log_prob_logits, kl_standard_normal, zinb_log_prob


def hidden_width(n_in: int, latent: int) -> int:
    """Half the geometric mean of the input and latent dimensions (at least 2)."""
    return max(2, int(round(0.5 * math.sqrt(n_in * latent))))


ATAC_HIDDEN_RULES = ("total", "per_chromosome")


def atac_block_widths(chrom_sizes: Sequence[int], latent: int, rule: str = "total",
                      hidden: int | None = None) -> list[int]:
    """Hidden units per chromosome block of the ATAC VAE's within-chromosome layers.

    ``total`` (the paper's text): hidden = half the geometric mean of ALL peaks and the latent
    size, shared over chromosomes in proportion to their peaks (1,174 units at 220k peaks,
    latent 25). ``per_chromosome`` (the authors' code): each chromosome gets half the geometric
    mean of ITS peaks and the latent size (~5,100 units at 220k peaks, ~4x the parameters).
    """
    if rule == "total":
        return proportional_sizes(hidden or hidden_width(sum(chrom_sizes), latent), chrom_sizes)
    if rule == "per_chromosome":
        return [hidden_width(int(n), latent) for n in chrom_sizes]
    raise ValueError(f"atac hidden rule must be one of {ATAC_HIDDEN_RULES}, not {rule!r}")


def _block(n_in, n_out, dropout):
    return nn.Sequential(nn.Linear(n_in, n_out), nn.LayerNorm(n_out), nn.ReLU(), nn.Dropout(dropout))


def _post(n_out, dropout):
    return nn.Sequential(nn.LayerNorm(n_out), nn.ReLU(), nn.Dropout(dropout))


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


class RNAVAE(_VAEBase):
    kind = "rna"

    def __init__(self, n_genes: int, n_batches: int, latent: int, hidden: int | None = None,
                 dropout: float = 0.1, **meta):
        super().__init__()
        hidden = hidden or hidden_width(n_genes, latent)
        self._config = dict(kind=self.kind, n_genes=int(n_genes), n_batches=int(n_batches), latent=int(latent),
                            hidden=int(hidden), dropout=float(dropout), **meta)
        self.n_genes, self.n_batches, self.latent = n_genes, n_batches, latent
        self.encoder = nn.Sequential(_block(n_genes + n_batches, hidden, dropout), _block(hidden, hidden, dropout))
        self.enc_mu = nn.Linear(hidden, latent)
        self.enc_logvar = nn.Linear(hidden, latent)
        self.decoder = nn.Sequential(_block(latent + n_batches, hidden, dropout), _block(hidden, hidden, dropout))
        self.dec_scale = nn.Linear(hidden, n_genes)
        self.dec_dropout = nn.Linear(hidden, n_genes)
        self.log_theta = nn.Parameter(torch.zeros(n_batches, n_genes))

    def encode(self, x, b):
        h = self.encoder(torch.cat([torch.log1p(x), b], dim=-1))
        return self.enc_mu(h), self.enc_logvar(h).clamp(-15.0, 15.0)

    def decode(self, z, b):
        """(scale rows summing to 1, zero-inflation logits, theta)."""
        h = self.decoder(torch.cat([z, b], dim=-1))
        scale = torch.softmax(self.dec_scale(h), dim=-1)
        theta = torch.exp(b @ self.log_theta)
        return scale, self.dec_dropout(h), theta

    def recon_log_prob(self, x, z, b, size):
        """log p(x | z, b, library size) summed over genes (per cell)."""
        scale, zi, theta = self.decode(z, b)
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
                 hidden: int | None = None, dropout: float = 0.1, depth_ref: float = 1.0,
                 hidden_rule: str = "total", **meta):
        super().__init__()
        chrom_sizes = [int(c) for c in chrom_sizes]
        if sum(chrom_sizes) != n_peaks:
            raise ValueError(f"chromosome block sizes sum to {sum(chrom_sizes)}, expected {n_peaks} peaks")
        hs = atac_block_widths(chrom_sizes, latent, hidden_rule, hidden if hidden_rule == "total" else None)
        hidden = sum(hs) if hidden_rule == "per_chromosome" else (hidden or hidden_width(n_peaks, latent))
        h = sum(hs)
        self._config = dict(kind=self.kind, n_peaks=int(n_peaks), n_batches=int(n_batches), latent=int(latent),
                            chrom_sizes=chrom_sizes, hidden=int(hidden), dropout=float(dropout),
                            depth_ref=float(depth_ref), hidden_rule=str(hidden_rule), **meta)
        self.n_peaks, self.n_batches, self.latent = n_peaks, n_batches, latent
        self.depth_ref = float(depth_ref)
        # encoder: chrom-split, chrom-split, dense
        self.enc1 = ChromSplitLinear(chrom_sizes, hs)
        self.enc1_batch = nn.Linear(n_batches, h, bias=False)
        self.enc1_post = _post(h, dropout)
        self.enc2 = nn.Sequential(ChromSplitLinear(hs, hs), _post(h, dropout))
        self.enc3 = _block(h, h, dropout)
        self.enc_mu = nn.Linear(h, latent)
        self.enc_logvar = nn.Linear(h, latent)
        # decoder: dense, dense, chrom-split, chrom-split (-> logits)
        self.dec1 = _block(latent + n_batches, h, dropout)
        self.dec2 = _block(h, h, dropout)
        self.dec3 = nn.Sequential(ChromSplitLinear(hs, hs), _post(h, dropout))
        self.dec_out = ChromSplitLinear(hs, chrom_sizes)
        # encoder input weights (inverse document frequency of each peak; set from the training
        # cells by set_idf, ones by default): y * idf, as in TF-IDF/LSI, emphasises rare peaks
        self.register_buffer("idf", torch.ones(n_peaks))

    @torch.no_grad()
    def set_idf(self, X, rows=None) -> None:
        """idf = log(1 + n_cells / (1 + n_cells_with_peak)) over ``rows`` of the binarised CSR ``X``."""
        sub = X if rows is None else X[rows]
        df = np.bincount(sub.indices, minlength=self.n_peaks) if sp.isspmatrix_csr(sub) or sp.issparse(sub) \
            else (np.asarray(sub) > 0).sum(0)
        idf = np.log1p(sub.shape[0] / (1.0 + np.asarray(df, dtype=np.float64)))
        self.idf.copy_(torch.from_numpy((idf / idf.mean()).astype(np.float32)))

    def encode(self, y, b):
        h = self.enc1_post(self.enc1(y * self.idf) + self.enc1_batch(b))
        h = self.enc3(self.enc2(h))
        return self.enc_mu(h), self.enc_logvar(h).clamp(-15.0, 15.0)

    def decode_logits(self, z, b):
        h = self.dec3(self.dec2(self.dec1(torch.cat([z, b], dim=-1))))
        return self.dec_out(h)

    def recon_log_prob(self, y, z, b, size):
        """log p(y | z, b, depth factor) summed over peaks (per cell)."""
        logits = self.decode_logits(z, b)
        return bernoulli_depth_log_prob_logits(y, logits, size.reshape(-1, 1)).sum(-1)

    def normalized(self, z, b):
        """Depth-normalised accessibility probabilities (depth factor 1)."""
        return torch.sigmoid(self.decode_logits(z, b))

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
