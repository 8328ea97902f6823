"""The co-assay inputs of a scenario and the prediction contract (workflow_lib.predictions):
reading and checking the split, building, validating and writing prediction AnnData objects."""

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

from synthetic_coassay import make_coassay
from workflow_lib.fileutils import InputFormatError
from workflow_lib.predictions import (LATENT_KEYS, PREDICTION_NAMES, build_prediction_adatas, load_coassay,
                                      prediction_paths, rest_rows, validate_prediction, write_predictions)


def _write(tmp_path, rna, atac):
    rp, ap = tmp_path / "coassay_rna.h5ad", tmp_path / "coassay_atac.h5ad"
    rna.write_h5ad(rp)
    atac.write_h5ad(ap)
    return rp, ap


def test_load_coassay_indices_of_the_scenario(tmp_path):
    rna, atac, _ = make_coassay(n_cells=60, n_genes=8, n_peaks=9, seed=0)
    split = rna.obs["split_unseen"].to_numpy().copy()
    split[:3] = "none"                      # a cell without a role in the scenario (split_babel)
    rna.obs["split_unseen"] = atac.obs["split_unseen"] = split
    data = load_coassay(*_write(tmp_path, rna, atac), "unseen")
    for s in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(data, s), np.flatnonzero(split == s))
    assert sp.isspmatrix_csr(data.rna_X) and data.atac_X.shape == (60, 9)
    np.testing.assert_array_equal(rest_rows(data), np.flatnonzero(split != "test"))   # incl. the "none" cells


@pytest.mark.parametrize("what, message", [
    ("atac cells differ", r"coassay_atac\.h5ad: obs_names differ"),
    ("no split column", r"coassay_atac\.h5ad: obs column 'split_random' missing"),
    ("unknown split value", r"coassay_rna\.h5ad: obs column 'split_random' has unexpected values \['holdout'\]"),
    ("no test cell", r"coassay_rna\.h5ad: no 'test' cells"),
])
def test_load_coassay_refuses_inconsistent_files(tmp_path, what, message):
    rna, atac, _ = make_coassay(n_cells=30, n_genes=8, n_peaks=9, seed=1)
    if what == "atac cells differ":
        atac = atac[::-1].copy()
    elif what == "no split column":
        del atac.obs["split_random"]
    else:
        split = rna.obs["split_random"].to_numpy().copy()
        split[split == "test"] = "holdout" if what == "unknown split value" else "train"
        rna.obs["split_random"] = split
    with pytest.raises(InputFormatError, match=message):
        load_coassay(*_write(tmp_path, rna, atac), "random")


def _predictions(tmp_path, seed=0):
    rna, atac, truth = make_coassay(n_cells=40, n_genes=8, n_peaks=9, seed=seed)
    data = load_coassay(*_write(tmp_path, rna, atac), "random")
    t, rest = data.test, rest_rows(data)
    rng = np.random.default_rng(seed)
    lat = {"rna_query": rng.normal(size=(t.size, 3)), "atac_reference": rng.normal(size=(t.size, 3)),
           "atac_query": rng.normal(size=(t.size, 2)), "rna_reference": rng.normal(size=(t.size, 2))}
    p = truth["p"][t]
    ads = build_prediction_adatas(data, t, truth["freq"][t], p, np.clip(p * 1.5, 0, 1), lat, "m",
                                  points={"atac_to_rna": "a", "rna_to_atac": "b", "latent": "c"},
                                  rest_atac_to_rna=truth["freq"][rest])
    return data, ads


def test_build_prediction_adatas_follow_the_contract(tmp_path):
    data, ads = _predictions(tmp_path)
    assert list(ads) == list(PREDICTION_NAMES)
    t = data.test
    for key in ("atac_to_rna", "rna_to_atac", "latent"):
        assert list(ads[key].obs_names) == list(data.rna.obs_names[t])
        assert list(ads[key].obs.columns) == ["cell_type", "batch", "dataset"]
    assert list(ads["atac_to_rna_rest"].obs_names) == list(data.rna.obs_names[rest_rows(data)])
    assert [ads[k].uns["point"] for k in PREDICTION_NAMES] == ["a", "b", "c", "a"]   # rest: the atac_to_rna point
    assert all(a.uns["method"] == "m" for a in ads.values())
    assert list(ads["atac_to_rna"].var_names) == list(data.rna.var_names)
    assert list(ads["rna_to_atac"].var_names) == list(data.atac.var_names)
    assert ads["rna_to_atac"].X.dtype == ads["rna_to_atac"].layers["norm"].dtype == np.float32
    assert ads["latent"].shape == (t.size, 0) and all(ads["latent"].obsm[k].dtype == np.float32 for k in LATENT_KEYS)
    with pytest.raises(ValueError, match="expected"):
        build_prediction_adatas(data, t, np.full((t.size, 3), 1 / 3), ads["rna_to_atac"].X,
                                ads["rna_to_atac"].layers["norm"], {k: ads["latent"].obsm[k] for k in LATENT_KEYS},
                                "m")


def test_validate_prediction_rejects_what_breaks_the_contract(tmp_path):
    _, ads = _predictions(tmp_path)

    def broken(key, edit):
        a = ads[key].copy()
        edit(a)
        return a

    cases = [
        (broken("atac_to_rna", lambda a: a.uns.pop("point")), "uns"),
        (broken("atac_to_rna", lambda a: setattr(a, "X", a.X * 2)), "rows sum to 1"),
        (broken("atac_to_rna", lambda a: setattr(a, "X", sp.csr_matrix(a.X))), "dense float32"),
        (broken("atac_to_rna", lambda a: setattr(a, "X", a.X.astype(np.float64))), "dense float32"),
        (broken("rna_to_atac", lambda a: a.X.__setitem__((0, 0), np.nan)), "non-finite"),
        (broken("rna_to_atac", lambda a: a.layers["norm"].__setitem__((0, 0), 1.5)), r"outside \[0, 1\]"),
        (broken("latent", lambda a: a.obsm.pop("rna_reference")), "lacks obsm keys"),
        (broken("latent", lambda a: a.obsm.__setitem__("atac_reference", np.zeros((a.n_obs, 5)))),
         "different spaces"),
    ]
    for a, message in cases:
        with pytest.raises(ValueError, match=message):
            validate_prediction(a)
    for a in ads.values():
        validate_prediction(a)


def test_prediction_paths_and_writing(tmp_path):
    _, ads = _predictions(tmp_path)
    outputs = [f"results/predictions/full/random/m/{k}.h5ad" for k in ("latent", "atac_to_rna_rest", "rna_to_atac",
                                                                         "atac_to_rna")]
    paths = prediction_paths(outputs)
    assert paths == {k: f"results/predictions/full/random/m/{k}.h5ad" for k in PREDICTION_NAMES}
    with pytest.raises(ValueError, match="do not name"):
        prediction_paths(outputs[:3])
    out = {k: str(tmp_path / "pred" / f"{k}.h5ad") for k in PREDICTION_NAMES}
    with pytest.raises(ValueError, match=r"no prediction built for \['atac_to_rna_rest'\]"):
        write_predictions({k: v for k, v in ads.items() if k != "atac_to_rna_rest"}, out)
    write_predictions(ads, out)
    back = ad.read_h5ad(out["rna_to_atac"])
    np.testing.assert_array_equal(back.layers["norm"], ads["rna_to_atac"].layers["norm"])
    assert back.uns["point"] == "b"
