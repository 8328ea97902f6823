"""Model directory building blocks (workflow_lib.model_dir): mapping user data onto the model's
features. Attacks on model directories (crafted cards, pickles, path tricks) are tested in
tests/test_security.py."""

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from workflow_lib.model_dir import match_features, normalise_peak_name


def test_peak_names_are_normalised_and_duplicates_summed():
    assert normalise_peak_name("chr1-100-200") == "chr1:100-200"
    assert normalise_peak_name("chr10_5_60") == "chr10:5-60"
    a = ad.AnnData(sp.csr_matrix(np.array([[1, 0, 2], [0, 3, 0]], np.float32)),
                   var=pd.DataFrame(index=["chr1-100-200", "chr1:300-400", "chr1_100_200_dup"]))
    a.var_names = ["chr1-100-200", "chr1:300-400", "chr1:100-200"]
    fm = match_features(a, "atac", ["chr1:100-200", "chr1:300-400", "chr2:1-5"])
    assert fm.X.toarray().tolist() == [[1, 0, 0], [0, 1, 0]]  # binarised, summed duplicates, zero fill
    assert fm.missing == ["chr2:1-5"] and fm.n_duplicates == 2 and fm.n_extra == 0
    rna = ad.AnnData(sp.csr_matrix(np.array([[1, 2]], np.float32)),
                     var=pd.DataFrame({"gene_name": ["A", "B"]}, index=["ENSG1", "ENSG2"]))
    fm = match_features(rna, "rna", ["B", "A"])
    assert fm.source == "var['gene_name']" and fm.X.toarray().tolist() == [[2, 1]]
