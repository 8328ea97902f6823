"""Tests of the BABEL baseline: model, training stage, per-task selection and predictions."""

import json

import anndata as ad
import numpy as np
import pytest
import torch

from synthetic_coassay import make_coassay, write_coassay
from workflow_lib.predictions import PREDICTION_NAMES
from workflow_lib.babel_stage import (TASKS, foscttm, load_babel, predict_babel, select_babel,
                                      train_babel_point)
from workflow_lib.fileutils import InputFormatError
from workflow_lib.models.babel import BabelModel
from workflow_lib.predictions import LATENT_KEYS

FIT = {"batch_size": 32, "learning_rate": 0.003, "max_epochs": 6, "patience": 3}
SIZES = [30, 30, 30]


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models: one thread is fastest (and avoids oversubscription on a 2-core CI runner)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _batch(n=16, seed=0):
    rna, atac, _ = make_coassay(n_cells=n, n_genes=40, n_peaks=sum(SIZES), seed=seed)
    return torch.from_numpy(rna.X.toarray()), torch.from_numpy(atac.X.toarray())


@torch.no_grad()
def test_model_shapes_and_outputs():
    torch.manual_seed(0)
    m = BabelModel(n_genes=40, atac_chrom_sizes=SIZES, n_latent=5).eval()
    x, y = _batch()
    z_r, z_a = m.encode_rna(x), m.encode_atac(y)
    assert z_r.shape == z_a.shape == (16, 5)
    f = m.rna_frequencies(z_a)
    assert f.shape == (16, 40) and torch.allclose(f.sum(1), torch.ones(16), atol=1e-5)
    p = m.atac_probs(z_r)
    assert p.shape == (16, 90) and float(p.min()) >= 0 and float(p.max()) <= 1
    losses = m.path_losses(x, y)
    assert set(losses) == {"rna_rna", "atac_rna", "atac_atac", "rna_atac"}
    assert all(v.shape == (16,) and torch.isfinite(v).all() for v in losses.values())
    # the weight only scales the ATAC terms
    l0, l1 = m.loss(x, y, 0.0), m.loss(x, y, 1.0)
    expected = (losses["atac_atac"] + losses["rna_atac"]).mean()
    assert torch.allclose(l1 - l0, expected, atol=1e-5)


def test_atac_blocks_are_per_chromosome():
    torch.manual_seed(0)
    m = BabelModel(n_genes=10, atac_chrom_sizes=SIZES, n_latent=3)
    first = m.atac_encoder[0]
    dense = first.to_dense_weight()
    # hidden units of chromosome 1 see no peak of chromosome 2/3
    assert torch.count_nonzero(dense[:32, 30:]) == 0 and torch.count_nonzero(dense[:32, :30]) > 0


def test_tiny_overfit_loss_drops_strongly():
    torch.manual_seed(0)
    m = BabelModel(n_genes=40, atac_chrom_sizes=SIZES, n_latent=8)
    x, y = _batch(n=16, seed=3)
    opt = torch.optim.Adam(m.parameters(), lr=0.01)
    first = m.loss(x, y, 1.33).item()
    for _ in range(200):
        opt.zero_grad()
        loss = m.loss(x, y, 1.33)
        loss.backward()
        opt.step()
    last = m.loss(x, y, 1.33).item()
    assert last < 0.5 * first, (first, last)
    # the cross-modal RNA->ATAC path learns too (an untrained model sits at BCE ~0.69)
    with torch.no_grad():
        assert float(m.path_losses(x, y)["rna_atac"].mean()) < 0.4


def test_foscttm():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, 4))
    assert foscttm(a, a) == 0.0
    assert 0.35 < foscttm(a, rng.normal(size=(50, 4))) < 0.65


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("babel")
    rp, ap, truth = write_coassay(tmp, seed=4)
    grid = tmp / "grid"
    cfgs = []
    for lat, w in [(4, 1.33), (6, 0.2)]:
        pt = f"latent{lat}_weight{w:g}"
        train_babel_point(rp, ap, "random", pt, lat, w, FIT, grid / pt / "model.pt", grid / pt / "config.json",
                          seed=0)
        cfgs.append(grid / pt / "config.json")
    return tmp, rp, ap, grid, cfgs


def test_train_writes_loadable_model_and_config(trained):
    tmp, rp, ap, grid, cfgs = trained
    d = grid / "latent4_weight1.33"
    state = torch.load(d / "model.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["params"] == {"latent": 4, "weight": 1.33}
    assert {"atac_rna_nll", "rna_atac_bce", "foscttm", "joint_loss"} <= set(cfg["val_scores"])
    assert 1 <= cfg["fit"]["epochs_run"] <= FIT["max_epochs"]
    assert not (d / "checkpoint.pt").exists()
    model, _ = load_babel(d)
    assert model.n_latent == 4 and not model.training


def test_training_is_deterministic(trained, tmp_path):
    _, rp, ap, grid, _ = trained
    pt = "latent4_weight1.33"
    train_babel_point(rp, ap, "random", pt, 4, 1.33, FIT, tmp_path / "model.pt", tmp_path / "config.json", seed=0)
    a = torch.load(grid / pt / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "model.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_select_picks_per_task(tmp_path):
    scores = {
        "latent10_weight1": {"atac_rna_nll": 1.0, "rna_atac_bce": 0.5, "foscttm": 0.2, "joint_loss": 3.0},
        "latent16_weight5": {"atac_rna_nll": 2.0, "rna_atac_bce": 0.3, "foscttm": 0.3, "joint_loss": 2.0},
        "latent25_weight1": {"atac_rna_nll": 3.0, "rna_atac_bce": 0.6, "foscttm": 0.1, "joint_loss": 4.0},
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
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputFormatError, match="bad.json"):
        select_babel([bad], tmp_path / "x.json")


def test_predictions_follow_contract_and_are_deterministic(trained):
    tmp, rp, ap, grid, cfgs = trained
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
