"""Evaluation stage on a tiny synthetic co-assay with contract-valid prediction files."""

import numpy as np
import pandas as pd
import pytest
from synthetic_coassay import make_coassay

from workflow_lib import evaluate as E
from workflow_lib.fileutils import InputFormatError
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
    return {"tmp": tmp, "out": out, "t3": t3, "rp": rp, "ap": ap, "ref": ref, "truth": truth}


def test_tables_follow_the_contract(evaluated):
    tabs = evaluated["out"][("random", "polarbear")]
    cols = {
        "genes": ["gene", "pearson", "is_de", "frac_nonzero"],
        "peaks": ["peak", "auroc", "auprnorm", "pp", "is_de"],
        "cells": ["cell", "cell_type", "foscttm_latent_rna_query", "foscttm_latent_atac_query",
                  "foscttm_profile_rna_query", "foscttm_profile_atac_query"],
        "markers": ["cell_type", "gene", "n_pos", "auroc_pred", "auroc_true"],
        "de": ["gene", "pred_pvalue", "pred_fdr", "true_pvalue", "true_fdr", "true_de"],
    }
    for k, c in cols.items():
        on_disk = pd.read_csv(evaluated["tmp"] / "eval" / "random" / "polarbear" / f"{k}.tsv", sep="\t")
        assert list(on_disk.columns) == c
    assert len(tabs["genes"]) == 60 and len(tabs["peaks"]) == 90
    assert tabs["genes"]["is_de"].sum() > 5 and tabs["peaks"]["is_de"].sum() > 5
    assert len(tabs["markers"]) == 4      # suffix after the last '-' = Gene0..Gene3
    sf = pd.read_csv(evaluated["ref"]["size_factors"], sep="\t")
    assert sf["size_factor"].mean() == pytest.approx(1.0) and (sf["size_factor"] > 0).all()


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


def test_table3(evaluated):
    t3 = evaluated["t3"]
    assert set(t3["split"]) == {"random", "unseen"}
    assert set(t3["metric"]) == {m[0] for m in E.TABLE3_METRICS}
    row = t3[(t3.split == "random") & (t3.metric == "gene-wise correlation") & (t3.method == "babel")].iloc[0]
    genes = evaluated["out"][("random", "polarbear")]["genes"]
    assert row["n"] + row["n_nan"] == genes["is_de"].sum()
    assert row["n_polarbear_better"] > row["n_polarbear_worse"]
    assert row["n_polarbear_better"] + row["n_polarbear_worse"] <= row["n_pairs"]
    assert row["wilcoxon_p"] < 0.01
    fos = t3[(t3.split == "random") & (t3.metric == "FOSCTTM latent (RNA query)") & (t3.method == "babel")].iloc[0]
    assert fos["n_polarbear_better"] > fos["n_polarbear_worse"]   # lower FOSCTTM = better
    pb = t3[t3.method == "polarbear"]
    assert pb["wilcoxon_p"].isna().all()
    md = (evaluated["tmp"] / "table3.md").read_text()
    assert "| random | gene-wise correlation |" in md


def test_paired_comparison_directions():
    a = pd.Series([0.9, 0.8, 0.7, np.nan], index=list("wxyz"))
    b = pd.Series([0.5, 0.85, 0.1, 0.2], index=list("wxyz"))
    hi = E.paired_comparison(a, b, True)
    assert (hi["n_pairs"], hi["n_polarbear_better"], hi["n_polarbear_worse"]) == (3, 2, 1)
    lo = E.paired_comparison(a, b, False)
    assert (lo["n_polarbear_better"], lo["n_polarbear_worse"]) == (1, 2)


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
