"""Polarbear's latent translators: one linear layer between the two VAEs' latent spaces.

The VAEs are frozen (parameters without gradients, always in eval mode: no dropout).
:class:`TranslationModel` wraps a translator and the frozen *target* VAE decoder; its loss is the
target modality's negative log-likelihood (ZINB for RNA, depth-aware Bernoulli for ATAC).
As in the authors' code, training batches may carry the source posterior's log-variance
(``batch['z_logvar']``): the translator is then trained on z sampled from q(z | source cell);
in eval mode (validation, prediction) it always reads the posterior mean.

Dispersion of the ATAC -> RNA translation (config ``translator.dispersion``): in the authors'
code the translated RNA profile's ZINB has a dispersion of its own, ``translator_yx_px_r_genebatch``,
a dense layer of the ATAC batch one-hot trained with the translator (``LatentTranslator(...,
dispersion_batches, dispersion_genes, dispersion_bias)``: log theta = b_atac @ ``log_theta`` (+
``log_theta_bias``, the dense layer's bias), clipped at 15, as the VAE's); a translator without them uses the frozen RNA VAE's theta (``dispersion: vae``, our earlier
choice). It only weighs the training loss: predictions are the decoder's scale, which does not
depend on theta.
"""

from __future__ import annotations

import torch
from torch import nn

from .vae import WEIGHT_INITS, batch_theta, check_choice, glorot_init_, reset_log_theta_


TRANSLATOR_DISPERSIONS = ("translator", "vae")


class LatentTranslator(nn.Module):
    """A linear map of latent codes; with ``dispersion_batches`` and ``dispersion_genes`` it also
    holds the per-batch, per-gene log inverse dispersion of the translated RNA profiles (with
    ``dispersion_bias``, plus a per-gene bias, as the authors' dense layer)."""

    def __init__(self, latent_in: int, latent_out: int, dispersion_batches: int = 0, dispersion_genes: int = 0,
                 dispersion_bias: bool = False):
        super().__init__()
        self.linear = nn.Linear(latent_in, latent_out)
        if (dispersion_batches > 0) != (dispersion_genes > 0):
            raise ValueError("a translator dispersion needs both dispersion_batches and dispersion_genes")
        if dispersion_bias and dispersion_batches <= 0:
            raise ValueError("dispersion_bias needs a translator dispersion (dispersion_batches, dispersion_genes)")
        self.log_theta = (nn.Parameter(torch.zeros(int(dispersion_batches), int(dispersion_genes)))
                          if dispersion_batches > 0 else None)
        self.log_theta_bias = nn.Parameter(torch.zeros(int(dispersion_genes))) if dispersion_bias else None

    def forward(self, z):
        return self.linear(z)

    def reset_parameters(self, scheme: str = "glorot") -> None:
        """``glorot``: Glorot-uniform weight and zero bias (the authors' ``tf.layers.Dense``);
        ``torch``: PyTorch's ``nn.Linear`` default, as constructed."""
        check_choice("weight init", scheme, WEIGHT_INITS)
        self.linear.reset_parameters()
        if scheme == "glorot":
            glorot_init_(self)
        reset_log_theta_(self.log_theta, scheme, self.log_theta_bias)  # the authors' Dense(n_genes) of the batch one-hot

    def theta(self, b_source):
        """Inverse dispersion of the translated RNA profiles for source (ATAC) batch one-hots."""
        return batch_theta(b_source, self.log_theta, self.log_theta_bias)

    def config(self) -> dict:
        cfg = {"kind": "translator", "latent_in": self.linear.in_features, "latent_out": self.linear.out_features}
        if self.log_theta is not None:
            cfg |= {"dispersion_batches": int(self.log_theta.shape[0]), "dispersion_genes": int(self.log_theta.shape[1]),
                    "dispersion_bias": self.log_theta_bias is not None}
        return cfg


class TranslationModel(nn.Module):
    """Source latent mean -> translator -> frozen target decoder."""

    def __init__(self, translator: LatentTranslator, target_vae: nn.Module):
        super().__init__()
        self.translator = translator
        self.target = target_vae
        for p in self.target.parameters():
            p.requires_grad_(False)
        self.target.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        self.target.eval()  # frozen VAE: never dropout
        return self

    def nll(self, batch) -> torch.Tensor:
        """Per-cell NLL of the target profile ``batch['x']`` given the source latent ``batch['z']``
        (sampled with ``batch['z_logvar']`` in training mode when present). A translator with a
        dispersion of its own reads the source batch one-hot ``batch['b_source']``."""
        z = batch["z"]
        if self.training and "z_logvar" in batch:
            z = z + torch.exp(0.5 * batch["z_logvar"]) * torch.randn_like(z)
        z = self.translator(z)
        if self.translator.log_theta is None:  # the target's own likelihood (ATAC: no dispersion)
            return -self.target.recon_log_prob(batch["x"], z, batch["b"], batch["size"])
        return -self.target.recon_log_prob(batch["x"], z, batch["b"], batch["size"],
                                           theta=self.translator.theta(batch["b_source"]))


def translation_loss(model: TranslationModel, batch, epoch=None) -> torch.Tensor:
    """loss_fn for :func:`workflow_lib.train.fit`: mean per-cell target NLL."""
    return model.nll(batch).mean()
