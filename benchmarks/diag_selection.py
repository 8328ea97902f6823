"""Diagnostic (run by hand on finished runs): does the validation score that picks a translation
task's grid point agree with that task's test metric?

For every Polarbear grid point of a scenario this prints the validation scores the selection rules
use (``scores.json``: translation NLL per direction, the authors' validation gene-wise correlation
``rna_cor`` and peak AUROC ``atac_auroc``; NaN for points trained before those existed) and the ATAC
-> RNA test gene r of Table 3 (definition v1: log1p(1e4 x prediction) against the cell-type size
factor normalised counts, mean over the DE genes of the run's ``genes.tsv``), and marks the point
each rule picks.

    python3 benchmarks/diag_selection.py RESULTS [RESULTS ...] [--scenario random] [--variant full]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from workflow_lib import metrics as M
from workflow_lib.data import batch_onehot
from workflow_lib.evaluate import _read_size_factors
from workflow_lib.grid import select_per_task
from workflow_lib.normalize import log_normalize
from workflow_lib.polarbear import HIGHER_IS_BETTER, SELECTIONS, load_grid_point, read_coassay

METHODS = ("polarbear", "polarbear_coassay")


def test_gene_r(model, data, truth_log: np.ndarray, de: np.ndarray) -> float:
    """Table 3's v1 gene r of one model's ATAC -> RNA predictions of the test cells (DE genes)."""
    t = data.test
    pred = model.predict_rna(data.atac.X[t], batch_onehot(data.atac.obs["batch"])[t],
                             batch_onehot(data.rna.obs["batch"])[t])
    return float(np.nanmean(M.pearson_columns(np.log1p(1e4 * pred.astype(np.float64)), truth_log)[de]))


def rows(results: Path, scenario: str, variant: str) -> list[str]:
    proc = results / "processed" / variant
    data = read_coassay(proc / "coassay_rna.h5ad", proc / "coassay_atac.h5ad", scenario)
    _, sf_v1 = _read_size_factors(results / "eval" / variant / "reference" / "size_factors.tsv", data.rna.obs_names)
    truth = log_normalize(data.rna.X[data.test], sf_v1[data.test])
    out = []
    for method in METHODS:
        genes = results / "eval" / variant / scenario / method / "genes.tsv"
        sel_path = results / "models" / variant / scenario / method / "selected.json"
        if not (genes.exists() and sel_path.exists()):
            continue
        de = pd.read_csv(genes, sep="\t")["is_de"].to_numpy(bool)
        scores = {p: {k: (np.nan if v is None else v) for k, v in s.items()}
                  for p, s in json.loads(sel_path.read_text())["all"].items()}
        # a rule picks only if every point has its scores (points trained before have no rna_cor)
        rules = {rule: crit for rule, crit in SELECTIONS.items()
                 if all(set(crit.values()) <= set(s) for s in scores.values())}
        for s in scores.values():
            for key in ("rna_cor", "atac_auroc"):
                s.setdefault(key, np.nan)
        picks = {rule: {t: p["point"] for t, p in select_per_task(scores, crit, higher_is_better=HIGHER_IS_BETTER).items()}
                 for rule, crit in rules.items()}
        for point, s in scores.items():
            model = load_grid_point(sel_path.parent / "grid" / point, data)
            marks = ", ".join(f"{rule}: {t}" for rule, p in picks.items() for t, pt in p.items()
                              if pt == point and t != "latent")
            out.append(f"| {results.name} | {method} | {point} | {s['atac_to_rna']:.1f} | {s['rna_to_atac']:.1f} | "
                       f"{s['rna_cor']:.4f} | {s['atac_auroc']:.4f} | {test_gene_r(model, data, truth, de):.4f} | "
                       f"{marks} |")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path, nargs="+")
    ap.add_argument("--scenario", default="random", choices=("random", "unseen"))
    ap.add_argument("--variant", default="full")
    args = ap.parse_args(argv)
    print("| run | method | grid point | val NLL atac_to_rna | val NLL rna_to_atac | val rna_cor | val atac_auroc | "
          "test gene r (v1, DE) | picked for |")
    print("|---|---|---|---|---|---|---|---|---|")
    for results in args.results:
        for line in rows(results, args.scenario, args.variant):
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
