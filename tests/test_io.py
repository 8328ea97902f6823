"""Parsers on the real GSE126074 metadata files (with small simulated count matrices)."""

import gzip

import h5py
import numpy as np
import pandas as pd
import pyreadr
import pytest
import scipy.sparse as sp

from workflow_lib import io
from workflow_lib.fileutils import InputFormatError

P = "GSE126074_AdBrainCortex_SNAREseq_"


def write_mtx(path, entries, nrows, ncols, header="%%MatrixMarket matrix coordinate integer general",
              nnz=None):
    """entries: list of (row, col, value) 0-based -> gzipped MatrixMarket (1-based)."""
    lines = [header, "%metadata comment", f"{nrows} {ncols} {len(entries) if nnz is None else nnz}"]
    lines += [f"{r + 1} {c + 1} {v}" for r, c, v in entries]
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def write_gz_lines(path, lines):
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def real(geo_fixtures):
    return {
        "rna_bc": geo_fixtures / f"{P}cDNA.barcodes.tsv.gz",
        "genes": geo_fixtures / f"{P}cDNA.genes.tsv.gz",
        "atac_bc": geo_fixtures / f"{P}chromatin.barcodes.tsv.gz",
        "peaks": geo_fixtures / f"{P}chromatin.peaks.tsv.gz",
    }


@pytest.fixture(scope="module")
def real_lists(real):
    return {k: io.read_lines(v) for k, v in real.items()}


def test_real_gene_and_barcode_files(real, real_lists):
    g = io.read_genes(real["genes"])
    assert len(g) == 33160 and list(g.columns) == ["gene_name"]
    assert g["gene_name"].iloc[0] == "0610005C13Rik"
    r = io.read_barcodes(real["rna_bc"])
    a = io.read_barcodes(real["atac_bc"])
    assert len(r) == len(a) == 10309
    assert set(r) == set(a) and not (r == a).all()  # same set, different order


def test_two_column_gene_file_uses_symbol(tmp_path, real_lists):
    sym = real_lists["genes"][:40]
    f = write_gz_lines(tmp_path / "features.tsv.gz", [f"ENSMUSG{i:011d}\t{s}" for i, s in enumerate(sym)])
    g = io.read_genes(f)
    assert list(g["gene_name"]) == sym and g["gene_id"].iloc[3] == "ENSMUSG00000000003"
    bad = write_gz_lines(tmp_path / "bad.tsv.gz", ["id1\tA", "id2\tB", "id3"])
    with pytest.raises(InputFormatError, match=r"bad\.tsv\.gz, line 3"):
        io.read_genes(bad)


def test_real_peak_strings(real):
    p = io.read_peak_strings(real["peaks"])
    assert len(p) == 244544
    assert p.iloc[0].tolist() == ["chr1", 3005833, 3005982]
    assert p.index[0] == "chr1:3005833-3005982"
    assert (p["end"] > p["start"]).all()
    assert set(p["chrom"]) >= {"chr1", "chr19", "chrX", "chrY"}


@pytest.mark.parametrize("bad", ["chr1:100", "chr1-100-200", "chr1:200-100", "chr1:1a-20"])
def test_malformed_peak_names_file_and_line(tmp_path, bad):
    f = write_gz_lines(tmp_path / "peaks.tsv.gz", ["chr1:1-10", "chr2:5-50", bad])
    with pytest.raises(InputFormatError, match=r"peaks\.tsv\.gz, line 3"):
        io.read_peak_strings(f)


def test_read_geo_mtx_genes_x_cells_on_real_features(tmp_path, real, real_lists):
    n_genes, n_cells = 33160, 10309
    rng = np.random.default_rng(0)
    rows, cols = rng.integers(0, n_genes, 300), rng.integers(0, n_cells, 300)
    entries = list(zip(rows, cols, rng.integers(1, 9, 300)))
    # a duplicate coordinate must be summed
    entries.append((int(rows[0]), int(cols[0]), 5))
    m = write_mtx(tmp_path / "counts.mtx.gz", entries, n_genes, n_cells)
    a = io.read_geo_mtx(m, real["rna_bc"], real["genes"], kind="genes")
    assert a.shape == (n_cells, n_genes) and sp.isspmatrix_csr(a.X) and a.X.dtype == np.float32
    dense_ref = sp.coo_matrix(([e[2] for e in entries], ([e[1] for e in entries], [e[0] for e in entries])),
                              shape=(n_cells, n_genes)).toarray()
    c, g = int(cols[0]), int(rows[0])
    assert a.X[c, g] == dense_ref[c, g]
    assert a.obs_names[c] == real_lists["rna_bc"][c]
    assert a.var["gene_name"].iloc[g] == real_lists["genes"][g]
    assert a.X.sum() == dense_ref.sum()
    # the same data written cells x genes is detected and gives the same matrix
    mt = write_mtx(tmp_path / "counts_t.mtx.gz", [(cc, rr, v) for rr, cc, v in entries], n_cells, n_genes)
    b = io.read_geo_mtx(mt, real["rna_bc"], real["genes"], kind="genes")
    assert (a.X != b.X).nnz == 0
    # streaming cell subset
    keep = np.array([c, 5, 17])
    s = io.read_geo_mtx(m, real["rna_bc"], real["genes"], kind="genes", cells=keep)
    assert list(s.obs_names) == [real_lists["rna_bc"][i] for i in sorted(keep)]
    assert (s.X != sp.csr_matrix(dense_ref[np.sort(keep)])).nnz == 0


def test_mtx_shape_mismatch_names_file(tmp_path, real):
    m = write_mtx(tmp_path / "wrong.mtx.gz", [(0, 0, 1)], 33159, 10309)
    with pytest.raises(InputFormatError, match=r"wrong\.mtx\.gz.*33159 x 10309.*10309 barcodes.*33160 features"):
        io.read_geo_mtx(m, real["rna_bc"], real["genes"], kind="genes")


def test_mtx_entry_count_and_range_errors(tmp_path):
    m = write_mtx(tmp_path / "short.mtx.gz", [(0, 0, 1), (1, 1, 2)], 3, 4, nnz=5)
    with pytest.raises(InputFormatError, match=r"short\.mtx\.gz.*declares 5 entries.*has 2"):
        io.read_mtx_csr(m, transpose=False)
    m = write_mtx(tmp_path / "range.mtx.gz", [(0, 0, 1), (5, 1, 2)], 3, 4)
    with pytest.raises(InputFormatError, match=r"range\.mtx\.gz, line 5: entry \(6, 2\) outside"):
        io.read_mtx_csr(m, transpose=False)


def test_truncated_gzip_names_file(tmp_path, real):
    entries = [(i % 33160, i % 10309, 1) for i in range(0, 2_000_000, 37)]
    m = write_mtx(tmp_path / "full.mtx.gz", entries, 33160, 10309)
    raw = m.read_bytes()
    t = tmp_path / "trunc.mtx.gz"
    t.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputFormatError, match=r"trunc\.mtx\.gz.*(truncated|corrupt)"):
        io.read_geo_mtx(t, real["rna_bc"], real["genes"], kind="genes")
    tb = tmp_path / "trunc_barcodes.tsv.gz"
    rb = real["rna_bc"].read_bytes()
    tb.write_bytes(rb[: len(rb) - 40])
    with pytest.raises(InputFormatError, match=r"trunc_barcodes\.tsv\.gz.*(truncated|corrupt)"):
        io.read_barcodes(tb)


def test_duplicate_barcodes(tmp_path):
    f = write_gz_lines(tmp_path / "bc.tsv.gz", ["AAA", "CCC", "GGG", "CCC"])
    with pytest.raises(InputFormatError, match=r"bc\.tsv\.gz, line 4: duplicate barcode 'CCC' \(first seen on line 2\)"):
        io.read_barcodes(f)


def test_bed_peaks_and_atac_set(tmp_path):
    bed = tmp_path / "p.bed.gz"
    write_gz_lines(bed, ["track name=x", "chr1\t10\t20\tp1", "chr2\t5\t50", "chr10\t0\t7"])
    p = io.read_bed_peaks(bed)
    assert list(p.index) == ["chr1:10-20", "chr2:5-50", "chr10:0-7"]
    m = write_mtx(tmp_path / "c.mtx.gz", [(0, 1, 2), (2, 0, 1), (1, 1, 1)], 3, 2)
    bc = write_gz_lines(tmp_path / "bc.tsv.gz", ["x", "y"])
    a = io.read_atac_set(m, bc, bed)
    assert a.shape == (2, 3)
    assert a.X.toarray().tolist() == [[0, 0, 1], [2, 1, 0]]
    assert list(a.var.columns) == ["chrom", "start", "end"]
    bad = write_gz_lines(tmp_path / "bad.bed.gz", ["chr1\t10\t20", "chr1\t30\tx"])
    with pytest.raises(InputFormatError, match=r"bad\.bed\.gz, line 2"):
        io.read_bed_peaks(bad)


def test_read_loom_in_chunks(tmp_path):
    rng = np.random.default_rng(1)
    dense = (rng.random((6, 11)) < 0.3) * rng.integers(1, 5, (6, 11))
    f = tmp_path / "t.loom"
    with h5py.File(f, "w") as h:
        h.create_dataset("matrix", data=dense.astype(np.uint16), chunks=(3, 4))
        h.create_dataset("row_attrs/Gene", data=np.array([b"A", b"B", b"C", b"A", b"D", b"E"]))
        h.create_dataset("row_attrs/Accession", data=np.array([f"ENS{i}".encode() for i in range(6)]))
        h.create_dataset("col_attrs/CellID", data=np.array([f"c{i}" for i in range(11)], dtype="S"))
    a = io.read_loom(f, chunk_cells=4)
    assert a.shape == (11, 6) and sp.isspmatrix_csr(a.X) and a.X.dtype == np.float32
    np.testing.assert_array_equal(a.X.toarray(), dense.T)
    assert list(a.var["gene_name"]) == ["A", "B", "C", "A", "D", "E"]
    assert a.var_names.is_unique and a.obs_names[10] == "c10"
    with h5py.File(tmp_path / "bad.loom", "w") as h:
        h.create_dataset("matrix", data=dense)
        h.create_dataset("row_attrs/Gene", data=np.array([b"A"]))
    with pytest.raises(InputFormatError, match=r"bad\.loom.*1 entries.*6 rows"):
        io.read_loom(tmp_path / "bad.loom")


def _two_modalities(tmp_path, real, real_lists):
    """Tiny RNA + ATAC on the real barcode files (different orders) with recognisable values."""
    rna_bc, atac_bc = real_lists["rna_bc"], real_lists["atac_bc"]
    pos_atac = {b: i for i, b in enumerate(atac_bc)}
    # cell with RNA row i has gene 0 count (i % 7 + 1) and the ATAC peak 0 value (i % 7 + 1) too
    sel = list(range(0, 10309, 97))
    rna_e = [(0, i, i % 7 + 1) for i in sel]
    atac_e = [(0, pos_atac[rna_bc[i]], i % 7 + 1) for i in sel]
    rm = write_mtx(tmp_path / "rna.mtx.gz", rna_e, 33160, 10309)
    am = write_mtx(tmp_path / "atac.mtx.gz", atac_e, 244544, 10309)
    rna = io.read_geo_mtx(rm, real["rna_bc"], real["genes"], kind="genes")
    atac = io.read_geo_mtx(am, real["atac_bc"], real["peaks"], kind="peaks")
    return rna, atac


def test_metadata_and_pairing(tmp_path, real, real_lists):
    rna, atac = _two_modalities(tmp_path, real, real_lists)
    bcs = real_lists["rna_bc"]
    labels = np.array(["Ex-L23-Rasgrf2", "Mis", "Ast-Gja1"], dtype=object)[np.arange(len(bcs)) % 3]
    meta = pd.DataFrame({"Ident": pd.Categorical(labels)}, index=pd.Index(bcs[::-1]))
    pyreadr.write_rds(tmp_path / "meta.rds", meta)
    m = io.read_snare_metadata(tmp_path / "meta.rds")
    assert len(m) == 10309 and m.loc[bcs[-1]] == labels[0]
    # a `barcode` column instead of row names works too
    pyreadr.write_rds(tmp_path / "meta2.rds", meta.reset_index().rename(columns={"index": "barcode"}))
    m2 = io.read_snare_metadata(tmp_path / "meta2.rds")
    assert m2.sort_index().equals(m.sort_index())

    r2, a2 = io.pair_coassay(rna, atac, m)
    assert r2.obs_names.equals(a2.obs_names)
    assert "Mis" not in set(r2.obs["cell_type"]) and r2.n_obs == len(bcs) - (m == "Mis").sum()
    assert (r2.obs["cell_type"].astype(str) == m.reindex(r2.obs_names).to_numpy()).all()
    # paired by barcode: RNA gene 0 and ATAC peak 0 carry the same value in every cell
    np.testing.assert_array_equal(r2.X[:, 0].toarray(), a2.X[:, 0].toarray())
    assert r2.X[:, 0].nnz > 50


def test_unpaired_barcodes_name_files(tmp_path, real, real_lists):
    rna, atac = _two_modalities(tmp_path, real, real_lists)
    meta = pd.Series("Ast", index=rna.obs_names)
    atac2 = atac[1:].copy()
    with pytest.raises(InputFormatError, match=r"cDNA\.barcodes\.tsv\.gz.*do not pair.*chromatin\.barcodes\.tsv\.gz"):
        io.pair_coassay(rna, atac2, meta)


def test_metadata_errors(tmp_path):
    pyreadr.write_rds(tmp_path / "noident.rds", pd.DataFrame({"x": ["a"]}, index=["b1"]))
    with pytest.raises(InputFormatError, match=r"noident\.rds.*no column 'Ident'"):
        io.read_snare_metadata(tmp_path / "noident.rds")
    (tmp_path / "junk.rds").write_bytes(b"not an R file")
    with pytest.raises(InputFormatError, match=r"junk\.rds"):
        io.read_snare_metadata(tmp_path / "junk.rds")
