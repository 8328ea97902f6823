"""Stage "evaluate": per-run evaluation tables and Table 3, under two metric definitions.

Definitions (every table says which one each number follows):

``paper`` (the default of every table, Table 3 row and figure) -- the metrics as the authors' code
    computes them (Noble-Lab/Polarbear ``bin/evaluate_polarbear.R``, ``bin/evaluation_functions.R``,
    ``bin/evaluation_functions.py``, ``bin/run_polarbear.py``):
    - size factors: scran ``computeSumFactors`` on ALL co-assay cells without cell types
      (evaluate_polarbear.R l.36; normalize.scran_size_factors);
    - gene-wise Pearson of ``log(pred x L + 1)`` against ``log(x / s + 1)``, ``L`` = mean RNA
      library size of all co-assay cells (evaluation_functions.R l.10-27, called with
      ``norm_pred = TRUE`` at l.57);
    - peak-wise AUROC / AUPRnorm over DE peaks with >= n/100 positive test cells (l.249, 251);
    - marker AUROC over markers with > 8 positive test cells (evaluate_polarbear.R l.252), true
      AUROC on the scran-normalised profile;
    - FOSCTTM of both queries in the ATAC latent (what Fig. 6 plots: ``*_atacVAE.txt``); the RNA
      latent is reported too;
    - Fig. 5G DE: predicted test cells vs predicted TRAINING cells (l.301-312), truth = test vs all
      other co-assay cells, R's convention p = 1 for constant genes, genes with a defined fold
      change only;
    - method comparisons: one-sided Wilcoxon rank-sum (R ``wilcox.test(other, polarbear,
      alternative = "less")``, e.g. evaluation_functions.R l.93).
``v1`` (this workflow's definitions before the paper-fidelity work, kept for like-for-like
    comparison with older results): size factors per cell type (normalize.pooled_size_factors),
    Pearson of ``log1p(1e4 x pred)``, all DE peaks, all markers, FOSCTTM of the RNA query in the ATAC
    latent and the ATAC query in the RNA latent, DE prediction test vs train + validation, paired
    one-sided Wilcoxon signed-rank tests.

Column convention of the per-run tables: a metric column without suffix follows ``paper``; the
same metric under ``v1`` has the suffix ``_v1``; ``paper_set`` marks the rows (features / marker
pairs / genes) that enter the paper's summaries, while ``v1`` summaries use ``is_de`` (genes,
peaks) or all rows (markers). FOSCTTM columns name their latent space instead.

Three entry points (one per Snakemake rule, called by the thin scripts/evaluate_*.py):

``run_reference`` (per variant) -- on ALL co-assay cells of the variant: size factors of both
    definitions (size_factors.tsv: ``size_factor`` = paper, ``size_factor_v1``) and one-vs-rest
    cell-type DE of the TRUE profiles (genes: v1-normalised RNA; peaks: binarised ATAC),
    one-sided Wilcoxon "greater" + BH within each cell type -> FDR tables (feature x cell type)
    that define ``is_de`` for both definitions.

``run_evaluation`` (per variant, scenario, method) -- on the TEST cells of the scenario:
    genes.tsv   gene, pearson, pearson_v1, is_de, frac_nonzero, n_pos (test cells with a count),
                de_set (which DE set defines is_de: ``ours`` or ``authors``, see below)
    peaks.tsv   peak, auroc, auprnorm, pp, n_pos, is_de, paper_set, de_set: AUROC / AUPRnorm of
                the depth-rescaled prediction (rna_to_atac X) against the binarised truth
    cells.tsv   cell, cell_type, foscttm_latent_rna_query, foscttm_latent_atac_query (both in the
                ATAC latent = paper), foscttm_rna_latent_rna_query, foscttm_rna_latent_atac_query
                (RNA latent; the ATAC query there is v1's "latent ATAC query"), and the profile
                space FOSCTTM of this workflow (not a paper metric, v1 scale): foscttm_profile_rna_query
                (predicted ATAC X vs true binary ATAC), foscttm_profile_atac_query
                (log1p(1e4 x predicted frequency) vs log1p(1e4 x true v1-normalised profile
                rescaled to the same mean total))
    markers.tsv cell_type, gene, n_pos, auroc_pred, auroc_true, auroc_true_v1, paper_set:
                one-vs-rest marker AUROC among the test cells (auroc_pred is the same under both
                definitions: AUROC is invariant to the monotone transforms)
    de.tsv      gene, pred_pvalue, pred_fdr, true_pvalue, true_fdr, true_de, paper_set (paper, see
                de.paper_test_vs_train_de) and pred_pvalue_v1, pred_fdr_v1, true_pvalue_v1,
                true_fdr_v1, true_de_v1 (v1, de.test_vs_rest_de: predicted test vs predicted
                train + validation)
    is_de: FDR <= evaluate.de_fdr in any of the "DE cell types": all cell types for the random
    split; for the held-out splits (unseen, babel) the cell types that make up >= 10% of the test
    cells (the paper restricts the unseen-type evaluation to that type's DE genes / peaks).
    With source authors the authors' DE sets replace ours where present (``de_set`` =
    ``authors``): genes = Chen et al. 2019 Suppl. Table 1 (all for the random split, the clusters
    of the held-out types otherwise), peaks = adultbrainfull50_atac_outer_peaks_noXY_diffexp.txt.

``run_table3`` -- per split, definition, metric and method (full variant): mean (SD), median, n,
    n_nan over the definition's features / cells, counts of features where polarbear is
    better/worse than each other method, ``ranksum_p`` (paper test) and ``signedrank_p`` (v1 test).
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from . import de as de_mod
from . import metrics as M
from .fileutils import InputFormatError, as_bool, atomic_path, get_logger, timed, write_tsv
from .normalize import log_normalize, normalize_counts, pooled_size_factors, scran_size_factors
from .predictions import load_coassay
from .seeds import base_method, is_first_seed, seed_summary

UNSEEN_MIN_SHARE = 0.10
HELD_OUT_SCENARIOS = ("unseen", "babel")   # test cells = held-out cell types
REFERENCE_METHOD = "polarbear"
DEFINITIONS = ("paper", "v1")


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
    with timed(logger, f"scran size factors (paper) of {X.shape[0]} cells x {X.shape[1]} genes"):
        sf_paper, info = scran_size_factors(X, logger=logger)
    logger.info("size factors (paper): %s", info)
    with timed(logger, f"cell-type pooled size factors (v1) of {X.shape[0]} cells"):
        sf, info = pooled_size_factors(X, cts, logger=logger)
    logger.info("size factors (v1): %s", info)
    write_tsv(pd.DataFrame({"cell": rna.obs_names, "cell_type": cts, "size_factor": sf_paper,
                            "size_factor_v1": sf}), sf_out)
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
    if scenario in HELD_OUT_SCENARIOS:
        share = s.value_counts(normalize=True)
        return sorted(share[share >= UNSEEN_MIN_SHARE].index)
    return sorted(s.unique())


def _read_size_factors(sf_path, obs_names) -> tuple[np.ndarray, np.ndarray]:
    """(paper, v1) size factors of the processed co-assay cells from size_factors.tsv."""
    sf_tab = pd.read_csv(sf_path, sep="\t")
    if list(sf_tab["cell"].astype(str)) != list(obs_names):
        raise InputFormatError(sf_path, "cells differ from the processed co-assay cells")
    miss = [c for c in ("size_factor", "size_factor_v1") if c not in sf_tab.columns]
    if miss:
        raise InputFormatError(sf_path, f"missing column(s) {miss} (written by an older "
                               "evaluate_reference: rerun it)", line=1)
    return (sf_tab["size_factor"].to_numpy(dtype=np.float64),
            sf_tab["size_factor_v1"].to_numpy(dtype=np.float64))


def authors_gene_de(genes, path, scenario: str, test_types, logger) -> np.ndarray | None:
    """is_de of ``genes`` from the authors' DE gene table (authors.read_de_genes -> gene, cluster,
    ident), as evaluate_polarbear.R selects it: every listed gene for the random split; for a
    held-out split the genes of the clusters of the held-out cell types (the R code: the
    Ex-L2/3-Rasgrf2 genes, the major type of BABEL's test set). None when no cluster matches."""
    tab = _read_table(path)
    miss = [c for c in ("gene", "cluster", "ident") if c not in tab.columns]
    if miss:
        raise InputFormatError(path, f"missing column(s) {miss}", line=1)
    tab = tab.fillna("")
    if scenario in HELD_OUT_SCENARIOS:
        sel = tab["ident"].astype(str).isin(set(test_types))
        if not sel.any():
            logger.warning("authors' DE genes: no cluster maps to the held-out cell types %s; using our DE",
                           list(test_types))
            return None
        logger.info("authors' DE genes of clusters %s", sorted(set(tab.loc[sel, "cluster"])))
        tab = tab[sel]
    return np.isin(np.asarray(genes, dtype=str), tab["gene"].astype(str).to_numpy())


def authors_peak_de(peaks, path) -> np.ndarray:
    """is_de of ``peaks`` from the authors' DE peak list (one set for every split, as in the R code)."""
    tab = _read_table(path)
    if "peak" not in tab.columns:
        raise InputFormatError(path, "missing column 'peak'", line=1)
    return np.isin(np.asarray(peaks, dtype=str), tab["peak"].astype(str).to_numpy())


def paper_log_prediction(pred_freq: np.ndarray, mean_libsize: float) -> np.ndarray:
    """``log(pred x L + 1)``: the norm estimation on the scale of the mean library size ``L``
    (evaluation_functions.R ``calculate_cor(..., norm_pred = TRUE)``)."""
    return np.log1p(pred_freq * mean_libsize)


def evaluate_run(pred_paths, rna_path, atac_path, sf_path, genes_de_path, peaks_de_path,
                 scenario: str, de_fdr: float, marker_genes: dict | None, logger,
                 authors_de_genes=None, authors_de_peaks=None) -> dict:
    """Compute the five evaluation tables of one (variant, scenario, method) run.

    ``authors_de_genes`` / ``authors_de_peaks`` (source authors): the authors' DE sets define
    is_de instead of our cell-type DE; column ``de_set`` of genes.tsv / peaks.tsv says which
    set was used (``authors`` or ``ours``)."""
    a2r_path, r2a_path, lat_path, a2r_rest_path = map(str, pred_paths)
    data = load_coassay(rna_path, atac_path, scenario)
    test = data.test
    cells = data.rna.obs_names[test]
    cts = data.rna.obs["cell_type"].astype(str).values
    sf, sf_v1 = _read_size_factors(sf_path, data.rna.obs_names)
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
    X_test = X_rna[test]
    mean_lib = float(np.asarray(X_rna.sum(axis=1), dtype=np.float64).mean())
    pred_freq = _dense(a2r.X, a2r_path).astype(np.float64)
    truth_log = log_normalize(X_test, sf[test])            # paper: log(x / s_scran + 1)
    truth_log_v1 = log_normalize(X_test, sf_v1[test])      # v1: log1p(x / s_celltype)
    pred_log_v1 = np.log1p(1e4 * pred_freq)
    with timed(logger, f"gene-wise Pearson (paper: L = {mean_lib:.4g}; v1)"):
        r = M.pearson_columns(paper_log_prediction(pred_freq, mean_lib), truth_log)
        r_v1 = M.pearson_columns(pred_log_v1, truth_log_v1)
    g_fdr = _read_fdr_table(genes_de_path).reindex(genes.astype(str))
    n_pos_g = np.asarray((X_test > 0).sum(axis=0)).ravel()
    gene_de, gene_set = de_mod.de_flags(g_fdr, test_types, de_fdr), "ours"
    if authors_de_genes:
        flags = authors_gene_de(genes, authors_de_genes, scenario, test_types, logger)
        if flags is not None:
            gene_de, gene_set = flags, "authors"
    logger.info("DE genes (%s set): %d of %d", gene_set, int(np.sum(gene_de)), len(genes))
    genes_tab = pd.DataFrame({
        "gene": genes, "pearson": r, "pearson_v1": r_v1, "is_de": gene_de,
        "frac_nonzero": n_pos_g / max(1, test.size), "n_pos": n_pos_g.astype(np.int64),
        "de_set": gene_set,
    })

    # --- peaks -----------------------------------------------------------------------------
    truth_atac = sp.csr_matrix((data.atac.X[test] > 0).astype(np.float32))
    pred_atac = _dense(r2a.X, r2a_path)
    with timed(logger, f"peak-wise AUROC/AUPR on {pred_atac.shape[1]} peaks"):
        pk = M.auroc_ap_columns(truth_atac, pred_atac)
    p_fdr = _read_fdr_table(peaks_de_path).reindex(peaks.astype(str))
    peak_de, peak_set = de_mod.de_flags(p_fdr, test_types, de_fdr), "ours"
    if authors_de_peaks:
        peak_de, peak_set = authors_peak_de(peaks, authors_de_peaks), "authors"
    logger.info("DE peaks (%s set): %d of %d", peak_set, int(np.sum(peak_de)), len(peaks))
    peaks_tab = pd.DataFrame({"peak": peaks, "auroc": pk["auroc"].to_numpy(),
                              "auprnorm": pk["auprnorm"].to_numpy(), "pp": pk["pp"].to_numpy(),
                              "n_pos": pk["n_pos"].to_numpy(), "is_de": peak_de,
                              "paper_set": M.paper_peak_set(pk["n_pos"], peak_de, test.size),
                              "de_set": peak_set})

    # --- cells (FOSCTTM) ---------------------------------------------------------------------
    for key in M_LATENT:
        if key not in lat.obsm:
            raise InputFormatError(lat_path, f"obsm[{key!r}] missing")
    with timed(logger, "FOSCTTM"):
        f_lat = M.foscttm_latent_spaces(*(np.asarray(lat.obsm[k]) for k in M_LATENT))
        f_prof_rna = M.foscttm(pred_atac, truth_atac)
        t_norm = normalize_counts(X_test, sf_v1[test])
        tot = np.asarray(t_norm.sum(axis=1)).ravel()
        scale = 1e4 / tot[tot > 0].mean() if (tot > 0).any() else 1.0
        t_prof = t_norm * scale
        t_prof.data = np.log1p(t_prof.data)
        f_prof_atac = M.foscttm(pred_log_v1, t_prof)
    cells_tab = pd.DataFrame({
        "cell": cells, "cell_type": cts[test],
        "foscttm_latent_rna_query": f_lat["atac_latent_rna_query"],
        "foscttm_latent_atac_query": f_lat["atac_latent_atac_query"],
        "foscttm_rna_latent_rna_query": f_lat["rna_latent_rna_query"],
        "foscttm_rna_latent_atac_query": f_lat["rna_latent_atac_query"],
        "foscttm_profile_rna_query": f_prof_rna, "foscttm_profile_atac_query": f_prof_atac,
    })

    # --- markers -----------------------------------------------------------------------------
    markers = M.marker_genes_from_labels(np.unique(cts), genes, marker_genes)
    markers_tab = M.marker_auroc(pred_freq, truth_log, cts[test], genes, markers)
    markers_v1 = M.marker_auroc(pred_freq, truth_log_v1, cts[test], genes, markers)
    markers_tab["auroc_true_v1"] = markers_v1["auroc_true"].to_numpy()
    markers_tab["paper_set"] = M.paper_marker_set(markers_tab["n_pos"])

    # --- DE of the test cells (Fig. 5G) --------------------------------------------------------
    pred_rest = _dense(a2r_rest.X, a2r_rest_path)
    train_in_rest = np.searchsorted(rest, data.train)
    with timed(logger, f"DE paper: test ({test.size}) vs train ({data.train.size}); "
                       f"v1: test vs rest ({rest.size})"):
        de_tab = de_mod.paper_test_vs_train_de(
            pred_freq, pred_rest[train_in_rest], normalize_counts(X_test, sf[test]),
            normalize_counts(X_rna[rest], sf[rest]), genes, de_fdr)
        de_v1 = de_mod.test_vs_rest_de(
            pred_freq, normalize_counts(X_test, sf_v1[test]), normalize_counts(X_rna[rest], sf_v1[rest]),
            pred_rest, genes, de_fdr)
    for c in ("pred_pvalue", "pred_fdr", "true_pvalue", "true_fdr", "true_de"):
        de_tab[f"{c}_v1"] = de_v1[c].to_numpy()

    for name, v in (("pearson (paper)", r), ("pearson (v1)", r_v1), ("auroc", peaks_tab.auroc),
                    ("FOSCTTM ATAC latent, RNA query", f_lat["atac_latent_rna_query"]),
                    ("FOSCTTM ATAC latent, ATAC query", f_lat["atac_latent_atac_query"])):
        s = M.nan_summary(v)
        logger.info("%s: mean %.4g over %d (NaN excluded: %d)", name, s["mean"], s["n"], s["n_nan"])
    return {"genes": genes_tab, "peaks": peaks_tab, "cells": cells_tab, "markers": markers_tab,
            "de": de_tab}


M_LATENT = ("rna_query", "atac_reference", "atac_query", "rna_reference")


def run_evaluation(pred_paths, rna_path, atac_path, sf_path, genes_de_path, peaks_de_path,
                   outputs: dict, scenario: str, de_fdr: float, marker_genes=None, log_path=None,
                   authors_de_genes=None, authors_de_peaks=None):
    """Entry point of scripts/evaluate_run.py; ``outputs`` maps genes/peaks/cells/markers/de -> path."""
    logger = get_logger(log_path)
    with timed(logger, f"evaluation ({scenario}) of {pred_paths[0]}"):
        tabs = evaluate_run(pred_paths, rna_path, atac_path, sf_path, genes_de_path,
                            peaks_de_path, scenario, de_fdr, marker_genes, logger,
                            authors_de_genes=authors_de_genes, authors_de_peaks=authors_de_peaks)
    for key, df in tabs.items():
        write_tsv(df, outputs[key])
    return tabs


# ---------------------------------------------------------------------------------------------
# Table 3
# ---------------------------------------------------------------------------------------------
# (metric label, definition, table, value column, key column(s), subset column, higher_is_better)
# The v1 rows are exactly the rows of Table 3 before the paper definitions (same labels).
_MK = ("cell_type", "gene")
TABLE3_METRICS = (
    ("gene-wise correlation", "paper", "genes", "pearson", "gene", "is_de", True),
    ("peak-wise AUROC", "paper", "peaks", "auroc", "peak", "paper_set", True),
    ("peak-wise AUPRnorm", "paper", "peaks", "auprnorm", "peak", "paper_set", True),
    ("FOSCTTM latent (RNA query)", "paper", "cells", "foscttm_latent_rna_query", "cell", None, False),
    ("FOSCTTM latent (ATAC query)", "paper", "cells", "foscttm_latent_atac_query", "cell", None, False),
    ("FOSCTTM RNA latent (RNA query)", "paper", "cells", "foscttm_rna_latent_rna_query", "cell", None,
     False),
    ("FOSCTTM RNA latent (ATAC query)", "paper", "cells", "foscttm_rna_latent_atac_query", "cell", None,
     False),
    ("marker AUROC (median)", "paper", "markers", "auroc_pred", _MK, "paper_set", True),
    ("gene-wise correlation", "v1", "genes", "pearson_v1", "gene", "is_de", True),
    ("peak-wise AUROC", "v1", "peaks", "auroc", "peak", "is_de", True),
    ("peak-wise AUPRnorm", "v1", "peaks", "auprnorm", "peak", "is_de", True),
    ("FOSCTTM latent (RNA query)", "v1", "cells", "foscttm_latent_rna_query", "cell", None, False),
    ("FOSCTTM latent (ATAC query)", "v1", "cells", "foscttm_rna_latent_atac_query", "cell", None, False),
    ("marker AUROC (median)", "v1", "markers", "auroc_pred", _MK, None, True),
)
TABLE3_COLUMNS = ["split", "definition", "metric", "method", "mean", "sd", "median", "n", "n_nan",
                  "n_pairs", "n_polarbear_better", "n_polarbear_worse", "ranksum_p", "signedrank_p"]
# added when runs of more than one training seed are present (workflow_lib/seeds.py): the number of
# seeds with a finite per-seed mean, the mean of the per-seed means and its t 95% CI (NaN, 1 seed)
TABLE3_SEED_COLUMNS = ["n_seeds", "seed_mean", "ci95_low", "ci95_high"]
_T3_KEYS = ["split", "definition", "metric", "method"]


def _read_table(path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, sep="\t")
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise InputFormatError(path, f"not a readable TSV ({e})") from e


def _metric_series(df: pd.DataFrame, col, key, subset, path) -> pd.Series:
    keys = [key] if isinstance(key, str) else list(key)
    miss = [c for c in [col, *keys] + ([subset] if subset else []) if c not in df.columns]
    if miss:
        raise InputFormatError(path, f"missing column(s) {miss}", line=1)
    if subset:
        df = df[as_bool(df[subset])]
    idx = pd.MultiIndex.from_frame(df[keys].astype(str)) if len(keys) > 1 else df[keys[0]].astype(str)
    return pd.Series(pd.to_numeric(df[col], errors="coerce").to_numpy(), index=idx)


def paired_comparison(ref: pd.Series, other: pd.Series, higher_is_better: bool) -> dict:
    """Polarbear (``ref``) against another method on the features both have a value for.

    Counts of features where ``ref`` is better / worse, ``ranksum_p`` = one-sided Wilcoxon
    rank-sum p (paper: R ``wilcox.test(other, polarbear, alternative = "less")`` for
    higher-is-better metrics) and ``signedrank_p`` = one-sided paired Wilcoxon signed-rank p (v1).
    """
    both = pd.concat([ref.rename("ref"), other.rename("other")], axis=1, join="inner").dropna()
    a, b = both["ref"].to_numpy(), both["other"].to_numpy()
    better = (a > b) if higher_is_better else (a < b)
    worse = (a < b) if higher_is_better else (a > b)
    alt = "greater" if higher_is_better else "less"
    return {"n_pairs": int(len(both)), "n_polarbear_better": int(better.sum()),
            "n_polarbear_worse": int(worse.sum()), "ranksum_p": M.ranksum_pvalue(a, b, alt),
            "signedrank_p": M.signedrank_pvalue(a, b, alt)}


def build_table3(tables: dict) -> pd.DataFrame:
    """``tables[(scenario, run, table)] = (DataFrame, path)`` -> Table 3 rows (long format:
    one row per split, definition, metric and method; ``definition`` is "paper" or "v1").

    ``run`` is a method name (the first training seed) or a further seed's run name
    (``polarbear~s1``, workflow_lib/seeds.py). The columns of TABLE3_COLUMNS describe the first
    seed's runs; when further seeds are present, TABLE3_SEED_COLUMNS summarise the per-seed means
    of each method over all its seeds."""
    rows, per_run = [], []
    scenarios = list(dict.fromkeys(s for s, _, _ in tables))
    runs = list(dict.fromkeys(m for _, m, _ in tables))
    empty = {"n_pairs": np.nan, "n_polarbear_better": np.nan, "n_polarbear_worse": np.nan,
             "ranksum_p": np.nan, "signedrank_p": np.nan}
    for s in scenarios:
        for label, definition, table, col, key, subset, hib in TABLE3_METRICS:
            series = {}
            for m in runs:
                if (s, m, table) in tables:
                    df, path = tables[(s, m, table)]
                    series[m] = _metric_series(df, col, key, subset, path)
            for m, v in series.items():
                summary = M.nan_summary(v.to_numpy())
                per_run.append({"split": s, "definition": definition, "metric": label,
                                "method": base_method(m), "run": m, "mean": summary["mean"]})
                if not is_first_seed(m):
                    continue
                row = {"split": s, "definition": definition, "metric": label, "method": m, **summary}
                if m != REFERENCE_METHOD and REFERENCE_METHOD in series:
                    row.update(paired_comparison(series[REFERENCE_METHOD], v, hib))
                else:
                    row.update(empty)
                rows.append(row)
    out = pd.DataFrame(rows, columns=TABLE3_COLUMNS)
    for c in ("n_pairs", "n_polarbear_better", "n_polarbear_worse"):
        out[c] = out[c].astype("Int64")
    if all(is_first_seed(m) for m in runs):
        return out   # one seed: today's table
    seeds = seed_summary(pd.DataFrame(per_run), _T3_KEYS, "mean")
    out = out.merge(seeds, on=_T3_KEYS, how="left", validate="one_to_one")
    out["n_seeds"] = out["n_seeds"].astype("Int64")
    return out[TABLE3_COLUMNS + TABLE3_SEED_COLUMNS]


def table3_markdown(t3: pd.DataFrame) -> str:
    """Paper-style Table 3 (mean (SD); the marker row shows the median) + comparison table,
    paper definition first, then v1."""
    def cell(r):
        if not np.isfinite(r["mean"]):
            return "n/a"
        if "median" in r["metric"]:
            return f"{r['median']:.3g} (median, n={r['n']})"
        sd = "" if not np.isfinite(r["sd"]) else f" ({r['sd']:.3g})"
        return f"{r['mean']:.3g}{sd}"

    def seed_cell(r):
        if not seeded or pd.isna(r["n_seeds"]) or r["n_seeds"] < 2:
            return ""
        return f"; {r['seed_mean']:.3g} [{r['ci95_low']:.3g}, {r['ci95_high']:.3g}] ({r['n_seeds']} seeds)"

    def fmt_p(x):
        return "" if pd.isna(x) else f"{x:.3g}"
    t = t3.copy()
    seeded = "n_seeds" in t.columns and bool((t["n_seeds"].fillna(0) > 1).any())
    t["cell"] = t.apply(cell, axis=1) + t.apply(seed_cell, axis=1)
    methods = list(dict.fromkeys(t["method"]))
    methods = [m for m in methods if m != REFERENCE_METHOD] + (
        [REFERENCE_METHOD] if REFERENCE_METHOD in methods else [])
    splits = {x: i for i, x in enumerate(dict.fromkeys(t["split"]))}
    t = t.assign(_s=t["split"].map(splits), _d=t["definition"].map(
        {d: i for i, d in enumerate(DEFINITIONS)})).sort_values(["_s", "_d"], kind="stable")
    lines = ["# Table 3. Translation performance: mean (SD)", "",
             "definition `paper`: the metrics as the authors' evaluation code computes them "
             "(scran size factors over all cells, log(pred x mean library size + 1) Pearson, DE "
             "peaks with >= n/100 positive cells, markers with > 8 positive cells, FOSCTTM of both "
             "queries in the ATAC latent); `v1`: this workflow's earlier definitions. Gene/peak "
             "metrics over cell-type DE genes/peaks; FOSCTTM over test cells (lower is better); "
             "NaN values excluded (see n_nan in table3.tsv).", "",
             *(["Several training seeds: each cell is the first seed's mean (SD), then the mean over "
                "seeds of the per-seed means [t 95% CI] (n seeds; on the median rows too, a mean of "
                "per-seed means, not of medians); the comparison table is the first seed's.", ""] if seeded else []),
             "| split | definition | metric | " + " | ".join(methods) + " |",
             "|---|---|---|" + "---|" * len(methods)]
    for (s, d, metric), grp in t.groupby(["split", "definition", "metric"], sort=False):
        vals = grp.set_index("method")["cell"]
        lines.append(f"| {s} | {d} | {metric} | " + " | ".join(vals.get(m, "") for m in methods)
                     + " |")
    lines += ["", "## Comparison: Polarbear vs each method", "",
              "better/worse = number of features (genes, peaks, cells, markers) on which Polarbear "
              "is better/worse; rank-sum p = one-sided Wilcoxon rank-sum test (the paper's test); "
              "signed-rank p = one-sided paired Wilcoxon signed-rank test (v1).", "",
              "| split | definition | metric | method | n pairs | polarbear better | "
              "polarbear worse | rank-sum p | signed-rank p |",
              "|---|---|---|---|---|---|---|---|---|"]
    for _, r in t[t["method"] != REFERENCE_METHOD].iterrows():
        n_pairs, better, worse = ("" if pd.isna(r[c]) else str(r[c]) for c in
                                  ("n_pairs", "n_polarbear_better", "n_polarbear_worse"))
        lines.append(f"| {r['split']} | {r['definition']} | {r['metric']} | {r['method']} | "
                     f"{n_pairs} | {better} | {worse} | {fmt_p(r['ranksum_p'])} | "
                     f"{fmt_p(r['signedrank_p'])} |")
    return "\n".join(lines) + "\n"


def run_table3(eval_dirs: dict, tsv_out, md_out, log_path=None) -> pd.DataFrame:
    """Entry point of scripts/table3.py (rule table3).

    ``eval_dirs[(scenario, run)]`` = directory holding genes/peaks/cells/markers.tsv (run: a
    method, or a further seed's run such as polarbear~s1).
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
