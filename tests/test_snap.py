"""SnapATAC .snap parsing (workflow_lib.snap) and the snap path of the single-assay ATAC stage.

The first fixtures write snap files with plain h5py (not workflow_lib.snap.write_snap), in the
SnapTools layout: 1-based PM/AM idx and idy, PM peaks as BED, AM bins with 1-based starts.
"""

from __future__ import annotations

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from workflow_lib import features as features_stage
from workflow_lib import io as wio
from workflow_lib.fileutils import InputFormatError
from workflow_lib.snap import read_snap, read_snap_barcodes, write_snap
from workflow_lib.sources import atac_set_files, check_atac_downloads

VLEN = h5py.special_dtype(vlen=bytes)


def _bytes(xs):
    return np.array([x.encode() for x in xs], dtype=object)


def write_raw_snap(path, barcodes, uq=None, pm=None, am=None, chrom_sizes=None, magic="SNAP"):
    """pm = (chroms, starts, ends, idx, idy, count); am = (size, chroms, starts1, idx, idy, count)."""
    with h5py.File(path, "w") as f:
        if magic is not None:
            f["HD/MG"] = np.bytes_(magic)
        if chrom_sizes:
            f.create_dataset("HD/SQ/SN", data=_bytes(chrom_sizes), dtype=VLEN)
            f["HD/SQ/SL"] = np.array(list(chrom_sizes.values()), dtype=np.uint32)
        f.create_dataset("BD/name", data=_bytes(barcodes), dtype=VLEN)
        if uq is not None:
            f["BD/UQ"] = np.asarray(uq, dtype=np.uint32)
        if pm is not None:
            c, s, e, i, j, v = pm
            f.create_dataset("PM/peakChrom", data=_bytes(c), dtype=VLEN)
            f["PM/peakStart"], f["PM/peakEnd"] = np.asarray(s, np.uint32), np.asarray(e, np.uint32)
            f["PM/idx"], f["PM/idy"] = np.asarray(i, np.uint32), np.asarray(j, np.uint32)
            f["PM/count"] = np.asarray(v, np.uint8)
        if am is not None:
            size, c, s1, i, j, v = am
            f["AM/binSizeList"] = np.array([size], dtype=np.uint32)
            g = f"AM/{size}"
            f.create_dataset(f"{g}/binChrom", data=_bytes(c), dtype=VLEN)
            f[f"{g}/binStart"] = np.asarray(s1, np.uint32)
            f[f"{g}/idx"], f[f"{g}/idy"] = np.asarray(i, np.uint32), np.asarray(j, np.uint32)
            f[f"{g}/count"] = np.asarray(v, np.uint8)


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


# ------------------------------------------------------------------ export of a whole snap set
def test_export_two_samples_union_features_and_prefixed_barcodes(tmp_path):
    s1, s2 = tmp_path / "CEMBA_A.snap", tmp_path / "CEMBA_B.snap"
    write_raw_snap(s1, ["AAA", "CCC"], uq=[5000, 5000], pm=(["chr2", "chr1"], [50, 100], [90, 200],
                                                             [1, 2, 2], [1, 1, 2], [1, 1, 3]))
    write_raw_snap(s2, ["AAA", "TTT", "low"], uq=[5000, 5000, 10],
                   pm=(["chr1", "chr1"], [100, 900], [200, 950], [1, 2, 3], [2, 1, 1], [1, 2, 1]))
    out_h5, out_bed = tmp_path / "fang.h5ad", tmp_path / "fang.bed"
    features_stage.export_snap_set([str(s1), str(s2)], out_h5, out_bed, dataset="fang", downsample_frac=1.0,
                            seed=0, min_fragments=1000)
    a = ad.read_h5ad(out_h5)
    assert list(a.obs_names) == ["CEMBA_A:AAA", "CEMBA_A:CCC", "CEMBA_B:AAA", "CEMBA_B:TTT"]  # "low" failed QC
    assert list(a.obs["sample"]) == ["CEMBA_A", "CEMBA_A", "CEMBA_B", "CEMBA_B"]
    # union of features sorted by chrom, start: chr1:100-200, chr1:900-950, chr2:50-90
    assert a.var[["chrom", "start", "end"]].values.tolist() == [["chr1", 100, 200], ["chr1", 900, 950], ["chr2", 50, 90]]
    np.testing.assert_array_equal(a.X.toarray(), [[0, 0, 1], [3, 0, 1], [0, 1, 0], [2, 0, 0]])
    bed = wio.read_bed4(out_bed)
    assert list(bed.index) == list(a.var_names)  # BED rows == h5ad columns (liftover query rows)


def test_export_downsamples_before_reading_and_is_reproducible(tmp_path):
    X = sp.random(200, 20, density=0.3, random_state=2, format="csr", dtype=np.float32)
    X.data[:] = 1
    peaks = pd.DataFrame({"chrom": ["chr1"] * 20, "start": np.arange(20) * 500, "end": np.arange(20) * 500 + 100})
    write_snap(tmp_path / "S.snap", [f"b{i}" for i in range(200)], X, peaks=peaks)
    outs = []
    for k in range(2):
        h5 = tmp_path / f"o{k}.h5ad"
        features_stage.export_snap_set([str(tmp_path / "S.snap")], h5, tmp_path / f"o{k}.bed", dataset="fang",
                                downsample_frac=0.25, seed=3)
        outs.append(ad.read_h5ad(h5))
    assert outs[0].n_obs == 50
    assert list(outs[0].obs_names) == list(outs[1].obs_names)
    rows = [int(n.split(":b")[1]) for n in outs[0].obs_names]
    np.testing.assert_array_equal(outs[0].X.toarray(), X[rows].toarray())


def test_build_single_atac_from_snap_export_maps_by_overlap(tmp_path):
    s = tmp_path / "S.snap"
    write_raw_snap(s, ["A", "B"], pm=(["chr1", "chr1", "chr1"], [100, 400, 5000], [300, 450, 5100],
                                      [1, 1, 2, 2], [1, 2, 2, 3], [1, 1, 1, 1]))
    h5, bed = tmp_path / "x.h5ad", tmp_path / "x.bed"
    features_stage.export_snap_set([str(s)], h5, bed, dataset="fang", downsample_frac=1.0, seed=0)
    lifted = tmp_path / "lifted.bed"
    peaks = wio.read_bed4(bed)
    peaks["query_index"] = np.arange(len(peaks))
    wio.write_bed(peaks, lifted, name_col="query_index")
    ref = tmp_path / "ref.bed"  # ref peak 1 overlaps query peaks 1 and 2; ref peak 2 overlaps none
    wio.write_bed(pd.DataFrame({"chrom": ["chr1", "chr1"], "start": [250, 9000], "end": [420, 9100]},
                                   index=["r1", "r2"]), ref)
    out = tmp_path / "single.h5ad"
    features_stage.build_single_atac(None, None, str(bed), lifted, ref, out, dataset="fang", downsample_frac=1.0,
                              seed=0, min_features=0, h5ad=str(h5))
    a = ad.read_h5ad(out)
    assert list(a.obs_names) == ["fang:S:A", "fang:S:B"]
    np.testing.assert_array_equal(a.X.toarray(), [[1, 0], [1, 0]])  # B: peak 2 only -> OR -> 1
    assert a.uns["mapping"]["n_query_mapped"] == 2


# ------------------------------------------------------------------ config: files per format
def test_atac_set_files_by_format():
    assert atac_set_files("li", {"assembly": "mm10"}) == ["li_atac_counts", "li_atac_barcodes", "li_atac_peaks"]
    assert atac_set_files("fang", {"format": "snap", "files": ["a", "b"]}) == ["a", "b"]


def test_check_atac_downloads_names_missing_entries():
    cfg = {"single_atac_sets": {"li": {"assembly": "mm10"},
                                "fang": {"assembly": "mm10", "format": "snap", "files": ["fang_s1", "fang_s2"]}},
           "downloads": {"li_atac_counts": {"file": "c.mtx.gz"}, "li_atac_barcodes": {"file": "b.tsv.gz"},
                         "li_atac_peaks": {"file": "p.bed.gz"}, "fang_s1": {"file": "s1.snap"},
                         "fang_s2": {"file": "s2.h5"}}}
    with pytest.raises(ValueError, match=r"fang: snap files must be named \*\.snap: \['fang_s2'\]"):
        check_atac_downloads(cfg)
    cfg["downloads"]["fang_s2"]["file"] = "s2.snap"
    check_atac_downloads(cfg)
    del cfg["downloads"]["li_atac_peaks"]
    with pytest.raises(ValueError, match=r"single_atac_sets.li \(format mtx_bed\) needs downloads entries \['li_atac_peaks'\]"):
        check_atac_downloads(cfg)
