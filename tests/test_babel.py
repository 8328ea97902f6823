"""Tests of the BABEL stage (workflow_lib.babel): training a grid point (both architectures),
per-task selection, the paired loader and predictions. The networks are tested in
tests/models/test_babel.py, the babel: settings in tests/test_babel_settings.py."""

import json

import anndata as ad
import numpy as np
import pytest
import torch

from conftest import BABEL_FIT as FIT
from synthetic_coassay import make_coassay
from workflow_lib.babel import TASKS, PairedLoader, predict_babel, select_babel, train_babel_point
from workflow_lib.fileutils import InputFormatError
from workflow_lib.models.babel import BabelAuthorsModel, BabelModel, TrainedBabel, rna_input_stats
from workflow_lib.predictions import LATENT_KEYS, PREDICTION_NAMES

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_train_writes_loadable_model_and_config(babel_trained):
    tmp, rp, ap, grid, cfgs = babel_trained
    d = grid / "latent4_weight1.33"
    state = torch.load(d / "model.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["params"] == {"latent": 4, "weight": 1.33}
    assert {"atac_rna_nll", "rna_atac_bce", "foscttm", "joint_loss", "rna_cor", "atac_auroc",
            "atac_auprnorm"} <= set(cfg["val_scores"])
    assert -1 <= cfg["val_scores"]["rna_cor"] <= 1 and 0 <= cfg["val_scores"]["atac_auroc"] <= 1
    assert 1 <= cfg["fit"]["epochs_run"] <= FIT["max_epochs"]
    assert not (d / "checkpoint.pt").exists()
    model = TrainedBabel.load(d).module
    assert model.n_latent == 4 and not model.training


def test_training_is_deterministic(babel_trained, tmp_path):
    _, rp, ap, grid, _ = babel_trained
    pt = "latent4_weight1.33"
    train_babel_point(rp, ap, "random", pt, 4, 1.33, FIT, tmp_path / "model.pt", tmp_path / "config.json", seed=0)
    a = torch.load(grid / pt / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "model.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_select_picks_per_task(tmp_path):
    """Each task by its validation statistic (the paper: "each task's performance on the validation
    set"): the highest gene-wise correlation / peak AUROC, the lowest FOSCTTM -- not the path losses."""
    scores = {
        "latent10_weight1": {"atac_rna_nll": 1.0, "rna_atac_bce": 0.5, "foscttm": 0.2, "joint_loss": 3.0,
                             "rna_cor": 0.31, "atac_auroc": 0.70},
        "latent16_weight5": {"atac_rna_nll": 2.0, "rna_atac_bce": 0.3, "foscttm": 0.3, "joint_loss": 2.0,
                             "rna_cor": 0.30, "atac_auroc": 0.72},
        "latent25_weight1": {"atac_rna_nll": 3.0, "rna_atac_bce": 0.6, "foscttm": 0.1, "joint_loss": 4.0,
                             "rna_cor": 0.29, "atac_auroc": 0.69},
    }
    paths = []
    for pt, s in scores.items():
        p = tmp_path / f"{pt}.json"
        p.write_text(json.dumps({"point": pt, "params": {}, "val_scores": s}))
        paths.append(p)
    sel = select_babel(paths, tmp_path / "selected.json")
    assert sel["per_task"]["atac_to_rna"]["point"] == "latent10_weight1"
    assert sel["per_task"]["rna_to_atac"]["point"] == "latent16_weight5"
    assert sel["per_task"]["latent"]["point"] == "latent25_weight1"
    assert sel["point"] == "latent16_weight5" and set(sel["all"]) == set(scores)
    assert json.loads((tmp_path / "selected.json").read_text()) == json.loads(json.dumps(sel))
    assert sel["criteria"]["atac_to_rna"] == "max val rna_cor" and sel["criteria"]["latent"] == "min val foscttm"
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputFormatError, match="bad.json"):
        select_babel([bad], tmp_path / "x.json")
    old = tmp_path / "old.json"   # written before the task statistics existed
    old.write_text(json.dumps({"point": "latent10_weight1", "params": {},
                               "val_scores": {"atac_rna_nll": 1.0, "rna_atac_bce": 0.5, "foscttm": 0.2}}))
    with pytest.raises(InputFormatError, match=r"old\.json.*lacks \['atac_auroc', 'rna_cor'\].*retrain"):
        select_babel([old], tmp_path / "x.json")


def test_predictions_follow_contract_and_are_deterministic(babel_trained):
    tmp, rp, ap, grid, cfgs = babel_trained
    select_babel(cfgs, tmp / "selected.json")
    sel = json.loads((tmp / "selected.json").read_text())
    runs = []
    for name in ("p1", "p2"):
        out = [tmp / name / f"{k}.h5ad" for k in PREDICTION_NAMES]
        predict_babel(rp, ap, "random", tmp / "selected.json", grid, out)
        runs.append([ad.read_h5ad(p) for p in out])
    a2r, r2a, lat, rest = runs[0]
    rna, atac = ad.read_h5ad(rp), ad.read_h5ad(ap)
    test_names = list(rna.obs_names[rna.obs["split_random"] == "test"])
    # atac_to_rna_rest: non-test cells in processed order, from the atac_to_rna point
    assert list(rest.obs_names) == list(rna.obs_names[rna.obs["split_random"] != "test"])
    assert list(rest.var_names) == list(rna.var_names)
    assert rest.X.dtype == np.float32 and rest.X.shape == (len(rest.obs_names), rna.n_vars)
    np.testing.assert_allclose(rest.X.sum(1), 1.0, atol=1e-4)
    assert rest.uns["method"] == "babel" and rest.uns["point"] == sel["per_task"]["atac_to_rna"]["point"]
    for task, a in zip(TASKS, runs[0]):
        assert list(a.obs_names) == test_names
        assert a.uns["method"] == "babel" and a.uns["point"] == sel["per_task"][task]["point"]
    assert list(a2r.var_names) == list(rna.var_names) and list(r2a.var_names) == list(atac.var_names)
    np.testing.assert_allclose(a2r.X.sum(1), 1.0, atol=1e-4)
    for m in (r2a.X, r2a.layers["norm"]):
        assert m.dtype == np.float32 and m.min() >= 0 and m.max() <= 1
    assert set(LATENT_KEYS) <= set(lat.obsm)
    np.testing.assert_array_equal(lat.obsm["rna_query"], lat.obsm["rna_reference"])
    np.testing.assert_array_equal(lat.obsm["atac_query"], lat.obsm["atac_reference"])
    for x, y in zip(runs[0], runs[1]):
        np.testing.assert_array_equal(x.X, y.X)
    np.testing.assert_array_equal(lat.obsm["rna_query"], runs[1][2].obsm["rna_query"])


def test_paired_loader_skips_batches_too_small_for_batchnorm():
    rna, atac, _ = make_coassay(n_cells=5, n_genes=6, n_peaks=9, seed=0)
    import scipy.sparse as sp
    X, Y = sp.csr_matrix(rna.X), sp.csr_matrix(atac.X)
    sizes = [b["x"].shape[0] for b in PairedLoader(X, Y, np.arange(5), 4, shuffle=True, seed=0)]
    assert sizes == [4, 1]
    sizes = [b["x"].shape[0] for b in PairedLoader(X, Y, np.arange(5), 4, shuffle=True, seed=0, min_batch=2)]
    assert sizes == [4]


def test_architecture_option_switches_model_and_both_reload(babel_trained, tmp_path):
    """Default (authors): BabelAuthorsModel with its RNA statistics in the state_dict; compact:
    the earlier BabelModel; a config.json from before the option (no 'architecture') is compact."""
    _, rp, ap, grid, _ = babel_trained
    d = grid / "latent4_weight1.33"
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["architecture"] == "authors" and cfg["class"].endswith(".BabelAuthorsModel")
    assert cfg["kwargs"]["rna_hidden"] == 64 and cfg["kwargs"]["chrom_hidden"] == [32, 16]
    state = torch.load(d / "model.pt", weights_only=True)
    assert {"size_scale", "rna_mean", "rna_std", "rna_clip"} <= set(state)
    assert float(state["rna_std"].min()) > 0 and torch.isfinite(state["rna_clip"]).all()
    model = TrainedBabel.load(d).module
    assert isinstance(model, BabelAuthorsModel) and not model.training

    c = tmp_path / "compact"
    out = train_babel_point(rp, ap, "random", "latent4_weight1.33", 4, 1.33, FIT, c / "model.pt", c / "config.json",
                            seed=0, architecture="compact")
    assert out["architecture"] == "compact" and out["class"].endswith(".BabelModel")
    assert set(out["kwargs"]) == {"n_genes", "atac_chrom_sizes", "n_latent", "size_scale"}
    m2 = TrainedBabel.load(c).module
    assert type(m2) is BabelModel
    legacy = json.loads((c / "config.json").read_text())
    del legacy["architecture"]
    (c / "config.json").write_text(json.dumps(legacy))
    assert type(TrainedBabel.load(c).module) is BabelModel
    with pytest.raises(ValueError, match="architecture"):
        train_babel_point(rp, ap, "random", "p", 4, 1.33, FIT, tmp_path / "x.pt", tmp_path / "x.json",
                          architecture="naive")
    with pytest.raises(ValueError, match="rna_input_stats"):
        train_babel_point(rp, ap, "random", "p", 4, 1.33, FIT, tmp_path / "x.pt", tmp_path / "x.json",
                          model_params={"rna_input_stats": "test"})


def test_rna_input_stats_from_train_or_all_cells(babel_trained, tmp_path):
    _, rp, ap, grid, _ = babel_trained
    fit = dict(FIT, max_epochs=1)
    means = {}
    for cells in ("train", "all"):
        d = tmp_path / cells
        train_babel_point(rp, ap, "random", "p", 4, 1.33, fit, d / "model.pt", d / "config.json",
                          model_params={"rna_input_stats": cells})
        means[cells] = torch.load(d / "model.pt", weights_only=True)["rna_mean"]
    rna = ad.read_h5ad(rp)
    X = rna.X.toarray() if hasattr(rna.X, "toarray") else np.asarray(rna.X)
    train = np.flatnonzero(rna.obs["split_random"] == "train")
    np.testing.assert_allclose(means["train"].numpy(), rna_input_stats(X, train)["mean"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(means["all"].numpy(), rna_input_stats(X)["mean"], rtol=1e-5, atol=1e-6)
