"""Evaluation stage on a tiny synthetic co-assay with contract-valid prediction files."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy.stats import mannwhitneyu, wilcoxon
from synthetic_coassay import make_coassay

from workflow_lib import evaluate as E
from workflow_lib.fileutils import InputFormatError
from workflow_lib.normalize import pooled_size_factors, scran_size_factors
from workflow_lib.predictions import (PREDICTION_NAMES, build_prediction_adatas, load_coassay, rest_rows,
                                      write_predictions)


def _write_preds(tmp_path, rp, ap, truth, scenario, method, noise, seed):
    """Predictions = (noisy) ground-truth frequencies/probabilities; latent = noisy z."""
    rng = np.random.default_rng(seed)
    data = load_coassay(rp, ap, scenario)
    t = data.test
    freq = truth["freq"][t] * np.exp(rng.normal(0, noise, truth["freq"][t].shape))
    freq /= freq.sum(1, keepdims=True)
    p = np.clip(truth["p"][t] + rng.normal(0, noise * 0.3, truth["p"][t].shape), 0, 1)
    z = truth["z"][t]
    lat = {k: z + rng.normal(0, noise * 3, z.shape) for k in E.M_LATENT}
    rest = rest_rows(data)
    freq_rest = truth["freq"][rest] * np.exp(rng.normal(0, noise, truth["freq"][rest].shape))
    freq_rest /= freq_rest.sum(1, keepdims=True)
    ads = build_prediction_adatas(data, t, freq, p, np.clip(p * 1.2, 0, 1), lat, method,
                                  rest_atac_to_rna=freq_rest)
    d = tmp_path / "pred" / scenario / method
    paths = {k: str(d / f"{k}.h5ad") for k in PREDICTION_NAMES}
    write_predictions(ads, paths)
    return [paths[k] for k in PREDICTION_NAMES]


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("eval")
    rna, atac, truth = make_coassay(n_cells=300, n_genes=60, n_peaks=90, seed=1)
    rna.obs["cell_type"] = pd.Categorical([f"Ex-{c}-Gene{i}" for c, i in
                                           zip(rna.obs["cell_type"].astype(str),
                                               rna.obs["cell_type"].cat.codes)])
    atac.obs["cell_type"] = rna.obs["cell_type"].values
    # two peaks open only in type-0 cells outside the random test set: DE, but no positive test cell
    Y = atac.X.toarray()
    only = (truth["types"] == 0) & (atac.obs["split_random"].to_numpy() != "test")
    Y[:, :2] = (only[:, None] & (np.random.default_rng(2).random((Y.shape[0], 2)) < 0.9))
    atac.X = sp.csr_matrix(Y)
    rp, ap = tmp / "coassay_rna.h5ad", tmp / "coassay_atac.h5ad"
    rna.write_h5ad(rp)
    atac.write_h5ad(ap)
    ref = {k: tmp / "ref" / f"{k}.tsv" for k in ("size_factors", "genes_de", "peaks_de")}
    E.run_reference(rp, ap, ref["size_factors"], ref["genes_de"], ref["peaks_de"])
    dirs, out = {}, {}
    for scenario in ("random", "unseen"):
        for method, noise in (("polarbear", 0.2), ("babel", 1.5)):
            pred = _write_preds(tmp, rp, ap, truth, scenario, method, noise, seed=len(method))
            d = tmp / "eval" / scenario / method
            outputs = {k: d / f"{k}.tsv" for k in ("genes", "peaks", "cells", "markers", "de")}
            out[(scenario, method)] = E.run_evaluation(
                pred, rp, ap, ref["size_factors"], ref["genes_de"], ref["peaks_de"], outputs,
                scenario, 0.01, None)
            dirs[(scenario, method)] = d
    t3 = E.run_table3(dirs, tmp / "table3.tsv", tmp / "table3.md")
    return {"tmp": tmp, "out": out, "t3": t3, "rp": rp, "ap": ap, "ref": ref, "truth": truth,
            "rna": rna, "atac": atac}


def _run_inputs(evaluated, scenario, method):
    """Processed data, scenario rows, size factors (paper, v1) and prediction AnnDatas of a run."""
    rna = evaluated["rna"]
    split = rna.obs[f"split_{scenario}"].astype(str).to_numpy()
    test, train = np.flatnonzero(split == "test"), np.flatnonzero(split == "train")
    rest = np.flatnonzero(split != "test")
    sf = pd.read_csv(evaluated["ref"]["size_factors"], sep="\t")
    d = evaluated["tmp"] / "pred" / scenario / method
    preds = {k: ad.read_h5ad(d / f"{k}.h5ad") for k in PREDICTION_NAMES}
    X = sp.csr_matrix(rna.X).toarray().astype(np.float64)
    return X, test, train, rest, sf["size_factor"].to_numpy(), sf["size_factor_v1"].to_numpy(), preds


def test_tables_follow_the_contract(evaluated):
    tabs = evaluated["out"][("random", "polarbear")]
    cols = {
        "genes": ["gene", "pearson", "pearson_v1", "is_de", "frac_nonzero", "n_pos", "de_set"],
        "peaks": ["peak", "auroc", "auprnorm", "pp", "n_pos", "is_de", "paper_set", "de_set"],
        "cells": ["cell", "cell_type", "foscttm_latent_rna_query", "foscttm_latent_atac_query",
                  "foscttm_rna_latent_rna_query", "foscttm_rna_latent_atac_query",
                  "foscttm_profile_rna_query", "foscttm_profile_atac_query"],
        "markers": ["cell_type", "gene", "n_pos", "auroc_pred", "auroc_true", "auroc_true_v1",
                    "paper_set"],
        "de": ["gene", "pred_pvalue", "pred_fdr", "true_pvalue", "true_fdr", "true_de", "paper_set",
               "pred_pvalue_v1", "pred_fdr_v1", "true_pvalue_v1", "true_fdr_v1", "true_de_v1"],
    }
    for k, c in cols.items():
        on_disk = pd.read_csv(evaluated["tmp"] / "eval" / "random" / "polarbear" / f"{k}.tsv", sep="\t")
        assert list(on_disk.columns) == c
    assert len(tabs["genes"]) == 60 and len(tabs["peaks"]) == 90
    assert set(tabs["genes"]["de_set"]) == set(tabs["peaks"]["de_set"]) == {"ours"}   # no authors' DE sets
    assert tabs["genes"]["is_de"].sum() > 5 and tabs["peaks"]["is_de"].sum() > 5
    assert len(tabs["markers"]) == 4      # suffix after the last '-' = Gene0..Gene3
    sf = pd.read_csv(evaluated["ref"]["size_factors"], sep="\t")
    assert list(sf.columns) == ["cell", "cell_type", "size_factor", "size_factor_v1"]
    for c in ("size_factor", "size_factor_v1"):
        assert sf[c].mean() == pytest.approx(1.0) and (sf[c] > 0).all()


def test_reference_size_factors_paper_is_scran_without_cell_types(evaluated):
    sf = pd.read_csv(evaluated["ref"]["size_factors"], sep="\t")
    X = sp.csr_matrix(evaluated["rna"].X)
    paper, info = scran_size_factors(X)
    assert info["n_groups"] == 1 and info["pool_sizes"][:3] == [21, 26, 31]
    np.testing.assert_allclose(sf["size_factor"], paper, rtol=1e-10)
    v1, _ = pooled_size_factors(X, evaluated["rna"].obs["cell_type"].astype(str).to_numpy())
    np.testing.assert_allclose(sf["size_factor_v1"], v1, rtol=1e-10)
    assert np.abs(sf["size_factor"] - sf["size_factor_v1"]).max() > 1e-3   # cell types matter


@pytest.mark.parametrize("scenario", ["random", "unseen"])
def test_pearson_paper_and_v1_match_direct_numpy(evaluated, scenario):
    X, test, _, _, sf, sf_v1, preds = _run_inputs(evaluated, scenario, "polarbear")
    genes = evaluated["out"][(scenario, "polarbear")]["genes"]
    pred = preds["atac_to_rna"].X.astype(np.float64)
    L = X.sum(1).mean()                                    # mean library size of ALL co-assay cells
    truth = np.log(X[test] / sf[test][:, None] + 1)
    truth_v1 = np.log1p(X[test] / sf_v1[test][:, None])
    checked = 0
    for j in range(X.shape[1]):
        t = truth[:, j]
        if t.std() == 0:
            assert np.isnan(genes["pearson"][j]) and np.isnan(genes["pearson_v1"][j])
            continue
        exp = np.corrcoef(np.log(pred[:, j] * L + 1), t)[0, 1]
        exp_v1 = np.corrcoef(np.log1p(1e4 * pred[:, j]), truth_v1[:, j])[0, 1]
        assert genes["pearson"][j] == pytest.approx(exp, abs=1e-9)
        assert genes["pearson_v1"][j] == pytest.approx(exp_v1, abs=1e-9)
        checked += 1
    assert checked > 30
    assert (genes["n_pos"] == (X[test] > 0).sum(0)).all()
    assert not np.allclose(genes["pearson"], genes["pearson_v1"], equal_nan=True)


def test_peaks_paper_set_is_de_with_n_over_100_positives(evaluated):
    for scenario in ("random", "unseen"):
        peaks = evaluated["out"][(scenario, "polarbear")]["peaks"]
        atac = evaluated["atac"]
        test = np.flatnonzero(atac.obs[f"split_{scenario}"].astype(str).to_numpy() == "test")
        n_pos = (sp.csr_matrix(atac.X)[test].toarray() > 0).sum(0)
        assert (peaks["n_pos"] == n_pos).all()
        exp = peaks["is_de"].to_numpy() & (n_pos >= test.size / 100)
        assert (peaks["paper_set"] == exp).all()
    # the filter bites: DE peaks without enough positive test cells (here peaks 0, 1) are left out
    peaks = evaluated["out"][("random", "polarbear")]["peaks"]
    assert peaks["is_de"][:2].all() and not peaks["paper_set"][:2].any()
    n_test = len(evaluated["out"][("random", "polarbear")]["cells"])
    assert peaks["paper_set"].sum() == (peaks["is_de"] & (peaks["n_pos"] >= n_test / 100)).sum() > 50


def test_cells_foscttm_in_both_latent_spaces(evaluated):
    from test_metrics import _foscttm_brute

    _, _, _, _, _, _, preds = _run_inputs(evaluated, "random", "babel")
    lat = preds["latent"].obsm
    cells = evaluated["out"][("random", "babel")]["cells"]
    exp = {"foscttm_latent_rna_query": (lat["rna_query"], lat["atac_reference"]),
           "foscttm_latent_atac_query": (lat["atac_reference"], lat["rna_query"]),
           "foscttm_rna_latent_rna_query": (lat["rna_reference"], lat["atac_query"]),
           "foscttm_rna_latent_atac_query": (lat["atac_query"], lat["rna_reference"])}
    for col, (q, r) in exp.items():
        np.testing.assert_allclose(cells[col], _foscttm_brute(np.asarray(q), np.asarray(r)),
                                   atol=1e-12, err_msg=col)


def test_markers_paper_set_and_true_auroc_per_definition(evaluated):
    from sklearn.metrics import roc_auc_score

    X, test, _, _, sf, sf_v1, preds = _run_inputs(evaluated, "random", "polarbear")
    mk = evaluated["out"][("random", "polarbear")]["markers"]
    assert (mk["paper_set"] == (mk["n_pos"] > 8)).all()
    cts = evaluated["rna"].obs["cell_type"].astype(str).to_numpy()[test]
    genes = list(evaluated["rna"].var_names)
    pred = preds["atac_to_rna"].X
    for _, r in mk.iterrows():
        j, y = genes.index(r["gene"]), cts == r["cell_type"]
        assert r["n_pos"] == y.sum()
        assert r["auroc_pred"] == pytest.approx(roc_auc_score(y, pred[:, j]), abs=1e-9)
        assert r["auroc_true"] == pytest.approx(roc_auc_score(y, X[test, j] / sf[test]), abs=1e-9)
        assert r["auroc_true_v1"] == pytest.approx(roc_auc_score(y, X[test, j] / sf_v1[test]), abs=1e-9)
    # unseen: only the test type has positives (> 8) and its one-vs-rest AUROC is undefined
    un = evaluated["out"][("unseen", "polarbear")]["markers"]
    assert un["paper_set"].sum() == 1 and (un.loc[un["paper_set"], "n_pos"] > 8).all()


def test_de_paper_compares_predicted_test_with_predicted_training_cells(evaluated):
    X, test, train, rest, sf, sf_v1, preds = _run_inputs(evaluated, "unseen", "polarbear")
    de = evaluated["out"][("unseen", "polarbear")]["de"]
    pred_test = preds["atac_to_rna"].X.astype(np.float64)
    rest_names = list(preds["atac_to_rna_rest"].obs_names)
    assert rest_names == list(evaluated["rna"].obs_names[rest])
    pred_rest = preds["atac_to_rna_rest"].X.astype(np.float64)
    pred_train = pred_rest[np.isin(rest, train)]
    t_test, t_rest = X[test] / sf[test][:, None], X[rest] / sf[rest][:, None]
    for j in range(0, X.shape[1], 7):
        exp = mannwhitneyu(pred_test[:, j], pred_train[:, j], alternative="greater",
                           method="asymptotic").pvalue
        assert de["pred_pvalue"][j] == pytest.approx(exp, rel=1e-9, abs=1e-12)
        exp_v1 = mannwhitneyu(pred_test[:, j], pred_rest[:, j], alternative="greater",
                              method="asymptotic").pvalue
        assert de["pred_pvalue_v1"][j] == pytest.approx(exp_v1, rel=1e-9, abs=1e-12)
        if t_test[:, j].max() > 0 or t_rest[:, j].max() > 0:
            exp = mannwhitneyu(t_test[:, j], t_rest[:, j], alternative="greater",
                               method="asymptotic").pvalue
            assert de["true_pvalue"][j] == pytest.approx(exp, rel=1e-9, abs=1e-12)
    keep = (t_test.mean(0) > 0) | (t_rest.mean(0) > 0)
    assert (de["paper_set"] == keep).all()
    # R's wilcox.test: a gene constant over both groups has p = 1 (v1 leaves it NaN)
    const = ~keep
    assert (de.loc[const, "true_pvalue"] == 1.0).all()
    assert de.loc[const, "true_pvalue_v1"].isna().all()


def test_better_predictions_score_better(evaluated):
    good = evaluated["out"][("random", "polarbear")]
    bad = evaluated["out"][("random", "babel")]
    assert good["genes"]["pearson"].mean() > bad["genes"]["pearson"].mean() + 0.05
    assert good["peaks"]["auroc"].mean() > bad["peaks"]["auroc"].mean()
    assert good["cells"]["foscttm_latent_rna_query"].mean() < bad["cells"]["foscttm_latent_rna_query"].mean()
    assert good["cells"]["foscttm_latent_rna_query"].mean() < 0.2
    assert good["cells"]["foscttm_profile_atac_query"].mean() < 0.35
    # synthetic "markers" are arbitrary genes: a good prediction reproduces their true AUROC
    gm, bm = good["markers"], bad["markers"]
    assert (gm.auroc_pred - gm.auroc_true).abs().mean() < (bm.auroc_pred - bm.auroc_true).abs().mean()


def test_unseen_is_de_restricted_to_test_cell_types(evaluated):
    unseen = evaluated["out"][("unseen", "polarbear")]
    rnd = evaluated["out"][("random", "polarbear")]
    assert unseen["genes"]["is_de"].sum() < rnd["genes"]["is_de"].sum()
    assert set(unseen["cells"]["cell_type"]) == {"Ex-T0-Gene0"}
    # one-vs-rest markers are undefined within one cell type -> NaN, not a number
    assert unseen["markers"]["auroc_pred"].isna().all()
    # the unseen type's up-regulated genes are recovered from the prediction
    de = unseen["de"]
    assert de["true_de"].sum() > 0
    from sklearn.metrics import average_precision_score
    ap = average_precision_score(de["true_de"], -np.log10(de["pred_pvalue"].fillna(1) + 1e-300))
    assert ap > de["true_de"].mean()


def _t3row(t3, split, definition, metric, method):
    sel = t3[(t3.split == split) & (t3.definition == definition) & (t3.metric == metric)
             & (t3.method == method)]
    assert len(sel) == 1
    return sel.iloc[0]


def test_table3(evaluated):
    t3 = evaluated["t3"]
    assert list(t3.columns) == E.TABLE3_COLUMNS
    assert set(t3["split"]) == {"random", "unseen"} and set(t3["definition"]) == {"paper", "v1"}
    assert set(zip(t3["metric"], t3["definition"])) == {(m[0], m[1]) for m in E.TABLE3_METRICS}
    # v1 keeps exactly the metric labels of Table 3 before the paper definitions
    assert set(t3.loc[t3.definition == "v1", "metric"]) == {
        "gene-wise correlation", "peak-wise AUROC", "peak-wise AUPRnorm", "FOSCTTM latent (RNA query)",
        "FOSCTTM latent (ATAC query)", "marker AUROC (median)"}
    out = evaluated["out"]
    pb_g, b_g = out[("random", "polarbear")]["genes"], out[("random", "babel")]["genes"]
    for definition, col in (("paper", "pearson"), ("v1", "pearson_v1")):
        row = _t3row(t3, "random", definition, "gene-wise correlation", "babel")
        assert row["n"] + row["n_nan"] == pb_g["is_de"].sum()
        assert row["mean"] == pytest.approx(b_g.loc[b_g.is_de, col].mean())
        assert row["n_polarbear_better"] > row["n_polarbear_worse"]
        assert row["n_polarbear_better"] + row["n_polarbear_worse"] <= row["n_pairs"]
        a, b = pb_g.loc[pb_g.is_de, col].to_numpy(), b_g.loc[b_g.is_de, col].to_numpy()
        ok = np.isfinite(a) & np.isfinite(b)
        method = "exact" if ok.sum() < 50 else "asymptotic"
        assert row["ranksum_p"] == pytest.approx(
            mannwhitneyu(a[ok], b[ok], alternative="greater", method=method).pvalue, rel=1e-9)
        assert row["signedrank_p"] == pytest.approx(
            wilcoxon(a[ok], b[ok], alternative="greater").pvalue, rel=1e-9)
        assert row["ranksum_p"] < 0.05
    # peaks: paper over paper_set, v1 over is_de
    pk = out[("random", "babel")]["peaks"]
    for definition, subset in (("paper", "paper_set"), ("v1", "is_de")):
        row = _t3row(t3, "random", definition, "peak-wise AUROC", "babel")
        assert row["n"] + row["n_nan"] == pk[subset].sum()
        assert row["mean"] == pytest.approx(pk.loc[pk[subset], "auroc"].mean())
    # FOSCTTM: the paper's ATAC query is in the ATAC latent, v1's in the RNA latent
    cb = out[("random", "babel")]["cells"]
    assert _t3row(t3, "random", "paper", "FOSCTTM latent (ATAC query)", "babel")["mean"] == \
        pytest.approx(cb["foscttm_latent_atac_query"].mean())
    assert _t3row(t3, "random", "v1", "FOSCTTM latent (ATAC query)", "babel")["mean"] == \
        pytest.approx(cb["foscttm_rna_latent_atac_query"].mean())
    fos = _t3row(t3, "random", "paper", "FOSCTTM latent (RNA query)", "babel")
    assert fos["n_polarbear_better"] > fos["n_polarbear_worse"]   # lower FOSCTTM = better
    assert fos["ranksum_p"] < 0.05
    # markers: the paper keeps pairs with > 8 positive cells only
    for split in ("random", "unseen"):
        mk = out[(split, "polarbear")]["markers"]
        row = _t3row(t3, split, "paper", "marker AUROC (median)", "polarbear")
        assert row["n"] + row["n_nan"] == (mk["n_pos"] > 8).sum()
        row = _t3row(t3, split, "v1", "marker AUROC (median)", "polarbear")
        assert row["n"] + row["n_nan"] == len(mk)
    pb = t3[t3.method == "polarbear"]
    assert pb["ranksum_p"].isna().all() and pb["signedrank_p"].isna().all()
    md = (evaluated["tmp"] / "table3.md").read_text()
    assert "| random | paper | gene-wise correlation |" in md
    assert "| random | v1 | gene-wise correlation |" in md
    assert md.index("| random | paper |") < md.index("| random | v1 |") < md.index("| unseen | paper |")


def test_paired_comparison_directions():
    a = pd.Series([0.9, 0.8, 0.7, np.nan], index=list("wxyz"))
    b = pd.Series([0.5, 0.85, 0.1, 0.2], index=list("wxyz"))
    hi = E.paired_comparison(a, b, True)
    assert (hi["n_pairs"], hi["n_polarbear_better"], hi["n_polarbear_worse"]) == (3, 2, 1)
    x, y = np.array([0.9, 0.8, 0.7]), np.array([0.5, 0.85, 0.1])
    assert hi["ranksum_p"] == pytest.approx(mannwhitneyu(x, y, alternative="greater", method="exact").pvalue)
    assert hi["signedrank_p"] == pytest.approx(wilcoxon(x, y, alternative="greater").pvalue)
    lo = E.paired_comparison(a, b, False)
    assert (lo["n_polarbear_better"], lo["n_polarbear_worse"]) == (1, 2)
    assert lo["ranksum_p"] == pytest.approx(mannwhitneyu(x, y, alternative="less", method="exact").pvalue)


def test_old_reference_size_factors_are_rejected(evaluated, tmp_path):
    sf = pd.read_csv(evaluated["ref"]["size_factors"], sep="\t").drop(columns="size_factor_v1")
    old = tmp_path / "size_factors.tsv"
    sf.to_csv(old, sep="\t", index=False)
    pred = [str(evaluated["tmp"] / "pred" / "random" / "polarbear" / f"{k}.h5ad") for k in PREDICTION_NAMES]
    with pytest.raises(InputFormatError, match="size_factor_v1"):
        E.run_evaluation(pred, evaluated["rp"], evaluated["ap"], old, evaluated["ref"]["genes_de"],
                         evaluated["ref"]["peaks_de"], {}, "random", 0.01)


def test_mismatched_prediction_cells_raise(evaluated, tmp_path):
    import anndata as ad
    pred = [str(p) for p in (evaluated["tmp"] / "pred" / "random" / "polarbear").glob("*.h5ad")]
    pred = sorted(pred)  # atac_to_rna, atac_to_rna_rest, latent, rna_to_atac
    a = ad.read_h5ad(pred[0])
    a = a[::-1].copy()
    bad = tmp_path / "atac_to_rna.h5ad"
    a.write_h5ad(bad)
    with pytest.raises(InputFormatError, match="atac_to_rna.h5ad"):
        E.run_evaluation([bad, pred[3], pred[2], pred[1]], evaluated["rp"], evaluated["ap"],
                         evaluated["ref"]["size_factors"], evaluated["ref"]["genes_de"],
                         evaluated["ref"]["peaks_de"], {}, "random", 0.01)
    # a rest file holding the test cells instead of the non-test cells is rejected too
    with pytest.raises(InputFormatError, match="atac_to_rna.h5ad"):
        E.run_evaluation([pred[0], pred[3], pred[2], pred[0]], evaluated["rp"], evaluated["ap"],
                         evaluated["ref"]["size_factors"], evaluated["ref"]["genes_de"],
                         evaluated["ref"]["peaks_de"], {}, "random", 0.01)


def test_table3_with_seeds(evaluated, tmp_path):
    """Further seeds' runs (polarbear~s1, ~s2; babel~s1) add n_seeds / seed_mean / ci95_* per row;
    the other columns stay the first seed's."""
    import shutil
    from scipy import stats
    src = evaluated["tmp"] / "eval" / "random"
    dirs = {("random", m): src / m for m in ("polarbear", "babel")}
    shift = {"polarbear~s1": 0.05, "polarbear~s2": -0.02, "babel~s1": 0.1}
    for run, delta in shift.items():
        d = tmp_path / run
        shutil.copytree(src / run.split("~")[0], d)
        g = pd.read_csv(d / "genes.tsv", sep="\t")
        g["pearson"] += delta                      # paper gene-wise correlation moves by delta
        g.to_csv(d / "genes.tsv", sep="\t", index=False)
        dirs[("random", run)] = d
    t3 = E.run_table3(dirs, tmp_path / "t3.tsv", tmp_path / "t3.md")
    assert list(t3.columns) == E.TABLE3_COLUMNS + E.TABLE3_SEED_COLUMNS
    assert set(t3["method"]) == {"polarbear", "babel"}            # one row per base method
    first = evaluated["t3"].query("split == 'random'").reset_index(drop=True)
    pd.testing.assert_frame_equal(t3[E.TABLE3_COLUMNS].reset_index(drop=True), first)
    pb = _t3row(t3, "random", "paper", "gene-wise correlation", "polarbear")
    per_seed = pb["mean"] + np.array([0.0, 0.05, -0.02])
    lo, hi = stats.t.interval(0.95, 2, loc=per_seed.mean(), scale=stats.sem(per_seed))
    assert pb["n_seeds"] == 3
    assert pb["seed_mean"] == pytest.approx(per_seed.mean())
    assert (pb["ci95_low"], pb["ci95_high"]) == pytest.approx((lo, hi))
    b = _t3row(t3, "random", "paper", "gene-wise correlation", "babel")
    assert b["n_seeds"] == 2 and b["seed_mean"] == pytest.approx(b["mean"] + 0.05)
    # metrics the seeds do not change: zero-width CI at the first seed's mean
    v1 = _t3row(t3, "random", "v1", "gene-wise correlation", "polarbear")
    assert v1["seed_mean"] == pytest.approx(v1["mean"]) and v1["ci95_low"] == pytest.approx(v1["mean"])
    md = (tmp_path / "t3.md").read_text()
    assert f"{pb['seed_mean']:.3g} [{pb['ci95_low']:.3g}, {pb['ci95_high']:.3g}] (3 seeds)" in md
    # written and read back with the seed columns
    back = pd.read_csv(tmp_path / "t3.tsv", sep="\t")
    assert list(back.columns) == list(t3.columns)
    # one seed: no seed columns, as before
    one = E.run_table3({k: v for k, v in dirs.items() if "~" not in k[1]}, tmp_path / "1.tsv",
                       tmp_path / "1.md")
    assert list(one.columns) == E.TABLE3_COLUMNS and "seeds)" not in (tmp_path / "1.md").read_text()
