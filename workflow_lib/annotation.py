"""GENCODE annotation: gene table from a GTF and the reference gene selection
(protein-coding, autosomal genes of the co-assay, matched by symbol)."""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np
import pandas as pd

from .fileutils import InputFormatError
from .genome import is_autosome
from .io import _GZIP_ERRORS, open_text

_ATTR = {k: re.compile(k + r' "([^"]*)"') for k in ("gene_id", "gene_type", "gene_name")}


def read_gencode_genes(path) -> pd.DataFrame:
    """Gene lines (column 3 == ``gene``) of a GENCODE GTF(.gz) -> DataFrame
    (gene_id, gene_name, gene_type, chrom, start, end) in file order.

    A gene line with fewer than 9 tab-separated columns or without ``gene_name``/``gene_type``
    raises InputFormatError naming the file and line.
    """
    ids, names, types, chroms, starts, ends = [], [], [], [], [], []
    try:
        with open_text(path) as fh:
            for lineno, line in enumerate(fh, start=1):
                if line.startswith("#") or not line.strip():
                    continue
                if "\tgene\t" not in line:
                    if line.count("\t") < 8:
                        raise InputFormatError(path, f"expected 9 tab-separated GTF columns, "
                                                     f"found {line.count(chr(9)) + 1}", line=lineno)
                    continue
                f = line.rstrip("\n").split("\t")
                if len(f) < 9:
                    raise InputFormatError(path, f"expected 9 tab-separated GTF columns, found {len(f)}", line=lineno)
                if f[2] != "gene":
                    continue
                attrs = f[8]
                vals = {}
                for k, rx in _ATTR.items():
                    m = rx.search(attrs)
                    if m is None and k != "gene_id":
                        raise InputFormatError(path, f"gene line without a {k} attribute", line=lineno)
                    vals[k] = m.group(1) if m else ""
                ids.append(vals["gene_id"])
                names.append(vals["gene_name"])
                types.append(vals["gene_type"])
                chroms.append(f[0])
                starts.append(int(f[3]))
                ends.append(int(f[4]))
    except InputFormatError:
        raise
    except _GZIP_ERRORS as e:
        raise InputFormatError(path, f"truncated or corrupt gzip file ({e.__class__.__name__}: {e})") from e
    if not names:
        raise InputFormatError(path, "no gene lines (column 3 == 'gene') found")
    return pd.DataFrame({"gene_id": ids, "gene_name": names, "gene_type": types, "chrom": chroms,
                         "start": np.array(starts, dtype=np.int64), "end": np.array(ends, dtype=np.int64)})


def protein_coding_autosomal(genes: pd.DataFrame) -> pd.DataFrame:
    """Protein-coding genes on autosomes (drops chrX, chrY, chrM and unplaced contigs), one row
    per symbol (first occurrence), indexed by gene_name."""
    keep = (genes["gene_type"].to_numpy() == "protein_coding") & is_autosome(genes["chrom"].to_numpy())
    g = genes.loc[keep].drop_duplicates("gene_name", keep="first")
    return g.set_index(pd.Index(g["gene_name"].to_numpy(), name=None))


def select_reference_genes(coassay_symbols: Sequence[str], genes: pd.DataFrame) -> pd.DataFrame:
    """The co-assay genes (in their order) that are protein-coding and autosomal in ``genes``
    (a read_gencode_genes table). Symbols that are also annotated on a sex chromosome are dropped.
    Returns DataFrame indexed by symbol with columns gene_name, chrom."""
    pc = protein_coding_autosomal(genes)
    sex = set(genes.loc[genes["chrom"].isin(["chrX", "chrY", "chrM"]), "gene_name"])
    sym = pd.Index(pd.unique(np.asarray(coassay_symbols, dtype=str)))
    keep = sym[sym.isin(pc.index) & ~sym.isin(list(sex))]
    out = pd.DataFrame({"gene_name": np.asarray(keep, dtype=str),
                        "chrom": pc.loc[keep, "chrom"].to_numpy().astype(str)}, index=pd.Index(keep, dtype=str))
    return out
