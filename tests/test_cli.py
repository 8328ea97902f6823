"""The `polarbear` console entry point: train -> model directory -> info / translate / align.

One model is trained once per session through ``main(["train", ...])`` on the tiny, learnable
co-assay data set of tests/polarbear_toy.py (fixture ``cli_model`` of tests/conftest.py) and reused.
The model directory's contents are tested in tests/test_export.py, feature matching in
tests/test_model_dir.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from polarbear_toy import CHROMS, N_GENES
from workflow_lib import cli
from workflow_lib.models.polarbear import PolarbearModel
from workflow_lib.predictions import PREDICTION_NAMES


def _write(a, path):
    a.write_h5ad(path)
    return str(path)


def test_info_prints_features_hyperparameters_and_scores(cli_model, capsys):
    assert cli.main(["info", "--model", str(cli_model["model"])]) == 0
    out = capsys.readouterr().out
    assert f"RNA features: {N_GENES}" in out and "Gene0, Gene1" in out
    assert f"ATAC features: {sum(CHROMS.values())}" in out and "chr1:1000-1300" in out
    assert "latent=10" in out and "beta=" in out
    assert "validation scores" in out and "rna_to_atac=" in out
    assert "latent10_beta0.1" in out and "latent10_beta0.5" in out
    assert cli.main(["info", "--model", str(cli_model["model"]), "--json"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["hyperparameters"]["latent"] == 10 and "names" not in card["features"]["rna"]


def test_translate_both_directions_named_features_and_shapes(cli_model, tmp_path):
    test = cli_model["test"]
    rna_in = _write(cli_model["co_rna"][test].copy(), tmp_path / "rna.h5ad")
    atac_in = _write(cli_model["co_atac"][test].copy(), tmp_path / "atac.h5ad")
    n = int(test.sum())
    assert cli.main(["-q", "translate", "--model", str(cli_model["model"]), "--input", rna_in,
                     "--output", str(tmp_path / "pred_atac.h5ad")]) == 0
    r2a = ad.read_h5ad(tmp_path / "pred_atac.h5ad")
    assert r2a.uns["direction"] == "rna-to-atac"  # detected from feature names
    assert r2a.shape == (n, sum(CHROMS.values()))
    assert list(r2a.var_names) == list(cli_model["co_atac"].var_names)
    assert list(r2a.var["chrom"].unique()) == list(CHROMS)
    assert list(r2a.obs_names) == list(cli_model["co_rna"].obs_names[test])
    assert r2a.X.min() >= 0 and r2a.X.max() <= 1 and r2a.layers["norm"].shape == r2a.shape
    assert cli.main(["-q", "translate", "--model", str(cli_model["model"]), "--input", atac_in,
                     "--output", str(tmp_path / "pred_rna.h5ad"), "--direction", "atac-to-rna"]) == 0
    a2r = ad.read_h5ad(tmp_path / "pred_rna.h5ad")
    assert a2r.shape == (n, N_GENES) and list(a2r.var_names) == list(cli_model["co_rna"].var_names)
    np.testing.assert_allclose(a2r.X.sum(1), 1.0, atol=1e-4)
    # the translation carries cell-level signal: per-peak AUROC above chance, per-gene Pearson > 0
    from workflow_lib.metrics import auroc_columns, pearson_columns

    auroc = np.nanmean(auroc_columns(cli_model["co_atac"][test].X.toarray(), r2a.X))
    assert auroc > 0.6, auroc
    counts = cli_model["co_rna"][test].X.toarray()
    pear = np.nanmean(pearson_columns(np.log1p(1e4 * a2r.X), np.log1p(1e4 * counts / counts.sum(1, keepdims=True))))
    assert pear > 0.2, pear


def test_translate_matches_workflow_predictions(cli_model, tmp_path):
    """The exported model reproduces polarbear.predict_polarbear on the same grid point."""
    from workflow_lib import polarbear as pb

    f = cli_model["files"]
    mdir = cli_model["model"].parent / "model.work" / "polarbear"
    outs = [tmp_path / f"{k}.h5ad" for k in ("a2r", "r2a", "lat", "a2r_rest")]
    # the workflow predicts each task with its own pick; the export holds one point: make every
    # task use that point so both sides run the same modules
    sel = json.loads((mdir / "selected.json").read_text())
    sel["per_task"] = {task: dict(pick, point=sel["point"], params=sel["params"])
                       for task, pick in sel["per_task"].items()}
    (tmp_path / "selected.json").write_text(json.dumps(sel))
    pb.predict_polarbear(tmp_path / "selected.json", mdir, f["coassay_rna"], f["coassay_atac"], "random",
                         "polarbear", cli.TRAIN_DEFAULTS["ridge_alphas"], dict(zip(PREDICTION_NAMES, outs)))
    model = PolarbearModel.load(cli_model["model"])
    test = cli_model["test"]
    r2a = cli.translate_adata(model, cli_model["co_rna"][test].copy(), "rna-to-atac")
    a2r = cli.translate_adata(model, cli_model["co_atac"][test].copy(), "atac-to-rna")
    ref_a2r, ref_r2a = ad.read_h5ad(outs[0]), ad.read_h5ad(outs[1])
    # one model object behind both; the workflow encodes all co-assay cells in blocks of 512 and the
    # CLI only the test cells, so float32 matrix products may differ in the last bits
    np.testing.assert_allclose(a2r.X, ref_a2r.X, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(r2a.layers["norm"], ref_r2a.layers["norm"], rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(r2a.X, ref_r2a.X, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(r2a.obs["predicted_atac_depth_factor"], ref_r2a.obs["predicted_atac_depth_factor"],
                               rtol=1e-5)


def test_translate_to_file_in_chunks_equals_in_memory(cli_model, tmp_path, monkeypatch):
    """The CLI writes predictions block by block (chunk of 7 cells, uneven last block); the file
    reads back as a normal h5ad identical to translate_adata, and a failure mid-way leaves no file."""
    model = PolarbearModel.load(cli_model["model"])
    test = cli_model["test"]
    rna = cli_model["co_rna"][test].copy()
    ref = cli.translate_adata(model, rna, "rna-to-atac")
    out = tmp_path / "chunked.h5ad"
    direction, shape = cli.translate_to_file(model, rna, out, "rna-to-atac", chunk_cells=7)
    got = ad.read_h5ad(out)
    assert direction == "rna-to-atac" and shape == ref.shape == got.shape and rna.n_obs % 7 != 0
    np.testing.assert_allclose(got.X, ref.X, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got.layers["norm"], ref.layers["norm"], rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(got.obsm["translated_latent"], ref.obsm["translated_latent"])
    assert list(got.var_names) == list(ref.var_names) and list(got.obs_names) == list(ref.obs_names)
    assert got.uns["direction"] == "rna-to-atac" and "predicted_atac_depth_factor" in got.obs

    calls = {"n": 0}
    orig = cli._Translation.profiles

    def failing(self, rows):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("simulated crash in block 2")
        return orig(self, rows)

    monkeypatch.setattr(cli._Translation, "profiles", failing)
    bad = tmp_path / "crash.h5ad"
    with pytest.raises(RuntimeError, match="block 2"):
        cli.translate_to_file(model, rna, bad, "rna-to-atac", chunk_cells=7)
    assert not bad.exists() and not list(tmp_path.glob("*crash*"))


def test_missing_and_extra_features_fill_rule(cli_model, tmp_path, capsys):
    test = cli_model["test"]
    rna = cli_model["co_rna"][test].copy()
    genes = list(rna.var_names)
    drop = genes[: N_GENES // 4]  # 25% missing
    keep = rna[:, genes[N_GENES // 4:]].copy()
    extra = ad.AnnData(sp.csr_matrix(np.ones((keep.n_obs, 3), np.float32)), obs=keep.obs.copy(),
                       var=pd.DataFrame(index=["NotAGene1", "NotAGene2", "NotAGene3"]))
    partial = ad.concat([keep, extra], axis=1, merge="first")
    partial.obs = keep.obs.copy()
    path = _write(partial, tmp_path / "partial.h5ad")
    assert cli.main(["translate", "--model", str(cli_model["model"]), "--input", path,
                     "--output", str(tmp_path / "p.h5ad")]) == 0
    err = capsys.readouterr().err
    assert f"{N_GENES - len(drop)}/{N_GENES} model features found; {len(drop)} missing" in err
    assert "filled with zeros" in err and "3 extra input features dropped" in err and "NotAGene1" in err
    out = ad.read_h5ad(tmp_path / "p.h5ad")
    info = out.uns["input_features"]
    assert list(info["missing_features"]) == drop and info["n_extra_dropped"] == 3
    assert "filled with 0" in info["fill_rule"]
    # the fill rule is exactly "zeros": same result as the full input with those genes zeroed
    zeroed = rna.copy()
    X = zeroed.X.toarray()
    X[:, : len(drop)] = 0
    zeroed.X = sp.csr_matrix(X)
    ref = cli.translate_adata(PolarbearModel.load(cli_model["model"]), zeroed, "rna-to-atac")
    np.testing.assert_allclose(out.X, ref.X, rtol=1e-5, atol=1e-6)
    # too many missing -> refused with a clear message and exit status 2
    few = _write(rna[:, genes[: N_GENES // 5]].copy(), tmp_path / "few.h5ad")
    assert cli.main(["translate", "--model", str(cli_model["model"]), "--input", few,
                     "--output", str(tmp_path / "few_out.h5ad"), "--direction", "rna-to-atac"]) == 2
    err = capsys.readouterr().err
    assert "80.0%" in err and "refusing" in err and "--max-missing-frac" in err
    assert not (tmp_path / "few_out.h5ad").exists()
    assert cli.main(["-q", "translate", "--model", str(cli_model["model"]), "--input", few, "--output",
                     str(tmp_path / "few_out.h5ad"), "--direction", "rna-to-atac", "--max-missing-frac", "0.9"]) == 0


def test_align_writes_pairs_and_foscttm_better_than_random(cli_model, tmp_path):
    test = cli_model["test"]
    rna = cli_model["co_rna"][test].copy()
    atac = cli_model["co_atac"][test].copy()
    perm = np.random.default_rng(0).permutation(atac.n_obs)
    atac = atac[perm].copy()  # truth is by cell name, not by row
    del atac.obs["batch"]     # missing batch column -> co-assay batch
    out = tmp_path / "pairs.tsv"
    assert cli.main(["-q", "align", "--model", str(cli_model["model"]), "--rna", _write(rna, tmp_path / "r.h5ad"),
                     "--atac", _write(atac, tmp_path / "a.h5ad"), "--output", str(out)]) == 0
    pairs = pd.read_csv(out, sep="\t")
    n = rna.n_obs
    assert len(pairs) == 2 * n and set(pairs["direction"]) == {"rna_query", "atac_query"}
    rq = pairs[pairs["direction"] == "rna_query"]
    assert list(rq["query_cell"]) == list(rna.obs_names) and set(rq["matched_cell"]) <= set(atac.obs_names)
    assert (rq["true_cell"] == rq["query_cell"]).all()
    summary = json.loads((tmp_path / "pairs.summary.json").read_text())
    assert summary["n_truth_pairs"] == n
    for key in ("foscttm_rna_query", "foscttm_atac_query"):
        assert 0 <= summary[key] < 0.3, summary  # random matching gives 0.5
    assert np.isclose(rq["foscttm"].mean(), summary["foscttm_rna_query"])
    # without a known truth: pairs only
    other = atac.copy()
    other.obs_names = [f"x{i}" for i in range(other.n_obs)]
    out2 = tmp_path / "pairs2.tsv"
    assert cli.main(["-q", "align", "--model", str(cli_model["model"]), "--rna", str(tmp_path / "r.h5ad"),
                     "--atac", _write(other, tmp_path / "o.h5ad"), "--output", str(out2)]) == 0
    assert "foscttm" not in pd.read_csv(out2, sep="\t").columns
    assert "foscttm_mean" not in json.loads((tmp_path / "pairs2.summary.json").read_text())


def test_console_script_runs(cli_model):
    exe = shutil.which("polarbear")
    if exe is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-e", str(Path(cli.__file__).parents[1])],
                       check=True, capture_output=True)
        exe = shutil.which("polarbear")
    assert exe, "polarbear console script not installed"
    proc = subprocess.run([exe, "info", "--model", str(cli_model["model"])], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "latent=10" in proc.stdout and f"RNA features: {N_GENES}" in proc.stdout
    bad = subprocess.run([exe, "info", "--model", str(cli_model["dir"])], capture_output=True, text=True)
    assert bad.returncode == 2 and "no model.json" in bad.stderr


def test_train_coassay_only_adds_random_split_when_missing(cli_model, tmp_path):
    co_rna, co_atac = cli_model["co_rna"].copy(), cli_model["co_atac"].copy()
    for a in (co_rna, co_atac):
        del a.obs["split_random"]
    r, a = _write(co_rna, tmp_path / "r.h5ad"), _write(co_atac, tmp_path / "a.h5ad")
    assert cli.main(["-q", "train", "--coassay-rna", r, "--coassay-atac", a, "--out", str(tmp_path / "m"),
                     "--latent", "3", "--beta", "1", "--vae-max-epochs", "2", "--translator-max-epochs", "2"]) == 0
    card = json.loads((tmp_path / "m" / "model.json").read_text())
    assert card["training"]["method"] == "polarbear_coassay"
    assert card["training"]["coassay_cells"] == {"train": 240, "val": 80, "test": 80}
    assert "single_rna_cells_per_dataset" not in card["training"]
    assert card["point"] == "latent3_beta1" and card["hyperparameters"]["latent"] == 3
    # half a semi-supervised set-up is a usage error, not a traceback
    assert cli.main(["-q", "train", "--coassay-rna", r, "--coassay-atac", a, "--single-rna", r,
                     "--out", str(tmp_path / "m2")]) == 2


@pytest.mark.e2e
def test_cli_on_demo_outputs_reproduces_workflow_predictions(demo_workdir, tmp_path):
    """On the demo run: the exported model of each task's selected grid point (the export rule's
    model for its point, else exported here) translates the test cells exactly like the workflow's
    predict_polarbear, and align reproduces its latent FOSCTTM."""
    from workflow_lib.metrics import foscttm
    from workflow_lib.export import export_polarbear
    from workflow_lib.polarbear import task_points

    res = demo_workdir / "results"
    run = res / "models" / "full" / "random" / "polarbear"
    rna_p, atac_p = res / "processed" / "full" / "coassay_rna.h5ad", res / "processed" / "full" / "coassay_atac.h5ad"
    points = task_points(json.loads((run / "selected.json").read_text()))

    def model_of(point):
        exported = run / "export"
        if (exported / "model.json").is_file() and json.loads((exported / "model.json").read_text())["point"] == point:
            return exported
        out = tmp_path / f"export_{point}"
        if not (out / "model.json").is_file():
            export_polarbear(run, rna_p, atac_p, "random", out, ridge_alphas=cli.TRAIN_DEFAULTS["ridge_alphas"],
                             method="polarbear", variant="full", point=point)
        return out

    rna, atac = ad.read_h5ad(rna_p), ad.read_h5ad(atac_p)
    test = rna.obs["split_random"].astype(str).to_numpy() == "test"
    rna_in = _write(rna[test].copy(), tmp_path / "rna.h5ad")
    atac_in = _write(atac[test].copy(), tmp_path / "atac.h5ad")
    assert cli.main(["-q", "translate", "--model", str(model_of(points["rna_to_atac"])), "--input", rna_in,
                     "--output", str(tmp_path / "r2a.h5ad")]) == 0
    assert cli.main(["-q", "translate", "--model", str(model_of(points["atac_to_rna"])), "--input", atac_in,
                     "--output", str(tmp_path / "a2r.h5ad")]) == 0
    pred = res / "predictions" / "full" / "random" / "polarbear"
    r2a, ref_r2a = ad.read_h5ad(tmp_path / "r2a.h5ad"), ad.read_h5ad(pred / "rna_to_atac.h5ad")
    a2r, ref_a2r = ad.read_h5ad(tmp_path / "a2r.h5ad"), ad.read_h5ad(pred / "atac_to_rna.h5ad")
    assert ref_r2a.uns["point"] == points["rna_to_atac"] and ref_a2r.uns["point"] == points["atac_to_rna"]
    assert list(r2a.var_names) == list(ref_r2a.var_names) and list(a2r.var_names) == list(ref_a2r.var_names)
    assert list(r2a.obs_names) == list(ref_r2a.obs_names)
    np.testing.assert_allclose(r2a.layers["norm"], ref_r2a.layers["norm"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(r2a.X, ref_r2a.X, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(a2r.X, ref_a2r.X, rtol=1e-4, atol=1e-6)
    out = tmp_path / "pairs.tsv"
    assert cli.main(["-q", "align", "--model", str(model_of(points["latent"])), "--rna", rna_in, "--atac", atac_in,
                     "--output", str(out)]) == 0
    summary = json.loads((tmp_path / "pairs.summary.json").read_text())
    lat = ad.read_h5ad(pred / "latent.h5ad")
    assert lat.uns["point"] == points["latent"]
    expected = float(np.mean(foscttm(lat.obsm["rna_query"], lat.obsm["atac_reference"])))
    assert summary["foscttm_rna_query"] == pytest.approx(expected, abs=1e-4)
    expected = float(np.mean(foscttm(lat.obsm["atac_query"], lat.obsm["rna_reference"])))
    assert summary["foscttm_atac_query"] == pytest.approx(expected, abs=1e-4)
