"""Model directory building blocks (workflow_lib.model_dir): tensors-only weights, the class
allow-list, and mapping user data onto the model's features. Attacks on model directories
(crafted cards, pickles, path tricks) are tested in tests/test_security.py."""

import hashlib

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from workflow_lib.fileutils import InputFormatError
from workflow_lib.model_dir import (class_path, import_class, input_feature_names, load_weights, looks_like_counts,
                                    match_features, module_kwargs, normalise_peak_name, save_weights, tensor_state)
from workflow_lib.models.translator import LatentTranslator
from workflow_lib.models.vae import RNAVAE


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


def test_input_feature_names_take_the_source_matching_most_model_features():
    """RNA: a gene-symbol column of var beats Ensembl var_names; ATAC: chrom/start/end columns
    beat var_names that are not peak coordinates; on a tie var_names wins."""
    rna = ad.AnnData(sp.csr_matrix((1, 3), dtype=np.float32),
                     var=pd.DataFrame({"gene_symbol": ["A", "B", "C"]}, index=["ENSG1", "ENSG2", "ENSG3"]))
    names, source = input_feature_names(rna, "rna", ["C", "A", "Z"])
    assert source == "var['gene_symbol']" and list(names) == ["A", "B", "C"]
    names, source = input_feature_names(rna, "rna", ["ENSG3", "C"])   # one match each: var_names
    assert source == "var_names" and list(names) == ["ENSG1", "ENSG2", "ENSG3"]
    atac = ad.AnnData(sp.csr_matrix((1, 2), dtype=np.float32),
                      var=pd.DataFrame({"chrom": ["chr1", "chr2"], "start": [10, 20], "end": [15, 25]},
                                       index=["peak_a", "peak_b"]))
    names, source = input_feature_names(atac, "atac", ["chr2:20-25", "chr1:10-15"])
    assert source == "var[chrom,start,end]" and list(names) == ["chr1:10-15", "chr2:20-25"]


def test_match_features_refuses_inputs_it_cannot_use():
    rna = ad.AnnData(sp.csr_matrix(np.ones((2, 2), np.float32)), var=pd.DataFrame(index=["A", "B"]))
    with pytest.raises(InputFormatError, match=r"cells\.h5ad: RNA features .*2/5 model features found; "
                                               r"3 missing \(60\.0%\).*refusing to predict"):
        match_features(rna, "rna", ["A", "B", "C", "D", "E"], path="cells.h5ad")
    fm = match_features(rna, "rna", ["A", "B", "C", "D", "E"], max_missing_frac=0.6)
    assert fm.X.shape == (2, 5) and fm.missing == ["C", "D", "E"] and fm.X[:, 2:].nnz == 0
    with pytest.raises(InputFormatError, match="contains no cells"):
        match_features(rna[:0].copy(), "rna", ["A", "B"])
    with pytest.raises(ValueError, match="modality"):
        match_features(rna, "protein", ["A", "B"])


def test_looks_like_counts():
    assert looks_like_counts(sp.csr_matrix(np.array([[0, 3], [1, 0]], np.float32)))
    assert looks_like_counts(np.zeros((2, 0)))
    assert not looks_like_counts(np.log1p(np.array([[0.0, 3.0]])))
    assert not looks_like_counts(sp.csr_matrix(np.array([[-1.0, 2.0]])))


def test_weights_are_tensors_only_and_checksummed(tmp_path):
    torch.manual_seed(0)
    tr = LatentTranslator(3, 2)
    digest = save_weights(tr, tmp_path / "t.pt")
    assert digest == hashlib.sha256((tmp_path / "t.pt").read_bytes()).hexdigest()
    back = load_weights(tmp_path / "t.pt")
    assert back.keys() == tr.state_dict().keys()
    for k, v in tr.state_dict().items():
        torch.testing.assert_close(back[k], v)
    # arrays and scalars of a plain mapping become tensors; anything else is refused
    state = tensor_state({"coef": np.arange(3.0), "alpha": 0.5})
    assert state["coef"].dtype == torch.float64 and float(state["alpha"]) == 0.5
    with pytest.raises(TypeError, match="'alphas' is a list, not a tensor"):
        tensor_state({"alphas": [0.1, 1.0]})
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(InputFormatError, match=r"junk\.pt: not a tensors-only weights file"):
        load_weights(tmp_path / "junk.pt")


def test_class_paths_and_constructor_kwargs_round_trip():
    vae = RNAVAE(12, 2, 4, batch_categories=["snare", "zeisel"])
    path = class_path(vae)
    assert path == "workflow_lib.models.vae.RNAVAE" and class_path(RNAVAE) == path
    kwargs = module_kwargs(vae)
    assert "kind" not in kwargs and kwargs["latent"] == 4
    rebuilt = import_class(path)(**kwargs)
    assert rebuilt.config() == vae.config()
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in vae.state_dict().items()}
