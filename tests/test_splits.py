"""Train/val/test splits: random, unseen cell type (Leiden clusters) and the splits config
(workflow_lib.splits)."""

import numpy as np
import pandas as pd
import pytest

from workflow_lib import splits


@pytest.mark.parametrize("n", [10, 1001, 5000])
def test_random_split_disjoint_covering_reproducible(n):
    s = splits.random_split(n, (0.6, 0.2, 0.2), seed=3)
    assert len(s) == n and set(s) <= {"train", "val", "test"}
    counts = pd.Series(s).value_counts()
    assert counts["val"] == round(0.2 * n) and counts["test"] == round(0.2 * n)
    assert counts.sum() == n  # every cell in exactly one split
    assert (s == splits.random_split(n, (0.6, 0.2, 0.2), seed=3)).all()
    assert not (s == splits.random_split(n, (0.6, 0.2, 0.2), seed=4)).all()


def test_unseen_split_largest_cluster_test_second_val():
    c = np.array(["a"] * 5 + ["b"] * 9 + ["c"] * 2 + ["d"] * 7)
    s = splits.unseen_split(c)
    assert set(s[c == "b"]) == {"test"} and set(s[c == "d"]) == {"val"}
    assert set(s[(c == "a") | (c == "c")]) == {"train"}


def test_unseen_split_babel_rule_validates_on_cluster_0_and_tests_on_cluster_1():
    """BABEL's --validcluster 0 --testcluster 1: Leiden numbers clusters by size, so the largest
    is validation and the second largest is test; unknown rules are refused."""
    c = np.array(["a"] * 5 + ["b"] * 9 + ["c"] * 2 + ["d"] * 7)
    s = splits.unseen_split(c, "babel")
    assert set(s[c == "b"]) == {"val"} and set(s[c == "d"]) == {"test"}
    assert set(s[(c == "a") | (c == "c")]) == {"train"}
    with pytest.raises(ValueError, match="unseen rule"):
        splits.unseen_split(c, "smallest")


def test_demo_overlay_of_the_splits_block(repo, default_config):
    """Real data: BABEL's rule at resolution 1.5; the demo keeps the side-by-side split."""
    from workflow_lib.settings import source_config

    spl = default_config["splits"]
    assert (spl["unseen_rule"], spl["leiden_resolution"]) == ("babel", 1.5)
    demo = source_config(default_config)["splits"]
    assert (demo["unseen_rule"], demo["leiden_resolution"]) == ("largest_test", 1.0)
    assert "**SPLIT_PARAMS" in (repo / "rules" / "cells.smk").read_text()


def test_make_splits_leiden_reproducible(clustered):
    a, t = clustered
    df = splits.make_splits(a, seed=0, resolution=0.3, n_pcs=10, n_neighbors=10)
    assert list(df.columns) == ["cell_type", "leiden", "split_random", "split_unseen"]
    assert df.index.equals(a.obs_names)
    # the clusters recover the simulated types; the largest type (120 cells) is the unseen test set
    assert pd.crosstab(df["leiden"], t).gt(0).sum(axis=1).max() == 1
    test_types = set(df.loc[df["split_unseen"] == "test", "cell_type"])
    assert test_types == {"T0"}
    assert set(df.loc[df["split_unseen"] == "val", "cell_type"]) == {"T1"}
    again = splits.make_splits(a, seed=0, resolution=0.3, n_pcs=10, n_neighbors=10)
    pd.testing.assert_frame_equal(df, again)


def test_umap_connectivity_functions_keep_their_machine_code_on_disk(monkeypatch):
    """scanpy's kNN connectivities run umap's numba functions, compiled in every new process
    unless numba caches them: after cache_umap_jit they have a disk cache."""
    numba = pytest.importorskip("numba")
    import umap.umap_ as umap_mod

    assert splits.cache_umap_jit() == list(splits.UMAP_JIT_FUNCTIONS)
    for name in splits.UMAP_JIT_FUNCTIONS:
        fn = getattr(umap_mod, name)
        assert isinstance(fn, numba.core.dispatcher.Dispatcher)
        assert type(fn._cache).__name__ == "FunctionCache"
    # a name that is not a numba function is skipped, not an error
    monkeypatch.setattr(splits, "UMAP_JIT_FUNCTIONS", ("smooth_knn_dist", "not_there"))
    assert splits.cache_umap_jit() == ["smooth_knn_dist"]
