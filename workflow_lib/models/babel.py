"""BABEL baseline (Wu et al., PNAS 2021), implemented independently from its published description.

Two deterministic autoencoders, one per modality, share ONE latent space. Training runs all four
paths on every co-assay minibatch -- RNA->RNA, ATAC->ATAC, RNA->ATAC, ATAC->RNA -- so an RNA cell
and its ATAC profile must map to the same code to be decoded well by both decoders.

* RNA encoder: ``log1p(counts / library * size_scale)`` -> Linear(G, hidden) -> PReLU ->
  Linear(hidden, latent).
* RNA decoder: latent -> Linear(latent, hidden) -> PReLU -> Linear(hidden, G) -> softmax gives the
  expression frequencies ``rho`` (the "norm estimation"); the NB mean is ``rho * library`` of the
  target cell and the inverse dispersion ``theta`` is a learned per-gene parameter.
* ATAC encoder: per-chromosome blocks -- :class:`ChromSplitLinear` (peaks of chromosome c ->
  ``chrom_hidden[0]`` units) -> PReLU -> ChromSplitLinear (-> ``chrom_hidden[1]`` units per
  chromosome) -> PReLU -> concatenation -> Linear(-> latent).
* ATAC decoder: the mirror image (latent -> Linear -> per-chromosome blocks -> peak logits),
  probabilities = sigmoid(logits); loss = binary cross-entropy on binarised peaks.
* Loss per minibatch (means over cells and features):
  ``NLL_NB(rna|z_rna) + NLL_NB(rna|z_atac) + weight * (BCE(atac|z_atac) + BCE(atac|z_rna))``;
  ``weight`` balances the ATAC loss (BABEL's default 1.33). No KL term.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .chromsplit import ChromSplitLinear
from .distributions import bernoulli_log_prob, nb_log_prob


class BabelModel(nn.Module):
    def __init__(self, n_genes: int, atac_chrom_sizes: Sequence[int], n_latent: int = 16,
                 rna_hidden: int = 64, chrom_hidden: Sequence[int] = (32, 16), size_scale: float = 1e4):
        super().__init__()
        self.n_genes = int(n_genes)
        self.atac_chrom_sizes = [int(s) for s in atac_chrom_sizes]
        self.n_peaks = sum(self.atac_chrom_sizes)
        self.n_latent = int(n_latent)
        n_chrom = len(self.atac_chrom_sizes)
        h1, h2 = (int(h) for h in chrom_hidden)
        self.register_buffer("size_scale", torch.tensor(float(size_scale)))

        self.rna_encoder = nn.Sequential(
            nn.Linear(self.n_genes, rna_hidden), nn.PReLU(), nn.Linear(rna_hidden, self.n_latent))
        self.rna_decoder = nn.Sequential(
            nn.Linear(self.n_latent, rna_hidden), nn.PReLU(), nn.Linear(rna_hidden, self.n_genes))
        self.rna_log_theta = nn.Parameter(torch.zeros(self.n_genes))

        self.atac_encoder = nn.Sequential(
            ChromSplitLinear(self.atac_chrom_sizes, [h1] * n_chrom), nn.PReLU(),
            ChromSplitLinear([h1] * n_chrom, [h2] * n_chrom), nn.PReLU(),
            nn.Linear(h2 * n_chrom, self.n_latent))
        self.atac_decoder = nn.Sequential(
            nn.Linear(self.n_latent, h2 * n_chrom), nn.PReLU(),
            ChromSplitLinear([h2] * n_chrom, [h1] * n_chrom), nn.PReLU(),
            ChromSplitLinear([h1] * n_chrom, self.atac_chrom_sizes))

    # --- encoders / decoders -----------------------------------------------------------------
    def encode_rna(self, x: torch.Tensor) -> torch.Tensor:
        lib = x.sum(dim=1, keepdim=True).clamp_min(1.0)
        return self.rna_encoder(torch.log1p(x / lib * self.size_scale))

    def encode_atac(self, y: torch.Tensor) -> torch.Tensor:
        return self.atac_encoder(y)

    def rna_frequencies(self, z: torch.Tensor) -> torch.Tensor:
        """Decoded expression frequencies (rows sum to 1)."""
        return torch.softmax(self.rna_decoder(z), dim=-1)

    def atac_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.atac_decoder(z)

    def atac_probs(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.atac_logits(z))

    @property
    def theta(self) -> torch.Tensor:
        return torch.exp(self.rna_log_theta)

    # --- losses ------------------------------------------------------------------------------
    def rna_nll(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Per-cell mean (over genes) NB negative log-likelihood of counts x given code z."""
        lib = x.sum(dim=1, keepdim=True)
        mu = self.rna_frequencies(z) * lib
        return -nb_log_prob(x, mu, self.theta).mean(dim=1)

    def atac_bce(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Per-cell mean (over peaks) binary cross-entropy of accessibility y given code z."""
        return -bernoulli_log_prob(y, self.atac_probs(z)).mean(dim=1)

    def path_losses(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-cell losses of the four paths: rna_rna, atac_rna (NLL), atac_atac, rna_atac (BCE)."""
        z_r, z_a = self.encode_rna(x), self.encode_atac(y)
        return {
            "rna_rna": self.rna_nll(x, z_r), "atac_rna": self.rna_nll(x, z_a),
            "atac_atac": self.atac_bce(y, z_a), "rna_atac": self.atac_bce(y, z_r),
        }

    def loss(self, x: torch.Tensor, y: torch.Tensor, weight: float) -> torch.Tensor:
        p = self.path_losses(x, y)
        return (p["rna_rna"] + p["atac_rna"] + weight * (p["atac_atac"] + p["rna_atac"])).mean()
