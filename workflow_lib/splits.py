"""Train/val/test splits of the co-assay cells: random (seeded fractions) and unseen (Leiden
clusters of the co-assay RNA, two of them held out).

Unseen rules (:data:`UNSEEN_RULES`):

* ``babel``: BABEL's code (wukevin/babel ``bin/train_model.py --validcluster 0 --testcluster 1``,
  ``sc_data_loaders.SingleCellDataset``): Leiden cluster 0 (the largest) -> validation, cluster 1
  (the second largest) -> test. The paper uses "the same validation and test set as BABEL".
* ``largest_test``: the largest cluster -> test, the second largest -> validation.
"""

from __future__ import annotations

import logging
from typing import Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

SPLITS = np.array(["train", "val", "test"], dtype=object)


def check_split_fractions(config: dict) -> None:
    """Raise ValueError if config ``splits.random_fracs`` do not sum to 1 (they are not rescaled)."""
    fr = config["splits"]["random_fracs"]
    if abs(sum(fr) - 1.0) > 1e-6:
        raise ValueError(f"config.yaml: splits.random_fracs {fr} must sum to 1 (sum {sum(fr):g})")


def random_split(n: int, fracs: Sequence[float] = (0.6, 0.2, 0.2), seed: int = 0) -> np.ndarray:
    """Labels train/val/test for n cells: exact sizes round(frac * n) for val and test (train
    gets the rest), assigned by a seeded permutation."""
    fr = np.asarray(fracs, dtype=float)
    if len(fr) != 3 or (fr <= 0).any():
        raise ValueError(f"need three positive fractions, got {fracs}")
    if abs(fr.sum() - 1.0) > 1e-6:
        raise ValueError(f"train/val/test fractions must sum to 1, got {list(fracs)} (sum {fr.sum():g})")
    n_val, n_test = int(round(fr[1] * n)), int(round(fr[2] * n))
    n_train = n - n_val - n_test
    lab = np.repeat(SPLITS, [n_train, n_val, n_test])
    perm = np.random.default_rng(seed).permutation(n)
    out = np.empty(n, dtype=object)
    out[perm] = lab
    return out


# umap's numba functions behind scanpy's kNN connectivities (``umap.umap_``); numba compiles them
# in every new process (14-27 s on a 2-core machine, on the critical path of every workflow run)
UMAP_JIT_FUNCTIONS = ("smooth_knn_dist", "compute_membership_strengths")


def cache_umap_jit(log=None) -> list[str]:
    """Let numba keep the machine code of umap's connectivity functions on disk (its own cache
    mechanism, ``Dispatcher.enable_caching``: next to umap's sources, or NUMBA_CACHE_DIR), so only
    the first run on a machine compiles them. The cached code is the compiled code itself, so
    the connectivities are bitwise the same. Returns the functions cached; a function that is
    missing or cannot be cached (no writable cache directory) is left to compile as before, and
    ``log`` (default: the workflow's ``polarbear`` logger, i.e. the rule log) says so."""
    log = log or logging.getLogger("polarbear")
    try:
        import umap.umap_ as umap_mod
    except ImportError:  # scanpy reports a missing umap itself
        return []
    done = []
    for name in UMAP_JIT_FUNCTIONS:
        fn = getattr(umap_mod, name, None)
        try:
            fn.enable_caching()
        except (AttributeError, RuntimeError, OSError) as e:
            log.info("numba cache of umap.%s not used (%s)", name, e)
            continue
        done.append(name)
    return done


def leiden_clusters(rna: ad.AnnData, seed: int = 0, resolution: float = 1.0, n_pcs: int = 50,
                    n_neighbors: int = 15) -> np.ndarray:
    """Leiden clusters (igraph flavour) of normalize_total + log1p + PCA + kNN graph of RNA counts."""
    import scanpy as sc

    cache_umap_jit()

    a = ad.AnnData(X=sp.csr_matrix(rna.X, dtype=np.float32, copy=True),
                   obs=pd.DataFrame(index=rna.obs_names.copy()), var=pd.DataFrame(index=rna.var_names.copy()))
    sc.pp.normalize_total(a, target_sum=1e4)
    sc.pp.log1p(a)
    n_comps = int(min(n_pcs, a.n_obs - 1, a.n_vars - 1))
    sc.pp.pca(a, n_comps=n_comps, random_state=seed, svd_solver="arpack")
    sc.pp.neighbors(a, n_neighbors=min(n_neighbors, a.n_obs - 1), n_pcs=n_comps, random_state=seed)
    sc.tl.leiden(a, resolution=resolution, random_state=seed, flavor="igraph", n_iterations=2,
                 directed=False, key_added="leiden")
    return a.obs["leiden"].astype(str).to_numpy()


UNSEEN_RULES = ("babel", "largest_test")


def unseen_split(clusters: Sequence, rule: str = "largest_test") -> np.ndarray:
    """Two largest clusters held out, others train (ties broken by cluster name): ``largest_test``:
    largest -> test, second -> val; ``babel``: largest (Leiden's cluster 0) -> val, second -> test."""
    if rule not in UNSEEN_RULES:
        raise ValueError(f"unseen rule must be one of {UNSEEN_RULES}, not {rule!r}")
    c = pd.Series(np.asarray(clusters).astype(str))
    sizes = c.value_counts()
    sizes = sizes.reset_index()
    sizes.columns = ["cluster", "n"]
    sizes = sizes.sort_values(["n", "cluster"], ascending=[False, True], kind="stable")
    if len(sizes) < 3:
        raise ValueError(f"unseen split needs >= 3 clusters, found {len(sizes)}")
    test_c, val_c = sizes["cluster"].iloc[0], sizes["cluster"].iloc[1]
    if rule == "babel":
        test_c, val_c = val_c, test_c
    out = np.full(len(c), "train", dtype=object)
    out[(c == test_c).to_numpy()] = "test"
    out[(c == val_c).to_numpy()] = "val"
    return out


def make_splits(rna: ad.AnnData, seed: int = 0, fracs=(0.6, 0.2, 0.2), resolution: float = 1.0,
                n_pcs: int = 50, n_neighbors: int = 15, unseen_rule: str = "largest_test") -> pd.DataFrame:
    """Splits table indexed by barcode: cell_type, leiden, split_random, split_unseen."""
    clusters = leiden_clusters(rna, seed=seed, resolution=resolution, n_pcs=n_pcs, n_neighbors=n_neighbors)
    df = pd.DataFrame({
        "cell_type": rna.obs["cell_type"].astype(str).to_numpy() if "cell_type" in rna.obs else "",
        "leiden": clusters,
        "split_random": random_split(rna.n_obs, fracs, seed),
        "split_unseen": unseen_split(clusters, unseen_rule),
    }, index=pd.Index(rna.obs_names.copy(), name="barcode"))
    return df


def read_splits(path) -> pd.DataFrame:
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False).set_index("barcode")
    return df
