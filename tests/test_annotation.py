"""GENCODE GTF gene table and reference gene selection."""

import gzip

import pytest

from workflow_lib import annotation
from workflow_lib.fileutils import InputFormatError

HEADER = ["##description: test", "##provider: GENCODE"]


def gtf_line(chrom, feature, name, gtype="protein_coding", gid="ENSMUSG1", extra=""):
    attrs = f'gene_id "{gid}"; ' + (f'gene_type "{gtype}"; ' if gtype else "") + f'gene_name "{name}"; level 2;{extra}'
    return "\t".join([chrom, "HAVANA", feature, "100", "200", ".", "+", ".", attrs])


def write_gtf(path, lines):
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(HEADER + lines) + "\n")
    return path


def test_gene_table_and_filter(tmp_path):
    f = write_gtf(tmp_path / "g.gtf.gz", [
        gtf_line("chr1", "gene", "Xkr4", gid="G1"),
        gtf_line("chr1", "transcript", "Xkr4", gid="G1"),
        gtf_line("chr1", "exon", "Xkr4", gid="G1"),
        gtf_line("chr2", "gene", "Lnc1", gtype="lincRNA", gid="G2"),
        gtf_line("chrX", "gene", "Xist", gtype="lncRNA", gid="G3"),
        gtf_line("chrX", "gene", "Ddx3x", gid="G4"),
        gtf_line("chrY", "gene", "Uty", gid="G5"),
        gtf_line("chrM", "gene", "mt-Nd1", gid="G6"),
        gtf_line("chr11", "gene", "Gja1", gid="G7"),
        gtf_line("chr5", "gene", "Par1", gid="G8"),
        gtf_line("chrX", "gene", "Par1", gid="G9"),
    ])
    t = annotation.read_gencode_genes(f)
    assert len(t) == 9 and list(t.columns[:4]) == ["gene_id", "gene_name", "gene_type", "chrom"]
    assert t.set_index("gene_id").loc["G2", "gene_type"] == "lincRNA"
    pc = annotation.protein_coding_autosomal(t)
    assert list(pc.index) == ["Xkr4", "Gja1", "Par1"]
    ref = annotation.select_reference_genes(["Gja1", "Lnc1", "Unknown", "Uty", "Xkr4", "Ddx3x", "Par1"], t)
    # co-assay order kept; lncRNA, unknown, sex-chromosome (also Par1 with a chrX copy) removed
    assert list(ref.index) == ["Gja1", "Xkr4"]
    assert ref["chrom"].tolist() == ["chr11", "chr1"] and list(ref.columns) == ["gene_name", "chrom"]


def test_missing_gene_type_names_file_and_line(tmp_path):
    f = write_gtf(tmp_path / "bad.gtf.gz", [gtf_line("chr1", "gene", "A"), gtf_line("chr1", "gene", "B", gtype=None)])
    with pytest.raises(InputFormatError, match=r"bad\.gtf\.gz, line 4: gene line without a gene_type"):
        annotation.read_gencode_genes(f)


def test_short_line_and_truncated_gz(tmp_path):
    f = write_gtf(tmp_path / "short.gtf.gz", [gtf_line("chr1", "gene", "A"), "chr1\tHAVANA\tgene\t1"])
    with pytest.raises(InputFormatError, match=r"short\.gtf\.gz, line 4: expected 9"):
        annotation.read_gencode_genes(f)
    full = write_gtf(tmp_path / "full.gtf.gz", [gtf_line("chr1", "gene", f"G{i}") for i in range(3000)])
    raw = full.read_bytes()
    (tmp_path / "trunc.gtf.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputFormatError, match=r"trunc\.gtf\.gz.*(truncated|corrupt)"):
        annotation.read_gencode_genes(tmp_path / "trunc.gtf.gz")
