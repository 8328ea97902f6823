"""Generic minibatch training loop: Adam, early stopping, best-weights restore, resumable checkpoints."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
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


@dataclass
class FitConfig:
    batch_size: int
    learning_rate: float
    max_epochs: int
    patience: int
    seed: int = 0
    kl_warmup_epochs: int = 0

    @classmethod
    def from_params(cls, params: dict, seed: int = 0) -> "FitConfig":
        """Build from a config dict (extra keys such as ``dropout`` are ignored)."""
        return cls(
            batch_size=int(params["batch_size"]), learning_rate=float(params["learning_rate"]),
            max_epochs=int(params["max_epochs"]), patience=int(params["patience"]), seed=int(seed),
            kl_warmup_epochs=int(params.get("kl_warmup_epochs", 0) or 0),
        )


def kl_weight(beta: float, epoch: int | None, warmup_epochs: int) -> float:
    """Linear KL warm-up: beta * min(1, (epoch + 1) / warmup); full beta when epoch is None."""
    if epoch is None or warmup_epochs <= 0:
        return float(beta)
    return float(beta) * min(1.0, (epoch + 1) / warmup_epochs)


def _cfg_key(cfg: FitConfig, fingerprint) -> str:
    blob = json.dumps({"cfg": asdict(cfg), "fp": fingerprint}, sort_keys=True, default=str)
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


def _save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _state_to_cpu(sd: dict) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in sd.items()}


@torch.no_grad()
def evaluate_loss(model, loss_fn, loader, epoch) -> float:
    """Mean of ``loss_fn`` over a loader weighted by batch size, in eval mode."""
    model.eval()
    total, n = 0.0, 0
    for batch in loader:
        b = batch["x"].shape[0]
        total += float(loss_fn(model, batch, epoch)) * b
        n += b
    return total / max(n, 1)


def fit(model, loss_fn, train_loader, val_loader, cfg: FitConfig, checkpoint_path, logger=None,
        params=None, fingerprint=None) -> dict:
    """Train ``model`` with Adam and early stopping on the validation loss.

    ``loss_fn(model, batch, epoch)`` returns the scalar mean loss of a batch; it is called in
    train mode for training batches and in eval mode (under ``no_grad``) for validation batches,
    so a loss may use e.g. a warmed-up KL weight in training and the full weight for validation.
    A checkpoint (model, optimizer, epoch, best weights, history, RNG states) is written atomically
    after every epoch to ``checkpoint_path``; if it exists and was written for the same ``cfg``
    (and ``fingerprint``, any JSON-able description of data/model), training resumes from it and
    gives the same result as an uninterrupted run. At the end the best weights are restored.
    Returns ``dict(best_epoch, best_val_loss, history, epochs_run)``.
    """
    log = logger or logging.getLogger("polarbear")
    device = next(model.parameters()).device
    if params is None:
        params = [p for p in model.parameters() if p.requires_grad]
    params = list(params)
    opt = torch.optim.Adam(params, lr=cfg.learning_rate)
    key = _cfg_key(cfg, fingerprint)
    ckpt = Path(checkpoint_path) if checkpoint_path else None

    start_epoch, best_val, best_epoch, bad = 0, math.inf, -1, 0
    history: list[dict] = []
    best_state = _state_to_cpu(model.state_dict())
    done = False
    set_seed(cfg.seed)
    if ckpt is not None and ckpt.exists():
        try:
            st = torch.load(ckpt, map_location="cpu", weights_only=False)
        except Exception as e:  # a corrupt checkpoint cannot be resumed: start over
            log.warning("ignoring unreadable checkpoint %s (%s)", ckpt, e)
            st = None
        if st is not None and st.get("key") == key:
            model.load_state_dict(st["model"])
            opt.load_state_dict(st["optimizer"])
            start_epoch = st["epoch"] + 1
            best_val, best_epoch, bad = st["best_val"], st["best_epoch"], st["bad"]
            best_state, history, done = st["best_state"], st["history"], st["done"]
            _set_rng_state(st["rng"])
            log.info("resumed from checkpoint %s at epoch %d (best val %.4f @ %d)", ckpt, start_epoch,
                     best_val, best_epoch)
        elif st is not None:
            log.info("checkpoint %s was written for another configuration: starting over", ckpt)

    epoch = start_epoch
    while not done and epoch < cfg.max_epochs:
        model.train()
        if hasattr(train_loader, "set_epoch"):
            train_loader.set_epoch(epoch)
        tot, n = 0.0, 0
        for batch in train_loader:
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model, batch, epoch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite training loss at epoch {epoch}")
            loss.backward()
            opt.step()
            b = batch["x"].shape[0]
            tot += float(loss.detach()) * b
            n += b
        train_loss = tot / max(n, 1)
        if hasattr(val_loader, "set_epoch"):
            val_loader.set_epoch(0)
        val_loss = evaluate_loss(model, loss_fn, val_loader, epoch)
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss})
        if val_loss < best_val - 1e-6 * abs(best_val if math.isfinite(best_val) else 0.0):
            best_val, best_epoch, bad = val_loss, epoch, 0
            best_state = _state_to_cpu(model.state_dict())
        else:
            bad += 1
        log.info("epoch %d train %.4f val %.4f (best %.4f @ %d)", epoch, train_loss, val_loss, best_val,
                 best_epoch)
        if bad >= cfg.patience:
            log.info("early stopping after epoch %d", epoch)
            done = True
        if epoch + 1 >= cfg.max_epochs:
            done = True
        if ckpt is not None:
            _save_checkpoint(ckpt, {
                "key": key, "model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch,
                "best_val": best_val, "best_epoch": best_epoch, "bad": bad, "best_state": best_state,
                "history": history, "done": done, "rng": _rng_state(),
            })
        epoch += 1

    model.load_state_dict({k: v.to(device) for k, v in best_state.items()})
    model.eval()
    return {"best_epoch": best_epoch, "best_val_loss": best_val, "history": history,
            "epochs_run": len(history)}
