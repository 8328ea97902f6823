"""SnapATAC .snap parsing (workflow_lib.snap).

The fixtures write snap files with plain h5py (tests/snap_files.py, not workflow_lib.snap.write_snap),
in the SnapTools layout: 1-based PM/AM idx and idy, PM peaks as BED, AM bins with 1-based starts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from snap_files import write_raw_snap
from workflow_lib.fileutils import InputFormatError
from workflow_lib.snap import read_snap, read_snap_barcodes, write_snap


PM = (["chr1", "chr1", "chr2"], [100, 500, 50], [200, 800, 90],
      [1, 1, 2, 3, 3], [1, 3, 2, 1, 3], [2, 1, 1, 4, 1])  # 3 cells x 3 peaks, 1-based triplets
DENSE_PM = np.array([[2, 0, 1], [0, 1, 0], [4, 0, 1]], dtype=np.float32)


@pytest.fixture()
def pm_snap(tmp_path):
    p = tmp_path / "S1.snap"
    write_raw_snap(p, ["AAA", "CCC", "GGG"], uq=[1500, 20, 3000], pm=PM)
    return p


def test_pm_matrix_is_one_based_and_bed(pm_snap):
    a = read_snap(pm_snap)
    np.testing.assert_array_equal(a.X.toarray(), DENSE_PM)
    assert list(a.obs_names) == ["AAA", "CCC", "GGG"]
    assert a.var[["chrom", "start", "end"]].values.tolist() == [["chr1", 100, 200], ["chr1", 500, 800], ["chr2", 50, 90]]
    assert list(a.var_names) == ["chr1:100-200", "chr1:500-800", "chr2:50-90"]
    assert a.uns["source"]["matrix"] == "PM"
    assert sp.isspmatrix_csr(a.X) and a.X.dtype == np.float32


def test_cell_subset_and_sample_prefix(pm_snap):
    a = read_snap(pm_snap, cells=[2, 0], sample="S1")
    assert list(a.obs_names) == ["S1:AAA", "S1:GGG"]  # file order, whatever order was asked
    assert list(a.obs["barcode"]) == ["AAA", "GGG"]
    np.testing.assert_array_equal(a.X.toarray(), DENSE_PM[[0, 2]])


def test_chunked_read_matches(pm_snap, monkeypatch):
    import workflow_lib.snap as snap_mod

    monkeypatch.setattr(snap_mod, "CHUNK", 2)  # 5 triplets -> 3 slices
    np.testing.assert_array_equal(read_snap(pm_snap, cells=[0, 2]).X.toarray(), DENSE_PM[[0, 2]])


def test_min_fragments_uses_bd_uq(pm_snap, tmp_path):
    bcs, keep = read_snap_barcodes(pm_snap, min_fragments=1000)
    assert list(bcs) == ["AAA", "CCC", "GGG"] and keep.tolist() == [True, False, True]
    p = tmp_path / "noqc.snap"
    write_raw_snap(p, ["A"], pm=(["chr1"], [0], [10], [1], [1], [1]))
    with pytest.raises(InputFormatError, match="noqc.snap: missing BD/UQ"):
        read_snap_barcodes(p, min_fragments=1000)
    assert read_snap_barcodes(p)[1].tolist() == [True]


def test_am_bins_converted_to_bed_and_clipped(tmp_path):
    p = tmp_path / "bins.snap"
    # chr1 length 12000, 5 kb bins start at 1, 5001, 10001 (last one clipped to 12000)
    write_raw_snap(p, ["A", "B"], chrom_sizes={"chr1": 12000},
                   am=(5000, ["chr1"] * 3, [1, 5001, 10001], [1, 2, 2], [3, 1, 3], [1, 2, 1]))
    a = read_snap(p)  # auto: no PM -> AM
    assert a.uns["source"]["matrix"] == "AM/5000"
    assert a.var[["start", "end"]].values.tolist() == [[0, 5000], [5000, 10000], [10000, 12000]]
    np.testing.assert_array_equal(a.X.toarray(), [[0, 0, 1], [2, 0, 1]])
    with pytest.raises(InputFormatError, match=r"bins.snap: no AM/1000 bin matrix \(bin sizes in file: \[5000\]\)"):
        read_snap(p, bin_size=1000)
    with pytest.raises(InputFormatError, match="bins.snap: no PM"):
        read_snap(p, matrix="PM")


def test_not_a_snap_file(tmp_path):
    txt = tmp_path / "x.snap"
    txt.write_text("hello\n")
    with pytest.raises(InputFormatError, match="x.snap: cannot open as a snap"):
        read_snap(txt)
    h5 = tmp_path / "y.snap"
    write_raw_snap(h5, ["A"], magic=None, pm=(["chr1"], [0], [10], [1], [1], [1]))
    with pytest.raises(InputFormatError, match="y.snap: not a snap file"):
        read_snap(h5)
    with pytest.raises(InputFormatError, match="z.snap: file not found"):
        read_snap(tmp_path / "z.snap")


def test_out_of_range_triplet_names_entry(tmp_path):
    p = tmp_path / "bad.snap"
    write_raw_snap(p, ["A", "B"], pm=(["chr1"], [0], [10], [1, 3], [1, 1], [1, 1]))
    with pytest.raises(InputFormatError, match=r"bad.snap: PM: entry 2 = \(barcode 3, feature 1\) outside 2 barcodes"):
        read_snap(p)


def test_write_snap_round_trip(tmp_path):
    X = sp.random(30, 12, density=0.2, random_state=1, format="csr", dtype=np.float32)
    X.data = np.ceil(X.data * 5)
    peaks = pd.DataFrame({"chrom": ["chr1"] * 6 + ["chr2"] * 6, "start": np.arange(12) * 1000,
                          "end": np.arange(12) * 1000 + 300})
    bcs = [f"BC{i:03d}" for i in range(30)]
    write_snap(tmp_path / "rt.snap", bcs, X, peaks=peaks)
    a = read_snap(tmp_path / "rt.snap")
    np.testing.assert_array_equal(a.X.toarray(), X.toarray())
    assert list(a.obs_names) == bcs
    np.testing.assert_array_equal(a.var["start"].to_numpy(), peaks["start"].to_numpy())
