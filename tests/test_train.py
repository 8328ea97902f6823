"""Training loop (workflow_lib.train): KL warm-up, resumed training equals uninterrupted training,
why training stopped, and the optional extras used by BABEL."""

import logging

import pytest
import torch

from toy_counts import rna_vae_setup
from workflow_lib.data import SparseCellLoader
from workflow_lib.polarbear import vae_loss_fn
from workflow_lib.train import FitConfig, fit, kl_weight

torch.set_num_threads(1)


def test_kl_warmup():
    """The authors' schedule: KL-free first epoch, linear to beta over the warm-up, after a KL-free start."""
    assert kl_weight(2.0, 0, 4) == 0.0 and kl_weight(2.0, 1, 4) == 0.5 and kl_weight(2.0, 4, 4) == 2.0
    assert kl_weight(2.0, 9, 4) == 2.0 and kl_weight(2.0, None, 4) == 2.0 and kl_weight(2.0, 0, 0) == 2.0
    assert kl_weight(1.0, 2, 4, start_epochs=3) == 0.0 and kl_weight(1.0, 5, 4, start_epochs=3) == 0.5


class Boom(RuntimeError):
    pass


def test_resume_equals_uninterrupted(tmp_path):
    cfg = FitConfig(batch_size=16, learning_rate=5e-3, max_epochs=6, patience=100, seed=1, kl_warmup_epochs=3)
    loss = vae_loss_fn(1.0, cfg.kl_warmup_epochs)

    def run(ckpt, kill_at=None, every=0):
        model, X, cov, rows = rna_vae_setup(seed=5, dropout=0.2)
        tl = SparseCellLoader(X, rows[:48], 16, True, 1, cov)
        vl = SparseCellLoader(X, rows[48:], 16, False, 1, cov)

        def lf(m, b, e):
            if kill_at is not None and e == kill_at:
                raise Boom()
            return loss(m, b, e)
        return model, fit(model, lf, tl, vl, cfg, ckpt, checkpoint_every=every)

    ref_model, ref = run(tmp_path / "ref.ckpt")
    # checkpoints at most every `checkpoint_every` seconds: none within the first hour, one at the end
    with pytest.raises(Boom):
        run(tmp_path / "hourly.ckpt", kill_at=3, every=3600)
    assert not (tmp_path / "hourly.ckpt").exists()
    run(tmp_path / "hourly.ckpt", every=3600)
    st = torch.load(tmp_path / "hourly.ckpt", weights_only=True)
    assert st["done"] and st["epoch"] == cfg.max_epochs - 1
    with pytest.raises(Boom):
        run(tmp_path / "k.ckpt", kill_at=3)
    assert (tmp_path / "k.ckpt").exists()
    model, res = run(tmp_path / "k.ckpt")
    assert res["history"] == ref["history"] and res["best_epoch"] == ref["best_epoch"]
    for (k, a), (_, b) in zip(ref_model.state_dict().items(), model.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)
    # a checkpoint written for another configuration is not resumed
    cfg2 = FitConfig(batch_size=16, learning_rate=1e-3, max_epochs=2, patience=100, seed=1)
    m3, X, cov, rows = rna_vae_setup(seed=5, dropout=0.2)
    r3 = fit(m3, loss, SparseCellLoader(X, rows[:48], 16, True, 1, cov),
             SparseCellLoader(X, rows[48:], 16, False, 1, cov), cfg2, tmp_path / "k.ckpt")
    assert r3["epochs_run"] == 2


def test_checkpoint_with_another_parameter_layout_starts_over(tmp_path, caplog):
    """A checkpoint of the same configuration whose optimizer state does not fit this model's
    parameters (written before a change of parameter layout, e.g. the chromosome-split layers'
    one flat weight) is not resumed: training starts over and equals a run without it."""
    cfg = FitConfig(batch_size=16, learning_rate=5e-3, max_epochs=2, patience=100, seed=1)
    loss = vae_loss_fn(1.0, 0)

    log = logging.getLogger("test_train.layout")  # propagates to caplog whatever configured "polarbear"

    def run(ckpt):
        model, X, cov, rows = rna_vae_setup(seed=5)
        return model, fit(model, loss, SparseCellLoader(X, rows[:48], 16, True, 1, cov),
                          SparseCellLoader(X, rows[48:], 16, False, 1, cov), cfg, ckpt, logger=log)

    ref_model, ref = run(tmp_path / "ref.ckpt")
    st = torch.load(tmp_path / "ref.ckpt", weights_only=True)
    st["done"] = False
    groups = st["optimizer"]["param_groups"]
    groups[0]["params"] = groups[0]["params"][:-1]  # one parameter fewer than the model has
    torch.save(st, tmp_path / "old.ckpt")
    with caplog.at_level("INFO", logger=log.name):
        model, res = run(tmp_path / "old.ckpt")
    assert "does not fit this model's parameters" in caplog.text and "resumed" not in caplog.text
    assert res["history"] == ref["history"]
    for (k, a), (_, b) in zip(ref_model.state_dict().items(), model.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)


def test_fit_records_why_it_stopped_and_waits_for_min_steps(tmp_path):
    """stop_reason/converged say whether early stopping or the epoch cap ended training; no epoch
    before min_steps optimiser steps can be the best one."""
    model, X, cov, rows = rna_vae_setup()
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


def test_validation_in_train_mode_is_the_authors_noisy_loss():
    """validation "train" scores the validation cells on the training graph (dropout on, z
    sampled), as the authors' code; "eval" (the default) is deterministic. The mode reaches the
    model during validation and is part of the checkpoint key."""
    from workflow_lib.train import _cfg_key, evaluate_loss

    model, X, cov, rows = rna_vae_setup(dropout=0.3)
    vl = SparseCellLoader(X, rows, 64, False, 0, cov)
    loss = vae_loss_fn(1.0, 0)
    assert evaluate_loss(model, loss, vl, 0) == evaluate_loss(model, loss, vl, 0) and not model.training
    noisy = [evaluate_loss(model, loss, vl, 0, "train") for _ in range(2)]
    assert noisy[0] != noisy[1] and model.training
    seen = []

    def spy(m, b, e):
        seen.append(m.training)
        return loss(m, b, e)
    tl = SparseCellLoader(X, rows, 16, True, 0, cov)
    base = {"batch_size": 16, "learning_rate": 1e-3, "max_epochs": 2, "patience": 5}
    for mode in ("eval", "train"):
        seen.clear()
        cfg = FitConfig.from_params(base | {"validation": mode})
        assert cfg.validation == mode
        fit(model, loss, tl, vl, cfg, None, val_fn=spy)
        assert seen == [mode == "train"] * 2          # one validation batch per epoch, 2 epochs
    assert FitConfig.from_params(base).validation == "eval"
    assert _cfg_key(FitConfig.from_params(base | {"validation": "train"}), None) != \
        _cfg_key(FitConfig.from_params(base), None)
    with pytest.raises(ValueError, match="validation must be one of"):
        FitConfig.from_params(base | {"validation": "dropout"})


def test_shuffle_once_walks_one_fixed_order_every_epoch():
    """shuffle "once" (the authors': training matrices shuffled once, then batches of consecutive
    rows) trains every epoch on the same seeded permutation of the training cells; "epoch" (the
    loop's default) draws a new one each epoch. The mode is in the checkpoint key."""
    from workflow_lib.train import _cfg_key

    model, X, cov, rows = rna_vae_setup()
    vl = SparseCellLoader(X, rows[:16], 16, False, 0, cov)
    loss = vae_loss_fn(0.0, 0)
    base = {"batch_size": 8, "learning_rate": 1e-3, "max_epochs": 3, "patience": 5}
    orders = {}
    for mode in ("once", "epoch"):
        seen = []

        def spy(m, b, e):
            if m.training:
                seen.append((e, tuple(b["idx"].tolist())))
            return loss(m, b, e)
        tl = SparseCellLoader(X, rows, 8, True, 3, cov)
        fit(model, spy, tl, vl, FitConfig.from_params(base | {"shuffle": mode}), None)
        orders[mode] = [sum((ids for e, ids in seen if e == ep), ()) for ep in range(3)]
    once, every = orders["once"], orders["epoch"]
    assert sorted(once[0]) == sorted(rows.tolist()) and once[0] != tuple(rows.tolist())  # a permutation
    assert once[0] == once[1] == once[2]
    assert every[0] == once[0] and every[1] != every[0] and every[2] != every[1]
    assert FitConfig.from_params(base).shuffle == "epoch"
    assert _cfg_key(FitConfig.from_params(base | {"shuffle": "once"}), None) != _cfg_key(FitConfig.from_params(base), None)
    with pytest.raises(ValueError, match="shuffle must be one of"):
        FitConfig.from_params(base | {"shuffle": "never"})


# --- optional extras of fit (used by BABEL): relative early-stopping threshold, gradient clipping,
# ReduceLROnPlateau -- and the loop is unchanged when they are off -------------------------------


class _Line(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([3.0, -2.0]))


def _line_batches(n=4):
    g = torch.Generator().manual_seed(0)
    return [{"x": torch.randn(8, 2, generator=g)} for _ in range(n)]


def _line_loss(m, b, e):
    return ((b["x"] @ m.w - 1.0) ** 2).mean()


def test_fit_config_extras_are_off_by_default_and_parsed():
    from workflow_lib.train import _cfg_key

    base = FitConfig.from_params({"batch_size": 8, "learning_rate": 0.1, "max_epochs": 3, "patience": 2})
    assert base.grad_clip_norm is None and base.lr_plateau_factor == 0.0 and base.early_stopping_threshold == 1e-6
    # the checkpoint key of a configuration without extras is the one written before they existed
    import hashlib
    import json
    old = {k: v for k, v in base.__dict__.items() if k in
           ("batch_size", "learning_rate", "max_epochs", "patience", "seed", "kl_warmup_epochs",
            "kl_start_epochs", "adam_eps", "min_steps")}
    assert _cfg_key(base, {"a": 1}) == hashlib.sha256(
        json.dumps({"cfg": old, "fp": {"a": 1}}, sort_keys=True, default=str).encode()).hexdigest()
    cfg = FitConfig.from_params({"batch_size": 8, "learning_rate": 0.1, "max_epochs": 3, "patience": 2,
                                 "grad_clip_norm": 5, "early_stopping_threshold": 1e-4,
                                 "lr_scheduler": {"factor": 0.1, "patience": 10, "min_lr": 1e-6, "monitor": "train"}})
    assert (cfg.grad_clip_norm, cfg.lr_plateau_factor, cfg.lr_plateau_patience, cfg.lr_plateau_min_lr,
            cfg.lr_plateau_monitor, cfg.early_stopping_threshold) == (5.0, 0.1, 10, 1e-6, "train", 1e-4)
    assert _cfg_key(cfg, None) != _cfg_key(base, None)
    off = FitConfig.from_params({"batch_size": 8, "learning_rate": 0.1, "max_epochs": 3, "patience": 2,
                                 "grad_clip_norm": None, "lr_scheduler": None})
    assert off == base
    with pytest.raises(ValueError, match="monitor"):
        FitConfig(8, 0.1, 3, 2, lr_plateau_factor=0.5, lr_plateau_monitor="loss")


def test_gradient_norm_is_clipped_before_each_step():
    """With grad_clip_norm every optimiser step sees a global gradient L2 norm <= the limit."""
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    def run(clip):
        model = _Line()
        norms = []

        def hook(opt, args, kwargs):
            norms.append(float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))))
        handle = register_optimizer_step_pre_hook(hook)
        try:
            fit(model, _line_loss, _line_batches(), _line_batches(1), FitConfig(8, 0.01, 3, 10, grad_clip_norm=clip), None)
        finally:
            handle.remove()
        return norms

    free, clipped = run(None), run(0.5)
    assert len(free) == len(clipped) == 12
    assert max(free) > 5.0                       # the raw gradients are large ...
    assert max(clipped) <= 0.5 + 1e-5            # ... and clipped to the limit
    assert min(clipped) > 0.49                   # (all of them exceed it here)


def test_reduce_lr_on_plateau_follows_the_monitored_loss():
    """The rate drops by `factor` after `patience` epochs without improvement of the monitored
    loss (train or val), not below min_lr; history records each epoch's rate."""
    def run(monitor):
        model = _Line()

        def train_loss(m, b, e):   # improves every epoch
            return (m.w * 0.0).sum() + 10.0 - e

        def flat_val(m, b, e):     # never improves
            return torch.tensor(1.0)
        cfg = FitConfig(8, 0.1, 9, 100, lr_plateau_factor=0.1, lr_plateau_patience=2, lr_plateau_min_lr=2e-4,
                        lr_plateau_monitor=monitor)
        res = fit(model, train_loss, _line_batches(1), _line_batches(1), cfg, None, val_fn=flat_val)
        return [round(h["lr"], 10) for h in res["history"]]

    assert run("train") == [0.1] * 9
    # val: best set at epoch 0, epochs 1-3 are bad -> reduced after epoch 3; again after epoch 6;
    # then clamped at min_lr
    assert run("val") == [0.1] * 4 + [0.01] * 3 + [0.001] * 2
    model = _Line()
    res = fit(model, lambda m, b, e: (m.w * 0.0).sum() + 1.0, _line_batches(1), _line_batches(1),
              FitConfig(8, 0.1, 12, 100, lr_plateau_factor=0.1, lr_plateau_patience=0, lr_plateau_min_lr=2e-4), None)
    assert [h["lr"] for h in res["history"]][-1] == pytest.approx(2e-4)
    # without a scheduler the history is as before (no lr entry)
    res = fit(_Line(), _line_loss, _line_batches(1), _line_batches(1), FitConfig(8, 0.1, 2, 10), None)
    assert set(res["history"][0]) == {"epoch", "train_loss", "val_loss", "steps"}


def test_early_stopping_threshold_is_relative_and_best_weights_are_the_lowest():
    """skorch's EarlyStopping: improvements smaller than threshold * |ref| count as misses, but the
    restored weights are still those of the lowest validation loss."""
    def val(m, b, e):   # improves by 1e-5 (relative) each epoch
        return torch.tensor(1.0 - 1e-5 * e, dtype=torch.float64)

    res = fit(_Line(), _line_loss, _line_batches(1), _line_batches(1),
              FitConfig(8, 0.01, 30, 3, early_stopping_threshold=1e-4), None, val_fn=val)
    assert res["stop_reason"] == "early_stopping" and res["epochs_run"] == 4 and res["best_epoch"] == 3
    res = fit(_Line(), _line_loss, _line_batches(1), _line_batches(1), FitConfig(8, 0.01, 8, 3), None, val_fn=val)
    assert res["stop_reason"] == "epoch_cap" and res["best_epoch"] == 7


def test_resume_with_scheduler_and_clipping_equals_uninterrupted(tmp_path):
    cfg = FitConfig(8, 0.05, 8, 100, seed=2, grad_clip_norm=1.0, lr_plateau_factor=0.5, lr_plateau_patience=0,
                    early_stopping_threshold=1e-4)

    def run(ckpt, kill_at=None):
        torch.manual_seed(0)
        model = _Line()

        def lf(m, b, e):
            if kill_at is not None and e == kill_at:
                raise Boom()
            return _line_loss(m, b, e)
        def val(m, b, e):  # noisy, improving only now and then: the scheduler acts
            return torch.tensor([1.0, 0.9, 0.95, 0.97, 0.8, 0.85, 0.9, 0.99][e])
        return model, fit(model, lf, _line_batches(), _line_batches(2), cfg, ckpt, val_fn=val, checkpoint_every=0)

    ref_model, ref = run(tmp_path / "ref.ckpt")
    assert len({h["lr"] for h in ref["history"]}) > 2        # the scheduler did act
    with pytest.raises(Boom):
        run(tmp_path / "k.ckpt", kill_at=4)
    model, res = run(tmp_path / "k.ckpt")
    assert res["history"] == ref["history"] and res["best_epoch"] == ref["best_epoch"]
    torch.testing.assert_close(model.w, ref_model.w, rtol=0, atol=0)


def _authors_stop(losses, patience, epochs_max):
    """The authors' stopping rule (Noble-Lab/Polarbear bin/train_model.py ``train``), restated:
    the first epoch sets the reference without being saved and counts as no improvement; a
    stage ends when more than ``patience`` epochs brought no improvement or after epoch
    ``epochs_max - 1``. Returns (epochs run, 1-based epoch of the restored weights)."""
    best, last, saved = None, 0, None
    for i, loss in enumerate(losses, start=1):
        best = loss if best is None else best
        if loss < best:
            best, last, saved = loss, 0, i
        else:
            last += 1
        if i > 1 and (last > patience or i == epochs_max - 1):
            return i, saved
    raise AssertionError("the loss sequence is too short")


@pytest.mark.parametrize("stage,authors_max", [("vae", 500), ("translator", 100)])
def test_author_epoch_limits_and_patience_stop_where_the_authors_loop_stops(stage, authors_max):
    """settings.AUTHOR_DEFAULTS' max_epochs / patience make ``fit`` run the same epochs and restore
    the same epoch as the authors' loop with their 500 (VAEs) / 100 (translators) and 45."""
    import numpy as np

    from workflow_lib.settings import AUTHOR_DEFAULTS

    ours = AUTHOR_DEFAULTS[stage]
    rng = np.random.default_rng(0)
    n = authors_max + 5
    curves = {
        "keeps improving": 10.0 - 0.01 * np.arange(n),
        "best at epoch 30": np.r_[np.linspace(5, 1, 30), 1.5 + 0.01 * np.arange(n - 30)],
        "noisy": 3.0 - 0.5 * np.log1p(np.arange(n)) + rng.normal(0, 0.05, n),
        "late improvement": np.r_[np.linspace(5, 2, 10), np.full(40, 2.5), [1.0], np.full(n - 51, 1.2)],
    }
    for name, curve in curves.items():
        curve = curve.astype(np.float64)
        run, saved = _authors_stop(curve, 45, authors_max)
        res = fit(_Line(), _line_loss, _line_batches(1), _line_batches(1),
                  FitConfig(8, 0.01, ours["max_epochs"], ours["patience"]), None,
                  val_fn=lambda m, b, e, c=curve: torch.tensor(c[e], dtype=torch.float64))
        assert (res["epochs_run"], res["best_epoch"] + 1) == (run, saved), name


def test_validation_loss_averaged_over_cells_or_over_batch_means_as_the_authors():
    """val_average batches: the mean of the per-batch means over batches of batch_size (the
    authors' np.nanmean over their validation batches; the last, smaller batch weighs as much as
    a full one); cells: the mean over all cells. The loader's batches follow the choice."""
    import numpy as np
    import scipy.sparse as sp

    from workflow_lib.train import VAL_AVERAGES, evaluate_loss

    X = sp.csr_matrix(np.arange(1, 6, dtype=np.float32).reshape(5, 1))  # cells 1..5
    model = torch.nn.Linear(1, 1)  # only its train/eval mode is used

    def loss(m, batch, epoch):
        return batch["x"].mean()

    vl = SparseCellLoader(X, np.arange(5), 2, False, 0)  # batches {1,2} {3,4} {5}
    assert evaluate_loss(model, loss, vl, 0, average="cells") == pytest.approx(3.0)
    assert evaluate_loss(model, loss, vl, 0, average="batches") == pytest.approx((1.5 + 3.5 + 5.0) / 3)
    with pytest.raises(ValueError, match="average"):
        evaluate_loss(model, loss, vl, 0, average="peaks")
    assert VAL_AVERAGES == ("cells", "batches")
    base = {"batch_size": 16, "learning_rate": 1e-3, "max_epochs": 3, "patience": 2}
    assert FitConfig.from_params(base).val_average == "cells"
    assert FitConfig.from_params(base).val_batch_size(1024) == 1024
    assert FitConfig.from_params(base | {"val_average": "batches"}).val_batch_size(1024) == 16
    with pytest.raises(ValueError, match="val_average"):
        FitConfig.from_params(base | {"val_average": "genes"})


def test_polarbear_validation_averages_batch_means_by_default():
    """The authors' average is the default of both Polarbear stages (config.yaml = settings)."""
    from workflow_lib.settings import AUTHOR_DEFAULTS, DEFAULTS

    for stage in ("vae", "translator"):
        assert AUTHOR_DEFAULTS[stage]["val_average"] == DEFAULTS[stage]["val_average"] == "batches"
