"""Generic minibatch training loop: Adam, early stopping, best-weights restore, resumable checkpoints."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from .fileutils import atomic_path


def get_device() -> torch.device:
    """CUDA if available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) RNGs."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


ES_DEFAULT_THRESHOLD = 1e-6
LR_PLATEAU_MONITORS = ("train", "val")
# how the validation loss is computed: "eval" (eval mode: no dropout, posterior means; ours,
# deterministic) or "train" (the training graph: dropout on, z sampled; the authors' code)
VALIDATION_MODES = ("eval", "train")
# how the validation loss averages over cells: "cells" (the mean over all validation cells) or
# "batches" (the mean of the per-batch means over minibatches of ``batch_size``, the last one
# smaller: the authors' ``np.nanmean`` over their validation batches)
VAL_AVERAGES = ("cells", "batches")
# order of the training cells: "epoch" (a fresh seeded permutation every epoch; ours) or "once"
# (one seeded permutation, the same in every epoch: the authors' code shuffles its training
# matrices once and then walks them in order)
SHUFFLE_MODES = ("epoch", "once")
# FitConfig fields added after checkpoints were first written: left out of the checkpoint key
# while at their defaults, so older checkpoints of unchanged configurations still resume
_OPTIONAL_DEFAULTS = {
    "early_stopping_threshold": ES_DEFAULT_THRESHOLD, "grad_clip_norm": None, "lr_plateau_factor": 0.0,
    "lr_plateau_patience": 10, "lr_plateau_min_lr": 0.0, "lr_plateau_threshold": 1e-4, "lr_plateau_monitor": "val",
    "validation": "eval", "shuffle": "epoch", "val_average": "cells",
}


@dataclass
class FitConfig:
    batch_size: int
    learning_rate: float
    max_epochs: int
    patience: int
    seed: int = 0
    kl_warmup_epochs: int = 0
    kl_start_epochs: int = 0
    adam_eps: float = 1e-8
    min_steps: int = 0
    # --- optional extras (off by default: the loop then behaves exactly as before) ---------------
    # early stopping: an epoch counts as an improvement (resets the patience counter) only if its
    # validation loss is below ref - early_stopping_threshold * |ref|, ref = the validation loss of
    # the last such epoch (skorch's EarlyStopping, threshold_mode "rel"). The restored best weights
    # are those of the lowest validation loss (up to 1e-6 relative), improvement or not.
    early_stopping_threshold: float = ES_DEFAULT_THRESHOLD
    # clip the global L2 norm of all gradients to this value before each step (None/0 = off)
    grad_clip_norm: float | None = None
    # ReduceLROnPlateau after every epoch (lr_plateau_factor 0 = off) on the training ("train") or
    # validation ("val") loss of that epoch, with torch's threshold (rel) / patience / min_lr
    lr_plateau_factor: float = 0.0
    lr_plateau_patience: int = 10
    lr_plateau_min_lr: float = 0.0
    lr_plateau_threshold: float = 1e-4
    lr_plateau_monitor: str = "val"
    # the validation loss in eval mode (deterministic) or on the training graph (see VALIDATION_MODES)
    validation: str = "eval"
    # the order of training batches (see SHUFFLE_MODES); a loader with ``set_epoch`` is told epoch 0
    # in every epoch under "once"
    shuffle: str = "epoch"
    # the validation loss as the mean over cells or of the per-batch means (see VAL_AVERAGES); the
    # validation loader's batches are then of ``batch_size`` (see ``val_batch_size``)
    val_average: str = "cells"

    def __post_init__(self):
        if self.val_average not in VAL_AVERAGES:
            raise ValueError(f"val_average must be one of {VAL_AVERAGES}, not {self.val_average!r}")
        if self.shuffle not in SHUFFLE_MODES:
            raise ValueError(f"shuffle must be one of {SHUFFLE_MODES}, not {self.shuffle!r}")
        if self.validation not in VALIDATION_MODES:
            raise ValueError(f"validation must be one of {VALIDATION_MODES}, not {self.validation!r}")
        if self.lr_plateau_monitor not in LR_PLATEAU_MONITORS:
            raise ValueError(f"lr_plateau_monitor must be one of {LR_PLATEAU_MONITORS}, "
                             f"not {self.lr_plateau_monitor!r}")
        if not 0.0 <= self.lr_plateau_factor < 1.0:
            raise ValueError(f"lr_plateau_factor must be in [0, 1), not {self.lr_plateau_factor}")
        if self.early_stopping_threshold < 0:
            raise ValueError("early_stopping_threshold must be >= 0")

    @classmethod
    def from_params(cls, params: dict, seed: int = 0) -> "FitConfig":
        """Build from a config dict (extra keys such as ``dropout`` are ignored).

        Optional keys: ``early_stopping_threshold``, ``grad_clip_norm`` (null = off) and
        ``lr_scheduler`` (null = off; a dict = ReduceLROnPlateau with ``factor``, ``patience``,
        ``min_lr``, ``threshold`` -- torch's defaults 0.1, 10, 0, 1e-4 where missing -- and
        ``monitor``, "val" where missing).
        """
        sched = params.get("lr_scheduler")
        on = isinstance(sched, dict)
        sched = sched if on else {}
        clip = params.get("grad_clip_norm")
        return cls(
            batch_size=int(params["batch_size"]), learning_rate=float(params["learning_rate"]),
            max_epochs=int(params["max_epochs"]), patience=int(params["patience"]), seed=int(seed),
            kl_warmup_epochs=int(params.get("kl_warmup_epochs", 0) or 0),
            kl_start_epochs=int(params.get("kl_start_epochs", 0) or 0),
            adam_eps=float(params.get("adam_eps", 1e-8)),
            min_steps=int(params.get("min_steps", 0) or 0),
            early_stopping_threshold=float(params.get("early_stopping_threshold", ES_DEFAULT_THRESHOLD)),
            grad_clip_norm=float(clip) if clip else None,
            lr_plateau_factor=float(sched.get("factor", 0.1)) if on else 0.0,
            lr_plateau_patience=int(sched.get("patience", 10)),
            lr_plateau_min_lr=float(sched.get("min_lr", 0.0)),
            lr_plateau_threshold=float(sched.get("threshold", 1e-4)),
            lr_plateau_monitor=str(sched.get("monitor", "val")),
            validation=str(params.get("validation", "eval")),
            shuffle=str(params.get("shuffle", "epoch")),
            val_average=str(params.get("val_average", "cells")),
        )

    def val_batch_size(self, infer_batch: int) -> int:
        """Batch size of the validation loader: ``batch_size`` when the loss averages per-batch
        means (the batches define it), else the larger ``infer_batch`` (fewer, larger products)."""
        return self.batch_size if self.val_average == "batches" else max(self.batch_size, int(infer_batch))


def kl_weight(beta: float, epoch: int | None, warmup_epochs: int, start_epochs: int = 0) -> float:
    """KL weight of an epoch, as the authors' code: 0 for the first ``start_epochs`` epochs, then
    ``beta * min(1, (epoch - start) / warmup)`` (so the first warm-up epoch is KL-free); full beta
    when ``epoch`` is None."""
    if epoch is None:
        return float(beta)
    if epoch < start_epochs:
        return 0.0
    if warmup_epochs <= 0:
        return float(beta)
    return float(beta) * min(1.0, (epoch - start_epochs) / warmup_epochs)


def _cfg_key(cfg: FitConfig, fingerprint) -> str:
    d = {k: v for k, v in asdict(cfg).items() if k not in _OPTIONAL_DEFAULTS or v != _OPTIONAL_DEFAULTS[k]}
    blob = json.dumps({"cfg": d, "fp": fingerprint}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _rng_state() -> dict:
    st = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict) -> None:
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


# seconds between training checkpoints: writing one after every epoch cost ~6% of a demo ATAC
# VAE's training (13 MB, ~28 ms, per 44-step epoch); a killed job loses at most this much work
CHECKPOINT_EVERY_S = 30.0


def _save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _state_to_cpu(sd: dict) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in sd.items()}


@torch.no_grad()
def evaluate_loss(model, loss_fn, loader, epoch, mode: str = "eval", average: str = "cells") -> float:
    """Mean of ``loss_fn`` (a batch mean) over a loader, in eval mode (``mode="eval"``) or in
    training mode (``"train"``: dropout on, z sampled, as the authors' validation losses):
    weighted by batch size (``average="cells"``: the mean over all cells) or not (``"batches"``:
    the mean of the batch means, as the authors' ``np.nanmean`` over their validation batches)."""
    if average not in VAL_AVERAGES:
        raise ValueError(f"average must be one of {VAL_AVERAGES}, not {average!r}")
    model.train(mode == "train")
    total, n = 0.0, 0
    for batch in loader:
        b = batch["x"].shape[0] if average == "cells" else 1
        total += float(loss_fn(model, batch, epoch)) * b
        n += b
    return total / max(n, 1)


def _load_resume_state(model, opt, st: dict, initial_state: dict, log, ckpt) -> bool:
    """Load a checkpoint's model and optimizer state; False (model back at ``initial_state``) when
    they do not fit this model, e.g. a checkpoint written before a change of parameter layout."""
    try:
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        return True
    except (RuntimeError, ValueError, KeyError) as e:
        model.load_state_dict(initial_state)  # copies into the existing tensors, on their device
        log.info("checkpoint %s does not fit this model's parameters (%s): starting over", ckpt,
                 str(e).splitlines()[0][:200])
        return False


def fit(model, loss_fn, train_loader, val_loader, cfg: FitConfig, checkpoint_path, logger=None,
        params=None, fingerprint=None, val_fn=None, checkpoint_every: float = CHECKPOINT_EVERY_S) -> dict:
    """Train ``model`` with Adam and early stopping on the validation loss.

    ``loss_fn(model, batch, epoch)`` returns the scalar mean loss of a batch; it is called in
    train mode for training batches. The monitored validation loss is ``val_fn`` (default
    ``loss_fn``) under ``no_grad``, e.g. the reconstruction loss only, in eval mode (or in train
    mode with ``cfg.validation == "train"``).
    Early stopping: training stops after ``cfg.patience`` epochs without improvement (by more than
    ``cfg.early_stopping_threshold``, relative; the best weights are those of the lowest validation
    loss). Optional: gradient-norm clipping (``cfg.grad_clip_norm``) and ReduceLROnPlateau
    (``cfg.lr_plateau_*``; history entries then record each epoch's ``lr``). No epoch
    before ``cfg.min_steps`` optimiser steps can be the best one or count towards patience, so
    the restored weights have had at least that many steps. The result says why training stopped:
    ``stop_reason`` "early_stopping" (``converged`` True) or "epoch_cap" (a warning is logged:
    training stopped at ``max_epochs`` before the patience ran out, i.e. has not converged).
    A checkpoint (model, optimizer, epoch, best weights, history, RNG states) is written atomically
    to ``checkpoint_path`` after an epoch when ``checkpoint_every`` seconds have passed since the
    last one (0: after every epoch) and after the last epoch; if it exists and was written for the
    same ``cfg`` (and ``fingerprint``, any JSON-able description of data/model), training resumes
    from it and gives the same result as an uninterrupted run (a checkpoint whose state does not
    fit the model's parameters is ignored). At the end the best weights are restored.
    Returns ``dict(best_epoch, best_val_loss, history, epochs_run, steps, stop_reason, converged,
    max_epochs)``.
    """
    log = logger or logging.getLogger("polarbear")
    device = next(model.parameters()).device
    if params is None:
        params = [p for p in model.parameters() if p.requires_grad]
    params = list(params)
    # fused Adam: one kernel for all parameters (the ATAC VAE has ~100 tensors; ~20% faster per step on CPU)
    opt = torch.optim.Adam(params, lr=cfg.learning_rate, eps=cfg.adam_eps, fused=True)
    sched = None
    if cfg.lr_plateau_factor > 0:
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=cfg.lr_plateau_factor, patience=cfg.lr_plateau_patience,
            threshold=cfg.lr_plateau_threshold, threshold_mode="rel", min_lr=cfg.lr_plateau_min_lr)
    val_fn = val_fn or loss_fn
    key = _cfg_key(cfg, fingerprint)
    ckpt = Path(checkpoint_path) if checkpoint_path else None

    start_epoch, best_val, best_epoch, bad, steps, stop_reason = 0, math.inf, -1, 0, 0, "epoch_cap"
    best_steps = -1
    es_ref = math.inf  # validation loss of the last epoch that reset the patience counter
    history: list[dict] = []
    best_state = _state_to_cpu(model.state_dict())
    done = False
    set_seed(cfg.seed)
    if ckpt is not None and ckpt.exists():
        try:
            st = torch.load(ckpt, map_location="cpu", weights_only=True)
        except Exception as e:  # a corrupt checkpoint cannot be resumed: start over
            log.warning("ignoring unreadable checkpoint %s (%s)", ckpt, e)
            st = None
        if st is not None and st.get("key") != key:
            log.info("checkpoint %s was written for another configuration: starting over", ckpt)
        elif st is not None and _load_resume_state(model, opt, st, best_state, log, ckpt):
            start_epoch = st["epoch"] + 1
            best_val, best_epoch, bad = st["best_val"], st["best_epoch"], st["bad"]
            best_state, history, done = st["best_state"], st["history"], st["done"]
            steps, stop_reason = int(st.get("steps", 0)), str(st.get("stop_reason", "epoch_cap"))
            best_steps = int(st.get("best_steps", -1))
            es_ref = float(st.get("es_ref", best_val))
            if sched is not None and st.get("scheduler") is not None:
                sched.load_state_dict(st["scheduler"])
            _set_rng_state(st["rng"])
            log.info("resumed from checkpoint %s at epoch %d (best val %.4f @ %d)", ckpt, start_epoch,
                     best_val, best_epoch)

    epoch = start_epoch
    last_save = time.monotonic()
    while not done and epoch < cfg.max_epochs:
        model.train()
        if hasattr(train_loader, "set_epoch"):
            train_loader.set_epoch(epoch if cfg.shuffle == "epoch" else 0)
        tot, n = 0.0, 0
        for batch in train_loader:
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model, batch, epoch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite training loss at epoch {epoch}")
            loss.backward()
            if cfg.grad_clip_norm:
                torch.nn.utils.clip_grad_norm_(params, max_norm=cfg.grad_clip_norm)
            opt.step()
            steps += 1
            b = batch["x"].shape[0]
            tot += float(loss.detach()) * b
            n += b
        train_loss = tot / max(n, 1)
        if hasattr(val_loader, "set_epoch"):
            val_loader.set_epoch(0)
        val_loss = evaluate_loss(model, val_fn, val_loader, epoch, cfg.validation, cfg.val_average)
        rec = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "steps": steps}
        if sched is not None:
            rec["lr"] = float(opt.param_groups[0]["lr"])  # the rate this epoch was trained with
        history.append(rec)
        eligible = steps >= cfg.min_steps
        # before min_steps every epoch is only a provisional best; the first eligible epoch replaces it
        provisional = best_steps < cfg.min_steps
        if provisional or val_loss < best_val - 1e-6 * abs(best_val if math.isfinite(best_val) else 0.0):
            best_val, best_epoch, best_steps = val_loss, epoch, steps
            best_state = _state_to_cpu(model.state_dict())
        if provisional or val_loss < es_ref - cfg.early_stopping_threshold * abs(es_ref if math.isfinite(es_ref) else 0.0):
            es_ref, bad = val_loss, 0
        else:
            bad += 1
        if sched is not None:
            sched.step(train_loss if cfg.lr_plateau_monitor == "train" else val_loss)
        log.info("epoch %d train %.4f val %.4f (best %.4f @ %d)%s", epoch, train_loss, val_loss, best_val,
                 best_epoch, "" if eligible else f" [{steps}/{cfg.min_steps} steps before early stopping]")
        if bad >= cfg.patience:
            log.info("early stopping after epoch %d: no improvement for %d epochs (best epoch %d, %d steps)",
                     epoch, bad, best_epoch, steps)
            done, stop_reason = True, "early_stopping"
        elif epoch + 1 >= cfg.max_epochs:
            log.warning("NOT CONVERGED: stopped at the epoch cap (%d epochs, %d steps) before early stopping "
                        "(best epoch %d, %d epochs without improvement, patience %d)",
                        cfg.max_epochs, steps, best_epoch, bad, cfg.patience)
            done = True
        if ckpt is not None and (done or time.monotonic() - last_save >= checkpoint_every):
            last_save = time.monotonic()
            _save_checkpoint(ckpt, {
                "key": key, "model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch,
                "best_val": best_val, "best_epoch": best_epoch, "bad": bad, "best_state": best_state,
                "history": history, "done": done, "rng": _rng_state(), "steps": steps, "best_steps": best_steps,
                "stop_reason": stop_reason, "es_ref": es_ref,
                "scheduler": sched.state_dict() if sched is not None else None,
            })
        epoch += 1

    model.load_state_dict({k: v.to(device) for k, v in best_state.items()})
    model.eval()
    return {"best_epoch": best_epoch, "best_val_loss": best_val, "history": history,
            "epochs_run": len(history), "steps": steps, "stop_reason": stop_reason,
            "converged": stop_reason == "early_stopping", "max_epochs": cfg.max_epochs}


FIT_SUMMARY_KEYS = ("best_epoch", "best_val_loss", "epochs_run", "steps", "stop_reason", "converged", "max_epochs")


def fit_summary(res: dict) -> dict:
    """The part of a :func:`fit` result recorded in model configs and scores files."""
    return {k: res[k] for k in FIT_SUMMARY_KEYS}
