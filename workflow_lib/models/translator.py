"""Polarbear's latent translators: one linear layer between the two VAEs' latent spaces.

The VAEs are frozen (parameters without gradients, always in eval mode: no dropout).
:class:`TranslationModel` wraps a translator and the frozen *target* VAE decoder; its loss is the
target modality's negative log-likelihood (ZINB for RNA, depth-aware Bernoulli for ATAC).
As in the authors' code, training batches may carry the source posterior's log-variance
(``batch['z_logvar']``): the translator is then trained on z sampled from q(z | source cell);
in eval mode (validation, prediction) it always reads the posterior mean.
"""

from __future__ import annotations

import torch
from torch import nn

from .vae import WEIGHT_INITS, check_choice, glorot_init_


class LatentTranslator(nn.Module):
    def __init__(self, latent_in: int, latent_out: int):
        super().__init__()
        self.linear = nn.Linear(latent_in, latent_out)

    def forward(self, z):
        return self.linear(z)

    def reset_parameters(self, scheme: str = "glorot") -> None:
        """``glorot``: Glorot-uniform weight and zero bias (the authors' ``tf.layers.Dense``);
        ``torch``: PyTorch's ``nn.Linear`` default, as constructed."""
        check_choice("weight init", scheme, WEIGHT_INITS)
        self.linear.reset_parameters()
        if scheme == "glorot":
            glorot_init_(self)

    def config(self) -> dict:
        return {"kind": "translator", "latent_in": self.linear.in_features, "latent_out": self.linear.out_features}


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
        (sampled with ``batch['z_logvar']`` in training mode when present)."""
        z = batch["z"]
        if self.training and "z_logvar" in batch:
            z = z + torch.exp(0.5 * batch["z_logvar"]) * torch.randn_like(z)
        z = self.translator(z)
        return -self.target.recon_log_prob(batch["x"], z, batch["b"], batch["size"])


def translation_loss(model: TranslationModel, batch, epoch=None) -> torch.Tensor:
    """loss_fn for :func:`workflow_lib.train.fit`: mean per-cell target NLL."""
    return model.nll(batch).mean()
