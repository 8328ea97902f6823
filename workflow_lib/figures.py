"""Figures 3-7 of the Polarbear paper and the Table 3 report item.

Every figure function takes plain DataFrames (the evaluation tables of the "evaluate" stage, see
the evaluation contract) keyed by method / variant and returns a :class:`matplotlib.figure.Figure`.
Missing methods or variants never raise: the affected panel says what is missing. Rows with NaN
metrics are dropped and the number of points actually drawn is written in the panel.

``run_figure`` is the single entry point used by the thin ``scripts/fig*.py`` wrappers: it
indexes the input paths by their ``{variant}/{scenario}/{method}/{table}.tsv`` components,
reads them, builds the figure and saves PDF + PNG atomically.

Training seeds (config ``seeds``): runs of further seeds (``{method}~s{seed}``, workflow_lib/seeds.py)
among the inputs do not change what is drawn (every panel shows the first seed's runs); they add
the mean over seeds of each run's summary and its t 95% CI: Figs 3/4/5 a title line per scatter
panel (mean of the panel's metric over each run's feature subset, as in Table 3; Fig. 4: the mean
marker AUROC), Figs 6/7 the legend entries of the FOSCTTM curves.

Metric definitions (see workflow_lib/evaluate.py): every figure uses the ``paper`` definition by
default -- gene-wise ``pearson`` over DE genes, peaks of ``paper_set`` (DE peaks with >= n/100
positive test cells), markers of ``paper_set`` (> 8 positive cells), FOSCTTM of both queries in
the ATAC latent, Fig. 5G from the paper's DE columns -- and p-values of the one-sided Wilcoxon
rank-sum test the paper states (R ``wilcox.test(other, polarbear, alternative = "less")``). The
paired one-sided Wilcoxon signed-rank p-value of the ``v1`` figures is kept next to it (panel
titles, ``fig.results[i]["p_signedrank"]``), and ``definition="v1"`` draws the v1 figures.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from sklearn.metrics import average_precision_score, precision_recall_curve  # noqa: E402

from workflow_lib.fileutils import InputFormatError, as_bool, atomic_path, get_logger, timed  # noqa: E402
from workflow_lib.metrics import paper_marker_set, ranksum_pvalue, signedrank_pvalue  # noqa: E402
from workflow_lib.seeds import base_method, is_first_seed, mean_ci95  # noqa: E402

REFERENCE = "polarbear"
COMPARATORS = ("babel", "polarbear_coassay")

METHOD_LABELS = {
    "polarbear": "Polarbear",
    "polarbear_coassay": "Polarbear co-assay",
    "babel": "BABEL",
    "knn": "kNN baseline",
    "ridge": "ridge baseline",
}
METHOD_COLORS = {
    "polarbear": "#d62728",          # red
    "polarbear_coassay": "#ff7f0e",  # orange
    "babel": "#1f77b4",              # blue
    "knn": "#555555",                # grey tones for baselines
    "ridge": "#a0a0a0",
}
BASELINE_GREYS = ("#555555", "#7a7a7a", "#a0a0a0", "#c4c4c4")
METHOD_ORDER = ("polarbear", "polarbear_coassay", "babel", "knn", "ridge")

VARIANT_LABELS = {"full": "Polarbear-full", "var": "Polarbear-var", "exp": "Polarbear-exp"}
VARIANT_COLORS = {"full": "#d62728", "var": "#9467bd", "exp": "#2ca02c"}  # red / purple / green
VARIANT_ORDER = ("full", "var", "exp")

METRIC_LABELS = {
    "pearson": "gene-wise correlation",
    "auroc": "peak-wise AUROC",
    "auprnorm": "peak-wise AUPRnorm",
}
SCENARIO_LABELS = {"random": "random 20% test set", "unseen": "unseen cell type"}
QUERY_LABELS = {"rna": "scRNA-seq query", "atac": "scATAC-seq query"}

# Required columns of each evaluation table (evaluation contract, paper definition).
TABLE_COLUMNS = {
    "genes": ("gene", "pearson", "is_de"),
    "peaks": ("peak", "auroc", "auprnorm", "is_de", "paper_set"),
    "cells": ("cell", "foscttm_latent_rna_query", "foscttm_latent_atac_query"),
    "markers": ("cell_type", "gene", "n_pos", "auroc_pred"),
    "de": ("gene", "pred_pvalue", "true_de"),
}

# Columns each figure reads per definition: metric column suffix, feature subset column
# (None = all rows), FOSCTTM column per query, DE p-value / truth / gene subset columns.
DEFINITIONS = {
    "paper": {
        "suffix": {"pearson": "", "auroc": "", "auprnorm": ""},
        "subset": {"genes": "is_de", "peaks": "paper_set", "markers": "paper_set"},
        "foscttm": {"rna": "foscttm_latent_rna_query", "atac": "foscttm_latent_atac_query"},
        "latent_label": "ATAC latent",
        "de": ("pred_pvalue", "true_de", "paper_set"),
    },
    "v1": {
        "suffix": {"pearson": "_v1", "auroc": "", "auprnorm": ""},
        "subset": {"genes": "is_de", "peaks": "is_de", "markers": None},
        "foscttm": {"rna": "foscttm_latent_rna_query", "atac": "foscttm_rna_latent_atac_query"},
        "latent_label": "RNA query: ATAC latent, ATAC query: RNA latent",
        "de": ("pred_pvalue_v1", "true_de_v1", None),
    },
}
DEFAULT_DEFINITION = "paper"


def _spec(definition: str) -> dict:
    if definition not in DEFINITIONS:
        raise ValueError(f"unknown definition {definition!r} (expected one of {list(DEFINITIONS)})")
    return DEFINITIONS[definition]
FEATURE_KEY = {"genes": "gene", "peaks": "peak"}

PANEL_LETTERS = "ABCDEFGH"
# panel-title wording of the paper's feature subsets (``paper_set`` columns)
PAPER_SET_WORDS = {"peak": "DE peaks with >= n/100 positive cells",
                   "marker gene": "marker genes with > 8 positive cells"}



# --------------------------------------------------------------------------------------------
# labels and small helpers
# --------------------------------------------------------------------------------------------
def method_label(method: str) -> str:
    return METHOD_LABELS.get(method, method)


def method_color(method: str, others: Sequence[str] = ()) -> str:
    """Fixed colour for known methods; unknown methods get a grey tone by position."""
    if method in METHOD_COLORS:
        return METHOD_COLORS[method]
    unknown = [m for m in others if m not in METHOD_COLORS]
    i = unknown.index(method) if method in unknown else 0
    return BASELINE_GREYS[i % len(BASELINE_GREYS)]


def ordered_methods(methods: Iterable[str]) -> list[str]:
    methods = list(dict.fromkeys(methods))
    known = [m for m in METHOD_ORDER if m in methods]
    return known + sorted(m for m in methods if m not in METHOD_ORDER)


def format_p(p: float) -> str:
    if p is None or not np.isfinite(p):
        return "p = n/a"
    if p == 0:
        return "p < 1e-300"
    if p < 1e-3:
        mant, exp = f"{p:.2e}".split("e")
        return f"p = {mant}e{int(exp)}"
    return f"p = {p:.3g}"


def _add_seed_ci(ax, res: dict, cis: dict, heading: str, fontsize: float) -> None:
    """Append each method's seed mean [95% CI] to the panel title and record them in ``res``
    (nothing when no method has several seeds)."""
    lines = [f"{method_label(m)} {format_seed_ci(ci)}" for m, ci in cis.items() if ci is not None]
    if lines:
        res["seed_ci"] = cis
        ax.set_title(ax.get_title() + f"\n{heading} [95% CI]:\n" + "\n".join(lines), fontsize=fontsize)


def _panel_letter(ax, letter: str) -> None:
    """Bold panel letter; also records the axes in ``fig.panels[letter]``."""
    fig = ax.figure
    if not hasattr(fig, "panels"):
        fig.panels = {}
    fig.panels[letter] = ax
    ax.text(-0.08, 1.0, letter, transform=ax.transAxes, fontsize=13, fontweight="bold",
            ha="right", va="bottom")


def _note(ax, text: str, **kw) -> None:
    """Centre a message in an (otherwise empty) panel."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=9,
            color="#444444", wrap=True, **kw)


def _blank(ax, text: str) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for s in ax.spines.values():
        s.set_color("#bbbbbb")
    _note(ax, text)


# --------------------------------------------------------------------------------------------
# statistics shown in the panels
# --------------------------------------------------------------------------------------------
def paired_values(ref: pd.DataFrame | None, other: pd.DataFrame | None, key: str, metric: str,
                  de_only: bool = True, subset: str = "is_de") -> tuple[pd.DataFrame, dict]:
    """Align two feature tables on ``key``; keep the features flagged in the reference's
    ``subset`` column (``is_de``, or ``paper_set`` for the paper's peak / marker selection).

    Returns (frame with columns ref, other indexed by feature, info) where info holds
    n_features (after the subset filter), n_nan (dropped for NaN in either method), n, de_filter
    ("de" / "paper_set" = the subset used, or "all" when no feature is flagged).
    """
    if ref is None or other is None:
        raise ValueError("both tables are required")
    a = ref.drop_duplicates(key).set_index(key)
    b = other.drop_duplicates(key).set_index(key)
    idx = a.index.intersection(b.index)
    info = {"de_filter": "all"}
    if de_only and subset and subset in a.columns:
        de = as_bool(a.loc[idx, subset])
        if de.any():
            idx = idx[de.to_numpy()]
            info["de_filter"] = "de" if subset == "is_de" else subset
    df = pd.DataFrame({
        "ref": pd.to_numeric(a.loc[idx, metric], errors="coerce"),
        "other": pd.to_numeric(b.loc[idx, metric], errors="coerce"),
    }, index=idx)
    info["n_features"] = len(df)
    df = df.replace([np.inf, -np.inf], np.nan).dropna()
    info["n_nan"] = info["n_features"] - len(df)
    info["n"] = len(df)
    return df, info


def compare_paired(ref: np.ndarray, other: np.ndarray) -> dict:
    """Counts above / below the diagonal (ref on y, other on x) and one-sided tests of "ref > other"
    on the pairs where both are finite.

    ``p``: one-sided Wilcoxon rank-sum p-value (the paper's test, R
    ``wilcox.test(other, ref, alternative = "less")``); ``p_signedrank``: one-sided paired
    Wilcoxon signed-rank p-value (v1; NaN when no pair differs).
    """
    ref = np.asarray(ref, dtype=float)
    other = np.asarray(other, dtype=float)
    ok = np.isfinite(ref) & np.isfinite(other)
    ref, other = ref[ok], other[ok]
    d = ref - other
    return {"n": int(d.size), "n_above": int((d > 0).sum()), "n_below": int((d < 0).sum()),
            "n_tie": int((d == 0).sum()), "p": ranksum_pvalue(ref, other, "greater"),
            "p_signedrank": signedrank_pvalue(ref, other, "greater")}


def pr_curve(de: pd.DataFrame, definition: str = DEFAULT_DEFINITION) -> dict | None:
    """Precision-recall of ranking genes by predicted DE p-value against the true DE flags.

    Paper: ``pred_pvalue`` / ``true_de`` over the genes of ``paper_set`` (if present); v1:
    ``pred_pvalue_v1`` / ``true_de_v1`` over all genes. Genes with a NaN p-value are dropped.
    Returns dict(precision, recall, aupr, n, n_pos, n_nan) or None if there is no positive.
    """
    pcol, tcol, subset = _spec(definition)["de"]
    if subset and subset in de.columns:
        de = de[as_bool(de[subset]).to_numpy()]
    df = de[[pcol, tcol]].copy()
    df.columns = ["pred_pvalue", "true_de"]
    df["pred_pvalue"] = pd.to_numeric(df["pred_pvalue"], errors="coerce")
    n0 = len(df)
    df = df.dropna()
    y = as_bool(df["true_de"]).to_numpy()
    if y.sum() == 0 or y.sum() == len(y):
        return None
    score = -df["pred_pvalue"].to_numpy(dtype=float)
    precision, recall, _ = precision_recall_curve(y, score)
    return {"precision": precision, "recall": recall, "aupr": float(average_precision_score(y, score)),
            "n": int(len(df)), "n_pos": int(y.sum()), "n_nan": int(n0 - len(df))}


def seed_ci(tables: Sequence[pd.DataFrame], col: str, subset: str | None = None):
    """Mean over runs (one per training seed) of each run's mean of ``col`` (finite values of
    the rows in the run's ``subset`` column) and its t 95% CI: (n_seeds, mean, lo, hi), or None
    with fewer than two runs having a finite mean."""
    means = np.full(len(tables), np.nan)
    for i, t in enumerate(tables):
        if t is None or col not in t.columns:
            continue
        v = pd.to_numeric(t[col], errors="coerce").to_numpy(dtype=float)
        if subset is not None and subset in t.columns:
            v = v[as_bool(t[subset]).to_numpy()]
        v = v[np.isfinite(v)]
        if v.size:
            means[i] = v.mean()
    n, m, lo, hi = (x[0] for x in mean_ci95(means[None, :], axis=1))
    return (int(n), float(m), float(lo), float(hi)) if n > 1 else None


def format_seed_ci(ci, digits: int = 3) -> str:
    """'0.412 [0.398, 0.426], 3 seeds' (empty without a CI)."""
    if ci is None:
        return ""
    n, m, lo, hi = ci
    return f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}], {n} seeds"


# --------------------------------------------------------------------------------------------
# panels
# --------------------------------------------------------------------------------------------
def scatter_panel(ax, ref: pd.DataFrame | None, other: pd.DataFrame | None, key: str,
                  metric: str, other_method: str, reference: str = REFERENCE,
                  feature_word: str = "gene", size_col: str | None = None,
                  de_only: bool = True, subset: str = "is_de") -> dict | None:
    """Reference (y) vs other method (x) for one metric (column ``metric``, features of the
    reference's ``subset`` column); diagonal, counts, rank-sum and signed-rank p-values.

    Returns the comparison dict (see :func:`compare_paired`, plus the paired_values info) or
    None when a method is missing.
    """
    metric_lab = METRIC_LABELS.get(metric.removesuffix("_v1"), metric)
    ax.set_xlabel(f"{method_label(other_method)}: {metric_lab}", fontsize=9)
    ax.set_ylabel(f"{method_label(reference)}: {metric_lab}", fontsize=9)
    missing = [m for m, t in ((reference, ref), (other_method, other)) if t is None]
    if missing:
        _blank(ax, "not available:\n" + ", ".join(method_label(m) for m in missing)
               + "\n(method not run)")
        return None
    pairs, info = paired_values(ref, other, key, metric, de_only=de_only, subset=subset)
    if pairs.empty:
        _blank(ax, f"no {feature_word}s with finite {metric_lab}\nin both methods")
        return {"n": 0, "n_above": 0, "n_below": 0, "n_tie": 0, "p": float("nan"), **info}
    res = compare_paired(pairs["ref"].to_numpy(), pairs["other"].to_numpy())
    res.update(info)
    sizes = 4.0
    if size_col is not None:
        s = pd.to_numeric(ref.drop_duplicates(key).set_index(key).loc[pairs.index, size_col],
                          errors="coerce").fillna(1).to_numpy(dtype=float)
        sizes = 8 + 120 * s / max(s.max(), 1)
    n = len(pairs)
    alpha = 0.8 if n < 500 else (0.5 if n < 5000 else 0.25)
    ax.scatter(pairs["other"], pairs["ref"], s=sizes, c=METHOD_COLORS.get(reference, "k"),
               alpha=alpha if size_col is None else 0.6, linewidths=0, rasterized=n > 2000)
    lo = float(pairs.min().min())
    hi = float(pairs.max().max())
    if metric in ("auroc", "auroc_pred"):
        lo, hi = min(lo, 0.5), max(hi, 0.5)
    pad = (0.05 if size_col is None else 0.09) * (hi - lo if hi > lo else 1.0)
    lo, hi = lo - pad, hi + pad
    ax.plot([lo, hi], [lo, hi], color="#333333", lw=0.8, ls="--", zorder=0)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal", adjustable="box")
    ax.tick_params(labelsize=8)
    ax.text(0.04, 0.96, f"{res['n_above']}", transform=ax.transAxes, ha="left", va="top",
            fontsize=10, fontweight="bold", color=METHOD_COLORS.get(reference, "k"))
    ax.text(0.96, 0.04, f"{res['n_below']}", transform=ax.transAxes, ha="right", va="bottom",
            fontsize=10, fontweight="bold", color="#333333")
    what = {"de": "DE ", "all": "all " if de_only else ""}.get(info["de_filter"], "")
    title = f"n = {n} {what}{feature_word}s"
    if info["de_filter"] == "paper_set":
        title = f"n = {n} " + PAPER_SET_WORDS.get(feature_word, f"{feature_word}s (paper set)")
    if info["n_nan"]:
        title += f" ({info['n_nan']} NaN dropped)"
    ax.set_title(f"{title}\none-sided Wilcoxon rank-sum {format_p(res['p'])}\n"
                 f"(paired signed-rank {format_p(res['p_signedrank'])})", fontsize=8)
    return res


def scatter_grid(fig: Figure, axes, genes: Mapping[str, pd.DataFrame],
                 peaks: Mapping[str, pd.DataFrame], reference: str = REFERENCE,
                 comparators: Sequence[str] = COMPARATORS,
                 definition: str = DEFAULT_DEFINITION,
                 seed_runs: Mapping[str, Mapping[str, Sequence[pd.DataFrame]]] | None = None,
                 ) -> list[dict | None]:
    """Panels A-F of Figs 3 and 5: ``axes[i][j]`` = comparator i, metric j (correlation, AUROC,
    AUPRnorm). Letters run down the columns as in the paper (A/B correlation vs BABEL/co-assay).
    Results are returned in letter order.

    ``seed_runs[table][method]`` = that method's tables of every training seed: when a method
    has more than one, the panel title gains the seed mean [95% CI] of both methods (results:
    ``seed_ci``)."""
    spec = _spec(definition)
    specs = [("genes", "pearson" + spec["suffix"]["pearson"], "gene"),
             ("peaks", "auroc" + spec["suffix"]["auroc"], "peak"),
             ("peaks", "auprnorm" + spec["suffix"]["auprnorm"], "peak")]
    results = []
    k = 0
    for j, (table, metric, word) in enumerate(specs):
        src = genes if table == "genes" else peaks
        for i, comp in enumerate(comparators):
            ax = axes[i][j]
            res = scatter_panel(ax, src.get(reference), src.get(comp), FEATURE_KEY[table], metric,
                                comp, reference=reference, feature_word=word,
                                subset=spec["subset"][table])
            if res is not None and seed_runs:
                cis = {m: seed_ci(seed_runs.get(table, {}).get(m, ()), metric, spec["subset"][table])
                       for m in (reference, comp)}
                _add_seed_ci(ax, res, cis, "seed mean", fontsize=7)
            _panel_letter(ax, PANEL_LETTERS[k])
            results.append(res)
            k += 1
    return results


def sorted_curve_panel(ax, curves: Mapping[str, pd.Series], colors: Mapping[str, str],
                       labels: Mapping[str, str], title: str, missing: Sequence[str] = (),
                       seed_cis: Mapping[str, tuple] | None = None) -> dict:
    """Per-cell FOSCTTM sorted ascending, one line per entry; mean in the legend (and, from
    ``seed_cis[name]`` = seed_ci(...), the seed mean [95% CI] over training seeds)."""
    means = {}
    notes = list(missing)
    for name, values in curves.items():
        v = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)
        n0 = v.size
        v = np.sort(v[np.isfinite(v)])
        if v.size == 0:
            notes.append(f"{labels.get(name, name)} (no finite values)")
            continue
        means[name] = float(v.mean())
        lab = f"{labels.get(name, name)} (mean {v.mean():.3f}, n={v.size}"
        lab += f", {n0 - v.size} NaN)" if n0 > v.size else ")"
        ci = (seed_cis or {}).get(name)
        if ci is not None:
            lab += f"\n  seed mean {format_seed_ci(ci)}"
        ax.plot(np.arange(1, v.size + 1), v, color=colors.get(name, "#888888"), lw=1.6, label=lab)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("cells (sorted by FOSCTTM)", fontsize=9)
    ax.set_ylabel("FOSCTTM", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.set_ylim(bottom=0)
    if means:
        ax.legend(fontsize=7, loc="upper left", frameon=False)
    if notes:
        ax.text(0.98, 0.02, "not shown: " + "; ".join(notes), transform=ax.transAxes,
                ha="right", va="bottom", fontsize=6.5, color="#666666", wrap=True)
    if not means:
        ax.set_xticks([])
        ax.set_yticks([])
        _note(ax, "no FOSCTTM values available")
    return means


# --------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------
def _suptitle(fig: Figure, text: str) -> None:
    fig.suptitle(text, fontsize=12, fontweight="bold")


def _defn_note(definition: str) -> str:
    return "" if definition == DEFAULT_DEFINITION else f"  [definition {definition}]"


def fig3(genes: Mapping[str, pd.DataFrame], peaks: Mapping[str, pd.DataFrame],
         reference: str = REFERENCE, comparators: Sequence[str] = COMPARATORS,
         definition: str = DEFAULT_DEFINITION, seed_runs=None) -> Figure:
    """Fig. 3: random split; rows = metric (correlation, AUROC, AUPRnorm), cols = comparator.
    ``seed_runs``: see :func:`scatter_grid`."""
    fig, axes = plt.subplots(len(comparators), 3, figsize=(13.0, 4.4 * len(comparators) + 0.4),
                             squeeze=False, layout="constrained")
    fig.results = scatter_grid(fig, axes, genes, peaks, reference, comparators, definition, seed_runs)
    fig.definition = definition
    _suptitle(fig, "Fig. 3  Cross-modality prediction, random test set" + _defn_note(definition))
    return fig


def fig4(markers: Mapping[str, pd.DataFrame], reference: str = REFERENCE,
         comparators: Sequence[str] = COMPARATORS, definition: str = DEFAULT_DEFINITION,
         seed_runs: Mapping[str, Sequence[pd.DataFrame]] | None = None) -> Figure:
    """Fig. 4: marker-gene AUROC (pred), reference vs each comparator; dot size = n_pos.
    Paper: only markers with > 8 positive cells (``paper_set``, or computed from ``n_pos``).
    ``seed_runs[method]`` = that method's markers tables of every training seed: with more than
    one, the panel title gains both methods' seed mean [95% CI] of the mean marker AUROC."""
    fig, axes = plt.subplots(1, len(comparators), figsize=(4.6 * len(comparators), 5.2),
                             squeeze=False, layout="constrained")
    results = []
    subset = _spec(definition)["subset"]["markers"]
    keyed = {m: _marker_key(t) for m, t in markers.items() if t is not None}
    for k, comp in enumerate(comparators):
        ax = axes[0, k]
        res = scatter_panel(ax, keyed.get(reference), keyed.get(comp), "key", "auroc_pred", comp,
                            reference=reference, feature_word="marker gene", size_col="n_pos",
                            de_only=subset is not None, subset=subset)
        ax.set_xlabel(f"{method_label(comp)}: marker-gene AUROC", fontsize=9)
        ax.set_ylabel(f"{method_label(reference)}: marker-gene AUROC", fontsize=9)
        if res is not None and res["n"]:
            pairs, _ = paired_values(keyed[reference], keyed[comp], "key", "auroc_pred",
                                     subset is not None, subset)
            res["median_ref"] = float(np.median(pairs["ref"]))
            res["median_other"] = float(np.median(pairs["other"]))
            ax.set_title(ax.get_title() + f"\nmedian AUROC {res['median_ref']:.3f} (y) vs "
                         f"{res['median_other']:.3f} (x)", fontsize=8.5)
            cis = {m: seed_ci((seed_runs or {}).get(m, ()), "auroc_pred", subset) for m in (reference, comp)}
            _add_seed_ci(ax, res, cis, "seed mean of the mean AUROC", fontsize=8.5)
        _panel_letter(ax, PANEL_LETTERS[k])
        results.append(res)
    ref_tab = keyed.get(reference)
    if ref_tab is not None and subset is not None and as_bool(ref_tab[subset]).any():
        ref_tab = ref_tab[as_bool(ref_tab[subset]).to_numpy()]
    if ref_tab is not None and len(ref_tab):
        npos = pd.to_numeric(ref_tab["n_pos"], errors="coerce").dropna()
        if len(npos):
            handles = [plt.scatter([], [], s=8 + 120 * v / max(npos.max(), 1),
                                   c=METHOD_COLORS[reference], alpha=0.6, linewidths=0)
                       for v in sorted({int(npos.min()), int(npos.median()), int(npos.max())})]
            labels = [f"{int(v)} cells" for v in
                      sorted({int(npos.min()), int(npos.median()), int(npos.max())})]
            fig.legend(handles, labels, title="cells of type (n_pos)", loc="outside lower center",
                       ncol=len(handles), fontsize=8, title_fontsize=8, frameon=False)
    fig.results = results
    fig.definition = definition
    _suptitle(fig, "Fig. 4  Marker-gene prediction (AUROC), random test set" + _defn_note(definition))
    return fig


def _marker_key(t: pd.DataFrame) -> pd.DataFrame:
    t = t.copy()
    t["key"] = t["cell_type"].astype(str) + "|" + t["gene"].astype(str)
    if "paper_set" not in t.columns:
        t["paper_set"] = paper_marker_set(pd.to_numeric(t["n_pos"], errors="coerce").fillna(0))
    return t


def fig5(genes: Mapping[str, pd.DataFrame], peaks: Mapping[str, pd.DataFrame],
         de: Mapping[str, pd.DataFrame], reference: str = REFERENCE,
         comparators: Sequence[str] = COMPARATORS, definition: str = DEFAULT_DEFINITION,
         seed_runs=None) -> Figure:
    """Fig. 5: unseen cell type; panels A-F as Fig. 3 plus G = DE precision-recall curves.
    ``seed_runs``: see :func:`scatter_grid`."""
    nrow = len(comparators)
    fig = plt.figure(figsize=(18.0, 4.4 * nrow + 0.4), layout="constrained")
    gs = fig.add_gridspec(nrow, 4, width_ratios=[1, 1, 1, 1.35])
    axes = [[fig.add_subplot(gs[i, j]) for j in range(3)] for i in range(nrow)]
    fig.results = scatter_grid(fig, axes, genes, peaks, reference, comparators, definition, seed_runs)
    axg = fig.add_subplot(gs[:, 3])
    fig.pr = pr_panel(axg, de, definition, (seed_runs or {}).get("de"))
    fig.definition = definition
    _panel_letter(axg, PANEL_LETTERS[3 * nrow])
    _suptitle(fig, "Fig. 5  Cross-modality prediction, unseen cell type" + _defn_note(definition))
    return fig


def aupr_seed_ci(tables: Sequence[pd.DataFrame | None], definition: str = DEFAULT_DEFINITION):
    """(n_seeds, mean, lo, hi) of the DE AUPR over the runs of one method (one table per training
    seed), or None with fewer than two runs that have a precision-recall curve."""
    auprs = []
    for t in tables:
        res = pr_curve(t, definition) if t is not None else None
        auprs.append(res["aupr"] if res is not None else np.nan)
    n, m, lo, hi = (x[0] for x in mean_ci95(np.asarray(auprs)[None, :], axis=1))
    return (int(n), float(m), float(lo), float(hi)) if n > 1 else None


def pr_panel(ax, de: Mapping[str, pd.DataFrame], definition: str = DEFAULT_DEFINITION,
             seed_runs: Mapping[str, Sequence[pd.DataFrame]] | None = None) -> dict:
    """Precision-recall curves of predicted DE genes vs true DE genes, one per method (the first
    training seed's runs). ``seed_runs`` (method -> DE tables of every seed) adds the seed mean
    [95% CI] of each method's AUPR to its legend entry."""
    out = {}
    notes = []
    base = None
    methods = ordered_methods(de)
    for m in methods:
        t = de[m]
        if t is None:
            notes.append(f"{method_label(m)} (not run)")
            continue
        res = pr_curve(t, definition)
        if res is None:
            pcol = _spec(definition)["de"][0]
            finite = np.isfinite(pd.to_numeric(t[pcol], errors="coerce")).any()
            notes.append(f"{method_label(m)} ("
                         + ("no true DE / all DE" if finite else "no finite predicted p-values")
                         + ")")
            continue
        out[m] = res
        base = res["n_pos"] / res["n"]
        ci = aupr_seed_ci(seed_runs[m], definition) if seed_runs and m in seed_runs else None
        if ci is not None:
            res["seed_ci"] = ci
        ax.step(res["recall"], res["precision"], where="post", lw=1.6,
                color=method_color(m, methods),
                label=f"{method_label(m)} (AUPR {res['aupr']:.3f}"
                      + (f"; seeds {format_seed_ci(ci)})" if ci else ")"))
    ax.set_xlabel("recall", fontsize=9)
    ax.set_ylabel("precision", fontsize=9)
    ax.set_title("true DE genes of the unseen cell type,\nranked by predicted DE p-value\n"
                 + ("(predicted test vs predicted training cells)" if definition == "paper"
                    else "(predicted test vs predicted training + validation cells)"), fontsize=9)
    ax.set_box_aspect(1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.tick_params(labelsize=8)
    if base is not None:
        ax.axhline(base, color="#999999", ls=":", lw=1,
                   label=f"random (AUPR {base:.3f})")
        first = next(iter(out.values()))
        ax.set_title(ax.get_title() + f"\n({first['n_pos']} true DE of {first['n']} genes)",
                     fontsize=9)
        ax.legend(fontsize=8.5, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2,
                  frameon=False)
    else:
        _note(ax, "no precision-recall curve:\n" + ("\n".join(notes) or "no DE table"))
    if notes and base is not None:
        ax.text(0.98, 0.02, "not shown: " + "; ".join(notes), transform=ax.transAxes,
                ha="right", va="bottom", fontsize=7, color="#666666")
    return out


def _foscttm_grid(entries: Mapping[tuple[str, str], pd.DataFrame | None], names: Sequence[str],
                  colors: Mapping[str, str], labels: Mapping[str, str],
                  scenarios: Sequence[str], title: str,
                  empty_message: str = "no runs to show",
                  definition: str = DEFAULT_DEFINITION,
                  seed_runs: Mapping[tuple[str, str], Sequence[pd.DataFrame]] | None = None) -> Figure:
    """``seed_runs[(scenario, name)]`` = the cells tables of every training seed of an entry
    (seed mean [95% CI] in the legend when more than one; ``fig.seed_cis``)."""
    spec = _spec(definition)
    fig, axes = plt.subplots(2, 2, figsize=(10.5, 8.8), squeeze=False, layout="constrained")
    means, seed_cis = {}, {}
    k = 0
    for r, scen in enumerate(("random", "unseen")):
        for c, q in enumerate(("rna", "atac")):
            ax = axes[r, c]
            col = spec["foscttm"][q]
            curves, missing = {}, []
            for name in names:
                t = entries.get((scen, name))
                if t is None:
                    if scen in scenarios:
                        missing.append(f"{labels.get(name, name)} (not run)")
                    continue
                if col not in t.columns:
                    missing.append(f"{labels.get(name, name)} (no {col})")
                    continue
                curves[name] = t[col]
            if not entries:
                _blank(ax, empty_message)
                ax.set_title(f"{SCENARIO_LABELS[scen]}, {QUERY_LABELS[q]}", fontsize=10)
            elif scen not in scenarios:
                _blank(ax, f"scenario '{scen}' not run")
                ax.set_title(f"{SCENARIO_LABELS[scen]}, {QUERY_LABELS[q]}", fontsize=10)
            else:
                cis = {n: seed_ci((seed_runs or {}).get((scen, n), ()), col) for n in curves}
                cis = {n: ci for n, ci in cis.items() if ci is not None}
                m = sorted_curve_panel(ax, curves, colors, labels,
                                       f"{SCENARIO_LABELS[scen]}, {QUERY_LABELS[q]}", missing, cis)
                means.update({(scen, q, n): v for n, v in m.items()})
                seed_cis.update({(scen, q, n): ci for n, ci in cis.items()})
            _panel_letter(ax, PANEL_LETTERS[k])
            k += 1
    fig.means = means
    if seed_cis:
        fig.seed_cis = seed_cis
    fig.definition = definition
    _suptitle(fig, f"{title} ({spec['latent_label']})" + _defn_note(definition))
    return fig


def fig6(cells: Mapping[tuple[str, str], pd.DataFrame | None],
         scenarios: Sequence[str] = ("random", "unseen"),
         definition: str = DEFAULT_DEFINITION, seed_runs=None) -> Figure:
    """Fig. 6: sorted latent-space FOSCTTM per method; keys (scenario, method);
    ``seed_runs[(scenario, method)]``: every seed's cells table (see _foscttm_grid)."""
    methods = ordered_methods(m for _, m in cells)
    colors = {m: method_color(m, methods) for m in methods}
    # baselines get successive grey tones
    greys = iter(BASELINE_GREYS)
    for m in methods:
        if m not in ("polarbear", "polarbear_coassay", "babel"):
            colors[m] = next(greys, "#999999")
    labels = {m: method_label(m) for m in methods}
    return _foscttm_grid(cells, methods, colors, labels, scenarios,
                         "Fig. 6  Cross-modality matching (latent space) by method",
                         "no evaluated runs (no method was run)", definition, seed_runs)


def fig7(cells: Mapping[tuple[str, str], pd.DataFrame | None],
         scenarios: Sequence[str] = ("random", "unseen"),
         definition: str = DEFAULT_DEFINITION, seed_runs=None) -> Figure:
    """Fig. 7: sorted latent FOSCTTM of Polarbear co-assay per feature variant; keys (scenario, variant);
    ``seed_runs[(scenario, variant)]``: every seed's cells table (see _foscttm_grid)."""
    present = list(dict.fromkeys(v for _, v in cells))
    variants = [v for v in VARIANT_ORDER if v in present] + sorted(
        v for v in present if v not in VARIANT_ORDER)
    colors = {v: VARIANT_COLORS.get(v, "#888888") for v in variants}
    labels = {v: VARIANT_LABELS.get(v, f"Polarbear-{v}") for v in variants}
    return _foscttm_grid(cells, variants, colors, labels, scenarios,
                         "Fig. 7  Cross-modality matching by feature pre-filtering "
                         "(Polarbear co-assay)",
                         "Polarbear co-assay not run\n(method dropped from config)", definition,
                         seed_runs)


# --------------------------------------------------------------------------------------------
# I/O
# --------------------------------------------------------------------------------------------
def save_figure(fig: Figure, pdf_path, png_path, dpi: int = 200) -> None:
    """Write the figure as PDF and PNG, each atomically; closes the figure."""
    try:
        with atomic_path(pdf_path) as tmp:
            fig.savefig(tmp, format="pdf")
        with atomic_path(png_path) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
    finally:
        plt.close(fig)


def read_eval_table(path, table: str) -> pd.DataFrame:
    """Read one evaluation TSV; InputFormatError if a contract column is missing."""
    path = Path(path)
    try:
        df = pd.read_csv(path, sep="\t")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise InputFormatError(path, f"not a readable TSV ({e})") from e
    need = TABLE_COLUMNS.get(table, ())
    miss = [c for c in need if c not in df.columns]
    if miss:
        raise InputFormatError(path, f"missing column(s) {miss}; header is {list(df.columns)}",
                               line=1)
    return df


def index_eval_paths(paths: Iterable) -> dict[tuple[str, str, str, str], Path]:
    """Map (variant, scenario, method, table) -> path for ``.../{v}/{s}/{m}/{table}.tsv`` paths."""
    out = {}
    for p in paths:
        p = Path(p)
        if p.suffix != ".tsv" or len(p.parts) < 4:
            raise InputFormatError(p, "expected .../{variant}/{scenario}/{method}/{table}.tsv")
        out[(p.parts[-4], p.parts[-3], p.parts[-2], p.stem)] = p
    return out


def _gather(index, variant, scenario, table, methods=None) -> dict[str, pd.DataFrame]:
    return {m: read_eval_table(p, table) for (v, s, m, t), p in index.items()
            if v == variant and s == scenario and t == table and (methods is None or m in methods)}


def _seed_tables(index, table, key) -> dict | None:
    """``{key(v, s, method): [tables of every seed]}`` over the runs of ``table`` in ``index``
    (first seed first), or None when no further seed's run is among them. ``key`` returns None
    for runs to skip."""
    runs = [(k, p) for k, p in index.items() if k[3] == table and key(k[0], k[1], base_method(k[2]))]
    if all(is_first_seed(k[2]) for k, _ in runs):
        return None
    out: dict = {}
    for (v, s, m, _), p in sorted(runs, key=lambda kp: not is_first_seed(kp[0][2])):
        out.setdefault(key(v, s, base_method(m)), []).append(read_eval_table(p, table))
    return out


def build_figure(number: int, paths: Iterable, comparators: Sequence[str] = COMPARATORS,
                 reference: str = REFERENCE, definition: str = DEFAULT_DEFINITION) -> Figure:
    """Read the evaluation tables among ``paths`` and build figure ``number`` (3..7).

    Panels show the first training seed's runs; runs of further seeds (``polarbear~s1``) add
    the seed mean [95% CI] annotations (module docstring)."""
    _spec(definition)
    idx_all = index_eval_paths(paths)
    idx = {k: p for k, p in idx_all.items() if is_first_seed(k[2])}
    if number in (3, 5):
        scen = "random" if number == 3 else "unseen"
        seed_runs = {}
        for t in ("genes", "peaks") + (("de",) if number == 5 else ()):
            got = _seed_tables(idx_all, t, lambda v, s, m: m if (v, s) == ("full", scen) else None)
            if got:
                seed_runs[t] = got
        if number == 3:
            return fig3(_gather(idx, "full", "random", "genes"), _gather(idx, "full", "random", "peaks"),
                        reference, comparators, definition, seed_runs or None)
        return fig5(_gather(idx, "full", "unseen", "genes"), _gather(idx, "full", "unseen", "peaks"),
                    _gather(idx, "full", "unseen", "de"), reference, comparators, definition,
                    seed_runs or None)
    if number == 4:
        seed_runs = _seed_tables(idx_all, "markers", lambda v, s, m: m if (v, s) == ("full", "random") else None)
        return fig4(_gather(idx, "full", "random", "markers"), reference, comparators, definition,
                    seed_runs or None)
    scen = sorted({s for (_, s, _, t) in idx if t == "cells"})
    if number == 6:
        cells = {(s, m): read_eval_table(p, "cells") for (v, s, m, t), p in idx.items()
                 if v == "full" and t == "cells"}
        seed_runs = _seed_tables(idx_all, "cells", lambda v, s, m: (s, m) if v == "full" else None)
        return fig6(cells, scenarios=scen, definition=definition, seed_runs=seed_runs)
    if number == 7:
        cells = {(s, v): read_eval_table(p, "cells") for (v, s, m, t), p in idx.items()
                 if m == "polarbear_coassay" and t == "cells"}
        seed_runs = _seed_tables(idx_all, "cells",
                                 lambda v, s, m: (s, v) if m == "polarbear_coassay" else None)
        return fig7(cells, scenarios=scen, definition=definition, seed_runs=seed_runs)
    raise ValueError(f"no figure {number} (expected 3..7)")


def run_figure(number: int, inputs: Iterable, pdf_path, png_path, log_path=None,
               comparators: Sequence[str] = COMPARATORS, reference: str = REFERENCE,
               dpi: int = 200, definition: str = DEFAULT_DEFINITION) -> Figure:
    """Entry point of scripts/fig{3..7}.py: build figure ``number`` and save PDF + PNG."""
    logger = get_logger(log_path)
    inputs = [str(p) for p in inputs]
    logger.info("figure %d (definition %s) from %d evaluation tables", number, definition,
                len(inputs))
    with timed(logger, f"building figure {number}"):
        fig = build_figure(number, inputs, comparators, reference, definition)
    for key in ("results", "means", "seed_cis", "pr"):
        if hasattr(fig, key):
            logger.info("figure %d %s: %s", number, key, _summary(getattr(fig, key)))
    with timed(logger, f"saving {pdf_path} and {png_path}"):
        save_figure(fig, pdf_path, png_path, dpi=dpi)
    return fig


def _summary(obj) -> str:
    if isinstance(obj, dict):
        return ", ".join(f"{k}={_summary(v)}" for k, v in obj.items()
                         if not isinstance(v, np.ndarray))
    if isinstance(obj, list):
        return "[" + "; ".join(_summary(v) for v in obj) + "]"
    if isinstance(obj, float):
        return f"{obj:.4g}"
    return str(obj)


# --------------------------------------------------------------------------------------------
# Table 3 for the report
# --------------------------------------------------------------------------------------------
TABLE3_COLUMNS = ("split", "metric", "method", "mean", "sd", "n")


def format_table3(t3: pd.DataFrame) -> pd.DataFrame:
    """Paper layout: one row per (split, metric), one 'mean (SD)' column per method.

    With a ``definition`` column (table3.tsv since the paper definitions) the rows are
    (split, definition, metric), the paper definition first within each split.
    """
    miss = [c for c in TABLE3_COLUMNS if c not in t3.columns]
    if miss:
        raise ValueError(f"table3 is missing column(s) {miss}")
    t = t3.copy()
    index = ["split", "metric"]
    if "definition" in t.columns:
        index = ["split", "definition", "metric"]
        splits = {x: i for i, x in enumerate(dict.fromkeys(t["split"]))}
        dorder = {d: i for i, d in enumerate(DEFINITIONS)}
        t = t.assign(_s=t["split"].map(splits),
                     _d=t["definition"].map(lambda d: dorder.get(d, len(dorder))))
        t = t.sort_values(["_s", "_d"], kind="stable").drop(columns=["_s", "_d"])
    mean = pd.to_numeric(t["mean"], errors="coerce").astype(float)
    sd = pd.to_numeric(t["sd"], errors="coerce").astype(float)
    med = (pd.to_numeric(t["median"], errors="coerce").astype(float) if "median" in t.columns
           else pd.Series(np.nan, index=t.index))
    cells = []
    for metric, m, s, md in zip(t["metric"].astype(str), mean, sd, med):
        if "median" in metric.lower() and np.isfinite(md):
            cells.append(f"{md:.3g}")  # rows summarised by their median (marker AUROC)
        elif not np.isfinite(m):
            cells.append("n/a")
        else:
            cells.append(f"{m:.3g} ({s:.3g})")
    t["cell"] = cells
    if "n_seeds" in t.columns:   # several training seeds: seed mean [t 95% CI] (evaluate.build_table3)
        n = pd.to_numeric(t["n_seeds"], errors="coerce").fillna(0).to_numpy()
        sm, lo, hi = (pd.to_numeric(t[c], errors="coerce").to_numpy(dtype=float)
                      for c in ("seed_mean", "ci95_low", "ci95_high"))
        t["cell"] = [c + (f"; {a:.3g} [{b:.3g}, {d:.3g}] ({int(k)} seeds)" if k > 1 else "")
                     for c, k, a, b, d in zip(t["cell"], n, sm, lo, hi)]
    wide = t.pivot_table(index=index, columns="method", values="cell",
                         aggfunc="first", sort=False)
    # paper order (BABEL, Polarbear co-assay, Polarbear) with the baselines in front
    rank = {m: i for i, m in enumerate(("knn", "ridge", "babel", "polarbear_coassay", REFERENCE))}
    order = sorted(wide.columns, key=lambda m: (rank.get(m, -1), m))
    wide = wide[order].rename(columns=method_label)
    wide.columns.name = None
    return wide.reset_index()


def table3_html(t3: pd.DataFrame) -> str:
    """A self-contained HTML page: paper-style Table 3 + the full comparison table."""
    wide = format_table3(t3)
    num = t3.copy()
    for c in num.columns:
        if pd.api.types.is_float_dtype(num[c]):
            num[c] = num[c].map(lambda x: "" if pd.isna(x) else f"{x:.4g}")
    style = ("<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;"
             "margin-bottom:2em}th,td{border:1px solid #bbb;padding:4px 8px;text-align:right}"
             "th{background:#eee}td:first-child,td:nth-child(2){text-align:left}</style>")
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Table 3</title>" + style
        + "</head><body><h2>Table 3. Translation performance: mean (SD)</h2>"
        + wide.to_html(index=False, escape=True, border=0)
        + "<p>definition <b>paper</b>: the metrics as the authors' evaluation code computes them "
        + "(the default); <b>v1</b>: this workflow's earlier definitions, kept for comparison "
        + "with older results. With several training seeds a cell adds the mean over seeds of "
        + "the per-seed means [t 95% CI] (n seeds); mean (SD) and the comparisons are the "
        + "first seed's.</p>"
        + "<h3>All rows, with the comparison against Polarbear</h3>"
        + "<p>n_polarbear_better / n_polarbear_worse: features on which Polarbear is better / "
        + "worse; ranksum_p: one-sided Wilcoxon rank-sum p-value (the paper's test); "
        + "signedrank_p: one-sided paired Wilcoxon signed-rank p-value (v1).</p>"
        + num.to_html(index=False, escape=True, border=0, na_rep="")
        + f"<p><small>{html.escape(str(len(t3)))} rows.</small></p></body></html>\n"
    )


def run_table3_report(table3_path, html_path, tsv_path, log_path=None) -> pd.DataFrame:
    """Entry point of scripts/table3_report.py: render Table 3 to HTML + paper-layout TSV."""
    logger = get_logger(log_path)
    try:
        t3 = pd.read_csv(table3_path, sep="\t")
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise InputFormatError(table3_path, f"not a readable TSV ({e})") from e
    miss = [c for c in TABLE3_COLUMNS if c not in t3.columns]
    if miss:
        raise InputFormatError(table3_path, f"missing column(s) {miss}", line=1)
    wide = format_table3(t3)
    with atomic_path(html_path) as tmp:
        tmp.write_text(table3_html(t3))
    with atomic_path(tsv_path) as tmp:
        wide.to_csv(tmp, sep="\t", index=False)
    logger.info("table 3: %d rows -> %s, %s", len(t3), html_path, tsv_path)
    return wide
