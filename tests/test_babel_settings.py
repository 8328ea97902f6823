"""BABEL's settings (workflow_lib.babel_settings): babel.architecture, the demo overlay and
babel.compact."""

import pytest

from workflow_lib.babel_settings import babel_settings
from workflow_lib.train import FitConfig


def test_default_config_resolves_to_the_authors_settings(default_config):
    from workflow_lib.settings import source_config

    s = babel_settings(default_config["babel"])
    assert s["architecture"] == "authors"
    f = FitConfig.from_params(s["fit"])
    assert (f.batch_size, f.learning_rate, f.max_epochs, f.patience) == (512, 0.01, 500, 25)
    assert (f.early_stopping_threshold, f.grad_clip_norm) == (1e-4, 5.0)
    assert (f.lr_plateau_factor, f.lr_plateau_patience, f.lr_plateau_min_lr, f.lr_plateau_monitor) == \
        (0.1, 10, 1e-6, "train")
    assert s["model"] == {"rna_hidden": 64, "chrom_hidden": [32, 16], "rna_input_stats": "train"}
    demo = babel_settings(source_config(default_config)["babel"])
    assert demo["grid"] == {"latent": [16], "weight": [1.33]} and demo["architecture"] == "authors"
    # the demo overlay changes only what config.yaml's comment justifies
    changed = {k: v for k, v in demo["fit"].items() if s["fit"][k] != v}
    assert changed == {"batch_size": 64, "min_steps": 200} and demo["model"] == s["model"]


def test_demo_and_compact_overlays(default_config):
    import copy

    from workflow_lib.settings import source_config

    cfg = copy.deepcopy(default_config)
    cfg["demo"]["babel"] = {"batch_size": 7, "lr_scheduler": {"patience": 3},
                            "compact": default_config["demo"]["babel"]["compact"]}
    s = babel_settings(source_config(cfg)["babel"])["fit"]
    assert s["batch_size"] == 7 and s["learning_rate"] == 0.01
    assert s["lr_scheduler"] == {"factor": 0.1, "patience": 3, "min_lr": 1e-6, "threshold": 1e-4, "monitor": "train"}
    assert babel_settings(cfg["babel"])["fit"]["batch_size"] == 512
    # compact: today's implementation with today's training settings (the demo overlay's compact:)
    cfg["babel"]["architecture"] = "compact"
    demo = FitConfig.from_params(babel_settings(source_config(cfg)["babel"])["fit"])
    assert demo == FitConfig(batch_size=32, learning_rate=0.003, max_epochs=60, patience=10)
    full = FitConfig.from_params(babel_settings(cfg["babel"])["fit"])
    assert full == FitConfig(batch_size=128, learning_rate=0.001, max_epochs=200, patience=10)
    b = copy.deepcopy(cfg["babel"])
    b["architecture"] = "naive"
    with pytest.raises(ValueError, match="architecture"):
        babel_settings(b)
    b["architecture"] = "authors"
    b["batchsize"] = 7
    with pytest.raises(ValueError, match="batchsize"):
        babel_settings(b)
