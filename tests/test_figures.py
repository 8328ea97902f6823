"""Figures 3-7 and the Table 3 report item on small synthetic, contract-valid eval tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import average_precision_score

from workflow_lib import figures as plots
from workflow_lib.fileutils import InputFormatError

METHODS = ["polarbear", "polarbear_coassay", "babel", "knn", "ridge"]
QUALITY = {"polarbear": 0.15, "polarbear_coassay": 0.08, "babel": 0.05, "knn": 0.0, "ridge": 0.02}


def make_tables(method: str, seed: int = 0, n_genes=60, n_peaks=120, n_cells=40) -> dict:
    """Contract-valid genes/peaks/cells/markers/de tables; feature truth shared across methods."""
    shared = np.random.default_rng(123)
    gene_base = shared.uniform(0.0, 0.5, n_genes)
    peak_base = shared.uniform(0.5, 0.7, n_peaks)
    is_de_g = shared.random(n_genes) < 0.5
    is_de_p = shared.random(n_peaks) < 0.5
    true_de = shared.random(n_genes) < 0.2
    true_de_v1 = true_de ^ (shared.random(n_genes) < 0.1)
    de_set = shared.random(n_genes) < 0.8
    n_pos_p = shared.integers(0, 40, n_peaks)
    rng = np.random.default_rng(seed + 17 * METHODS.index(method))
    q = QUALITY[method]
    genes = pd.DataFrame({
        "gene": [f"G{i}" for i in range(n_genes)],
        "pearson": gene_base + q + rng.normal(0, 0.05, n_genes),
        "pearson_v1": gene_base + q / 2 + rng.normal(0, 0.05, n_genes),
        "is_de": is_de_g,
        "frac_nonzero": shared.uniform(0.01, 0.5, n_genes),
    })
    auroc = peak_base + q / 3 + rng.normal(0, 0.02, n_peaks)
    pp = shared.uniform(0.01, 0.1, n_peaks)
    peaks = pd.DataFrame({
        "peak": [f"chr1:{1000 * i}-{1000 * i + 500}" for i in range(n_peaks)],
        "auroc": auroc, "auprnorm": (auroc - 0.5) / 5, "pp": pp, "n_pos": n_pos_p, "is_de": is_de_p,
        "paper_set": is_de_p & (n_pos_p >= 10),
    })
    cells = pd.DataFrame({
        "cell": [f"c{i}" for i in range(n_cells)],
        "cell_type": np.where(np.arange(n_cells) % 2 == 0, "Ex", "In"),
        "foscttm_latent_rna_query": np.clip(rng.uniform(0, 0.5, n_cells) - q, 0, 1),
        "foscttm_latent_atac_query": np.clip(rng.uniform(0, 0.5, n_cells) - q, 0, 1),
        "foscttm_rna_latent_rna_query": np.clip(rng.uniform(0, 0.5, n_cells) - q, 0, 1),
        "foscttm_rna_latent_atac_query": np.clip(rng.uniform(0, 0.4, n_cells) - q, 0, 1),
        "foscttm_profile_rna_query": rng.uniform(0, 0.5, n_cells),
        "foscttm_profile_atac_query": rng.uniform(0, 0.5, n_cells),
    })
    n_pos_m = np.array([200, 80, 30, 9, 5])
    markers = pd.DataFrame({
        "cell_type": ["Ex-Slc17a7", "In-Gad2", "Ast-Gja1", "Mic-C1qb", "Endo-Cldn5"],
        "gene": ["Slc17a7", "Gad2", "Gja1", "C1qb", "Cldn5"],
        "n_pos": n_pos_m,
        "auroc_pred": np.clip(np.array([0.8, 0.75, 0.7, 0.6, 0.5]) + q + rng.normal(0, 0.01, 5), 0, 1),
        "auroc_true": [0.95, 0.93, 0.9, 0.85, 0.8],
        "auroc_true_v1": [0.94, 0.93, 0.91, 0.84, 0.8],
        "paper_set": n_pos_m > 8,
    })
    pval = np.where(true_de, rng.uniform(0, 0.3 - q, n_genes), rng.uniform(0.05, 1, n_genes))
    pval_v1 = np.where(true_de_v1, rng.uniform(0, 0.5, n_genes), rng.uniform(0.05, 1, n_genes))
    de = pd.DataFrame({
        "gene": genes["gene"], "pred_pvalue": pval, "pred_fdr": np.minimum(pval * 3, 1),
        "true_pvalue": np.where(true_de, 1e-5, 0.5), "true_fdr": np.where(true_de, 1e-4, 0.8),
        "true_de": true_de, "paper_set": de_set,
        "pred_pvalue_v1": pval_v1, "pred_fdr_v1": np.minimum(pval_v1 * 3, 1),
        "true_pvalue_v1": np.where(true_de_v1, 1e-5, 0.5),
        "true_fdr_v1": np.where(true_de_v1, 1e-4, 0.8), "true_de_v1": true_de_v1,
    })
    return {"genes": genes, "peaks": peaks, "cells": cells, "markers": markers, "de": de}


@pytest.fixture(scope="module")
def tables():
    return {m: make_tables(m) for m in METHODS}


def write_eval_tree(root, tables, runs):
    paths = []
    for v, s, m in runs:
        d = root / "eval" / v / s / m
        d.mkdir(parents=True, exist_ok=True)
        for name, df in tables[m].items():
            p = d / f"{name}.tsv"
            df.to_csv(p, sep="\t", index=False)
            paths.append(p)
    return paths


def all_runs(methods=METHODS):
    runs = [("full", s, m) for s in ("random", "unseen") for m in methods]
    runs += [(v, s, "polarbear_coassay") for v in ("exp", "var") for s in ("random", "unseen")]
    return runs


def _texts(ax):
    return [t.get_text() for t in ax.texts]


# ------------------------------------------------------------------------------------------
def test_compare_paired_matches_direct_computation():
    rng = np.random.default_rng(0)
    other = rng.uniform(size=50)
    ref = other + rng.normal(0.1, 0.1, 50)
    ref[3] = np.nan
    res = plots.compare_paired(ref, other)
    ok = np.isfinite(ref)
    assert res["n"] == 49
    assert res["n_above"] == int((ref[ok] > other[ok]).sum())
    assert res["n_below"] == int((ref[ok] < other[ok]).sum())
    # the paper's test: one-sided rank-sum, R wilcox.test(other, ref, "less"); < 50 values and no
    # ties -> R's exact p-value
    assert res["p"] == pytest.approx(
        stats.mannwhitneyu(ref[ok], other[ok], alternative="greater", method="exact").pvalue)
    assert res["p_signedrank"] == pytest.approx(
        stats.wilcoxon(ref[ok], other[ok], alternative="greater").pvalue)
    big_o = rng.uniform(size=80)
    big_r = big_o + rng.normal(0.02, 0.1, 80)
    assert plots.compare_paired(big_r, big_o)["p"] == pytest.approx(
        stats.mannwhitneyu(big_r, big_o, alternative="greater", method="asymptotic").pvalue)
    # all ties: R's rank-sum gives p = 1, the signed-rank test is undefined; no crash
    tied = plots.compare_paired(np.ones(4), np.ones(4))
    assert tied["p"] == 1.0 and np.isnan(tied["p_signedrank"])


def test_fig3_panels_counts_and_labels(tables):
    genes = {m: tables[m]["genes"] for m in METHODS}
    peaks = {m: tables[m]["peaks"] for m in METHODS}
    fig = plots.fig3(genes, peaks)
    assert len(fig.axes) == 6
    a = fig.panels["A"]
    assert "BABEL" in a.get_xlabel() and "correlation" in a.get_xlabel()
    assert "Polarbear" in a.get_ylabel()
    assert "Polarbear co-assay" in fig.panels["B"].get_xlabel()
    assert "AUROC" in fig.panels["C"].get_xlabel() and "AUPRnorm" in fig.panels["F"].get_ylabel()
    assert "BABEL" in fig.panels["E"].get_xlabel() and "co-assay" in fig.panels["D"].get_xlabel()
    # direct computation for panel A: DE genes only (polarbear's is_de), polarbear on y
    g = genes["polarbear"].merge(genes["babel"], on="gene", suffixes=("_pb", "_b"))
    g = g[g["is_de_pb"]]
    above = int((g["pearson_pb"] > g["pearson_b"]).sum())
    below = int((g["pearson_pb"] < g["pearson_b"]).sum())
    assert str(above) in _texts(a) and str(below) in _texts(a)
    assert fig.results[0]["n_above"] == above and fig.results[0]["n_below"] == below
    assert len(g) < 50               # R's wilcox.test: exact p-value below 50 values, no ties
    p = stats.mannwhitneyu(g["pearson_pb"], g["pearson_b"], alternative="greater",
                           method="exact").pvalue
    assert fig.results[0]["p"] == pytest.approx(p)
    p_sr = stats.wilcoxon(g["pearson_pb"], g["pearson_b"], alternative="greater").pvalue
    assert fig.results[0]["p_signedrank"] == pytest.approx(p_sr)
    assert f"rank-sum {plots.format_p(p)}" in a.get_title()
    assert f"signed-rank {plots.format_p(p_sr)}" in a.get_title()
    assert f"n = {len(g)} DE genes" in a.get_title()
    # panel D: peaks vs co-assay, AUROC over the paper's peak set (DE, enough positive cells)
    pk = peaks["polarbear"].merge(peaks["polarbear_coassay"], on="peak")
    pk = pk[pk["paper_set_x"]]
    assert fig.results[3]["n"] == len(pk) < int(peaks["polarbear"]["is_de"].sum())
    assert fig.results[3]["n_above"] == int((pk["auroc_x"] > pk["auroc_y"]).sum())
    assert f"n = {len(pk)} DE peaks with >= n/100 positive cells" in fig.panels["D"].get_title()
    assert sorted(t.get_text() for ax in fig.axes for t in ax.texts if t.get_fontweight() == "bold"
                  and t.get_text() in "ABCDEF") == list("ABCDEF")
    # 2 x 3 layout: rows = comparator (BABEL, co-assay), columns = metric; B below A, C right of A
    pos = {k: ax.get_position() for k, ax in fig.panels.items()}
    assert pos["B"].y0 < pos["A"].y0 and abs(pos["B"].x0 - pos["A"].x0) < 1e-6
    assert pos["C"].x0 > pos["A"].x0 and abs(pos["C"].y0 - pos["A"].y0) < 1e-6


def test_fig3_v1_definition_uses_v1_columns_and_de_peaks(tables):
    genes = {m: tables[m]["genes"] for m in METHODS}
    peaks = {m: tables[m]["peaks"] for m in METHODS}
    fig = plots.fig3(genes, peaks, definition="v1")
    g = genes["polarbear"].merge(genes["babel"], on="gene", suffixes=("_pb", "_b"))
    g = g[g["is_de_pb"]]
    assert fig.results[0]["n_above"] == int((g["pearson_v1_pb"] > g["pearson_v1_b"]).sum())
    assert fig.results[0]["p"] == pytest.approx(
        stats.mannwhitneyu(g["pearson_v1_pb"], g["pearson_v1_b"], alternative="greater",
                           method="exact").pvalue)
    assert fig.results[2]["n"] == int(peaks["polarbear"]["is_de"].sum())
    assert "definition v1" in fig._suptitle.get_text()
    with pytest.raises(ValueError, match="definition"):
        plots.fig3(genes, peaks, definition="v2")


def test_fig3_nan_rows_dropped_and_reported(tables):
    genes = {m: tables[m]["genes"].copy() for m in ("polarbear", "babel", "polarbear_coassay")}
    de_idx = np.flatnonzero(genes["polarbear"]["is_de"].to_numpy())[:3]
    genes["babel"].loc[de_idx, "pearson"] = np.nan
    peaks = {m: tables[m]["peaks"] for m in genes}
    fig = plots.fig3(genes, peaks)
    r = fig.results[0]
    assert r["n_nan"] == 3 and r["n"] == int(genes["polarbear"]["is_de"].sum()) - 3
    assert "3 NaN dropped" in fig.panels["A"].get_title()


def test_fig3_missing_method_is_graceful(tables):
    genes = {m: tables[m]["genes"] for m in ("polarbear", "polarbear_coassay")}
    peaks = {m: tables[m]["peaks"] for m in ("polarbear", "polarbear_coassay")}
    fig = plots.fig3(genes, peaks)
    assert len(fig.axes) == 6
    assert fig.results[0] is None and fig.results[1] is not None
    assert any("BABEL" in t and "not" in t for t in _texts(fig.panels["A"]))
    # no reference at all: every panel says so, nothing raises
    fig = plots.fig3({"babel": tables["babel"]["genes"]}, {})
    assert all(r is None for r in fig.results)


def test_fig4_marker_sizes_and_counts(tables):
    markers = {m: tables[m]["markers"] for m in METHODS}
    fig = plots.fig4(markers)
    assert len(fig.axes) == 2
    ax = fig.axes[0]
    assert "marker-gene AUROC" in ax.get_xlabel() and "BABEL" in ax.get_xlabel()
    sizes = ax.collections[0].get_sizes()
    assert len(sizes) == 4                               # the marker with 5 positive cells is out
    assert sizes.argmax() == 0 and sizes.argmin() == 3  # n_pos 200 biggest, 9 smallest
    keep = markers["polarbear"]["n_pos"].to_numpy() > 8
    d = markers["polarbear"]["auroc_pred"].to_numpy() - markers["babel"]["auroc_pred"].to_numpy()
    assert fig.results[0]["n"] == 4 and fig.results[0]["n_above"] == int((d[keep] > 0).sum())
    assert fig.results[0]["median_ref"] == pytest.approx(
        markers["polarbear"]["auroc_pred"][keep].median())
    # v1: every marker; without a paper_set column the > 8 rule is applied from n_pos
    assert plots.fig4(markers, definition="v1").results[0]["n"] == 5
    no_col = {m: t.drop(columns="paper_set") for m, t in markers.items()}
    assert plots.fig4(no_col).results[0]["n"] == 4
    fig = plots.fig4({"polarbear": markers["polarbear"]})
    assert fig.results == [None, None]


def test_fig5_has_seven_panels_and_pr_curves(tables):
    genes = {m: tables[m]["genes"] for m in METHODS}
    peaks = {m: tables[m]["peaks"] for m in METHODS}
    de = {m: tables[m]["de"] for m in METHODS}
    de["knn"] = de["knn"].copy()
    de["knn"].loc[0, "pred_pvalue"] = np.nan
    fig = plots.fig5(genes, peaks, de)
    assert len(fig.axes) == 7
    axg = fig.panels["G"]
    assert axg.get_xlabel() == "recall" and axg.get_ylabel() == "precision"
    t = de["polarbear"]
    t = t[t["paper_set"]]                                # genes with a defined fold change
    ap = average_precision_score(t["true_de"], -t["pred_pvalue"])
    assert fig.pr["polarbear"]["aupr"] == pytest.approx(ap)
    assert fig.pr["polarbear"]["n"] == int(de["polarbear"]["paper_set"].sum())
    assert fig.pr["knn"]["n_nan"] == int(de["knn"]["paper_set"][0])
    v1 = plots.fig5(genes, peaks, de, definition="v1")
    t = de["polarbear"]
    assert v1.pr["polarbear"]["aupr"] == pytest.approx(
        average_precision_score(t["true_de_v1"], -t["pred_pvalue_v1"]))
    assert v1.pr["polarbear"]["n"] == len(t)
    legend = [x.get_text() for x in axg.get_legend().get_texts()]
    assert f"Polarbear (AUPR {ap:.3f})" in legend
    assert len(legend) == len(METHODS) + 1  # + random baseline


def test_fig6_sorted_curves_colours_and_means(tables):
    cells = {(s, m): tables[m]["cells"] for s in ("random", "unseen") for m in
             ("polarbear", "polarbear_coassay", "babel", "knn")}
    fig = plots.fig6(cells)
    assert len(fig.axes) == 4
    ax = fig.axes[0]
    lines = {ln.get_label().split(" (")[0]: ln for ln in ax.get_lines()}
    assert set(lines) == {"Polarbear", "Polarbear co-assay", "BABEL", "kNN baseline"}
    y = lines["Polarbear"].get_ydata()
    assert np.all(np.diff(y) >= 0)
    exp_mean = tables["polarbear"]["cells"]["foscttm_latent_rna_query"].mean()
    assert f"mean {exp_mean:.3f}" in lines["Polarbear"].get_label()
    assert fig.means[("random", "rna", "polarbear")] == pytest.approx(exp_mean)
    from matplotlib.colors import to_hex

    assert to_hex(lines["Polarbear"].get_color()) == "#d62728"
    assert to_hex(lines["BABEL"].get_color()) == "#1f77b4"
    assert to_hex(lines["Polarbear co-assay"].get_color()) == "#ff7f0e"
    assert "ATAC" in fig.axes[1].get_title() and "unseen" in fig.axes[2].get_title()
    # paper: both queries in the ATAC latent; v1: the ATAC query in the RNA latent
    c = tables["polarbear"]["cells"]
    assert fig.means[("random", "atac", "polarbear")] == pytest.approx(c["foscttm_latent_atac_query"].mean())
    assert "ATAC latent" in fig._suptitle.get_text()
    v1 = plots.fig6(cells, definition="v1")
    assert v1.means[("random", "atac", "polarbear")] == pytest.approx(
        c["foscttm_rna_latent_atac_query"].mean())
    assert v1.means[("random", "rna", "polarbear")] == pytest.approx(exp_mean)


def test_fig6_missing_method_and_all_nan(tables):
    c = tables["babel"]["cells"].copy()
    c["foscttm_latent_atac_query"] = np.nan
    cells = {("random", "polarbear"): tables["polarbear"]["cells"], ("random", "babel"): c,
             ("unseen", "polarbear"): tables["polarbear"]["cells"]}
    fig = plots.fig6(cells)
    txt = " ".join(_texts(fig.axes[1]))
    assert "BABEL (no finite values)" in txt
    assert "BABEL (not run)" in " ".join(_texts(fig.axes[2]))
    fig = plots.fig6(cells, scenarios=["random"])
    assert "not run" in " ".join(_texts(fig.axes[3]))


def test_fig7_variant_colours(tables):
    cells = {(s, v): make_tables("polarbear_coassay", seed=i)["cells"]
             for i, v in enumerate(("full", "var", "exp")) for s in ("random", "unseen")}
    fig = plots.fig7(cells)
    from matplotlib.colors import to_hex

    cols = {ln.get_label().split(" (")[0]: to_hex(ln.get_color()) for ln in fig.axes[3].get_lines()}
    assert cols == {"Polarbear-full": "#d62728", "Polarbear-var": "#9467bd",
                    "Polarbear-exp": "#2ca02c"}


def test_run_figure_writes_files_from_paths(tmp_path, tables):
    paths = write_eval_tree(tmp_path, tables, all_runs())
    for n in (3, 4, 5, 6, 7):
        pdf, png = tmp_path / f"figures/fig{n}.pdf", tmp_path / f"figures/fig{n}.png"
        fig = plots.run_figure(n, paths, pdf, png, log_path=tmp_path / f"logs/fig{n}.log",
                               dpi=40)
        assert pdf.read_bytes()[:4] == b"%PDF"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "figure" in (tmp_path / f"logs/fig{n}.log").read_text()
        if n == 7:
            assert {v for (_, _, v) in fig.means} == {"full", "var", "exp"}
    assert not list((tmp_path / "figures").glob(".*"))  # no temp files left behind


def test_run_figure_without_babel_and_unseen(tmp_path, tables):
    runs = [("full", "random", m) for m in ("polarbear", "polarbear_coassay")]
    paths = write_eval_tree(tmp_path, tables, runs)
    fig = plots.run_figure(3, paths, tmp_path / "f3.pdf", tmp_path / "f3.png", dpi=40)
    assert fig.results[0] is None and fig.results[1]["n"] > 0
    fig = plots.run_figure(6, paths, tmp_path / "f6.pdf", tmp_path / "f6.png", dpi=40)
    assert "not run" in " ".join(_texts(fig.panels["C"]))
    assert (tmp_path / "f6.png").stat().st_size > 0


def test_fig7_without_any_run_says_so(tmp_path):
    fig = plots.run_figure(7, [], tmp_path / "f7.pdf", tmp_path / "f7.png", dpi=30)
    assert len(fig.axes) == 4 and fig.means == {}
    assert all("Polarbear co-assay not run" in " ".join(_texts(ax)) for ax in fig.axes)
    assert (tmp_path / "f7.pdf").exists()


def test_bad_eval_table_names_file(tmp_path, tables):
    paths = write_eval_tree(tmp_path, tables, [("full", "random", "polarbear")])
    bad = tmp_path / "eval/full/random/polarbear/genes.tsv"
    bad.write_text("gene\tcorr\nG1\t0.1\n")
    with pytest.raises(InputFormatError, match="genes.tsv.*pearson"):
        plots.run_figure(3, paths, tmp_path / "x.pdf", tmp_path / "x.png")
    assert not (tmp_path / "x.pdf").exists()


def test_table3_report_with_definitions(tmp_path):
    rows = []
    for split in ("random", "unseen"):
        for definition in ("v1", "paper"):
            for metric in ("gene-wise correlation", "marker AUROC (median)"):
                for m, mu in (("babel", 0.1), ("polarbear", 0.3)):
                    rows.append(dict(split=split, definition=definition, metric=metric, method=m,
                                     mean=mu + (definition == "paper"), sd=0.05, median=0.42, n=10,
                                     ranksum_p=np.nan if m == "polarbear" else 0.01,
                                     signedrank_p=np.nan if m == "polarbear" else 0.02))
    src = tmp_path / "table3.tsv"
    pd.DataFrame(rows).to_csv(src, sep="\t", index=False)
    wide = plots.run_table3_report(src, tmp_path / "t3.html", tmp_path / "t3.tsv")
    assert list(wide.columns) == ["split", "definition", "metric", "BABEL", "Polarbear"]
    assert list(wide["definition"]) == ["paper", "paper", "v1", "v1"] * 2   # paper first
    assert wide.loc[0, "Polarbear"] == "1.3 (0.05)" and wide.loc[2, "Polarbear"] == "0.3 (0.05)"
    page = (tmp_path / "t3.html").read_text()
    assert "ranksum_p" in page and "signedrank_p" in page and "definition" in page


def test_table3_report(tmp_path):
    rows = []
    for split in ("random", "unseen"):
        for metric in ("pearson", "auroc", "auprnorm"):
            for m, mu in (("babel", 0.1), ("polarbear_coassay", 0.2), ("polarbear", 0.3)):
                rows.append(dict(split=split, metric=metric, method=m, mean=mu, sd=0.05, n=10,
                                 n_polarbear_better=np.nan if m == "polarbear" else 7,
                                 n_polarbear_worse=np.nan if m == "polarbear" else 3,
                                 wilcoxon_p=np.nan if m == "polarbear" else 0.01))
    src = tmp_path / "table3.tsv"
    pd.DataFrame(rows).to_csv(src, sep="\t", index=False)
    wide = plots.run_table3_report(src, tmp_path / "t3.html", tmp_path / "t3.tsv")
    assert list(wide.columns) == ["split", "metric", "BABEL", "Polarbear co-assay", "Polarbear"]
    assert len(wide) == 6 and wide.loc[0, "Polarbear"] == "0.3 (0.05)"
    page = (tmp_path / "t3.html").read_text()
    assert page.count("<table") == 2 and "Polarbear co-assay" in page
    # rows summarised by their median (marker AUROC) show the median, not mean (SD)
    t3 = pd.DataFrame(rows).assign(median=0.42)
    t3.loc[0, "metric"] = "marker AUROC (median)"
    assert plots.format_table3(t3).loc[0, "BABEL"] == "0.42"
    src.write_text("split\tmetric\nrandom\tpearson\n")
    with pytest.raises(InputFormatError, match="table3.tsv"):
        plots.run_table3_report(src, tmp_path / "t3b.html", tmp_path / "t3b.tsv")


def test_figures_with_seeds_add_mean_and_ci(tmp_path, tables):
    """Runs of further seeds (polarbear~s1, ...) leave the drawn points the first seed's and add
    the seed mean [t 95% CI] to Figs 3/4/5 panel titles and Figs 5G/6/7 legends."""
    import matplotlib.pyplot as plt
    seeded = dict(tables)
    runs = all_runs()
    for k, seed in enumerate((1, 2)):
        for m in ("polarbear", "polarbear_coassay", "babel"):
            seeded[f"{m}~s{seed}"] = make_tables(m, seed=10 + k)
            runs += [("full", s, f"{m}~s{seed}") for s in ("random", "unseen")]
        runs += [(v, s, f"polarbear_coassay~s{seed}") for v in ("exp", "var") for s in ("random", "unseen")]
    paths = write_eval_tree(tmp_path / "seeds", seeded, runs)
    one = write_eval_tree(tmp_path / "one", tables, all_runs())

    def expect(col, subset, runs_tables):
        means = []
        for t in runs_tables:
            v = t[col].to_numpy(dtype=float)
            if subset is not None:
                v = v[t[subset].to_numpy(dtype=bool)]
            means.append(np.nanmean(v))
        means = np.array(means)
        return means.mean(), stats.t.interval(0.95, len(means) - 1, loc=means.mean(), scale=stats.sem(means))

    f3 = plots.run_figure(3, paths, tmp_path / "f3.pdf", tmp_path / "f3.png", dpi=30)
    f3_one = plots.build_figure(3, one)
    # the points are the first seed's
    assert [r["n_above"] for r in f3.results] == [r["n_above"] for r in f3_one.results]
    assert "seed mean" not in f3_one.axes[0].get_title()
    ci = f3.results[0]["seed_ci"]["polarbear"]           # panel A: gene-wise correlation, vs BABEL
    runs_tables = [seeded[r]["genes"] for r in ("polarbear", "polarbear~s1", "polarbear~s2")]
    mean, (lo, hi) = expect("pearson", "is_de", runs_tables)
    assert ci[0] == 3 and ci[1:] == pytest.approx((mean, lo, hi))
    assert f"Polarbear {mean:.3f} [{lo:.3f}, {hi:.3f}], 3 seeds" in f3.axes[0].get_title()
    plt.close("all")
    f5 = plots.build_figure(5, paths)
    peaks_tables = [seeded[r]["peaks"] for r in ("babel", "babel~s1", "babel~s2")]
    mean, (lo, hi) = expect("auroc", "paper_set", peaks_tables)
    assert f5.results[2]["seed_ci"]["babel"][1:] == pytest.approx((mean, lo, hi))   # panel C: AUROC
    # panel G: the seed mean [95% CI] of each method's DE AUPR in its legend entry
    auprs = [plots.pr_curve(seeded[r]["de"])["aupr"] for r in ("polarbear", "polarbear~s1", "polarbear~s2")]
    ci_g = f5.pr["polarbear"]["seed_ci"]
    assert ci_g[0] == 3 and ci_g[1] == pytest.approx(np.mean(auprs))
    assert ci_g[2:] == pytest.approx(stats.t.interval(0.95, 2, loc=np.mean(auprs), scale=stats.sem(auprs)))
    legend = [t.get_text() for t in f5.axes[-1].get_legend().get_texts()]
    assert any(t.startswith("Polarbear (AUPR") and "3 seeds" in t for t in legend), legend
    assert "seed_ci" not in plots.build_figure(5, one).pr["polarbear"]
    f4 = plots.build_figure(4, paths)
    markers = [seeded[r]["markers"] for r in ("polarbear", "polarbear~s1", "polarbear~s2")]
    mean, (lo, hi) = expect("auroc_pred", "paper_set", markers)
    assert f4.results[0]["seed_ci"]["polarbear"][1:] == pytest.approx((mean, lo, hi))
    assert "seed mean of the mean AUROC" in f4.axes[0].get_title()
    assert "seed mean" not in plots.build_figure(4, one).axes[0].get_title()
    f6 = plots.build_figure(6, paths)
    cells = [seeded[r]["cells"] for r in ("polarbear_coassay", "polarbear_coassay~s1", "polarbear_coassay~s2")]
    mean, (lo, hi) = expect("foscttm_latent_atac_query", None, cells)
    assert f6.seed_cis[("unseen", "atac", "polarbear_coassay")][1:] == pytest.approx((mean, lo, hi))
    assert ("random", "rna", "knn") not in f6.seed_cis     # deterministic: one run, no CI
    assert f6.means == plots.build_figure(6, one).means     # the curves are the first seed's
    labels = [t.get_text() for t in f6.axes[0].get_legend().get_texts()]
    assert any("seed mean" in t and "3 seeds" in t for t in labels)
    f7 = plots.build_figure(7, paths)
    assert {k[2] for k in f7.seed_cis} == {"full", "exp", "var"}
    plt.close("all")


def test_table3_report_with_seeds():
    t3 = pd.DataFrame({"split": "random", "definition": "paper", "metric": "gene-wise correlation",
                       "method": ["babel", "knn"], "mean": [0.3, 0.2], "sd": [0.1, 0.1],
                       "median": 0.3, "n": 10, "n_seeds": [3, 1], "seed_mean": [0.31, 0.2],
                       "ci95_low": [0.28, np.nan], "ci95_high": [0.34, np.nan]})
    wide = plots.format_table3(t3)
    assert wide.loc[0, "BABEL"] == "0.3 (0.1); 0.31 [0.28, 0.34] (3 seeds)"
    assert wide.loc[0, "kNN baseline"] == "0.2 (0.1)"
