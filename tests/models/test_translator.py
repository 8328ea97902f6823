"""Polarbear's latent translators (workflow_lib.models.translator): a linear map between the two
latent spaces, trained through the frozen target VAE's decoder."""

import pytest
import torch

from workflow_lib.models.translator import LatentTranslator, TranslationModel, translation_loss
from workflow_lib.models.vae import RNAVAE


def _target_batch(n=6, latent=3, seed=0):
    torch.manual_seed(seed)
    vae = RNAVAE(10, 2, 4, hidden=8, dropout=0.5)
    x = torch.poisson(torch.full((n, 10), 2.0))
    b = torch.eye(2)[torch.arange(n) % 2]
    return vae, {"z": torch.randn(n, latent), "x": x, "b": b, "size": x.sum(1)}


def test_translator_is_one_linear_map_and_describes_itself():
    torch.manual_seed(0)
    tr = LatentTranslator(3, 5)
    z = torch.randn(4, 3)
    torch.testing.assert_close(tr(z), z @ tr.linear.weight.T + tr.linear.bias)
    assert tr.config() == {"kind": "translator", "latent_in": 3, "latent_out": 5}
    assert sum(p.numel() for p in tr.parameters()) == 3 * 5 + 5


def test_the_target_vae_is_frozen_and_stays_in_eval_mode():
    vae, batch = _target_batch()
    vae.train()
    model = TranslationModel(LatentTranslator(3, 4), vae)
    model.train()
    assert model.training and model.translator.training and not model.target.training   # no dropout in the VAE
    assert all(not p.requires_grad for p in model.target.parameters())
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    loss = translation_loss(model, batch)
    loss.backward()
    opt.step()
    assert all(p.grad is None for p in model.target.parameters())
    assert all(torch.equal(before[k], v) for k, v in vae.state_dict().items())
    assert model.translator.linear.weight.grad is not None


@torch.no_grad()
def test_loss_is_the_mean_target_nll_of_the_translated_latent():
    vae, batch = _target_batch()
    model = TranslationModel(LatentTranslator(3, 4), vae).eval()
    nll = model.nll(batch)
    expected = -vae.recon_log_prob(batch["x"], model.translator(batch["z"]), batch["b"], batch["size"])
    torch.testing.assert_close(nll, expected)
    torch.testing.assert_close(translation_loss(model, batch), expected.mean())


@torch.no_grad()
def test_posterior_sampling_only_in_training_mode():
    """With z_logvar in the batch, training samples z ~ q(z | source cell); eval reads the mean."""
    vae, batch = _target_batch()
    batch["z_logvar"] = torch.zeros_like(batch["z"])
    model = TranslationModel(LatentTranslator(3, 4), vae)
    model.eval()
    mean_nll = model.nll(batch)
    torch.testing.assert_close(model.nll(batch), mean_nll)                    # deterministic
    model.train()
    torch.manual_seed(1)
    a = model.nll(batch)
    torch.manual_seed(2)
    b = model.nll(batch)
    assert not torch.allclose(a, b) and not torch.allclose(a, mean_nll)
    batch["z_logvar"] = torch.full_like(batch["z"], -40.0)                    # no spread: the mean again
    torch.testing.assert_close(model.nll(batch), mean_nll, rtol=1e-5, atol=1e-5)
    assert mean_nll.shape == (6,)


def test_translator_glorot_init_and_torch_default():
    torch.manual_seed(0)
    tr = LatentTranslator(25, 10)
    tr.reset_parameters("glorot")  # the authors' tf.layers.Dense: Glorot-uniform, zero bias
    bound = (6 / (25 + 10)) ** 0.5
    assert 0.8 * bound <= float(tr.linear.weight.abs().max()) <= bound
    assert torch.count_nonzero(tr.linear.bias) == 0
    tr.reset_parameters("torch")  # nn.Linear's default: U(+-1/sqrt(fan_in)), bias too
    assert float(tr.linear.weight.abs().max()) <= 25 ** -0.5 and torch.count_nonzero(tr.linear.bias) > 0


def test_translator_dispersion_of_its_own_weighs_the_rna_loss():
    """The authors' ATAC->RNA translator trains a per-batch, per-gene ZINB dispersion of its own
    (``translator_yx_px_r_genebatch``, a dense layer of the ATAC batch one-hot), used in place of
    the frozen RNA VAE's theta; the VAE stays frozen."""
    vae, batch = _target_batch()
    batch["b_source"] = torch.eye(3)[torch.arange(6) % 3]        # ATAC batch categories of their own
    tr = LatentTranslator(3, 4, 3, 10)
    assert tr.config() == {"kind": "translator", "latent_in": 3, "latent_out": 4, "dispersion_batches": 3,
                           "dispersion_genes": 10, "dispersion_bias": False}
    tr.reset_parameters("glorot")                                 # Dense(10) of a 3-wide one-hot
    bound = (6 / (3 + 10)) ** 0.5
    assert 0.7 * bound <= float(tr.log_theta.abs().max()) <= bound
    tr.reset_parameters("torch")
    assert torch.count_nonzero(tr.log_theta) == 0                 # theta = 1, as the VAE's start
    with torch.no_grad():
        tr.log_theta.copy_(torch.linspace(-1, 2, 30).reshape(3, 10))
    model = TranslationModel(tr, vae).eval()
    with torch.no_grad():
        nll = model.nll(batch)
        z = tr(batch["z"])
        theta = torch.exp(batch["b_source"] @ tr.log_theta)
        torch.testing.assert_close(nll, -vae.recon_log_prob(batch["x"], z, batch["b"], batch["size"], theta=theta))
        own = -vae.recon_log_prob(batch["x"], z, batch["b"], batch["size"])  # the VAE's theta
        assert not torch.allclose(nll, own)
    model.train()
    translation_loss(model, batch).backward()
    assert tr.log_theta.grad is not None and torch.count_nonzero(tr.log_theta.grad) > 0
    assert all(p.grad is None for p in vae.parameters())
    with torch.no_grad():                                          # log theta clipped at 15, as the VAE's
        tr.log_theta.fill_(40.0)
        assert torch.isfinite(tr.theta(batch["b_source"])).all()
        assert float(tr.theta(batch["b_source"]).max()) == pytest.approx(float(torch.exp(torch.tensor(15.0))))


def test_translator_dispersion_needs_both_sizes():
    with pytest.raises(ValueError, match="both"):
        LatentTranslator(3, 4, 2, 0)


def test_translator_dispersion_bias_is_the_authors_dense_layer_bias(tmp_path):
    """dispersion_bias: log theta = b_atac @ log_theta + log_theta_bias (the bias of the authors'
    ``translator_yx_px_r_genebatch`` dense layer), 0 at the start, trained with the translator,
    saved and loaded through the model directory's translator loader; refused without a dispersion."""
    from workflow_lib.models.polarbear import PolarbearModel
    from workflow_lib.models.vae import save_module

    vae, batch = _target_batch()
    batch["b_source"] = torch.eye(3)[torch.arange(6) % 3]
    tr = LatentTranslator(3, 4, 3, 10, dispersion_bias=True)
    assert tr.config()["dispersion_bias"] is True
    tr.reset_parameters("glorot")
    assert torch.count_nonzero(tr.log_theta_bias) == 0 and torch.count_nonzero(tr.log_theta) > 0
    with torch.no_grad():
        tr.log_theta_bias.copy_(torch.linspace(-0.5, 0.5, 10))
        torch.testing.assert_close(tr.theta(batch["b_source"]),
                                   torch.exp(batch["b_source"] @ tr.log_theta + tr.log_theta_bias))
    model = TranslationModel(tr, vae).train()
    translation_loss(model, batch).backward()
    assert torch.count_nonzero(tr.log_theta_bias.grad) > 0
    # the bias sums what the batches' rows get: one one-hot per cell
    torch.testing.assert_close(tr.log_theta_bias.grad, tr.log_theta.grad.sum(0))
    save_module(tr, tr.config(), tmp_path / "t.pt")
    back = PolarbearModel._load_translator(tmp_path / "t.pt", "cpu")
    torch.testing.assert_close(back.log_theta_bias, tr.log_theta_bias)
    old = LatentTranslator(3, 4, 3, 10)   # written before the bias existed: no bias, loads as it was
    save_module(old, {k: v for k, v in old.config().items() if k != "dispersion_bias"}, tmp_path / "o.pt")
    assert PolarbearModel._load_translator(tmp_path / "o.pt", "cpu").log_theta_bias is None
    with pytest.raises(ValueError, match="dispersion_bias needs"):
        LatentTranslator(3, 4, dispersion_bias=True)
