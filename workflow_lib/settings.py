"""Polarbear's training settings (the authors' defaults) and the demo overlay of the configuration.

One home for the defaults that ``config.yaml`` (workflow) and ``polarbear train`` (CLI) share.
Values follow the paper and, where it is silent, the authors' code (Noble-Lab/Polarbear
``bin/run_polarbear.py`` defaults and ``bin/train_model.py``):

* both VAEs: batch 16, at most 499 epochs, patience 46, early stopping on the validation
  reconstruction loss; KL weight 0 in the first epoch, then warmed up linearly to beta over
  400 (RNA) / 80 (ATAC) epochs; Adam lr 1e-3 eps 0.01 (RNA), lr 1e-4 eps 1e-5 (ATAC);
* translators: batch 16, at most 99 epochs, patience 46, Adam lr 1e-3, trained on latent samples
  of the co-assay training cells, Adam eps 1e-8 (``tf.train.AdamOptimizer``'s default; ours was
  Keras' 1e-7 until 2026-12-03). The ATAC -> RNA translator trains a per-gene, per-batch ZINB dispersion of its own
  (``translator_yx_px_r_genebatch``; ``dispersion: translator``), not the frozen RNA VAE's.

The ZINB dispersions (the RNA VAE's ``px_r_genebatch_x``, the ATAC -> RNA translator's
``translator_yx_px_r_genebatch``) are dense layers of the batch one-hot with a bias: log theta =
b @ W + c, c shared by all batches (``dispersion_bias: true``; ``false`` = W only, ours until
2026-12-03, the same function but trained differently: Adam moves W and c each by about the
learning rate, and c learns from every batch).

Early stopping of both watches a validation loss computed as the authors' is, on the training
graph: dropout on, z sampled (``validation: train``; ``eval`` = eval mode, no dropout, posterior
means, our choice before 2026-12-03). It is noisy but reproducible: the draws come from the seeded
generator. It is the mean of the per-batch means over validation batches of ``batch_size`` cells,
as the authors' ``np.nanmean`` over their batches (``val_average: batches``; ``cells`` = the mean
over all validation cells, in larger batches, ours until 2026-12-03: the last, smaller batch
weighs a little more in the authors' mean, and dropout and z draws come in other batch shapes).

The authors' code walks the training cells in one random order, the same in every epoch (its
training matrices are shuffled once, before training; ``shuffle: once``). The default here draws a
new seeded order every epoch (``shuffle: epoch``), a named departure (:data:`DEPARTURES`).

Epoch limits and patiences are the authors' 500 / 100 and 45 counted as their loop counts
(``train_model.py``): it ends after epoch ``max - 1`` (``len(iter_list) == my_epochs_max - 1``) and
stops when more than ``patience`` epochs in a row brought no improvement
(``last_improvement > patience``; their first epoch counts as one without improvement). ``fit``
runs ``max_epochs`` epochs and stops after ``patience`` epochs without improvement, hence
499 / 99 and 46 here: the same epochs run and the same best epoch, whenever the best epoch is not
the first (theirs never saves the first epoch; ours can restore it).

Grid points are selected per task by that task's validation statistic, the ones the authors'
``run_polarbear.py`` reports for a trained model (``selection: task_metric``: ATAC -> RNA gene-wise
correlation, RNA -> ATAC peak AUROC, latent FOSCTTM; ``nll``: the translation NLLs, ours until
2026-12-03).

``min_steps`` (no early stopping, and no best epoch, before that many optimiser steps) is ours:
the authors' translators always ran for at least 46 epochs through their patience.

:data:`DEFAULTS` (used by ``config.yaml`` and ``polarbear train``) are :data:`AUTHOR_DEFAULTS`
with the named departures of :data:`DEPARTURES`, each justified by a side-by-side measurement in
README ("Named departures").
"""

from __future__ import annotations

import copy

AUTHOR_DEFAULTS = {
    "grid": {"latent": [10, 25, 50], "beta": [0, 0.5, 1, 2]},
    "vae": {
        "batch_size": 16, "max_epochs": 499, "patience": 46, "min_steps": 0, "dropout": 0.1,
        "activation": "leaky_relu", "early_stopping": "reconstruction", "rna_input": "counts",
        "rna_decoder_dropout": 0.0, "atac_input": "binary", "atac_hidden": "per_chromosome",
        "atac_depth": "linear", "atac_depth_ref": 1000, "init_output_bias": True, "init": "glorot",
        "validation": "train", "val_average": "batches", "shuffle": "once", "dispersion_bias": True,
        "rna": {"learning_rate": 0.001, "adam_eps": 0.01, "kl_warmup_epochs": 400, "kl_start_epochs": 0},
        "atac": {"learning_rate": 0.0001, "adam_eps": 1e-5, "kl_warmup_epochs": 80, "kl_start_epochs": 0},
    },
    "translator": {"batch_size": 16, "learning_rate": 0.001, "adam_eps": 1e-8, "max_epochs": 99, "patience": 46,
                   "min_steps": 0, "input": "sample", "init": "glorot", "dispersion": "translator",
                   "validation": "train", "val_average": "batches", "shuffle": "once", "dispersion_bias": True},
    "ridge_alphas": [0.01, 0.1, 1, 10, 100, 1000, 10000, 100000],
    # grid point per task by the validation statistic of that task, as the authors' run_polarbear.py
    # reports them (workflow_lib.polarbear, "Model selection")
    "selection": "task_metric",
}


# Named departures from the authors' code (README "Named departures" gives the measurements):
# * vae.rna_input log1p_norm: log1p of the counts scaled to the median library size of the VAE's
#   training cells into the RNA encoder, instead of raw counts (log1p(counts) before; the decoder
#   is given each cell's library size, so the encoder need not see it). Unseen cell type, latent
#   FOSCTTM RNA / ATAC query: demo seed 7 0.081 / 0.098 (log1p 0.096 / 0.105, raw counts 0.185 /
#   0.116), seed 13 0.167 / 0.086 (log1p 0.172 / 0.098); benchmarks/rna_input.md.
# * vae.shuffle / translator.shuffle epoch: a new seeded order of the training cells every epoch
#   (the authors: one order for all epochs). Polarbear beat Polarbear co-assay on the unseen split's
#   mean latent FOSCTTM in 7 of 12 demo seeds with one order, in 10 of 11 seed runs reshuffling every
#   epoch; README "Named departures", benchmarks/fidelity.md.
DEPARTURES = {"vae": {"rna_input": "log1p_norm", "shuffle": "epoch"}, "translator": {"shuffle": "epoch"}}


def deep_merge(base: dict, overlay: dict | None) -> dict:
    """A copy of ``base`` with ``overlay`` merged in (nested dicts merged key by key)."""
    out = copy.deepcopy(base)
    for k, v in (overlay or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def polarbear_settings(pb_config: dict) -> dict:
    """``grid``, ``vae``, ``translator``, ``ridge_alphas`` and ``selection`` of a config's ``polarbear:`` block."""
    return {k: copy.deepcopy(pb_config[k]) for k in ("grid", "vae", "translator", "ridge_alphas", "selection")
            if k in pb_config}


def source_config(config: dict) -> dict:
    """The configuration a run uses: with ``source: demo``, the ``demo:`` block (all but its
    ``simulate:`` sizes) deep-merged over the rest -- the one overlay mechanism of the demo. The
    ``demo:`` block itself is kept. Other sources: a copy of ``config``."""
    out = copy.deepcopy(config)
    if config.get("source") == "demo":
        overlay = {k: v for k, v in (config.get("demo") or {}).items() if k != "simulate"}
        base = {k: v for k, v in config.items() if k != "demo"}
        out = deep_merge(base, overlay)
        out["demo"] = copy.deepcopy(config["demo"])
    return out


DEFAULTS = deep_merge(AUTHOR_DEFAULTS, DEPARTURES)
