"""Source `authors`: the Polarbear authors' processed files (simulated small in their format by
simulate.simulate_authors) -> the processed-h5ad contract, the babel split, the authors' DE
sets; clear errors for wrong shapes, barcode counts and missing files; the processed stage run
by Snakemake from file:// URLs."""

import shutil

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import copy_repo, run_snakemake
from workflow_lib import authors as A
from workflow_lib.evaluate import authors_gene_de, authors_peak_de
from workflow_lib.fileutils import InputFormatError, get_logger
from workflow_lib.cells import validate_processed
from workflow_lib.simulate import simulate_authors
from workflow_lib.sources import AUTHORS_BABEL, AUTHORS_DE, AUTHORS_FILES

KINDS = ("coassay_rna", "coassay_atac", "single_rna", "single_atac")
KEYS = {**AUTHORS_FILES, **AUTHORS_BABEL, **AUTHORS_DE}   # input name -> download key


@pytest.fixture(scope="module")
def raw(tmp_path_factory, default_config):
    d = tmp_path_factory.mktemp("authors_raw")
    files = {k: default_config["downloads"][k]["file"] for k in KEYS.values()}
    summary = simulate_authors(d, files, n_coassay=300, n_single=200, n_genes=200, n_peaks=500)
    return d, files, summary


def _inputs(d, files):
    return {name: str(d / files[key]) for name, key in KEYS.items()}


def _outputs(d):
    out = {k: str(d / f"{k}.h5ad") for k in KINDS}
    out.update(splits=str(d / "splits.tsv"), de_peaks=str(d / "de_peaks.tsv"), de_genes=str(d / "de_genes.tsv"))
    return out


def _build(inputs, outputs):
    A.build_authors_processed(inputs, outputs, seed=0, fracs=[0.6, 0.2, 0.2], resolution=1.0, n_pcs=20,
                              n_neighbors=15, logger=get_logger(None))


@pytest.fixture(scope="module")
def built(raw, tmp_path_factory):
    d, files, summary = raw
    out = tmp_path_factory.mktemp("authors_processed")
    outputs = _outputs(out)
    _build(_inputs(d, files), outputs)
    return outputs, summary


def test_processed_contract_holds(built):
    outputs, summary = built
    cats = {"batch": {"rna": ["authors_1", "authors_2"], "atac": ["authors_1", "authors_2", "authors_3"]},
            "dataset": {"rna": ["snare", "zeisel"], "atac": ["snare", "li_fang"]}}
    assert validate_processed({k: outputs[k] for k in KINDS}, categories=cats, extra_splits=["split_babel"]) == []
    atac = ad.read_h5ad(outputs["coassay_atac"])
    assert atac.n_vars == summary["n_autosomal_peaks"] and not set(atac.var["chrom"]) & {"chrX", "chrY"}
    single = ad.read_h5ad(outputs["single_atac"])
    assert single.obs["batch"].value_counts().to_dict() == {"authors_2": 100, "authors_3": 100, "authors_1": 0}


def test_babel_split_and_cell_types(built):
    outputs, summary = built
    rna = ad.read_h5ad(outputs["coassay_rna"])
    counts = rna.obs["split_babel"].astype(str).value_counts().to_dict()
    assert counts == {"train" if k == "train" else "val" if k == "valid" else k: v for k, v in summary["babel"].items()}
    assert set(rna.obs["cell_type"].astype(str)) <= set(summary["idents"])
    # BABEL's test set is one cell type (the second largest), as the simulator made it
    assert rna.obs.loc[rna.obs["split_babel"] == "test", "cell_type"].nunique() == 1
    tab = pd.read_csv(outputs["splits"], sep="\t")
    assert {"barcode", "split_random", "split_unseen", "split_babel", "leiden"} <= set(tab.columns)


def test_de_peaks_follow_the_authors_autosomal_order(raw, built):
    d, files, _ = raw
    outputs, _ = built
    lines = (d / files["authors_atac_peaks"]).read_text().split()
    noxy = [p for c in dict.fromkeys(x.split(":")[0] for x in lines) if c not in ("chrX", "chrY")
            for p in lines if p.split(":")[0] == c]
    idx = pd.read_csv(d / files["authors_atac_de_peaks"], sep="\t")["index"]
    want = [noxy[i - 1] for i in idx]
    assert pd.read_csv(outputs["de_peaks"], sep="\t")["peak"].tolist() == want
    genes = pd.read_csv(outputs["de_genes"], sep="\t")
    assert set(genes["ident"]) <= set(A.CLUSTER_TO_IDENT.values()) and "Ex-L2/3-Rasgrf2" in set(genes["cluster"])


def test_authors_de_sets_in_evaluation(built):
    outputs, _ = built
    log = get_logger(None)
    genes = pd.read_csv(outputs["de_genes"], sep="\t")
    names = np.array(sorted(set(genes["gene"])) + ["NotDE1"])
    assert authors_gene_de(names, outputs["de_genes"], "random", ["E2Rasgrf2"], log).sum() == len(names) - 1
    held = authors_gene_de(names, outputs["de_genes"], "babel", ["E2Rasgrf2"], log)
    assert set(names[held]) == set(genes.loc[genes["ident"] == "E2Rasgrf2", "gene"])
    assert authors_gene_de(names, outputs["de_genes"], "unseen", ["Nope"], log) is None
    peaks = pd.read_csv(outputs["de_peaks"], sep="\t")["peak"].tolist()
    assert authors_peak_de(peaks + ["chr1:1-2"], outputs["de_peaks"]).tolist() == [True] * len(peaks) + [False]


# --- clear errors ---------------------------------------------------------------------------

def _copy_raw(raw, tmp_path):
    d, files, _ = raw
    c = tmp_path / "raw"
    shutil.copytree(d, c)
    return c, files


def test_missing_file_is_named(raw, tmp_path):
    c, files = _copy_raw(raw, tmp_path)
    (c / files["authors_atac_single_batches"]).unlink()
    with pytest.raises(InputFormatError, match=r"adultbrainfull50_atac_outer_single_barcodes_dataset\.mtx: file not found"):
        _build(_inputs(c, files), _outputs(tmp_path / "out"))


def test_barcode_count_mismatch_is_named(raw, tmp_path):
    c, files = _copy_raw(raw, tmp_path)
    p = c / files["authors_rna_single_barcodes"]
    p.write_text("\n".join(p.read_text().splitlines()[:-3]) + "\n")
    with pytest.raises(InputFormatError, match=r"adultbrainfull50_rna_outer_single\.mtx: matrix has 200 rows \(cells\) "
                                               r"but .*adultbrainfull50_rna_outer_single_barcodes\.tsv lists 197"):
        _build(_inputs(c, files), _outputs(tmp_path / "out"))


def test_wrong_feature_count_is_named(raw, tmp_path):
    c, files = _copy_raw(raw, tmp_path)
    p = c / files["authors_rna_genes"]
    p.write_text(p.read_text() + "ExtraGene\n")
    with pytest.raises(InputFormatError, match=r"outer_snareseq\.mtx: matrix has 200 columns .*_genes\.txt lists 201"):
        _build(_inputs(c, files), _outputs(tmp_path / "out"))


def test_onehot_errors(tmp_path):
    p = tmp_path / "x_barcodes_dataset.mtx"
    p.write_text("%%MatrixMarket matrix coordinate integer general\n3 2 3\n1 1 1\n2 2 1\n3 1 1\n")
    col, k = A.read_onehot(p, 3)
    assert col.tolist() == [0, 1, 0] and k == 2
    with pytest.raises(InputFormatError, match=r"x_barcodes_dataset\.mtx: one-hot batch matrix has 3 rows but b\.tsv has 4"):
        A.read_onehot(p, 4, "b.tsv")
    p.write_text("%%MatrixMarket matrix coordinate integer general\n3 2 4\n1 1 1\n2 2 1\n3 1 1\n3 2 1\n")
    with pytest.raises(InputFormatError, match="row 3 is not one-hot"):
        A.read_onehot(p, 3)


def test_barcodes_tsv_needs_index_column(tmp_path):
    p = tmp_path / "b.tsv"
    p.write_text("barcode\nAAA\n")
    with pytest.raises(InputFormatError, match=r"b\.tsv, line 1: no column 'index'"):
        A.read_barcodes_tsv(p)


def test_de_peak_index_out_of_range_names_line(tmp_path):
    peaks = pd.DataFrame({"chrom": ["chr2", "chrX", "chr1"], "start": [1, 1, 1], "end": [5, 5, 5]},
                         index=["chr2:1-5", "chrX:1-5", "chr1:1-5"])
    p = tmp_path / "de.txt"
    p.write_text("index\n2\n1\n")
    assert A.read_de_peaks(p, peaks) == ["chr1:1-5", "chr2:1-5"]
    p.write_text("index\n1\n3\n")
    with pytest.raises(InputFormatError, match=r"de\.txt, line 3: index '3' is not a 1-based position among the 2"):
        A.read_de_peaks(p, peaks)


def test_babel_barcode_not_in_coassay(tmp_path):
    for name, text in (("train", "A\nB\n"), ("valid", "C\n"), ("test", "Z\n")):
        (tmp_path / f"{name}.txt").write_text(text)
    lists = {f"babel_{n}": tmp_path / f"{n}.txt" for n in ("train", "valid", "test")}
    with pytest.raises(InputFormatError, match=r"test\.txt, line 1: barcode 'Z' is not a co-assay cell"):
        A.babel_split(pd.Index(["A", "B", "C", "D"]), lists, get_logger(None))


# --- the processed stage through Snakemake, downloads from file:// URLs --------------------------

def test_snakemake_processed_stage_from_the_authors_files(raw, tmp_path):
    d, files, _ = raw
    work = copy_repo(tmp_path / "wf")
    overlay = {"source": "authors", "downloads": {
        key: {"file": files[key], "url": (d / files[key]).resolve().as_uri(), "md5": None} for key in KEYS.values()}}
    (work / "authors_local.yaml").write_text(yaml.safe_dump(overlay))
    run_snakemake(work, "--cores", "1", "all_processed", "check_sources", "--configfile", "config.yaml",
                  "authors_local.yaml")
    res = work / "results"
    for v in ("full", "exp", "var"):
        for k in KINDS:
            assert (res / "processed" / v / f"{k}.h5ad").is_file()
    rna = ad.read_h5ad(res / "processed" / "exp" / "coassay_rna.h5ad")
    assert "split_babel" in rna.obs
    check = pd.read_csv(res / "raw" / "sources_check.tsv", sep="\t")
    assert len(check) == len(KEYS) and check["ok"].all()
    # unverified downloads recorded their sha256
    assert (res / "raw" / "checksums" / f"{files['authors_rna_snareseq']}.sha256").is_file()


def test_authors_dry_run_resolves_offline(tmp_path):
    work = copy_repo(tmp_path / "wf")
    proc = run_snakemake(work, "-n", "--config", "source=authors")
    out = proc.stdout + proc.stderr
    assert "processed_authors" in out and "download" in out and "pretrain_vae" in out
    assert "snap_export" not in out and "processed_full" not in out
    proc = run_snakemake(work, "-n", "--config", "source=public", "scenarios=[random,babel]", check=False)
    assert proc.returncode != 0 and "scenario 'babel' needs source: authors" in proc.stdout + proc.stderr
