"""Export of a trained Polarbear run to a portable model directory (workflow_lib.export).

The run is the one ``polarbear train`` made for the CLI tests (fixture ``cli_model`` of
tests/conftest.py, data set of tests/polarbear_toy.py): its work directory holds the workflow-style
method directory (``selected.json`` + ``grid/<point>/``) that export_polarbear reads.
"""

from __future__ import annotations

import json
import shutil

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from polarbear_toy import N_SINGLE
from workflow_lib.export import _coassay_batch, _dataset_counts, export_polarbear
from workflow_lib.fileutils import InputFormatError
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


def test_export_of_a_given_grid_point_and_method(cli_model, tmp_path):
    """``point=`` exports that grid point (its validation scores are not the selected point's, so
    none are recorded); single-assay cell counts are recorded for method polarbear only."""
    card = json.loads((cli_model["model"] / "model.json").read_text())
    other = next(p for p in card["selection"]["all"] if p != card["point"])
    f = cli_model["files"]
    method_dir = cli_model["model"].parent / "model.work" / "polarbear"
    out = export_polarbear(method_dir, f["coassay_rna"], f["coassay_atac"], "random", tmp_path / "export",
                           ridge_alphas=[1.0, 10.0], method="polarbear_coassay", variant="full",
                           single_rna=f["single_rna"], single_atac=f["single_atac"], point=other)
    got = json.loads((out / "model.json").read_text())
    assert got["point"] == other and got["validation_scores"] is None
    assert got["selection"]["point"] == card["point"]
    assert got["training"]["method"] == "polarbear_coassay" and got["training"]["variant"] == "full"
    assert not any(k.endswith("_cells_per_dataset") for k in got["training"])
    assert got["training"]["coassay_cells"] == card["training"]["coassay_cells"]
    assert got["depth_regressor"]["alphas"] == [1.0, 10.0] and got["depth_regressor"]["alpha"] in (1.0, 10.0)
    assert got["default_batch"] == {"rna": "snare", "atac": "snare"}
    # the exported modules are that grid point's
    src = torch.load(method_dir / "grid" / other / "translator_rna_to_atac.pt", weights_only=True)
    m = load_model_dir(out)
    for k, v in m.modules["translator_rna_to_atac"].state_dict().items():
        torch.testing.assert_close(v, src[k])


def test_missing_selection_is_refused_before_reading_data(tmp_path):
    method_dir = tmp_path / "models" / "full" / "random" / "polarbear"
    (method_dir / "grid").mkdir(parents=True)
    with pytest.raises(InputFormatError, match=r"selected\.json: missing: run model selection first"):
        export_polarbear(method_dir, tmp_path / "absent_rna.h5ad", tmp_path / "absent_atac.h5ad", "random",
                         tmp_path / "export", ridge_alphas=[1.0])
    assert not (tmp_path / "export").exists()


def test_default_batch_and_cells_per_dataset(tmp_path):
    """The card's default decoding batch is the most common co-assay batch; cells per data set
    are counted from obs['dataset'] (else obs['batch'])."""
    obs = pd.DataFrame({"batch": pd.Categorical(["zeisel", "snare", "snare"], categories=["zeisel", "snare"])})
    assert _coassay_batch(obs) == "snare"
    names = [f"c{i}" for i in range(5)]
    a = ad.AnnData(sp.csr_matrix((5, 2), dtype=np.float32),
                   obs=pd.DataFrame({"dataset": ["li", "fang", "li", "li", "fang"],
                                     "batch": ["x"] * 5}, index=names))
    a.write_h5ad(tmp_path / "with_dataset.h5ad")
    assert _dataset_counts(tmp_path / "with_dataset.h5ad") == {"fang": 2, "li": 3}
    del a.obs["dataset"]
    a.write_h5ad(tmp_path / "batch_only.h5ad")
    assert _dataset_counts(tmp_path / "batch_only.h5ad") == {"x": 5}
