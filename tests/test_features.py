"""Stage functions of rules/features.smk (workflow_lib.features): the liftover step and the snap
path of the single-assay ATAC stage (export of a whole snap set, overlap mapping onto the
reference peaks)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from conftest import CHAIN, peak_table
from snap_files import write_raw_snap
from workflow_lib import features as features_stage
from workflow_lib import genome
from workflow_lib import io as wio
from workflow_lib.fileutils import InputFormatError
from workflow_lib.snap import write_snap


# ------------------------------------------------------------------ liftover
def test_chain_missing_a_chromosome_names_the_chain_and_writes_nothing(tmp_path):
    q = peak_table([("chr1", 10, 20), ("chr3", 1, 10), ("chr3", 50, 60)])  # the chain has no chr3
    with pytest.raises(InputFormatError, match=r"tiny\.over\.chain.*chr3 \(2 peaks\)"):
        genome.liftover_peaks(q, CHAIN)
    bed = tmp_path / "in.bed"
    bed.write_text("chr1\t10\t20\nchr3\t1\t10\n")
    out_bed, out_rep = tmp_path / "lifted.bed", tmp_path / "lift.json"
    with pytest.raises(InputFormatError, match=r"tiny\.over\.chain"):
        features_stage.lift_peaks(bed, out_bed, out_rep, chain=CHAIN, dataset="fang")
    assert not out_bed.exists() and not out_rep.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.bed"]
    # a contig outside chr1..chr22/X/Y without a chain is only dropped (counted as unmapped)
    out, rep = genome.liftover_peaks(peak_table([("chr1", 10, 20), ("chrUn_random", 1, 10)]), CHAIN)
    assert rep["n_unmapped"] == 1 and len(out) == 1


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
