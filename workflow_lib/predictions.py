"""Reading the co-assay inputs of a scenario and writing/validating prediction files.

Prediction contract (see CONTRACT.md): for the TEST cells of a scenario, in processed order,
``atac_to_rna.h5ad`` (dense row frequencies), ``rna_to_atac.h5ad`` (dense depth-rescaled
probabilities, ``layers['norm']`` depth-normalised probabilities) and ``latent.h5ad``
(empty X, obsm ``rna_query``, ``atac_reference``, ``atac_query``, ``rna_reference``).
In addition ``atac_to_rna_rest.h5ad`` holds the same kind of RNA prediction (norm estimation,
rows sum to 1) for the NON-test co-assay cells (train + val, in processed order); it is the
predicted reference side of the test-vs-rest differential expression of Fig. 5G, so that both
sides of that comparison are predictions on the same scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .sparse import as_csr
from .fileutils import InputFormatError, write_h5ad

LATENT_KEYS = ("rna_query", "atac_reference", "atac_query", "rna_reference")
SPLITS = ("train", "val", "test")
UNUSED = "none"   # split value of a co-assay cell without a role in the scenario (split_babel only)
PREDICTION_NAMES = ("atac_to_rna", "rna_to_atac", "latent", "atac_to_rna_rest")


@dataclass
class CoassayData:
    """The co-assay RNA and ATAC matrices of one variant plus a scenario's split indices."""

    rna: ad.AnnData
    atac: ad.AnnData
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    @property
    def rna_X(self) -> sp.csr_matrix:
        return self.rna.X

    @property
    def atac_X(self) -> sp.csr_matrix:
        return self.atac.X


def load_coassay(rna_path, atac_path, scenario: str) -> CoassayData:
    """Read processed co-assay RNA/ATAC files and the ``split_<scenario>`` indices.

    Raises InputFormatError (naming the file) if obs names differ or the split column is missing.
    """
    rna = ad.read_h5ad(rna_path)
    atac = ad.read_h5ad(atac_path)
    rna.X = as_csr(rna.X)
    atac.X = as_csr(atac.X)
    if not np.array_equal(rna.obs_names.values, atac.obs_names.values):
        raise InputFormatError(atac_path, f"obs_names differ from those of {rna_path}")
    col = f"split_{scenario}"
    for a, p in ((rna, rna_path), (atac, atac_path)):
        if col not in a.obs:
            raise InputFormatError(p, f"obs column {col!r} missing")
    split = rna.obs[col].astype(str).values
    bad = sorted(set(split) - set(SPLITS) - {UNUSED})
    if bad:
        raise InputFormatError(rna_path, f"obs column {col!r} has unexpected values {bad}")
    idx = {s: np.flatnonzero(split == s) for s in SPLITS}
    for s in ("train", "test"):
        if idx[s].size == 0:
            raise InputFormatError(rna_path, f"no {s!r} cells in obs column {col!r}")
    return CoassayData(rna=rna, atac=atac, train=idx["train"], val=idx["val"], test=idx["test"])


def rest_rows(data: CoassayData) -> np.ndarray:
    """Row indices of the non-test (train + val) co-assay cells, in processed order."""
    return np.setdiff1d(np.arange(data.rna.n_obs), data.test)


def _obs_of(rna: ad.AnnData, rows: np.ndarray) -> pd.DataFrame:
    keep = [c for c in ("cell_type", "batch", "dataset") if c in rna.obs]
    return rna.obs.iloc[rows][keep].copy()


def _obs(data: CoassayData, rows: np.ndarray) -> pd.DataFrame:
    return _obs_of(data.rna, rows)


def build_rna_prediction(rna: ad.AnnData, rows: np.ndarray, atac_to_rna: np.ndarray, method: str,
                         point: str = "") -> ad.AnnData:
    """A validated RNA prediction AnnData (norm estimation) for ``rows`` of the processed co-assay RNA.

    Used for both ``atac_to_rna`` (test cells) and ``atac_to_rna_rest`` (non-test cells).
    """
    X = np.asarray(atac_to_rna, dtype=np.float32)
    if X.shape != (len(rows), rna.n_vars):
        raise ValueError(f"RNA prediction has shape {X.shape}, expected {(len(rows), rna.n_vars)}")
    a = ad.AnnData(X=X, obs=_obs_of(rna, rows), var=rna.var.copy())
    a.uns.update(_uns(method, point))
    validate_prediction(a)
    return a


def _uns(method: str, point: str) -> dict:
    return {"method": method, "point": point or ""}


def build_prediction_adatas(data: CoassayData, rows: np.ndarray, atac_to_rna: np.ndarray,
                            rna_to_atac: np.ndarray, rna_to_atac_norm: np.ndarray,
                            latent: dict[str, np.ndarray], method: str,
                            points: dict[str, str] | None = None,
                            rest_atac_to_rna: np.ndarray | None = None) -> dict[str, ad.AnnData]:
    """Assemble the prediction AnnData objects (keys atac_to_rna, rna_to_atac, latent and, if
    ``rest_atac_to_rna`` -- the RNA prediction of the ``rest_rows(data)`` cells -- is given,
    atac_to_rna_rest).

    ``points`` maps each of the first three keys to the grid point used ('' for non-grid
    methods); atac_to_rna_rest uses the atac_to_rna point.
    """
    points = points or {}
    obs = _obs(data, rows)
    n = len(rows)
    a2r = build_rna_prediction(data.rna, rows, atac_to_rna, method, points.get("atac_to_rna", ""))
    r2a = ad.AnnData(X=np.asarray(rna_to_atac, dtype=np.float32), obs=obs.copy(), var=data.atac.var.copy())
    r2a.layers["norm"] = np.asarray(rna_to_atac_norm, dtype=np.float32)
    r2a.uns.update(_uns(method, points.get("rna_to_atac", "")))
    lat = ad.AnnData(X=np.zeros((n, 0), dtype=np.float32), obs=obs.copy())
    for key in LATENT_KEYS:
        lat.obsm[key] = np.asarray(latent[key], dtype=np.float32)
    lat.uns.update(_uns(method, points.get("latent", "")))
    out = {"atac_to_rna": a2r, "rna_to_atac": r2a, "latent": lat}
    if rest_atac_to_rna is not None:
        out["atac_to_rna_rest"] = build_rna_prediction(data.rna, rest_rows(data), rest_atac_to_rna, method,
                                                       points.get("atac_to_rna", ""))
    for a in out.values():
        validate_prediction(a)
    return out


def validate_prediction(a: ad.AnnData, atol: float = 1e-3) -> None:
    """Assert one prediction AnnData obeys the contract (kind inferred from its content)."""
    if "method" not in a.uns or "point" not in a.uns:
        raise ValueError("prediction lacks uns['method'] / uns['point']")
    if a.n_vars == 0:
        missing = [k for k in LATENT_KEYS if k not in a.obsm]
        if missing:
            raise ValueError(f"latent prediction lacks obsm keys {missing}")
        for k in LATENT_KEYS:
            if not np.all(np.isfinite(a.obsm[k])):
                raise ValueError(f"obsm[{k!r}] has non-finite values")
        if a.obsm["rna_query"].shape[1] != a.obsm["atac_reference"].shape[1]:
            raise ValueError("rna_query and atac_reference live in different spaces")
        if a.obsm["atac_query"].shape[1] != a.obsm["rna_reference"].shape[1]:
            raise ValueError("atac_query and rna_reference live in different spaces")
        return
    X = a.X
    if sp.issparse(X) or X.dtype != np.float32:
        raise ValueError("prediction X must be dense float32")
    if not np.all(np.isfinite(X)):
        raise ValueError("prediction X has non-finite values")
    if "norm" in a.layers:  # rna_to_atac
        for m in (X, a.layers["norm"]):
            if m.min(initial=0) < 0 or m.max(initial=0) > 1:
                raise ValueError("ATAC probabilities outside [0, 1]")
    else:  # atac_to_rna
        if X.min(initial=0) < 0 or not np.allclose(X.sum(1), 1.0, atol=atol):
            raise ValueError("RNA predictions must be non-negative frequencies (rows sum to 1)")


def write_predictions(adatas: dict[str, ad.AnnData], paths: dict[str, str]) -> None:
    """Write the prediction AnnData objects atomically; ``paths`` has the same keys."""
    missing = sorted(set(paths) - set(adatas))
    if missing:
        raise ValueError(f"no prediction built for {missing}")
    for key, a in adatas.items():
        write_h5ad(a, paths[key])


def prediction_paths(outputs) -> dict[str, str]:
    """Map Snakemake outputs ordered like common.smk predictions() to their keys."""
    outputs = list(outputs)
    names = PREDICTION_NAMES
    out = {}
    for p in outputs:
        stem = str(p).rsplit("/", 1)[-1].removesuffix(".h5ad")
        if stem in names:
            out[stem] = str(p)
    if set(out) != set(names):
        raise ValueError(f"outputs {outputs} do not name {names}")
    return out
