"""Tests of the deterministic demo source (workflow_lib/simulate.py).

The files are read back with small independent readers (gzip/scipy/h5py/pyreadr/pyliftover),
not with workflow_lib.io, so these tests pin the raw formats themselves.
"""

from __future__ import annotations

import gzip
import hashlib

import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp

from workflow_lib.simulate import REQUIRED_FILES, simulate_demo
from workflow_lib.sources import atac_set_files

DEMO = {
    "seed": 3, "n_coassay_cells": 500, "n_single_rna_cells": 900, "n_single_atac_li_cells": 700,
    "n_single_atac_fang_cells": 500, "n_genes": 400, "n_peaks": 3000, "n_cell_types": 6,
    "mm9_set": "fang",
}
FILES = {
    "snare_rna_counts": "GSE126074_AdBrainCortex_SNAREseq_cDNA.counts.mtx.gz",
    "snare_rna_barcodes": "GSE126074_AdBrainCortex_SNAREseq_cDNA.barcodes.tsv.gz",
    "snare_rna_genes": "GSE126074_AdBrainCortex_SNAREseq_cDNA.genes.tsv.gz",
    "snare_atac_counts": "GSE126074_AdBrainCortex_SNAREseq_chromatin.counts.mtx.gz",
    "snare_atac_barcodes": "GSE126074_AdBrainCortex_SNAREseq_chromatin.barcodes.tsv.gz",
    "snare_atac_peaks": "GSE126074_AdBrainCortex_SNAREseq_chromatin.peaks.tsv.gz",
    "snare_metadata": "AdBrainCortex_SNAREseq_metadata.rds",
    "zeisel_loom": "l5_all.loom",
    "li_atac_counts": "li2021_snATAC.counts.mtx.gz",
    "li_atac_barcodes": "li2021_snATAC.barcodes.tsv.gz",
    "li_atac_peaks": "li2021_snATAC.peaks.bed.gz",
    "fang_atac_counts": "fang2021_snATAC.counts.mtx.gz",
    "fang_atac_barcodes": "fang2021_snATAC.barcodes.tsv.gz",
    "fang_atac_peaks": "fang2021_snATAC.peaks.bed.gz",
    "mm9_to_mm10_chain": "mm9ToMm10.over.chain.gz",
    "gencode_gtf": "gencode.vM25.annotation.gtf.gz",
}


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    summary = simulate_demo(out, DEMO, FILES)
    return out, summary


# ---------------------------------------------------------------- small independent readers
def lines(path):
    with gzip.open(path, "rt") as fh:
        return fh.read().splitlines()


def mtx(path):
    with gzip.open(path, "rb") as fh:
        return sp.csr_matrix(scipy.io.mmread(fh))


def parse_peak(s):
    chrom, rng = s.split(":")
    a, b = rng.split("-")
    return chrom, int(a), int(b)


def read_coassay(out):
    rna = mtx(out / FILES["snare_rna_counts"]).T.tocsr()  # cells x genes
    atac = mtx(out / FILES["snare_atac_counts"]).T.tocsr()
    rb = lines(out / FILES["snare_rna_barcodes"])
    ab = lines(out / FILES["snare_atac_barcodes"])
    pos = {b: i for i, b in enumerate(ab)}
    atac = atac[[pos[b] for b in rb]]  # pair by barcode
    import pyreadr

    meta = pyreadr.read_r(str(out / FILES["snare_metadata"]))[None]
    ident = meta["Ident"].astype(str).reindex(rb).to_numpy()
    return rna, atac, rb, ident


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- tests
def test_all_files_and_determinism(sim, tmp_path):
    out, summary = sim
    atac = {k for n in ("li", "fang") for k in atac_set_files(n, None)}  # mtx_bed by default
    assert set(FILES) == set(REQUIRED_FILES) | atac
    for key, name in FILES.items():
        assert (out / name).is_file() and (out / name).stat().st_size > 0, key
    again = simulate_demo(tmp_path, DEMO, FILES)
    assert again == summary
    for key, name in FILES.items():
        assert sha(out / name) == sha(tmp_path / name), f"{key} not byte-identical"
    other = simulate_demo(tmp_path / "seed4", dict(DEMO, seed=4), FILES)
    assert sha(out / FILES["snare_rna_counts"]) != sha(tmp_path / "seed4" / FILES["snare_rna_counts"])
    assert other["n_peaks"] == DEMO["n_peaks"]


def test_gzip_mtx_shapes_and_barcodes(sim):
    out, _ = sim
    genes = lines(out / FILES["snare_rna_genes"])
    peaks = lines(out / FILES["snare_atac_peaks"])
    rb = lines(out / FILES["snare_rna_barcodes"])
    ab = lines(out / FILES["snare_atac_barcodes"])
    assert len(genes) == DEMO["n_genes"] == len(set(genes))
    assert len(peaks) == DEMO["n_peaks"] == len(set(peaks))
    with gzip.open(out / FILES["snare_rna_counts"], "rt") as fh:
        assert fh.readline().strip() == "%%MatrixMarket matrix coordinate integer general"
    rna = mtx(out / FILES["snare_rna_counts"])
    atac = mtx(out / FILES["snare_atac_counts"])
    assert rna.shape == (len(genes), len(rb))
    assert atac.shape == (len(peaks), len(ab))
    # same barcode set, different order, SNARE style 09A_<12-mer>
    assert len(rb) == DEMO["n_coassay_cells"] and set(rb) == set(ab) and rb != ab
    assert all(len(b) == 16 and b[3] == "_" and set(b[4:]) <= set("ACGT") for b in rb)
    # integer counts; ATAC values 1 or 2; RNA sparse but not empty
    assert np.all(rna.data == np.round(rna.data)) and rna.data.min() >= 1
    assert set(np.unique(atac.data)) <= {1, 2}
    assert 0.05 < rna.nnz / np.prod(rna.shape) < 0.6
    assert 0.01 < atac.nnz / np.prod(atac.shape) < 0.08


def test_peaks_parse_and_filter_removes_small_fraction(sim):
    out, _ = sim
    peaks = [parse_peak(p) for p in lines(out / FILES["snare_atac_peaks"])]
    chroms = {c for c, _, _ in peaks}
    assert {f"chr{i}" for i in range(1, 20)} <= chroms and "chrX" in chroms
    assert chroms <= {f"chr{i}" for i in range(1, 20)} | {"chrX", "chrY"}
    lens = np.array([b - a for _, a, b in peaks])
    assert lens.min() >= 200 and lens.max() <= 1500
    atac = mtx(out / FILES["snare_atac_counts"])
    n_cells = np.asarray((atac > 0).sum(1)).ravel()
    removed = (n_cells < 5) | (n_cells > 0.10 * atac.shape[1])
    assert 0 < removed.mean() < 0.12
    frac = n_cells / atac.shape[1]
    assert 0.01 < np.median(frac) < 0.08


def test_metadata_rds_labels_and_rare_type(sim):
    import pyreadr

    out, summary = sim
    meta = pyreadr.read_r(str(out / FILES["snare_metadata"]))[None]
    rb = lines(out / FILES["snare_rna_barcodes"])
    assert "Ident" in meta.columns and set(meta.index) == set(rb)
    counts = meta["Ident"].astype(str).value_counts()
    assert "Mis" in counts.index
    labels = [lab for lab in counts.index if lab != "Mis"]
    assert len(labels) == DEMO["n_cell_types"]
    frac = counts[labels] / counts[labels].sum()
    assert frac.min() < 0.05  # a rare type
    assert frac.idxmin() == summary["rare_type"]
    top2 = frac.sort_values(ascending=False)
    assert top2.iloc[1] > 1.3 * top2.iloc[2]  # two clearly largest types
    genes = set(lines(out / FILES["snare_rna_genes"]))
    for lab in labels:
        assert "-" in lab and lab.rsplit("-", 1)[1] in genes


def test_marker_gene_up_in_its_type(sim):
    out, _ = sim
    rna, _, _, ident = read_coassay(out)
    genes = lines(out / FILES["snare_rna_genes"])
    lib = np.asarray(rna.sum(1)).ravel()
    norm = sp.diags(1e4 / lib) @ rna
    for lab in set(ident) - {"Mis"}:
        j = genes.index(lab.rsplit("-", 1)[1])
        x = norm[:, j].toarray().ravel()
        inside, outside = x[ident == lab].mean(), x[(ident != lab) & (ident != "Mis")].mean()
        assert inside > 3 * outside, (lab, inside, outside)


def _auroc_per_column(scores, y):
    """Mean AUROC over columns of binary y with >= 3 positives and negatives (rank formula)."""
    from scipy.stats import rankdata

    pos = y.sum(0)
    ok = (pos >= 3) & (pos <= y.shape[0] - 3)
    r = rankdata(scores[:, ok], axis=0)
    p = pos[ok]
    n = y.shape[0] - p
    auc = ((r * y[:, ok]).sum(0) - p * (p + 1) / 2) / (p * n)
    return float(auc.mean())


def test_rna_to_atac_is_learnable_per_cell(sim):
    from sklearn.linear_model import Ridge

    out, _ = sim
    rna, atac, _, ident = read_coassay(out)
    X = np.log1p((sp.diags(1e4 / np.asarray(rna.sum(1)).ravel()) @ rna).toarray())
    Y = (atac.toarray() > 0).astype(float)
    rng = np.random.default_rng(0)
    n = X.shape[0]
    perm = rng.permutation(n)
    tr, te = perm[: int(0.7 * n)], perm[int(0.7 * n):]

    def fit_predict(Xtr, Ytr, Xte):
        return Ridge(alpha=2000.0).fit(Xtr, Ytr).predict(Xte)

    auc = _auroc_per_column(fit_predict(X[tr], Y[tr], X[te]), Y[te])
    shuffled = _auroc_per_column(fit_predict(X[tr], Y[rng.permutation(tr)], X[te]), Y[te])
    print(f"ridge AUROC {auc:.3f} vs shuffled {shuffled:.3f}")
    assert auc > 0.6 and auc > shuffled + 0.08, (auc, shuffled)

    # per cell, not only per type: within the largest type, ridge beats the type mean
    labs, cnt = np.unique(ident[ident != "Mis"], return_counts=True)
    big = labs[cnt.argmax()]
    cells = np.flatnonzero(ident == big)
    cells = cells[rng.permutation(len(cells))]
    ctr, cte = cells[: int(0.7 * len(cells))], cells[int(0.7 * len(cells)):]
    within = _auroc_per_column(fit_predict(X[ctr], Y[ctr], X[cte]), Y[cte])
    within_shuffled = _auroc_per_column(fit_predict(X[ctr], Y[rng.permutation(ctr)], X[cte]), Y[cte])
    print(f"within {big}: {within:.3f} vs shuffled {within_shuffled:.3f}")
    assert within > within_shuffled + 0.04, (within, within_shuffled)


def test_loom_structure(sim):
    out, _ = sim
    genes = lines(out / FILES["snare_rna_genes"])
    with h5py.File(out / FILES["zeisel_loom"], "r") as f:
        for g in ("row_attrs", "col_attrs", "layers", "row_graphs", "col_graphs"):
            assert isinstance(f[g], h5py.Group)
        assert "LOOM_SPEC_VERSION" in f.attrs
        m = f["matrix"]
        sym = [s.decode() for s in f["row_attrs/Gene"][:]]
        acc = [s.decode() for s in f["row_attrs/Accession"][:]]
        cid = [s.decode() for s in f["col_attrs/CellID"][:]]
        assert m.shape == (len(sym), len(cid)) == (len(acc), DEMO["n_single_rna_cells"])
        X = m[:, :]
    assert len(set(acc)) == len(acc) and len(set(cid)) == len(cid)
    assert len(sym) - len(set(sym)) >= 1  # duplicated symbols, as in the real loom
    shared = set(sym) & set(genes)
    assert 0.75 < len(shared) / len(genes) < 0.95
    assert len(set(sym) - set(genes)) > 0
    order = [genes.index(s) for s in sym if s in shared]
    assert order != sorted(order)  # different gene order
    n_feat = (X > 0).sum(0)
    assert (n_feat < 50).sum() >= 1 and (n_feat >= 50).mean() > 0.95


def test_single_atac_sets_and_liftover(sim):
    from pyliftover import LiftOver

    out, summary = sim
    snare = pd.DataFrame([parse_peak(p) for p in lines(out / FILES["snare_atac_peaks"])],
                         columns=["chrom", "start", "end"])
    lo = LiftOver(str(out / FILES["mm9_to_mm10_chain"]))
    mapped_any = np.zeros(len(snare), bool)
    for name in ("li", "fang"):
        bed = pd.read_csv(out / FILES[f"{name}_atac_peaks"], sep="\t", header=None)
        assert bed.shape[1] == 3 and (bed[2] > bed[1]).all()
        m = mtx(out / FILES[f"{name}_atac_counts"])
        bcs = lines(out / FILES[f"{name}_atac_barcodes"])
        assert m.shape == (len(bed), len(bcs)) and len(set(bcs)) == len(bcs)
        assert set(np.unique(m.data)) <= {1, 2}
        n_feat = np.asarray((m > 0).sum(0)).ravel()
        assert (n_feat < 50).sum() >= 1 and (n_feat >= 50).mean() > 0.9
        if name == DEMO["mm9_set"]:
            lifted, failed = [], 0
            for c, a, b in bed.itertuples(index=False):
                s = lo.convert_coordinate(c, int(a))
                e = lo.convert_coordinate(c, int(b) - 1)
                if not s or not e or s[0][0] != c:
                    failed += 1
                    continue
                lifted.append((c, s[0][1], e[0][1] + 1))
            assert failed >= 1  # mm9-only peaks cannot be lifted
            assert failed < 0.01 * len(bed)
            bed = pd.DataFrame(lifted)
        # overlap (>= 1 bp, half-open) with SNARE peaks
        hit = np.zeros(len(snare), bool)
        for c, grp in snare.groupby("chrom"):
            other = bed[bed[0] == c]
            ov = (other[1].to_numpy()[None, :] < grp["end"].to_numpy()[:, None]) & (
                other[2].to_numpy()[None, :] > grp["start"].to_numpy()[:, None])
            hit[grp.index] = ov.any(1)
        frac = hit.mean()
        assert 0.8 < frac < 0.97, (name, frac)
        assert abs(frac - summary[name]["snare_peaks_mapped_frac"]) < 0.02
        mapped_any |= hit
    assert mapped_any.mean() > 0.92


def test_chain_and_gtf_formats(sim):
    out, _ = sim
    chain = lines(out / FILES["mm9_to_mm10_chain"])
    headers = [ln.split() for ln in chain if ln.startswith("chain")]
    assert {h[2] for h in headers} == {f"chr{i}" for i in range(1, 20)} | {"chrX", "chrY"}
    # every chain has at least one gap and consistent block arithmetic
    i = 0
    while i < len(chain):
        h = chain[i].split()
        assert h[0] == "chain" and len(h) == 13
        t_len, q_len = int(h[6]) - int(h[5]), int(h[11]) - int(h[10])
        i += 1
        st = sq = 0
        n_gaps = 0
        while chain[i]:
            f = [int(x) for x in chain[i].split()]
            st += f[0] + (f[1] if len(f) == 3 else 0)
            sq += f[0] + (f[2] if len(f) == 3 else 0)
            n_gaps += len(f) == 3
            i += 1
        assert (st, sq) == (t_len, q_len) and n_gaps >= 1
        i += 1
    gtf = lines(out / FILES["gencode_gtf"])
    assert gtf[0].startswith("##")
    rows = [ln.split("\t") for ln in gtf if not ln.startswith("#")]
    assert all(len(r) == 9 for r in rows)
    gene_rows = [r for r in rows if r[2] == "gene"]
    assert any(r[2] == "transcript" for r in rows)
    types = {r[8].split('gene_type "')[1].split('"')[0] for r in gene_rows}
    assert {"protein_coding", "lncRNA"} <= types
    gchroms = {r[0] for r in gene_rows}
    assert {"chrX", "chrY"} <= gchroms
    names = {r[8].split('gene_name "')[1].split('"')[0] for r in gene_rows}
    snare_genes = set(lines(out / FILES["snare_rna_genes"]))
    assert 0 < len(snare_genes - names) < 0.05 * len(snare_genes)  # a few absent from the GTF
    assert all(r[8].startswith('gene_id "') for r in gene_rows)


def test_snap_format_set_split_over_sample_files(tmp_path):
    """A set with format snap is written as SnapATAC files (read back with plain h5py): cells
    split over the sample files, PM peaks as BED in the set's assembly, 1-based triplets, BD/UQ."""
    files = dict(FILES, fang_s1="S1.snap", fang_s2="S2.snap")
    sets = {"li": {"assembly": "mm10"}, "fang": {"assembly": "mm10", "format": "snap", "files": ["fang_s1", "fang_s2"]}}
    summary = simulate_demo(tmp_path, DEMO, files, sets)
    assert summary["fang"]["format"] == "snap" and summary["li"]["format"] == "mtx_bed"
    assert not (tmp_path / FILES["fang_atac_counts"]).exists()
    n_cells, peaks = [], None
    for key in ("fang_s1", "fang_s2"):
        with h5py.File(tmp_path / files[key], "r") as f:
            assert f["HD/MG"][()] == b"SNAP"
            bcs = [b.decode() for b in f["BD/name"][()]]
            uq = f["BD/UQ"][()]
            pk = (f["PM/peakChrom"][()], f["PM/peakStart"][()], f["PM/peakEnd"][()])
            i, j = f["PM/idx"][()], f["PM/idy"][()]
            assert len(uq) == len(bcs) and len(set(bcs)) == len(bcs)
            assert i.min() >= 1 and i.max() <= len(bcs) and j.min() >= 1 and j.max() <= len(pk[0])
            assert (pk[2] > pk[1]).all()
            assert (uq < 1000).sum() >= 1 and (uq >= 1000).mean() > 0.9  # a few low-quality barcodes
            peaks = pk if peaks is None else peaks
            assert all((a == b).all() for a, b in zip(pk, peaks))  # same peak set in every sample
            n_cells.append(len(bcs))
    assert sum(n_cells) == DEMO["n_single_atac_fang_cells"] and abs(n_cells[0] - n_cells[1]) <= 1
    assert summary["fang"]["n_peaks"] == len(peaks[0])
    with pytest.raises(ValueError, match="fang_s2"):
        simulate_demo(tmp_path / "x", DEMO, {k: v for k, v in files.items() if k != "fang_s2"}, sets)
