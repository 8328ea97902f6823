"""Export of a trained Polarbear run to a portable model directory (workflow_lib.export).

The run is the one ``polarbear train`` made for the CLI tests (fixture ``cli_model`` of
tests/conftest.py, data set of tests/polarbear_toy.py): its work directory holds the workflow-style
method directory (``selected.json`` + ``grid/<point>/``) that export_polarbear reads.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from polarbear_toy import N_SINGLE
from workflow_lib.model_dir import load_model_dir


def test_model_dir_is_tensor_only_and_self_describing(cli_model):
    model = cli_model["model"]
    card = json.loads((model / "model.json").read_text())
    assert card["format"] == "polarbear-model-dir"
    pts = sorted(model.glob("*.pt"))
    assert {p.name for p in pts} == {"vae_rna.pt", "vae_atac.pt", "translator_rna_to_atac.pt",
                                      "translator_atac_to_rna.pt", "depth_regressor.pt"}
    for p in pts:
        state = torch.load(p, weights_only=True)
        assert state and all(isinstance(v, torch.Tensor) for v in state.values()), p
    assert set(torch.load(model / "depth_regressor.pt", weights_only=True)) >= {"coef", "intercept", "mean", "scale"}
    assert card["features"]["rna"]["names"] == list(cli_model["co_rna"].var_names)
    assert card["features"]["atac"]["names"] == list(cli_model["co_atac"].var_names)
    assert (model / "features_atac.txt").read_text().split() == list(cli_model["co_atac"].var_names)
    assert card["batch_categories"] == {"rna": ["snare", "zeisel"], "atac": ["snare", "li", "fang"]}
    assert card["training"]["method"] == "polarbear"
    assert card["training"]["single_rna_cells_per_dataset"] == {"zeisel": N_SINGLE}
    assert set(card["selection"]["all"]) == {"latent10_beta0.1", "latent10_beta0.5"}
    assert card["point"] == card["selection"]["point"]
    # the directory is self-contained: a copy elsewhere loads, and a tampered file is detected
    copy = cli_model["dir"] / "copied_model"
    shutil.copytree(model, copy)
    m = load_model_dir(copy)
    assert m.modules["vae_rna"].latent == 10 and not m.modules["vae_atac"].training
    with open(copy / "translator_rna_to_atac.pt", "ab") as fh:
        fh.write(b"x")
    with pytest.raises(ValueError, match="checksum"):
        load_model_dir(copy)
