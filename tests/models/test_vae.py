"""The beta-VAEs (workflow_lib.models.vae): tiny RNA / ATAC VAEs overfit, deterministic inference,
saving and reloading with weights_only, the ATAC hidden-width rules."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from toy_counts import rna_vae_setup
from workflow_lib.data import SparseCellLoader
from workflow_lib.models.vae import ATACVAE, RNAVAE, load_vae, save_module
from workflow_lib.polarbear import vae_loss_fn
from workflow_lib.train import FitConfig, fit

torch.set_num_threads(1)


def test_rna_vae_overfits_tiny_batch(tmp_path):
    model, X, cov, rows = rna_vae_setup()
    tl = SparseCellLoader(X, rows, 64, True, 0, cov)
    vl = SparseCellLoader(X, rows, 64, False, 0, cov)
    loss = vae_loss_fn(0.0, 0)
    with torch.no_grad():
        start = float(loss(model.eval(), next(iter(vl)), None))
    cfg = FitConfig(batch_size=64, learning_rate=2e-2, max_epochs=150, patience=150)
    res = fit(model, loss, tl, vl, cfg, tmp_path / "c.ckpt")
    assert res["best_val_loss"] < 0.7 * start
    # deterministic inference
    b = next(iter(vl))
    torch.testing.assert_close(model.encode(b["x"], b["b"])[0], model.encode(b["x"], b["b"])[0])
    # saving / loading with weights_only
    save_module(model, model.config(), tmp_path / "m.pt")
    m2 = load_vae(tmp_path / "m.pt")
    torch.testing.assert_close(m2.encode(b["x"], b["b"])[0], model.encode(b["x"], b["b"])[0])


def test_atac_vae_overfits_tiny_batch(tmp_path):
    rng = np.random.default_rng(1)
    types = rng.integers(0, 2, 48)
    P = np.where(rng.random((2, 60)) < 0.3, 0.8, 0.02)
    Y = sp.csr_matrix((rng.random((48, 60)) < P[types]).astype(np.float32))
    torch.manual_seed(0)
    model = ATACVAE(60, 3, 3, [25, 20, 15], hidden=12, dropout=0.0,
                    depth_ref=float(np.diff(Y.indptr).mean()))
    cov = {"b": np.eye(3, dtype=np.float32)[types], "size": model.size_covariate(Y)}
    rows = np.arange(48)
    tl = SparseCellLoader(Y, rows, 48, True, 0, cov)
    vl = SparseCellLoader(Y, rows, 48, False, 0, cov)
    loss = vae_loss_fn(0.0, 0)
    with torch.no_grad():
        start = float(loss(model.eval(), next(iter(vl)), None))
    res = fit(model, loss, tl, vl, FitConfig(48, 2e-2, 60, 60), None)
    assert res["best_val_loss"] < 0.6 * start


def test_atac_hidden_rules_widths_and_reload(tmp_path):
    """total: half the geometric mean of ALL peaks and the latent, split by peak share;
    per_chromosome: that rule per chromosome (authors' code). Saved configs rebuild the same net."""
    from workflow_lib.models.vae import atac_block_widths, hidden_width

    sizes, latent = [400, 100, 25], 10
    total = atac_block_widths(sizes, latent, "total")
    assert sum(total) == hidden_width(525, latent) == 36 and total[0] > total[1] > total[2]
    per = atac_block_widths(sizes, latent, "per_chromosome", n_batches=2)
    assert per == [31, 15, 8]  # int(sqrt((n + n_batches) * 10) / 2), as the authors' code
    with pytest.raises(ValueError, match="per_chromosome"):
        atac_block_widths(sizes, latent, "dense")
    model = ATACVAE(525, 2, latent, sizes, dropout=0.0)  # per_chromosome is the default
    assert model.enc1.out_sizes == per and model.dec_out.in_sizes == per
    assert model.config()["hidden_rule"] == "per_chromosome" and model.config()["hidden"] == 54
    n_total = sum(p.numel() for p in ATACVAE(525, 2, latent, sizes, dropout=0.0, hidden_rule="total").parameters())
    n_per = sum(p.numel() for p in model.parameters())
    assert n_per > n_total
    save_module(model, model.config(), tmp_path / "a.pt")
    back = load_vae(tmp_path / "a.pt")
    assert sum(p.numel() for p in back.parameters()) == n_per
    y = (torch.rand(4, 525) < 0.2).float()
    b = torch.eye(2)[[0, 1, 0, 1]]
    model.eval()
    back.eval()
    torch.testing.assert_close(back.encode(y, b)[0], model.encode(y, b)[0])


def test_rna_encoder_inputs():
    """counts as given; log1p(counts); log1p_norm: log1p of counts scaled to the library size
    ``norm_target``, so a cell's input does not change when all its counts are multiplied (depth)."""
    from workflow_lib.models.vae import RNAVAE

    x = torch.tensor([[0.0, 1.0, 3.0, 6.0], [2.0, 0.0, 0.0, 0.0]])
    b = torch.ones(2, 1)
    inputs = {t: RNAVAE(4, 1, 2, input_transform=t, norm_target=5.0).encoder_input(x)
              for t in ("counts", "log1p", "log1p_norm")}
    torch.testing.assert_close(inputs["counts"], x)
    torch.testing.assert_close(inputs["log1p"], torch.log1p(x))
    torch.testing.assert_close(inputs["log1p_norm"], torch.log1p(x / x.sum(1, keepdim=True) * 5.0))
    norm = RNAVAE(4, 1, 2, input_transform="log1p_norm", norm_target=5.0).eval()
    torch.testing.assert_close(norm.encode(3 * x, b)[0], norm.encode(x, b)[0])
    assert not torch.allclose(RNAVAE(4, 1, 2, input_transform="log1p").encoder_input(3 * x), inputs["log1p"])
    with pytest.raises(ValueError, match="input_transform"):
        RNAVAE(4, 1, 2, input_transform="cpm")
    with pytest.raises(ValueError, match="norm_target"):
        RNAVAE(4, 1, 2, input_transform="log1p_norm", norm_target=0)


def test_log1p_norm_target_is_the_median_library_size_of_the_training_cells(tmp_path):
    """pretrain_vae stores the median library size of the VAE's TRAINING cells (co-assay train +
    single-assay) as ``norm_target`` in the model config, and a reload uses it."""
    from workflow_lib.polarbear import median_library_size

    X = sp.csr_matrix(np.array([[1, 0, 2], [4, 4, 4], [0, 0, 0], [9, 9, 9]], dtype=np.float32))
    assert median_library_size(X, np.array([0, 1, 3])) == 12.0
    assert median_library_size(X, np.array([2])) == 1.0   # never 0
    from workflow_lib.models.vae import RNAVAE
    m = RNAVAE(3, 1, 2, input_transform="log1p_norm", norm_target=12.0)
    save_module(m, m.config(), tmp_path / "m.pt")
    assert load_vae(tmp_path / "m.pt").norm_target == 12.0


def _bound(fan_in, fan_out):
    return float(np.sqrt(6.0 / (fan_in + fan_out)))


def _within(w, bound):
    """Weights uniform on [-bound, bound]: none outside, the largest close to the bound."""
    a = float(w.detach().abs().max())
    return a <= bound * (1 + 1e-6) and a >= 0.8 * bound


def test_glorot_init_is_tensorflows_dense_init_with_the_authors_fans():
    """reset_parameters('glorot'): the authors' tf.layers.Dense initialisation (Glorot-uniform
    weights, zero biases), with the fans of the authors' per-chromosome dense layers."""
    torch.manual_seed(0)
    rna = RNAVAE(300, 2, 10)
    rna.reset_parameters("glorot")
    for m in rna.modules():
        if isinstance(m, torch.nn.Linear):
            assert _within(m.weight, _bound(m.in_features, m.out_features))
            assert torch.count_nonzero(m.bias) == 0
        if isinstance(m, torch.nn.LayerNorm):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
            assert m.eps == 1e-12  # tf.contrib.layers.layer_norm's variance epsilon
    # the dispersion: the authors' Dense(n_genes) of the batch one-hot (px_r_genebatch_x)
    assert _within(rna.log_theta, _bound(2, 300))
    rna.reset_parameters("torch")
    assert torch.all(rna.log_theta == 0)

    chroms, nb = [400, 900, 250], 2
    atac = ATACVAE(sum(chroms), nb, 10, chroms)
    atac.reset_parameters("glorot")
    hs, starts = atac.enc1.out_sizes, np.cumsum([0] + atac.enc1.out_sizes)
    for c, n in enumerate(chroms):
        rows = slice(int(starts[c]), int(starts[c + 1]))
        # first encoder layer: one dense layer of [peaks of the chromosome, batch one-hot] -> h_c
        b = _bound(n + nb, hs[c])
        assert _within(atac.enc1.weights[c], b) and _within(atac.enc1_batch.weight[rows], b)
        # decoder: per chromosome Dense(22 x latent -> h_c): fan_out h_c, not the layer's sum
        b = _bound(atac.dec2[0].in_features, hs[c])
        assert _within(atac.dec2[0].weight[rows], b)
        assert float(atac.dec2[0].weight[rows].abs().max()) > _bound(atac.dec2[0].in_features, sum(hs))
        for layer in (atac.enc2[0], atac.enc3[0], atac.dec3[0], atac.dec_out):
            w = layer.weights[c]
            assert _within(w, _bound(w.shape[1], w.shape[0]))
    for m in atac.modules():
        if getattr(m, "bias", None) is not None and not isinstance(m, torch.nn.LayerNorm):
            assert torch.count_nonzero(m.bias) == 0, m


def test_torch_init_keeps_pytorchs_defaults_and_unknown_schemes_are_refused():
    torch.manual_seed(0)
    rna = RNAVAE(300, 2, 10)
    rna.reset_parameters("torch")
    lin = rna.dec_scale
    assert _within(lin.weight, 1 / np.sqrt(lin.in_features))  # kaiming_uniform(a=sqrt(5)) bound
    assert torch.count_nonzero(lin.bias) > 0
    with pytest.raises(ValueError, match="weight init"):
        rna.reset_parameters("xavier")


def test_rna_dispersion_bias_is_the_authors_dense_layer_bias(tmp_path):
    """dispersion_bias: theta = exp(b @ log_theta + log_theta_bias), the authors' px_r_genebatch_x
    dense layer with its bias: 0 at the start, one value per gene shared by all batches, trained
    (its gradient is the sum of the batch rows'), saved and reloaded; a config written without the
    key loads without a bias, as before."""
    torch.manual_seed(0)
    rna = RNAVAE(30, 2, 4, dispersion_bias=True)
    rna.reset_parameters("glorot")
    assert rna.config()["dispersion_bias"] is True and torch.count_nonzero(rna.log_theta_bias) == 0
    b = torch.eye(2)[torch.arange(6) % 2]
    x = torch.poisson(torch.full((6, 30), 3.0))
    with torch.no_grad():
        rna.log_theta_bias.copy_(torch.linspace(-1, 1, 30))
        z = torch.randn(6, 4)
        torch.testing.assert_close(rna.decode(z, b)[2], torch.exp(b @ rna.log_theta + rna.log_theta_bias))
    rna.train()
    nll, kl = rna.loss_terms(x, b, x.sum(1))
    nll.mean().backward()
    torch.testing.assert_close(rna.log_theta_bias.grad, rna.log_theta.grad.sum(0))
    assert torch.count_nonzero(rna.log_theta_bias.grad) > 0
    save_module(rna, rna.config(), tmp_path / "r.pt")
    back = load_vae(tmp_path / "r.pt")
    torch.testing.assert_close(back.log_theta_bias, rna.log_theta_bias)
    old = RNAVAE(30, 2, 4)
    assert old.log_theta_bias is None and old.config()["dispersion_bias"] is False
    save_module(old, {k: v for k, v in old.config().items() if k != "dispersion_bias"}, tmp_path / "o.pt")
    assert load_vae(tmp_path / "o.pt").log_theta_bias is None
