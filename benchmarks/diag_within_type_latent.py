"""Diagnostic (run by hand on a finished run): do the methods' latents carry WITHIN-cell-type
information shared by the two modalities?

Within-type cell matching (FOSCTTM inside one cell type, e.g. the unseen-type test set) needs the
RNA and ATAC embeddings of a cell to share information beyond the cell type. For the largest cell
types of the test cells this prints the 5-fold cross-validated R^2 of a ridge regression

- data:   ATAC PCA (depth-normalised) -> RNA PCs 2-5 (log-normalised; PC1 tracks depth),
          i.e. how much shared within-type signal the measured profiles hold;
- method: ``atac_reference`` -> ``rna_reference`` of each method's ``latent.h5ad``, i.e. how much
          of it the method's two embeddings share (Polarbear: mu_y -> mu_x).

    python3 benchmarks/diag_within_type_latent.py results [--scenario unseen] [--types 3]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import anndata as ad
import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import cross_val_predict


def cv_r2(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    P = cross_val_predict(RidgeCV(alphas=np.logspace(-3, 3, 13)), X, Y, cv=5)
    return 1 - ((Y - P) ** 2).sum(0) / np.maximum(((Y - Y.mean(0)) ** 2).sum(0), 1e-12)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("results", type=Path)
    ap.add_argument("--variant", default="full")
    ap.add_argument("--scenario", default="unseen")
    ap.add_argument("--types", type=int, default=3, help="largest cell types of the test cells to report")
    args = ap.parse_args()
    rna = ad.read_h5ad(args.results / "processed" / args.variant / "coassay_rna.h5ad")
    atac = ad.read_h5ad(args.results / "processed" / args.variant / "coassay_atac.h5ad")
    test = (rna.obs[f"split_{args.scenario}"] == "test").to_numpy()
    types = rna.obs["cell_type"][test].value_counts()
    pred = args.results / "predictions" / args.variant / args.scenario
    lat = {d.name: ad.read_h5ad(d / "latent.h5ad") for d in sorted(pred.iterdir()) if (d / "latent.h5ad").exists()}
    for t in types.index[: args.types]:
        m = test & (rna.obs["cell_type"] == t).to_numpy()
        if m.sum() < 20:
            continue
        R = rna.X[m].toarray()
        A = (atac.X[m] > 0).toarray().astype(np.float32)
        rn = np.log1p(R / np.maximum(R.sum(1, keepdims=True), 1) * 1e4)
        an = A / np.maximum(A.sum(1, keepdims=True), 1) * 1e3
        y = PCA(5, random_state=0).fit_transform(rn)[:, 1:5]
        x = PCA(10, random_state=0).fit_transform(an)
        print(f"{args.scenario} test, {t} ({int(m.sum())} cells)")
        print(f"  data   ATAC PCs -> RNA PCs 2-5        R2 {np.round(cv_r2(x, y), 2)}")
        names = rna.obs_names[m]
        for meth, a in lat.items():
            sub = a[a.obs_names.isin(names)]
            r2 = cv_r2(np.asarray(sub.obsm["atac_reference"]), np.asarray(sub.obsm["rna_reference"]))
            print(f"  {meth:18s} atac_reference -> rna_reference  median R2 {np.median(r2):.2f} "
                  f"(max {r2.max():.2f}, {r2.size} dims)")


if __name__ == "__main__":
    main()
