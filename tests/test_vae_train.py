"""Training loop: tiny models overfit, resumed training equals uninterrupted training, loader streams rows."""

import logging

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from workflow_lib.data import SparseCellLoader, batch_onehot
from workflow_lib.models.vae import ATACVAE, RNAVAE, load_vae, save_module
from workflow_lib.polarbear import vae_loss_fn
from workflow_lib.train import FitConfig, fit, kl_weight

torch.set_num_threads(1)


def _counts(n=64, g=30, seed=0):
    rng = np.random.default_rng(seed)
    types = rng.integers(0, 3, n)
    prof = rng.gamma(0.5, 2.0, (3, g))
    X = rng.poisson(prof[types] * rng.uniform(0.5, 2.0, (n, 1)))
    return sp.csr_matrix(X.astype(np.float32)), types


def test_batch_onehot_and_loader():
    oh = batch_onehot(pd.Series(pd.Categorical(["b", "a", "b"], categories=["a", "b", "c"])))
    np.testing.assert_array_equal(oh, [[0, 1, 0], [1, 0, 0], [0, 1, 0]])
    X, _ = _counts(10, 5)
    rows = np.array([7, 2, 5, 9, 0])
    cov = {"c": np.arange(10) * 10.0}
    ld = SparseCellLoader(X, rows, 2, shuffle=True, seed=3, covariates=cov, binarize=True)
    assert len(ld) == 3
    seen = []
    for b in ld:
        i = b["idx"].numpy()
        np.testing.assert_array_equal(b["x"].numpy(), (X[i].toarray() > 0).astype(np.float32))
        np.testing.assert_array_equal(b["c"].numpy(), i * 10.0)
        seen += i.tolist()
    assert sorted(seen) == sorted(rows.tolist())
    ld.set_epoch(0)
    first = np.concatenate([b["idx"].numpy() for b in ld])
    ld.set_epoch(0)
    np.testing.assert_array_equal(first, np.concatenate([b["idx"].numpy() for b in ld]))


def test_kl_warmup():
    """The authors' schedule: KL-free first epoch, linear to beta over the warm-up, after a KL-free start."""
    assert kl_weight(2.0, 0, 4) == 0.0 and kl_weight(2.0, 1, 4) == 0.5 and kl_weight(2.0, 4, 4) == 2.0
    assert kl_weight(2.0, 9, 4) == 2.0 and kl_weight(2.0, None, 4) == 2.0 and kl_weight(2.0, 0, 0) == 2.0
    assert kl_weight(1.0, 2, 4, start_epochs=3) == 0.0 and kl_weight(1.0, 5, 4, start_epochs=3) == 0.5


def _rna_setup(seed=0, dropout=0.0):
    X, _ = _counts()
    oh = np.eye(2, dtype=np.float32)[np.arange(X.shape[0]) % 2]
    size = RNAVAE.size_covariate(X)
    cov = {"b": oh, "size": size}
    torch.manual_seed(seed)
    model = RNAVAE(X.shape[1], 2, 4, hidden=16, dropout=dropout)
    rows = np.arange(X.shape[0])
    return model, X, cov, rows


def test_rna_vae_overfits_tiny_batch(tmp_path):
    model, X, cov, rows = _rna_setup()
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


class Boom(RuntimeError):
    pass


def test_resume_equals_uninterrupted(tmp_path):
    cfg = FitConfig(batch_size=16, learning_rate=5e-3, max_epochs=6, patience=100, seed=1, kl_warmup_epochs=3)
    loss = vae_loss_fn(1.0, cfg.kl_warmup_epochs)

    def run(ckpt, kill_at=None):
        model, X, cov, rows = _rna_setup(seed=5, dropout=0.2)
        tl = SparseCellLoader(X, rows[:48], 16, True, 1, cov)
        vl = SparseCellLoader(X, rows[48:], 16, False, 1, cov)

        def lf(m, b, e):
            if kill_at is not None and e == kill_at:
                raise Boom()
            return loss(m, b, e)
        return model, fit(model, lf, tl, vl, cfg, ckpt)

    ref_model, ref = run(tmp_path / "ref.ckpt")
    with pytest.raises(Boom):
        run(tmp_path / "k.ckpt", kill_at=3)
    assert (tmp_path / "k.ckpt").exists()
    model, res = run(tmp_path / "k.ckpt")
    assert res["history"] == ref["history"] and res["best_epoch"] == ref["best_epoch"]
    for (k, a), (_, b) in zip(ref_model.state_dict().items(), model.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)
    # a checkpoint written for another configuration is not resumed
    cfg2 = FitConfig(batch_size=16, learning_rate=1e-3, max_epochs=2, patience=100, seed=1)
    m3, X, cov, rows = _rna_setup(seed=5, dropout=0.2)
    r3 = fit(m3, loss, SparseCellLoader(X, rows[:48], 16, True, 1, cov),
             SparseCellLoader(X, rows[48:], 16, False, 1, cov), cfg2, tmp_path / "k.ckpt")
    assert r3["epochs_run"] == 2


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


class _PlantedCode:
    """Pickles as a call to ``open(path, 'w')``: loading it with pickle would create the file."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_checkpoint_with_pickled_code_is_not_executed(tmp_path, caplog):
    """Checkpoints are read with torch.load(weights_only=True): a planted pickle does not run, the
    checkpoint is ignored with a warning and training starts over."""
    marker = tmp_path / "code_ran"
    ckpt = tmp_path / "vae.ckpt"
    torch.save({"key": _PlantedCode(marker), "model": {}}, ckpt)
    model, X, cov, rows = _rna_setup()
    cfg = FitConfig(batch_size=32, learning_rate=1e-3, max_epochs=2, patience=5)
    log = logging.getLogger("test_checkpoint_with_pickled_code")  # propagates to caplog
    with caplog.at_level("WARNING"):
        res = fit(model, vae_loss_fn(0.0, 0), SparseCellLoader(X, rows, 32, True, 0, cov),
                  SparseCellLoader(X, rows, 32, False, 0, cov), cfg, ckpt, log)
    assert not marker.exists()
    assert "ignoring unreadable checkpoint" in caplog.text
    assert res["epochs_run"] == 2 and res["stop_reason"] == "epoch_cap" and not res["converged"]
    # the checkpoint written in its place is plain tensors + containers: weights_only loads it
    assert torch.load(ckpt, weights_only=True)["epoch"] == 1


def test_fit_records_why_it_stopped_and_waits_for_min_steps(tmp_path):
    """stop_reason/converged say whether early stopping or the epoch cap ended training; no epoch
    before min_steps optimiser steps can be the best one."""
    model, X, cov, rows = _rna_setup()
    tl = SparseCellLoader(X, rows, 16, True, 0, cov)   # 4 steps per epoch
    vl = SparseCellLoader(X, rows, 64, False, 0, cov)
    # a validation loss that only gets worse: without min_steps epoch 0 would be restored
    calls = {"n": 0}

    def worsening(m, b, e):
        calls["n"] += 1
        return torch.tensor(float(calls["n"]))
    res = fit(model, vae_loss_fn(0.0, 0), tl, vl, FitConfig(16, 1e-3, 50, 3, min_steps=20), None,
              val_fn=worsening)
    assert res["stop_reason"] == "early_stopping" and res["converged"]
    assert res["best_epoch"] == 4 and res["history"][4]["steps"] == 20   # first epoch with >= 20 steps
    assert res["epochs_run"] == 8                                         # + patience 3
    res2 = fit(model, vae_loss_fn(0.0, 0), tl, vl, FitConfig(16, 1e-3, 3, 10), None)
    assert res2["stop_reason"] == "epoch_cap" and not res2["converged"] and res2["max_epochs"] == 3
