"""Stage "evaluate": per-run evaluation tables and Table 3.

Three entry points (one per Snakemake rule, called by the thin scripts/evaluate_*.py):

``run_reference`` (per variant) -- on ALL co-assay cells of the variant:
    deconvolution size factors (clusters = cell types; see normalize.py) and one-vs-rest
    cell-type DE of the TRUE profiles (genes: size-factor normalised RNA; peaks: binarised ATAC),
    one-sided Wilcoxon "greater" + BH within each cell type -> FDR tables (feature x cell type).

``run_evaluation`` (per variant, scenario, method) -- on the TEST cells of the scenario:
    genes.tsv   pearson(log1p(1e4 * norm estimation), log1p(x / size factor)) per gene;
                is_de; frac_nonzero (fraction of test cells with a non-zero true count)
    peaks.tsv   AUROC / AUPRnorm of the depth-rescaled prediction (rna_to_atac X) against the
                binarised truth; pp; is_de
    cells.tsv   FOSCTTM per test cell: latent (rna_query vs atac_reference, atac_query vs
                rna_reference) and profile space (rna query: predicted ATAC X vs true binary
                ATAC; atac query: log1p(1e4 * predicted frequency) vs log1p(1e4 * true size-factor
                normalised profile rescaled to the same mean total) )
    markers.tsv one-vs-rest marker AUROC (predicted and true expression) among the test cells
    de.tsv      test cells vs all non-test (train + val) co-assay cells, see below.
    is_de: FDR <= evaluate.de_fdr in any of the "DE cell types": all cell types for the random
    split; for the unseen split the cell types that make up >= 10% of the test cells (the
    paper restricts the unseen-type evaluation to that type's DE genes).

    de.tsv (Fig. 5G): truth = size-factor-normalised true RNA of the test cells vs that of the
    non-test cells. Prediction = predicted norm estimation of the test cells (atac_to_rna) vs
    the predicted norm estimation of the non-test cells (atac_to_rna_rest), so both sides are
    smooth model outputs on the same scale, as in the paper (DE computed on the predicted
    profiles). Comparing smooth predictions with sparse observed frequencies instead makes
    nearly every gene "significant" and the ranking uninformative.

``run_table3`` -- per split, metric and method (full variant): mean (SD), median, n, n_nan over
    DE genes / DE peaks / test cells / marker genes, and paired one-sided Wilcoxon signed-rank
    tests of polarbear against every other method with counts above/below the diagonal.
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.stats import wilcoxon

from . import de as de_mod
from . import metrics as M
from .fileutils import InputFormatError, atomic_path, get_logger, timed, write_tsv
from .normalize import log_normalize, normalize_counts, pooled_size_factors
from .predictions import load_coassay

UNSEEN_MIN_SHARE = 0.10
REFERENCE_METHOD = "polarbear"


# ---------------------------------------------------------------------------------------------
# reference: size factors and true cell-type DE (per variant)
# ---------------------------------------------------------------------------------------------
def run_reference(rna_path, atac_path, sf_out, genes_de_out, peaks_de_out, log_path=None):
    logger = get_logger(log_path)
    rna = ad.read_h5ad(rna_path)
    atac = ad.read_h5ad(atac_path)
    if "cell_type" not in rna.obs:
        raise InputFormatError(rna_path, "obs column 'cell_type' missing")
    if not np.array_equal(rna.obs_names.values, atac.obs_names.values):
        raise InputFormatError(atac_path, f"obs_names differ from those of {rna_path}")
    cts = rna.obs["cell_type"].astype(str).values
    X = sp.csr_matrix(rna.X)
    with timed(logger, f"size factors of {X.shape[0]} cells x {X.shape[1]} genes"):
        sf, info = pooled_size_factors(X, cts, logger=logger)
    logger.info("size factors: %s", info)
    write_tsv(pd.DataFrame({"cell": rna.obs_names, "cell_type": cts, "size_factor": sf}), sf_out)
    with timed(logger, "true cell-type DE of genes"):
        g = de_mod.celltype_de(normalize_counts(X, sf), cts, rna.var_names)
    with timed(logger, "true cell-type DE of peaks"):
        Y = sp.csr_matrix(atac.X)
        Y = sp.csr_matrix((Y > 0).astype(np.float32))
        p = de_mod.celltype_de(Y, cts, atac.var_names)
    for tab, out, what in ((g, genes_de_out, "genes"), (p, peaks_de_out, "peaks")):
        logger.info("%s DE (FDR<=0.01) per cell type: %s", what, (tab <= 0.01).sum().to_dict())
        with atomic_path(out) as tmp:
            tab.to_csv(tmp, sep="\t", float_format="%.4g")


def _read_fdr_table(path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, sep="\t", index_col=0)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise InputFormatError(path, f"not a readable TSV ({e})") from e


# ---------------------------------------------------------------------------------------------
# per-run evaluation
# ---------------------------------------------------------------------------------------------
def _read_prediction(path, obs_names, var_names=None) -> ad.AnnData:
    a = ad.read_h5ad(path)
    if not np.array_equal(a.obs_names.values, np.asarray(obs_names)):
        raise InputFormatError(path, "obs_names differ from the expected cells of the scenario (order matters)")
    if var_names is not None and not np.array_equal(a.var_names.values, np.asarray(var_names)):
        raise InputFormatError(path, "var_names differ from the processed co-assay var")
    return a


def _dense(X, path) -> np.ndarray:
    X = X.toarray() if sp.issparse(X) else np.asarray(X)
    if not np.isfinite(X).all():
        raise InputFormatError(path, "prediction contains NaN or infinite values")
    return X


def de_cell_types(test_cell_types, scenario: str) -> list[str]:
    """Cell types whose DE features define is_de (see module docstring)."""
    s = pd.Series(np.asarray(test_cell_types).astype(str))
    if scenario == "unseen":
        share = s.value_counts(normalize=True)
        return sorted(share[share >= UNSEEN_MIN_SHARE].index)
    return sorted(s.unique())


def evaluate_run(pred_paths, rna_path, atac_path, sf_path, genes_de_path, peaks_de_path,
                 scenario: str, de_fdr: float, marker_genes: dict | None, logger) -> dict:
    """Compute the five evaluation tables of one (variant, scenario, method) run."""
    a2r_path, r2a_path, lat_path, a2r_rest_path = map(str, pred_paths)
    data = load_coassay(rna_path, atac_path, scenario)
    test = data.test
    cells = data.rna.obs_names[test]
    cts = data.rna.obs["cell_type"].astype(str).values
    sf_tab = pd.read_csv(sf_path, sep="\t")
    if list(sf_tab["cell"].astype(str)) != list(data.rna.obs_names):
        raise InputFormatError(sf_path, "cells differ from the processed co-assay cells")
    sf = sf_tab["size_factor"].to_numpy(dtype=np.float64)
    genes, peaks = data.rna.var_names, data.atac.var_names
    a2r = _read_prediction(a2r_path, cells, genes)
    r2a = _read_prediction(r2a_path, cells, peaks)
    lat = _read_prediction(lat_path, cells)
    rest = np.setdiff1d(np.arange(data.rna.n_obs), test)
    a2r_rest = _read_prediction(a2r_rest_path, data.rna.obs_names[rest], genes)
    test_types = de_cell_types(cts[test], scenario)
    logger.info("%d test cells; DE cell types for is_de: %s", test.size, test_types)

    # --- genes -----------------------------------------------------------------------------
    X_rna = data.rna.X
    truth_log = log_normalize(X_rna[test], sf[test])
    pred_freq = _dense(a2r.X, a2r_path).astype(np.float64)
    pred_log = np.log1p(1e4 * pred_freq)
    with timed(logger, "gene-wise Pearson"):
        r = M.pearson_columns(pred_log, truth_log)
    g_fdr = _read_fdr_table(genes_de_path).reindex(genes.astype(str))
    genes_tab = pd.DataFrame({
        "gene": genes, "pearson": r, "is_de": de_mod.de_flags(g_fdr, test_types, de_fdr),
        "frac_nonzero": np.asarray((X_rna[test] > 0).mean(axis=0)).ravel(),
    })

    # --- peaks -----------------------------------------------------------------------------
    truth_atac = sp.csr_matrix((data.atac.X[test] > 0).astype(np.float32))
    pred_atac = _dense(r2a.X, r2a_path)
    with timed(logger, f"peak-wise AUROC/AUPR on {pred_atac.shape[1]} peaks"):
        pk = M.auroc_ap_columns(truth_atac, pred_atac)
    p_fdr = _read_fdr_table(peaks_de_path).reindex(peaks.astype(str))
    peaks_tab = pd.DataFrame({"peak": peaks, "auroc": pk["auroc"].to_numpy(),
                              "auprnorm": pk["auprnorm"].to_numpy(), "pp": pk["pp"].to_numpy(),
                              "is_de": de_mod.de_flags(p_fdr, test_types, de_fdr)})

    # --- cells (FOSCTTM) ---------------------------------------------------------------------
    for key in M_LATENT:
        if key not in lat.obsm:
            raise InputFormatError(lat_path, f"obsm[{key!r}] missing")
    with timed(logger, "FOSCTTM"):
        f_lat_rna = M.foscttm(np.asarray(lat.obsm["rna_query"]), np.asarray(lat.obsm["atac_reference"]))
        f_lat_atac = M.foscttm(np.asarray(lat.obsm["atac_query"]), np.asarray(lat.obsm["rna_reference"]))
        f_prof_rna = M.foscttm(pred_atac, truth_atac)
        t_norm = normalize_counts(X_rna[test], sf[test])
        tot = np.asarray(t_norm.sum(axis=1)).ravel()
        scale = 1e4 / tot[tot > 0].mean() if (tot > 0).any() else 1.0
        t_prof = t_norm * scale
        t_prof.data = np.log1p(t_prof.data)
        f_prof_atac = M.foscttm(pred_log, t_prof)
    cells_tab = pd.DataFrame({
        "cell": cells, "cell_type": cts[test],
        "foscttm_latent_rna_query": f_lat_rna, "foscttm_latent_atac_query": f_lat_atac,
        "foscttm_profile_rna_query": f_prof_rna, "foscttm_profile_atac_query": f_prof_atac,
    })

    # --- markers -----------------------------------------------------------------------------
    markers = M.marker_genes_from_labels(np.unique(cts), genes, marker_genes)
    markers_tab = M.marker_auroc(pred_log, truth_log, cts[test], genes, markers)

    # --- DE of the test cells vs the rest (Fig. 5G) ------------------------------------------
    with timed(logger, f"DE test ({test.size}) vs rest ({rest.size})"):
        de_tab = de_mod.test_vs_rest_de(
            pred_freq, normalize_counts(X_rna[test], sf[test]), normalize_counts(X_rna[rest], sf[rest]),
            _dense(a2r_rest.X, a2r_rest_path).astype(np.float64), genes, de_fdr)
    for name, v in (("pearson", r), ("auroc", peaks_tab.auroc), ("FOSCTTM latent rna", f_lat_rna)):
        s = M.nan_summary(v)
        logger.info("%s: mean %.4g over %d (NaN excluded: %d)", name, s["mean"], s["n"], s["n_nan"])
    return {"genes": genes_tab, "peaks": peaks_tab, "cells": cells_tab, "markers": markers_tab,
            "de": de_tab}


M_LATENT = ("rna_query", "atac_reference", "atac_query", "rna_reference")


def run_evaluation(pred_paths, rna_path, atac_path, sf_path, genes_de_path, peaks_de_path,
                   outputs: dict, scenario: str, de_fdr: float, marker_genes=None, log_path=None):
    """Entry point of scripts/evaluate_run.py; ``outputs`` maps genes/peaks/cells/markers/de -> path."""
    logger = get_logger(log_path)
    with timed(logger, f"evaluation ({scenario}) of {pred_paths[0]}"):
        tabs = evaluate_run(pred_paths, rna_path, atac_path, sf_path, genes_de_path,
                            peaks_de_path, scenario, de_fdr, marker_genes, logger)
    for key, df in tabs.items():
        write_tsv(df, outputs[key])
    return tabs


# ---------------------------------------------------------------------------------------------
# Table 3
# ---------------------------------------------------------------------------------------------
# (metric label, table, value column, key column, subset, higher_is_better)
TABLE3_METRICS = (
    ("gene-wise correlation", "genes", "pearson", "gene", "is_de", True),
    ("peak-wise AUROC", "peaks", "auroc", "peak", "is_de", True),
    ("peak-wise AUPRnorm", "peaks", "auprnorm", "peak", "is_de", True),
    ("FOSCTTM latent (RNA query)", "cells", "foscttm_latent_rna_query", "cell", None, False),
    ("FOSCTTM latent (ATAC query)", "cells", "foscttm_latent_atac_query", "cell", None, False),
    ("marker AUROC (median)", "markers", "auroc_pred", ("cell_type", "gene"), None, True),
)


def _read_table(path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, sep="\t")
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise InputFormatError(path, f"not a readable TSV ({e})") from e


def _as_bool(s: pd.Series) -> pd.Series:
    if s.dtype == bool:
        return s
    return s.astype(str).str.strip().str.lower().isin(("true", "1", "1.0"))


def _metric_series(df: pd.DataFrame, col, key, subset, path) -> pd.Series:
    keys = [key] if isinstance(key, str) else list(key)
    miss = [c for c in [col, *keys] + ([subset] if subset else []) if c not in df.columns]
    if miss:
        raise InputFormatError(path, f"missing column(s) {miss}", line=1)
    if subset:
        df = df[_as_bool(df[subset])]
    idx = pd.MultiIndex.from_frame(df[keys].astype(str)) if len(keys) > 1 else df[keys[0]].astype(str)
    return pd.Series(pd.to_numeric(df[col], errors="coerce").to_numpy(), index=idx)


def paired_comparison(ref: pd.Series, other: pd.Series, higher_is_better: bool) -> dict:
    """Counts of features where ``ref`` is better/worse + one-sided Wilcoxon signed-rank p."""
    both = pd.concat([ref.rename("ref"), other.rename("other")], axis=1, join="inner").dropna()
    a, b = both["ref"].to_numpy(), both["other"].to_numpy()
    better = (a > b) if higher_is_better else (a < b)
    worse = (a < b) if higher_is_better else (a > b)
    p = np.nan
    if (a != b).any():
        try:
            p = float(wilcoxon(a, b, alternative="greater" if higher_is_better else "less").pvalue)
        except ValueError:
            p = np.nan
    return {"n_pairs": int(len(both)), "n_polarbear_better": int(better.sum()),
            "n_polarbear_worse": int(worse.sum()), "wilcoxon_p": p}


def build_table3(tables: dict) -> pd.DataFrame:
    """``tables[(scenario, method, table)] = (DataFrame, path)`` -> Table 3 rows."""
    rows = []
    scenarios = list(dict.fromkeys(s for s, _, _ in tables))
    methods = list(dict.fromkeys(m for _, m, _ in tables))
    for s in scenarios:
        for label, table, col, key, subset, hib in TABLE3_METRICS:
            series = {}
            for m in methods:
                if (s, m, table) in tables:
                    df, path = tables[(s, m, table)]
                    series[m] = _metric_series(df, col, key, subset, path)
            for m, v in series.items():
                row = {"split": s, "metric": label, "method": m, **M.nan_summary(v.to_numpy())}
                if m != REFERENCE_METHOD and REFERENCE_METHOD in series:
                    row.update(paired_comparison(series[REFERENCE_METHOD], v, hib))
                else:
                    row.update({"n_pairs": np.nan, "n_polarbear_better": np.nan,
                                "n_polarbear_worse": np.nan, "wilcoxon_p": np.nan})
                rows.append(row)
    cols = ["split", "metric", "method", "mean", "sd", "median", "n", "n_nan", "n_pairs",
            "n_polarbear_better", "n_polarbear_worse", "wilcoxon_p"]
    out = pd.DataFrame(rows, columns=cols)
    for c in ("n_pairs", "n_polarbear_better", "n_polarbear_worse"):
        out[c] = out[c].astype("Int64")
    return out


def table3_markdown(t3: pd.DataFrame) -> str:
    """Paper-style Table 3 (mean (SD); the marker row shows the median) + comparison table."""
    def cell(r):
        if not np.isfinite(r["mean"]):
            return "n/a"
        if "median" in r["metric"]:
            return f"{r['median']:.3g} (median, n={r['n']})"
        sd = "" if not np.isfinite(r["sd"]) else f" ({r['sd']:.3g})"
        return f"{r['mean']:.3g}{sd}"
    t = t3.copy()
    t["cell"] = t.apply(cell, axis=1)
    methods = list(dict.fromkeys(t["method"]))
    methods = [m for m in methods if m != REFERENCE_METHOD] + (
        [REFERENCE_METHOD] if REFERENCE_METHOD in methods else [])
    lines = ["# Table 3. Translation performance: mean (SD)", "",
             "Gene/peak metrics over cell-type DE genes/peaks; FOSCTTM over test cells (lower is "
             "better); NaN values excluded (see n_nan in table3.tsv).", "",
             "| split | metric | " + " | ".join(methods) + " |",
             "|---|---|" + "---|" * len(methods)]
    for (s, metric), grp in t.groupby(["split", "metric"], sort=False):
        vals = grp.set_index("method")["cell"]
        lines.append(f"| {s} | {metric} | " + " | ".join(vals.get(m, "") for m in methods) + " |")
    lines += ["", "## Paired comparison: Polarbear vs each method", "",
              "better/worse = number of features (genes, peaks, cells, markers) on which Polarbear "
              "is better/worse; p = one-sided paired Wilcoxon signed-rank test.", "",
              "| split | metric | method | n pairs | polarbear better | polarbear worse | p |",
              "|---|---|---|---|---|---|---|"]
    for _, r in t[t["method"] != REFERENCE_METHOD].iterrows():
        p = "" if pd.isna(r["wilcoxon_p"]) else f"{r['wilcoxon_p']:.3g}"
        n_pairs, better, worse = ("" if pd.isna(r[c]) else str(r[c]) for c in
                                  ("n_pairs", "n_polarbear_better", "n_polarbear_worse"))
        lines.append(f"| {r['split']} | {r['metric']} | {r['method']} | {n_pairs} | "
                     f"{better} | {worse} | {p} |")
    return "\n".join(lines) + "\n"


def run_table3(eval_dirs: dict, tsv_out, md_out, log_path=None) -> pd.DataFrame:
    """Entry point of scripts/evaluate_table3.py.

    ``eval_dirs[(scenario, method)]`` = directory holding genes/peaks/cells/markers.tsv.
    """
    logger = get_logger(log_path)
    tables = {}
    for (s, m), d in eval_dirs.items():
        for table in ("genes", "peaks", "cells", "markers"):
            path = Path(d) / f"{table}.tsv"
            tables[(s, m, table)] = (_read_table(path), path)
    t3 = build_table3(tables)
    write_tsv(t3, tsv_out)
    with atomic_path(md_out) as tmp:
        tmp.write_text(table3_markdown(t3))
    logger.info("table 3: %d rows from %d runs", len(t3), len(eval_dirs))
    return t3
