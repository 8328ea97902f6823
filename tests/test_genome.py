"""Liftover (tiny hand-made chain), overlap mapping, sparse ATAC/gene mapping, chromosome order."""

import numpy as np
import pytest
import scipy.sparse as sp

from conftest import CHAIN, peak_table
from workflow_lib import genome, io
from workflow_lib.fileutils import InputFormatError


def test_liftover_hand_checked():
    q = peak_table([
        ("chr1", 10, 20),    # block 1: +500 -> chr1:510-520
        ("chr1", 90, 160),   # spans the gap: 90 -> 590, last base 159 -> 709 -> chr1:590-710
        ("chr1", 110, 140),  # inside the unmapped gap -> fails
        ("chr2", 150, 250),  # start -> chr5, end -> chr7: different chromosomes -> dropped
        ("chr2", 10, 20),    # -> chr5:110-120
        ("chr2", 300, 310),  # -> chr7:100-110
    ])
    out, rep = genome.liftover_peaks(q, CHAIN)
    assert out[["chrom", "start", "end"]].values.tolist() == [
        ["chr1", 510, 520], ["chr1", 590, 710], ["chr5", 110, 120], ["chr7", 100, 110]]
    assert out["query_index"].tolist() == [0, 1, 4, 5]
    assert rep == {"n_input": 6, "n_lifted": 4, "n_unmapped": 1, "n_split": 1}
    assert list(out.index) == ["chr1:510-520", "chr1:590-710", "chr5:110-120", "chr7:100-110"]


def test_liftover_gz_chain_and_bad_chain(tmp_path):
    import gzip

    gz = tmp_path / "tiny.over.chain.gz"
    gz.write_bytes(gzip.compress(CHAIN.read_bytes()))
    out, _ = genome.liftover_peaks(peak_table([("chr1", 10, 20)]), gz)
    assert out[["start", "end"]].values.tolist() == [[510, 520]]
    bad = tmp_path / "bad.chain"
    bad.write_text("chain 1 chr1 10 + 0 5 chr1 10 + 0 5 1\nnot numbers\n")
    with pytest.raises(InputFormatError, match=r"bad\.chain"):
        genome.load_chain(bad)


def test_overlap_edges():
    ref = peak_table([("chr1", 100, 200), ("chr1", 300, 400), ("chr2", 100, 200)])
    q = peak_table([
        ("chr1", 50, 100),   # touches ref0 at 100 (0 bp overlap) -> no map
        ("chr1", 50, 101),   # 1 bp overlap with ref0 -> maps
        ("chr1", 199, 301),  # 1 bp with ref0 and 1 bp with ref1 -> maps to both
        ("chr1", 200, 300),  # touches both, overlaps neither
        ("chr2", 150, 160),  # inside ref2
        ("chr3", 100, 200),  # other chromosome
    ])
    M = genome.overlap_mapping(q, ref)
    assert M.shape == (6, 3)
    assert M.toarray().tolist() == [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 0, 0], [0, 0, 1], [0, 0, 0]]
    assert genome.ref_hits(M).tolist() == [2, 1, 1]


def test_real_peaks_map_onto_themselves(geo_fixtures):
    p = io.read_peak_strings(geo_fixtures / "GSE126074_AdBrainCortex_SNAREseq_chromatin.peaks.tsv.gz")
    sub = p.iloc[::8]
    M = genome.overlap_mapping(sub, p)
    # every peak hits at least itself; real SNARE peaks do not overlap each other
    assert M.nnz == len(sub)
    np.testing.assert_array_equal(M.indices, np.arange(0, len(p), 8))
    # shifting every peak to start at its neighbour's end must map nothing new
    touch = peak_table(list(zip(sub["chrom"], sub["end"], sub["end"] + 1)))
    M2 = genome.overlap_mapping(touch, sub)
    assert M2.nnz == 0


def test_map_atac_binarised_or_of_overlaps():
    X = sp.csr_matrix(np.array([[2, 0, 1, 0], [0, 0, 0, 3], [0, 1, 1, 0]], dtype=np.float32))
    # query0 -> ref0; query1 -> ref0, ref1; query2 -> ref1; query3 -> nothing
    M = sp.csr_matrix(np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0]], dtype=np.float32))
    Y = genome.map_atac(X, M, chunk_rows=2)
    assert sp.isspmatrix_csr(Y) and Y.dtype == np.float32
    assert Y.toarray().tolist() == [[1, 1, 0], [0, 0, 0], [1, 1, 0]]
    rng = np.random.default_rng(0)
    Xr = sp.random(50, 40, density=0.2, format="csr", random_state=1, dtype=np.float32)
    Mr = sp.random(40, 30, density=0.05, format="csr", random_state=2, dtype=np.float32)
    expect = ((Xr.toarray() > 0).astype(int) @ (Mr.toarray() > 0).astype(int)) > 0
    for chunk in (1, 7, 1000):
        np.testing.assert_array_equal(genome.map_atac(Xr, Mr, chunk_rows=chunk).toarray(), expect.astype(np.float32))


def test_gene_mapping_sums_duplicates():
    M = genome.gene_mapping(["A", "B", "A", "Z"], ["B", "A", "C"])
    assert M.toarray().tolist() == [[0, 1, 0], [1, 0, 0], [0, 1, 0], [0, 0, 0]]
    X = sp.csr_matrix(np.array([[1, 2, 3, 4], [0, 5, 0, 0]], dtype=np.float32))
    assert genome.map_genes(X, M).toarray().tolist() == [[2, 4, 0], [5, 0, 0]]
    with pytest.raises(ValueError, match="unique"):
        genome.gene_mapping(["A"], ["A", "A"])


def test_chromosome_order_and_sort():
    df = peak_table([("chr10", 5, 9), ("chr2", 50, 60), ("chrX", 1, 2), ("chr2", 10, 20), ("chr1", 7, 8)])
    s = genome.sort_peaks(df)
    assert list(s.index) == ["chr1:7-8", "chr2:10-20", "chr2:50-60", "chr10:5-9", "chrX:1-2"]
    assert genome.is_autosome(["chr1", "chr19", "chrX", "chrY", "chrM", "chr1_random"]).tolist() == [
        True, True, False, False, False, False]


def test_mapping_report_fractions():
    rep = genome.mapping_report(4, {"li": np.array([1, 0, 2, 0]), "fang": np.array([1, 1, 0, 0])},
                                {"li": {"n_query_peaks": 9}})
    r = rep.set_index("dataset")
    assert r.loc["li", "frac_ref_hit"] == 0.5 and r.loc["fang", "n_ref_hit"] == 2
    assert r.loc["any", "n_ref_hit"] == 3 and r.loc["all", "n_ref_hit"] == 1
    assert r.loc["li", "n_query_peaks"] == 9
