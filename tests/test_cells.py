"""Peak/cell filters, downsampling, batch labels and attaching the splits (workflow_lib.cells)."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from workflow_lib import cells, splits


def atac_adata(X, peaks):
    var = pd.DataFrame(peaks, columns=["chrom", "start", "end"])
    var.index = var["chrom"] + ":" + var["start"].astype(str) + "-" + var["end"].astype(str)
    return ad.AnnData(X=sp.csr_matrix(np.asarray(X, dtype=np.float32)),
                      obs=pd.DataFrame(index=[f"c{i}" for i in range(len(X))]), var=var)


def test_reference_peak_filter_autosomes_and_order():
    n = 100
    rng = np.random.default_rng(0)
    cols = {
        ("chr10", 5, 50): 8,     # ok
        ("chr2", 900, 950): 4,   # < 5 cells -> dropped
        ("chr2", 100, 200): 5,   # exactly 5 -> kept
        ("chr1", 30, 40): 10,    # exactly 10% -> kept
        ("chr1", 10, 20): 11,    # > 10% -> dropped
        ("chrX", 1, 9): 8,       # sex chromosome -> dropped
        ("chr2", 50, 60): 7,     # ok, sorts before chr2:100
    }
    X = np.zeros((n, len(cols)))
    for j, k in enumerate(cols.values()):
        X[rng.choice(n, k, replace=False), j] = rng.integers(1, 4, k)
    a = atac_adata(X, list(cols))
    ref, rep = cells.reference_peaks(a, min_cells=5, max_frac=0.10)
    assert list(ref.index) == ["chr1:30-40", "chr2:50-60", "chr2:100-200", "chr10:5-50"]
    assert ref["n_cells"].tolist() == [10, 7, 5, 8]
    assert rep["n_too_rare"] == 1 and rep["n_too_common"] == 1 and rep["n_kept"] == 4


def test_downsample_seeded_per_set():
    a = cells.downsample_indices(1000, 0.2, seed=0, key="li")
    assert len(a) == 200 and len(np.unique(a)) == 200 and (np.diff(a) > 0).all()
    assert np.array_equal(a, cells.downsample_indices(1000, 0.2, seed=0, key="li"))
    assert not np.array_equal(a, cells.downsample_indices(1000, 0.2, seed=0, key="fang"))
    assert not np.array_equal(a, cells.downsample_indices(1000, 0.2, seed=1, key="li"))
    assert np.array_equal(cells.downsample_indices(7, 1.0, 0), np.arange(7))


def test_min_features_filter_counts_nonzeros_only():
    X = sp.csr_matrix(np.array([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0], [2, 3, 0, 4]], dtype=np.float32))
    X.data[0] = 0  # explicit zero must not count as a feature
    a = ad.AnnData(X=X, obs=pd.DataFrame(index=list("abcd")))
    out, removed = cells.filter_min_features(a, 2)
    assert list(out.obs_names) == ["a", "d"] and removed == 2
    assert cells.features_per_cell(X).tolist() == [2, 1, 0, 3]


def test_exp_and_var_masks():
    rng = np.random.default_rng(3)
    n = 400
    X = np.zeros((n, 6))
    X[:, 0] = rng.poisson(5, n)
    X[:3, 1] = 1                                               # in 0.75% of cells -> exp drops it
    X[:4, 2] = 1                                               # in exactly 1% -> kept
    X[:, 3:] = rng.poisson(5, (n, 3))
    assert cells.exp_mask(sp.csr_matrix(X), 0.01).tolist() == [True, False, True, True, True, True]
    # var: 194 Poisson features with spread means + 6 bimodal (on in half the cells) features
    # (few enough that seurat's per-mean-bin dispersion z-scores do not compare them to each other)
    means = rng.uniform(0.2, 8, 194)
    flat = rng.poisson(means, (n, 194))
    group = rng.random(n) < 0.5
    bim = np.where(group[:, None], rng.poisson(rng.uniform(2, 8, 6), (n, 6)), 0)
    Xv = sp.csr_matrix(np.hstack([flat, bim]).astype(np.float32))
    a = ad.AnnData(X=Xv, obs=pd.DataFrame(index=[f"c{i}" for i in range(n)]))
    m = cells.var_mask(a, 0.03)
    assert m.sum() == 6
    assert m[194:].sum() >= 5


def test_set_batch_keeps_full_category_list():
    a = ad.AnnData(X=sp.csr_matrix((3, 2), dtype=np.float32), obs=pd.DataFrame(index=list("xyz")))
    cells.set_batch(a, "li", ["snare", "li", "fang"])
    assert list(a.obs["batch"].cat.categories) == ["snare", "li", "fang"]
    assert (a.obs["dataset"] == "li").all()
    with pytest.raises(ValueError):
        cells.set_batch(a, "zeisel", ["snare", "li"])


def test_attach_splits(clustered):
    a, _ = clustered
    tab = pd.DataFrame({"cell_type": "x", "split_random": splits.random_split(a.n_obs, seed=1),
                        "split_unseen": "train"}, index=a.obs_names[::-1])
    b = a.copy()
    cells.attach_splits(b, tab)
    assert (b.obs["split_random"].astype(str).to_numpy() == tab.loc[b.obs_names, "split_random"].to_numpy()).all()
    assert list(b.obs["split_random"].cat.categories) == ["train", "val", "test"]
    with pytest.raises(ValueError, match="no split"):
        cells.attach_splits(b, tab.iloc[1:])
