"""BABEL's settings: the ``babel:`` config block resolved for one run (no torch import).

``babel.architecture`` picks the implementation (workflow_lib/models/babel.py):

* ``authors`` (default) -- the authors' code (wukevin/babel). The block's top-level values are
  theirs: ``bin/train_model.py`` (Adam lr 0.01, batch 512, at most 500 epochs, early stopping
  patience 25 on the validation loss with skorch's relative threshold 1e-4, ReduceLROnPlateau
  and gradient-norm clipping at 5, loss weight 1.33, latent 16) and
  ``babel/model_utils.py::REDUCE_LR_ON_PLATEAU_PARAMS`` (factor 0.1, patience 10, min_lr 1e-6).
* ``compact`` -- the earlier implementation from the paper's description; ``babel.compact`` is
  deep-merged on top of the block (its training settings).

The grid is ``babel.grid`` for both. (With ``source: demo`` the configuration's ``demo.babel``
block has already been merged over ``babel`` by :func:`workflow_lib.settings.source_config`.)
"""

from __future__ import annotations

import copy

from .settings import deep_merge

ARCHITECTURES = ("authors", "compact")
# keys of the babel block that are not training/model settings
_STRUCTURAL = ("architecture", "grid", "compact")
FIT_KEYS = ("batch_size", "learning_rate", "max_epochs", "patience", "min_steps", "early_stopping_threshold",
            "grad_clip_norm", "lr_scheduler")
MODEL_KEYS = ("rna_hidden", "chrom_hidden", "rna_input_stats")


def babel_settings(babel_config: dict) -> dict:
    """``architecture``, ``grid``, ``fit`` (FitConfig params) and ``model`` (constructor / input
    options) of a config's ``babel:`` block, with the overlays of the module docstring applied."""
    arch = babel_config.get("architecture", "authors")
    if arch not in ARCHITECTURES:
        raise ValueError(f"babel.architecture must be one of {ARCHITECTURES}, not {arch!r}")
    merged = {k: copy.deepcopy(v) for k, v in babel_config.items() if k not in _STRUCTURAL}
    if arch == "compact":
        merged = deep_merge(merged, babel_config.get("compact") or {})
    unknown = sorted(set(merged) - set(FIT_KEYS) - set(MODEL_KEYS))
    if unknown:
        raise ValueError(f"unknown babel settings {unknown}")
    grid = copy.deepcopy(babel_config["grid"])
    return {
        "architecture": arch,
        "grid": grid,
        "fit": {k: merged[k] for k in FIT_KEYS if k in merged},
        "model": {k: merged[k] for k in MODEL_KEYS if k in merged},
    }
