"""Deterministic demo source: simulated data in the exact file formats of the real downloads.

:func:`simulate_demo` writes the 16 files of config ``downloads`` (SNARE-seq GEO mtx/tsv, the
cell-type ``.rds``, a Zeisel-style loom, two single-assay ATAC sets as mtx + BED, an mm9->mm10
chain and a GENCODE-style GTF) from one seed. Same seed -> byte-identical files.

Generative model (shared by all data sets)
------------------------------------------
* Cell types: ``n_cell_types`` labels in the SNARE-seq style ``<Class>-<Marker>`` (two large
  types, one rare type of ~3 %). The suffix after the last ``-`` is a simulated protein-coding,
  autosomal gene that is strongly up in that type.
* Cell state: type + ``N_FACTORS`` continuous factors ~ N(0, 1) (within-type variation).
* RNA: log-rate = gene base + class/type effects + factor loadings + data-set batch shift;
  counts are Gamma-Poisson (negative binomial) around ``depth * softmax(log-rate)``.
* ATAC: logit = peak base + type/factor effects + batch shift + log depth ratio; peaks near a
  gene TSS are *linked*: their type effects and factor loadings are a scaled copy of the gene's,
  so accessibility co-varies with expression cell by cell. Non-zero values are 1 (or 2).
* Single-assay ATAC sets call their own peaks from the SNARE-seq peaks: boundaries shifted,
  some split, some merged, some missing, some novel, some touching a SNARE peak with 0 bp
  overlap. The set whose ``assembly`` is mm9 (or ``demo['mm9_set']``) is written in mm9 coordinates through the inverse of the
  simulated chain (which also contains gaps and a few mm9-only peaks that cannot be lifted).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .fileutils import atomic_path
from .snap import write_snap
from .sources import atac_set_files

# mm10 chromosome sizes (UCSC), the demo genome.
MM10_SIZES = {
    "chr1": 195471971, "chr2": 182113224, "chr3": 160039680, "chr4": 156508116,
    "chr5": 151834684, "chr6": 149736546, "chr7": 145441459, "chr8": 129401213,
    "chr9": 124595110, "chr10": 130694993, "chr11": 122082543, "chr12": 120129022,
    "chr13": 120421639, "chr14": 124902244, "chr15": 104043685, "chr16": 98207768,
    "chr17": 94987271, "chr18": 90702639, "chr19": 61431566, "chrX": 171031299,
    "chrY": 91744698,
}
AUTOSOMES = [f"chr{i}" for i in range(1, 20)]
CHROMS = AUTOSOMES + ["chrX", "chrY"]

# Cell-type labels (suffix = marker gene). The first two are the large types; RARE_LABEL is
# always included as the rare type.
LABEL_POOL = [
    "Ex-L23-Rasgrf2", "Ex-L5-Parm1", "Oli-Mal", "In-Pvalb", "Ast-Gja1", "Ex-L6-Tle4",
    "In-Sst", "OPC-Pdgfra", "In-Vip", "Ex-L4-Rorb", "In-Npy", "Ex-L6b-Nxph4", "Peri-Ebf1",
    "Endo-Flt1", "Clau-Nr4a2",
]
RARE_LABEL = "Mic-Csf1r"
MIS_LABEL = "Mis"
N_FACTORS = 4
GENE_FACTOR_SD = 0.5  # within-type variation of gene programs (log scale)
DATASETS = ("snare", "zeisel", "li", "fang")

_GENE_FAMILIES = [
    "Tmem", "Zfp", "Slc", "Kcn", "Ccdc", "Fam", "Lrrc", "Ankrd", "Rnf", "Arhgap", "Cdh",
    "Pcdh", "Sema", "Nrxn", "Grin", "Gria", "Gabr", "Syt", "Cacna", "Scn", "Adam", "Col",
    "Wdr", "Dnaj", "Ppp", "Atp", "Abca", "Plekh", "Mapk", "Rab", "Sox", "Klhl", "Trim",
]
_X_GENES_PC = ["Pcdh11x", "Nlgn3", "Kdm6a", "Huwe1", "Plp1", "Mecp2", "Syp", "Gria3"]
_Y_GENES = ["Ddx3y", "Eif2s3y", "Kdm5d", "Uty"]
_ACGT = np.array(list("ACGT"))


# ----------------------------------------------------------------------------- small helpers
def _rng(seed: int, stream: int) -> np.random.Generator:
    """Independent random stream per component (changing one part does not shift others)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(stream)]))


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.clip(x, -500.0, 500.0)))  # clip: no overflow warning


def _barcodes(rng, n: int, length: int, fmt) -> list[str]:
    """Unique random DNA barcodes, formatted with ``fmt(i, seq)``."""
    out, seen = [], set()
    while len(out) < n:
        m = max(n - len(out), 16) * 2
        seqs = _ACGT[rng.integers(0, 4, size=(m, length))]
        for row in seqs:
            s = "".join(row)
            if s not in seen:
                seen.add(s)
                out.append(fmt(len(out), s))
                if len(out) == n:
                    break
    return out


def _gz_bytes(data: bytes, path) -> None:
    """Write ``data`` gzip-compressed, atomically and reproducibly (mtime 0, no file name)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh, gzip.GzipFile(
            filename="", mode="wb", fileobj=fh, mtime=0, compresslevel=6
        ) as gz:
            gz.write(data)


def _write_lines_gz(lines, path) -> None:
    _gz_bytes(("\n".join(lines) + "\n").encode(), path)


def _write_mtx_gz(cells_x_features: sp.csr_matrix, path) -> None:
    """MatrixMarket coordinate integer general, features x cells, entries ordered by cell."""
    m = sp.csr_matrix(cells_x_features)
    m.sort_indices()
    n_cells, n_feat = m.shape
    cell = np.repeat(np.arange(1, n_cells + 1), np.diff(m.indptr))
    feat = m.indices + 1
    val = np.rint(m.data).astype(np.int64)
    head = f"%%MatrixMarket matrix coordinate integer general\n%\n{n_feat} {n_cells} {m.nnz}\n"
    body = "\n".join(map("{} {} {}".format, feat.tolist(), cell.tolist(), val.tolist()))
    _gz_bytes((head + body + ("\n" if m.nnz else "")).encode(), path)


# ----------------------------------------------------------------------------- genes
def _make_labels(n_types: int) -> list[str]:
    if n_types < 3 or n_types > len(LABEL_POOL) + 1:
        raise ValueError(f"demo.n_cell_types must be in [3, {len(LABEL_POOL) + 1}], got {n_types}")
    return LABEL_POOL[: n_types - 1] + [RARE_LABEL]


def _type_proportions(n_types: int, rng) -> np.ndarray:
    """Two large types (~58/42 of what is left), the others ~12% each, the last (rare) ~3%."""
    rest = n_types - 3
    w = rng.uniform(0.85, 1.15, rest) * 0.12
    if w.sum() > 0.5:
        w *= 0.5 / w.sum()
    rare = min(0.03, 0.5 * w.min()) if rest else 0.03
    big = 1.0 - rare - w.sum()
    p = np.concatenate([[0.58 * big, 0.42 * big], w, [rare]])
    return p / p.sum()


def _make_genes(rng, n_genes: int, labels: list[str]) -> pd.DataFrame:
    """Gene universe: SNARE-seq genes (``in_snare``), Zeisel-only extras and GTF-only genes."""
    markers = [lab.rsplit("-", 1)[1] for lab in labels]
    if n_genes < len(markers) + 40:
        raise ValueError(f"demo.n_genes must be >= {len(markers) + 40}")
    n_x = max(2, int(round(0.04 * n_genes)))
    n_y = min(len(_Y_GENES), max(1, int(round(0.005 * n_genes))))
    n_lnc = int(round(0.12 * n_genes))
    n_absent = max(2, int(round(0.02 * n_genes)))
    n_other = max(1, int(round(0.02 * n_genes)))
    n_pc = n_genes - n_x - n_y - n_lnc - n_absent - n_other
    n_zeisel_extra = int(round(0.12 * n_genes))
    n_gtf_extra = int(round(0.10 * n_genes))

    used = set(markers) | set(_X_GENES_PC) | set(_Y_GENES) | {"Xist"}

    def synth(n, maker):
        out = []
        while len(out) < n:
            s = maker()
            if s not in used:
                used.add(s)
                out.append(s)
        return out

    def pc_name():
        fam = _GENE_FAMILIES[rng.integers(len(_GENE_FAMILIES))]
        suf = "" if rng.random() < 0.7 else "abcdl"[rng.integers(5)]
        return f"{fam}{rng.integers(1, 300)}{suf}"

    def lnc_name():
        if rng.random() < 0.6:
            return f"Gm{rng.integers(10000, 50000)}"
        return f"{rng.integers(1700000, 9630000):07d}"[:4] + f"{'ABCDEFGHIJKLMNOP'[rng.integers(16)]}" \
            f"{rng.integers(1, 24):02d}Rik"

    rows = []
    # protein coding autosomal (markers first)
    pc = markers + synth(n_pc - len(markers), pc_name)
    rows += [(g, "protein_coding", "auto", True, True) for g in pc]
    x_pc = (["Xist"] + _X_GENES_PC + synth(max(0, n_x - 1 - len(_X_GENES_PC)), pc_name))[:n_x]
    rows += [(g, "lncRNA" if g == "Xist" else "protein_coding", "chrX", True, True) for g in x_pc]
    rows += [(g, "protein_coding", "chrY", True, True) for g in _Y_GENES[:n_y]]
    rows += [(g, "lncRNA", "auto", True, True) for g in synth(n_lnc, lnc_name)]
    rows += [(g, ["TEC", "processed_pseudogene"][i % 2], "auto", True, True)
             for i, g in enumerate(synth(n_other, lnc_name))]
    rows += [(g, "protein_coding", "auto", True, False)
             for g in synth(n_absent, lambda: f"AC{rng.integers(100000, 999999)}.{rng.integers(1, 4)}")]
    rows += [(g, "protein_coding", "auto", False, True) for g in synth(n_zeisel_extra, pc_name)]
    rows += [(g, ["protein_coding", "lncRNA"][i % 2], "auto", False, True)
             for i, g in enumerate(synth(n_gtf_extra, pc_name))]
    genes = pd.DataFrame(rows, columns=["symbol", "gene_type", "chromclass", "in_snare", "in_gtf"])
    n_univ = len(genes)
    genes["is_marker"] = genes["symbol"].isin(markers)

    # chromosome + position (genome-size weighted); gene body 5-150 kb
    auto_w = np.array([MM10_SIZES[c] for c in AUTOSOMES], float)
    chrom = np.where(genes["chromclass"] == "chrX", "chrX",
                     np.where(genes["chromclass"] == "chrY", "chrY", ""))
    auto = chrom == ""
    chrom[auto] = np.array(AUTOSOMES)[rng.choice(len(AUTOSOMES), auto.sum(), p=auto_w / auto_w.sum())]
    genes["chrom"] = chrom
    size = np.array([MM10_SIZES[c] for c in chrom])
    genes["start"] = (rng.uniform(0.03, 0.95, n_univ) * size).astype(np.int64)
    genes["end"] = genes["start"] + rng.integers(5000, 150000, n_univ)
    genes["strand"] = np.where(rng.random(n_univ) < 0.5, "+", "-")
    genes["tss"] = np.where(genes["strand"] == "+", genes["start"], genes["end"] - 1)
    genes["gene_id"] = [f"ENSMUSG{10000 + 37 * i:011d}" for i in range(n_univ)]
    genes["version"] = rng.integers(1, 10, n_univ)
    # Zeisel gene list: ~85% of SNARE genes (markers always) + Zeisel extras
    in_z = genes["in_snare"].to_numpy() & (rng.random(n_univ) < 0.85)
    in_z |= genes["is_marker"].to_numpy()
    in_z[n_genes:n_genes + n_zeisel_extra] = True
    genes["in_zeisel"] = in_z
    return genes.drop(columns=["chromclass"])


# ----------------------------------------------------------------------------- peaks
def _resolve_overlaps(starts, lengths, min_gap):
    """Sorted starts, shifted right so consecutive peaks keep at least ``min_gap`` bp apart."""
    order = np.argsort(starts, kind="stable")
    s = starts[order].copy()
    ln = lengths[order]
    gaps = min_gap[order]
    for i in range(1, len(s)):
        lo = s[i - 1] + ln[i - 1] + gaps[i]
        if s[i] < lo:
            s[i] = lo
    return s, ln, gaps


def _make_snare_peaks(rng, genes: pd.DataFrame, n_peaks: int) -> pd.DataFrame:
    """SNARE-seq peaks (mm10): promoter/proximal peaks around TSSs, distal peaks, close pairs."""
    g = genes[genes["in_snare"] | genes["in_zeisel"]]
    n_sex = max(2, int(round(0.03 * n_peaks)))
    n_auto = n_peaks - n_sex
    n_prox = int(0.55 * n_auto)
    # proximal: TSS + N(0, 15 kb) around random autosomal genes (promoter with prob 0.3)
    ga = g[g["chrom"].isin(AUTOSOMES)]
    pick = rng.integers(0, len(ga), n_prox)
    off = np.where(rng.random(n_prox) < 0.3, rng.integers(-400, 100, n_prox),
                   rng.normal(0, 15000, n_prox).astype(np.int64))
    chrom = list(ga["chrom"].to_numpy()[pick])
    pos = ga["tss"].to_numpy()[pick] + off
    # distal: uniform on autosomes
    n_dist = n_auto - n_prox
    w = np.array([MM10_SIZES[c] for c in AUTOSOMES], float)
    dc = np.array(AUTOSOMES)[rng.choice(19, n_dist, p=w / w.sum())]
    chrom += list(dc)
    dsize = np.array([MM10_SIZES[c] for c in dc])
    pos = np.concatenate([pos, (rng.uniform(0.02, 0.97, n_dist) * dsize).astype(np.int64)])
    # sex chromosomes: near chrX/chrY genes or uniform
    sc = np.where(rng.random(n_sex) < 0.8, "chrX", "chrY")
    chrom += list(sc)
    ssize = np.array([MM10_SIZES[c] for c in sc])
    pos = np.concatenate([pos, (rng.uniform(0.02, 0.97, n_sex) * ssize).astype(np.int64)])
    chrom = np.array(chrom)
    length = rng.integers(200, 1501, n_peaks)
    # ~4% of peaks sit 100-400 bp after their predecessor (close pairs, candidates for merging)
    min_gap = np.where(rng.random(n_peaks) < 0.04, rng.integers(100, 400, n_peaks), 3000)
    out = []
    for c in CHROMS:
        m = chrom == c
        if not m.any():
            continue
        p = np.clip(pos[m], 10000, MM10_SIZES[c] - 10 ** 6)
        # close pairs: place right after a random earlier draw
        s, ln, gp = _resolve_overlaps(p, length[m], min_gap[m])
        close = gp < 3000
        for i in np.flatnonzero(close):
            if i > 0:
                s[i] = s[i - 1] + ln[i - 1] + gp[i]
        s, ln, gp = _resolve_overlaps(s, ln, gp)
        out.append(pd.DataFrame({"chrom": c, "start": s, "end": s + ln}))
    peaks = pd.concat(out, ignore_index=True)
    # link each peak to the nearest TSS (same chromosome, within 50 kb) of a modelled gene
    link = np.full(len(peaks), -1)
    dist = np.full(len(peaks), np.inf)
    gidx = np.arange(len(genes))
    for c, pk in peaks.groupby("chrom"):
        gm = (genes["chrom"] == c).to_numpy()
        if not gm.any():
            continue
        tss = genes["tss"].to_numpy()[gm]
        mid = ((pk["start"] + pk["end"]) // 2).to_numpy()
        d = np.abs(mid[:, None] - tss[None, :])
        j = d.argmin(1)
        link[pk.index] = gidx[gm][j]
        dist[pk.index] = d[np.arange(len(mid)), j]
    peaks["gene"] = np.where(dist <= 50000, link, -1)
    peaks["dist"] = np.where(dist <= 50000, dist, np.nan)
    return peaks


# ----------------------------------------------------------------------------- programs
class _Programs:
    """Type effects, factor loadings, base rates and batch shifts for genes and peaks."""

    def __init__(self, rng, genes: pd.DataFrame, peaks: pd.DataFrame, labels: list[str],
                 n_coassay: int):
        K, G, P, F = len(labels), len(genes), len(peaks), N_FACTORS
        classes = [lab.split("-")[0] for lab in labels]
        # genes: base log-frequency (skewed: many lowly expressed genes)
        self.g_base = rng.normal(0.0, 1.3, G)
        A = rng.normal(0, 0.15, (K, G))
        for ci, cl in enumerate(sorted(set(classes))):  # weak class programs (Ex, In, ...)
            members = [k for k in range(K) if classes[k] == cl]
            if len(members) > 1:
                sel = rng.random(G) < 0.04
                A[np.ix_(members, np.flatnonzero(sel))] += rng.uniform(0.4, 0.8, sel.sum())
        for k in range(K):  # type-specific up/down genes
            up = rng.random(G) < 0.10
            A[k, up] += rng.uniform(1.5, 3.0, up.sum())
            down = rng.random(G) < 0.03
            A[k, down] -= rng.uniform(1.0, 2.0, down.sum())
        sym = genes["symbol"].to_numpy()
        for k, lab in enumerate(labels):  # the marker: up in its type, moderate elsewhere
            j = int(np.flatnonzero(sym == lab.rsplit("-", 1)[1])[0])
            A[:, j] = np.minimum(A[:, j], 0.0) - 0.5
            A[k, j] = 3.5
            self.g_base[j] = 0.5
        self.g_type = A
        B = np.zeros((F, G))
        for f in range(F):  # each factor drives a gene program (within-type variation)
            sel = rng.random(G) < 0.25
            B[f, sel] = rng.normal(0, GENE_FACTOR_SD, sel.sum())
        self.g_load = B
        self.g_theta = np.exp(rng.normal(np.log(2.5), 0.5, G))  # NB inverse dispersion
        self.g_batch = {d: rng.normal(0, 0.25, G) for d in DATASETS}

        # peaks: linked peaks copy (scaled) their gene's programs
        lk = peaks["gene"].to_numpy()
        linked = lk >= 0
        dist = np.nan_to_num(peaks["dist"].to_numpy())
        lam = np.where(linked, rng.uniform(0.8, 1.5, P) * np.exp(-dist / 80000), 0.0)
        At = rng.normal(0, 0.4, (K, P))
        Bt = rng.normal(0, 0.5, (F, P))
        At[:, linked] += lam[linked] * A[:, lk[linked]]
        Bt[:, linked] += 1.5 * lam[linked] * B[:, lk[linked]]
        for k in range(K):  # type-specific peaks (peak programs): strongly differential, as in
            # real snATAC data (open in 20-40% of the type's cells, ~1% elsewhere)
            sel = rng.random(P) < 0.15
            At[k, sel] += rng.uniform(3.0, 4.5, sel.sum())
        self.p_type, self.p_load = At, Bt
        self.p_batch = {d: rng.normal(0, 0.25, P) for d in DATASETS}
        # target mean accessibility per peak: log-uniform 1%..8% (at least ~10 co-assay cells),
        # plus ~1% very open (>10% of cells) and ~1% very rare (<5 cells) peaks -> base logit
        q_lo = max(0.01, 10.0 / n_coassay)
        q = np.exp(rng.uniform(np.log(q_lo), np.log(0.08), P))
        q[rng.random(P) < 0.01] = rng.uniform(0.13, 0.2)
        q[rng.random(P) < 0.01] = min(2.0 / n_coassay, 0.004)
        self.p_base = self._calibrate(rng, q, labels)

    def _calibrate(self, rng, q, labels):
        """Per-peak base logit so the mean accessibility over a reference population is ``q``."""
        K = len(labels)
        props = _type_proportions(K, np.random.default_rng(0))
        n = 600
        t = rng.choice(K, n, p=props)
        f = rng.normal(0, 1, (n, N_FACTORS))
        eta = self.p_type[t] + f @ self.p_load
        b = np.log(q / (1 - q))
        for _ in range(25):  # Newton steps on mean(sigmoid(b + eta)) = q
            s = _sigmoid(b + eta)
            b -= (s.mean(0) - q) / np.maximum((s * (1 - s)).mean(0), 1e-6)
        return b


# ----------------------------------------------------------------------------- cells
def _sample_cells(rng, n: int, props: np.ndarray):
    t = rng.choice(len(props), n, p=props)
    f = rng.normal(0, 1, (n, N_FACTORS))
    return t, f


def _perturbed_props(rng, props, rare_min=0.015):
    p = rng.dirichlet(props * 60)
    p[-1] = max(p[-1], rare_min)
    return p / p.sum()


def _rna_counts(rng, prog: _Programs, t, f, log_depth, dataset, gene_idx) -> sp.csr_matrix:
    """Negative-binomial counts (cells x genes of ``gene_idx``), compositional in the universe."""
    eta = prog.g_base + prog.g_type[t] + f @ prog.g_load + prog.g_batch[dataset]
    eta -= eta.max(1, keepdims=True)
    freq = np.exp(eta)
    freq /= freq.sum(1, keepdims=True)
    mu = freq[:, gene_idx] * np.exp(log_depth)[:, None]
    theta = prog.g_theta[gene_idx]
    lam = rng.gamma(theta, mu / theta)
    return sp.csr_matrix(rng.poisson(lam).astype(np.float32))


def _atac_probs(prog: _Programs, t, f, log_depth_ratio, dataset) -> np.ndarray:
    eta = prog.p_base + prog.p_type[t] + f @ prog.p_load + prog.p_batch[dataset]
    return _sigmoid(eta + log_depth_ratio[:, None])


def _binary_counts(rng, acc: np.ndarray) -> sp.csr_matrix:
    """Accessible (bool) -> mtx values 1 (or 2 with prob 0.15)."""
    m = sp.csr_matrix(acc.astype(np.float32))
    m.data = np.where(rng.random(m.nnz) < 0.15, 2.0, 1.0).astype(np.float32)
    return m


def _thin_low_quality(rng, m: sp.csr_matrix, rows, max_features: int = 40) -> sp.csr_matrix:
    """Keep only 5..max_features non-zero features in ``rows`` (cells failing the 50 filter)."""
    m = sp.csr_matrix(m, copy=True)
    keep = np.ones(m.nnz, bool)
    for r in rows:
        lo, hi = m.indptr[r], m.indptr[r + 1]
        k = min(hi - lo, int(rng.integers(5, max_features + 1)))
        drop = rng.choice(hi - lo, (hi - lo) - k, replace=False)
        keep[lo + drop] = False
    m.data[~keep] = 0
    m.eliminate_zeros()
    return m


# ----------------------------------------------------------------------------- single-assay peaks
def _derive_peak_set(rng, peaks: pd.DataFrame, keep_frac: float):
    """Peak calls of a single-assay set derived from the SNARE-seq peaks (mm10).

    Returns (set_peaks DataFrame chrom/start/end/kind, parents: list of SNARE peak index lists).
    kinds: shifted, split, merged, novel (overlaps nothing), touch (0 bp overlap), and the
    SNARE peaks left out are simply missing.
    """
    rows, parents = [], []
    for c, pk in peaks.groupby("chrom", sort=False):
        idx = pk.index.to_numpy()
        s, e = pk["start"].to_numpy(), pk["end"].to_numpy()
        n = len(idx)
        gap_prev = np.r_[10 ** 6, s[1:] - e[:-1]]
        gap_next = np.r_[s[1:] - e[:-1], 10 ** 6]
        u = rng.random(n)
        i = 0
        while i < n:
            if i + 1 < n and gap_next[i] < 500 and rng.random() < 0.5:  # merge a close pair
                ms, me = s[i] - int(rng.integers(0, 60)), e[i + 1] + int(rng.integers(0, 60))
                rows.append((c, ms, me, "merged"))
                parents.append([idx[i], idx[i + 1]])
                i += 2
                continue
            if u[i] > keep_frac:  # missing; sometimes a touching neighbour (0 bp overlap)
                if rng.random() < 0.35:
                    ln = int(rng.integers(150, 600))
                    if gap_next[i] > ln + 200:
                        rows.append((c, e[i], e[i] + ln, "touch"))
                        parents.append([])
                    elif gap_prev[i] > ln + 200:
                        rows.append((c, s[i] - ln, s[i], "touch"))
                        parents.append([])
                i += 1
                continue
            lim_l = int(min(120, gap_prev[i] // 3))
            lim_r = int(min(120, gap_next[i] // 3))
            ln = e[i] - s[i]
            if ln > 500 and rng.random() < 0.05:  # split into two peaks, both overlapping
                cut = s[i] + ln // 2
                rows.append((c, s[i] - int(rng.integers(0, lim_l + 1)), cut - 20, "split"))
                rows.append((c, cut + 20, e[i] + int(rng.integers(0, lim_r + 1)), "split"))
                parents += [[idx[i]], [idx[i]]]
            else:
                ns = s[i] + int(rng.integers(-lim_l, min(lim_r, ln // 3) + 1))
                ne = e[i] + int(rng.integers(-min(lim_l, ln // 3), lim_r + 1))
                ns, ne = min(ns, e[i] - 50), max(ne, s[i] + 50)
                if ne - ns < 100:
                    ne = ns + 100
                rows.append((c, ns, ne, "shifted"))
                parents.append([idx[i]])
            i += 1
    out = pd.DataFrame(rows, columns=["chrom", "start", "end", "kind"])
    # novel peaks: far (> 5 kb) from every SNARE peak
    n_novel = int(round(0.05 * len(peaks)))
    w = np.array([MM10_SIZES[c] for c in AUTOSOMES], float)
    nov = []
    by_chr = {c: (pk["start"].to_numpy(), pk["end"].to_numpy()) for c, pk in peaks.groupby("chrom")}
    while len(nov) < n_novel:
        c = AUTOSOMES[rng.choice(19, p=w / w.sum())]
        st = int(rng.uniform(0.02, 0.97) * MM10_SIZES[c])
        en = st + int(rng.integers(200, 1200))
        ps, pe = by_chr.get(c, (np.array([]), np.array([])))
        if len(ps) and np.any((ps < en + 5000) & (pe > st - 5000)):
            continue
        if any(cc == c and abs(ss - st) < 5000 for cc, ss, _, _ in nov):
            continue
        nov.append((c, st, en, "novel"))
    out = pd.concat([out, pd.DataFrame(nov, columns=out.columns)], ignore_index=True)
    parents += [[] for _ in nov]
    order = _chrom_order(out)
    out = out.iloc[order].reset_index(drop=True)
    parents = [parents[k] for k in order]
    return out, parents


def _chrom_order(df: pd.DataFrame) -> np.ndarray:
    rank = df["chrom"].map({c: i for i, c in enumerate(CHROMS)}).to_numpy()
    return np.lexsort((df["start"].to_numpy(), rank))


def _set_counts(rng, snare_acc: np.ndarray, parents, own_q: np.ndarray) -> sp.csr_matrix:
    """Accessibility of a peak set from its SNARE parents (OR; splits thinned) or own rate."""
    n, P = snare_acc.shape[0], len(parents)
    rows, cols = [], []
    for j, par in enumerate(parents):
        for p in par:
            rows.append(p)
            cols.append(j)
    M = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(snare_acc.shape[1], P))
    acc = (sp.csr_matrix(snare_acc.astype(np.float32)) @ M).toarray() > 0
    n_par = np.array([len(p) for p in parents])
    split_like = n_par == 1
    # split halves and shifted peaks: lose 10% of the parent's reads (peak-calling noise)
    acc &= ~(split_like[None, :] & (rng.random((n, P)) < 0.1))
    none = n_par == 0
    if none.any():
        acc[:, none] = rng.random((n, none.sum())) < own_q[none]
    return _binary_counts(rng, acc)


# ----------------------------------------------------------------------------- chain
def _make_chain(rng, intervals: dict[str, np.ndarray], n_mm9_only: int):
    """A simulated mm9 -> mm10 chain per chromosome.

    ``intervals[chrom]`` = (n, 2) mm10 intervals that must map without crossing a gap. Returns
    blocks ``{chrom: list of (q_start (mm10), t_start (mm9), size)}``, the gaps and mm9 sizes,
    plus ``mm9_only`` = list of (chrom, mm9 start, mm9 end) regions with no mm10 counterpart.
    """
    chains, mm9_only = {}, []
    for ci, c in enumerate(CHROMS):
        L = MM10_SIZES[c]
        iv = intervals.get(c, np.zeros((0, 2), np.int64))
        iv = iv[np.argsort(iv[:, 0])] if len(iv) else iv
        n_gaps = int(rng.integers(2, 5))
        cand = np.sort(rng.uniform(0.05, 0.95, 40 * n_gaps) * L).astype(np.int64)
        chosen = []
        for x in cand:
            dq = int(rng.integers(0, 2000))
            dt = int(rng.integers(0, 2000)) if dq else int(rng.integers(200, 2000))
            if ci % 4 == 0 and len(chosen) == 0:
                dt = int(rng.integers(4000, 6000))  # room for an mm9-only peak
            lo, hi = x - 1000, x + dq + 1000
            if len(iv) and np.any((iv[:, 0] < hi) & (iv[:, 1] > lo)):
                continue
            if chosen and x - (chosen[-1][0] + chosen[-1][1]) < 10 ** 6:
                continue
            chosen.append((int(x), dq, dt))
            if len(chosen) == n_gaps:
                break
        # initial offset: mm9 starts shifted relative to mm10
        q0 = 0
        t0 = int(rng.integers(0, 50000))
        blocks, q, t = [], q0, t0
        for x, dq, dt in chosen:
            blocks.append((q, t, x - q))
            t += x - q
            if dt >= 4000:
                mm9_only.append((c, t + 1000, t + 1000 + int(rng.integers(300, 1500))))
            q, t = x + dq, t + dt
        blocks.append((q, t, L - q))
        t_size = t + (L - q) + int(rng.integers(0, 30000))
        chains[c] = {"blocks": blocks, "gaps": chosen, "t_size": t_size, "q_size": L}
    return chains, mm9_only[:max(n_mm9_only, 0)]


def _mm10_to_mm9(chains, chrom: str, pos: np.ndarray) -> np.ndarray:
    blocks = chains[chrom]["blocks"]
    qs = np.array([b[0] for b in blocks])
    k = np.searchsorted(qs, pos, side="right") - 1
    ts = np.array([b[1] for b in blocks])
    sz = np.array([b[2] for b in blocks])
    if np.any(k < 0) or np.any(pos >= qs[k] + sz[k]):
        raise AssertionError("position inside a chain gap")
    return pos - qs[k] + ts[k]


def _chain_text(chains) -> str:
    out = []
    for cid, c in enumerate(CHROMS, start=1):
        ch = chains[c]
        blocks, gaps = ch["blocks"], ch["gaps"]
        t_start, t_end = blocks[0][1], blocks[-1][1] + blocks[-1][2]
        q_start, q_end = blocks[0][0], blocks[-1][0] + blocks[-1][2]
        score = sum(b[2] for b in blocks)
        out.append(f"chain {score} {c} {ch['t_size']} + {t_start} {t_end} "
                   f"{c} {ch['q_size']} + {q_start} {q_end} {cid}")
        for (q, t, size), (_, dq, dt) in zip(blocks[:-1], gaps):
            out.append(f"{size}\t{dt}\t{dq}")
        out.append(f"{blocks[-1][2]}")
        out.append("")
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------- writers
def _write_rds(meta: pd.DataFrame, path) -> None:
    """Uncompressed RDS from pyreadr (row names = index), gzipped with mtime 0 like saveRDS."""
    import tempfile

    import pyreadr

    with tempfile.TemporaryDirectory() as d:
        plain = Path(d) / "meta.rds"
        pyreadr.write_rds(str(plain), meta)
        raw = plain.read_bytes()
    _gz_bytes(raw, path)


def _write_loom(path, counts_cells_x_genes: sp.csr_matrix, symbols, accessions, cell_ids,
                cluster_names) -> None:
    import h5py

    mat = np.minimum(counts_cells_x_genes.T.toarray(), 65535).astype(np.uint16)  # genes x cells
    kw = dict(track_times=False)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", libver="earliest") as f:
            f.attrs["LOOM_SPEC_VERSION"] = "3.0.0"
            f.create_dataset("matrix", data=mat, chunks=(min(64, mat.shape[0]), min(64, mat.shape[1])),
                             compression="gzip", compression_opts=2, **kw)
            ra = f.create_group("row_attrs")
            ra.create_dataset("Gene", data=np.array(symbols, dtype="S"), **kw)
            ra.create_dataset("Accession", data=np.array(accessions, dtype="S"), **kw)
            ca = f.create_group("col_attrs")
            ca.create_dataset("CellID", data=np.array(cell_ids, dtype="S"), **kw)
            ca.create_dataset("ClusterName", data=np.array(cluster_names, dtype="S"), **kw)
            ca.create_dataset("Tissue", data=np.array(["Ctx1"] * len(cell_ids), dtype="S"), **kw)
            f.create_group("layers")
            f.create_group("row_graphs")
            f.create_group("col_graphs")
            at = f.create_group("attrs")
            at.create_dataset("LOOM_SPEC_VERSION", data=np.bytes_("3.0.0"), **kw)
            at.create_dataset("title", data=np.bytes_("Simulated l5_all (polarbear-workflow demo)"), **kw)


def _gtf_attrs(d: dict) -> str:
    return " ".join(f'{k} "{v}";' if isinstance(v, str) else f"{k} {v};" for k, v in d.items())


def _write_gtf(genes: pd.DataFrame, path) -> None:
    g = genes[genes["in_gtf"]].copy()
    g = g.iloc[_chrom_order(g)]
    lines = [
        "##description: simulated evidence-based annotation of the mouse genome (GRCm38), "
        "version M25 (polarbear-workflow demo)",
        "##provider: GENCODE",
        "##contact: none (simulated)",
        "##format: gtf",
        "##date: 2020-03-24",
    ]
    for i, r in enumerate(g.itertuples(index=False)):
        gid = f"{r.gene_id}.{r.version}"
        start, end = int(r.start) + 1, int(r.end)  # GTF: 1-based inclusive
        base = {"gene_id": gid, "gene_type": r.gene_type, "gene_name": r.symbol, "level": 2}
        lines.append("\t".join([r.chrom, "HAVANA", "gene", str(start), str(end), ".", r.strand, ".",
                                _gtf_attrs(base)]))
        if i % 3 == 0 or r.gene_type == "protein_coding" and i % 2 == 0:
            tid = f"ENSMUST{int(r.gene_id[7:]) + 5:011d}.1"
            tr = dict(base)
            tr.update({"transcript_id": tid, "transcript_type": r.gene_type,
                       "transcript_name": f"{r.symbol}-201"})
            tr = {k: tr[k] for k in ["gene_id", "transcript_id", "gene_type", "gene_name",
                                     "transcript_type", "transcript_name", "level"]}
            lines.append("\t".join([r.chrom, "HAVANA", "transcript", str(start), str(end), ".",
                                    r.strand, ".", _gtf_attrs(tr)]))
            # first exon at the TSS (gene start on +, gene end on -)
            ex_s, ex_e = (start, min(end, start + 300)) if r.strand == "+" else (max(start, end - 300), end)
            ex = dict(tr, exon_number=1)
            lines.append("\t".join([r.chrom, "HAVANA", "exon", str(ex_s), str(ex_e), ".",
                                    r.strand, ".", _gtf_attrs(ex)]))
    _write_lines_gz(lines, path)


# ----------------------------------------------------------------------------- main entry
REQUIRED_FILES = (
    "snare_rna_counts", "snare_rna_barcodes", "snare_rna_genes", "snare_atac_counts",
    "snare_atac_barcodes", "snare_atac_peaks", "snare_metadata", "zeisel_loom",
    "mm9_to_mm10_chain", "gencode_gtf",
)
ATAC_SET_NAMES = ("li", "fang")


def _snap_fragments(r, counts: sp.csr_matrix) -> np.ndarray:
    """Unique-fragment counts (BD/UQ) for simulated snap cells: ~20 fragments per accessible peak
    (most fragments fall outside peaks), so the thinned low-quality cells fall below 1000."""
    nnz = np.diff(counts.indptr).astype(np.float64)
    return np.round(nnz * 20 * np.exp(0.1 * r.normal(size=len(nnz)))).astype(np.int64)


def simulate_demo(outdir, demo: dict, files: dict[str, str], atac_sets: dict | None = None) -> dict:
    """Simulate the demo data set and write all raw files into ``outdir``.

    ``demo`` = config['demo']; ``files`` maps every download key to its file name;
    ``atac_sets`` = config['single_atac_sets'] (format per set: ``mtx_bed`` default, or ``snap``
    with its ``files`` keys; a snap set's cells are split evenly over its files, one file per
    sample). Returns a small JSON-serialisable summary (sizes, densities, labels, markers,
    expected mapping).
    """
    atac_sets = atac_sets or {}
    for name in atac_sets:
        if name not in ATAC_SET_NAMES:
            raise ValueError(f"the demo simulates single-assay ATAC sets {ATAC_SET_NAMES}, not {name!r}")
    req = list(REQUIRED_FILES) + [k for n in ATAC_SET_NAMES for k in atac_set_files(n, atac_sets.get(n))]
    missing = [k for k in req if k not in files]
    if missing:
        raise ValueError(f"files is missing download keys: {missing}")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    seed = int(demo["seed"])
    n_co = int(demo["n_coassay_cells"])
    n_sets = {"zeisel": int(demo["n_single_rna_cells"]), "li": int(demo["n_single_atac_li_cells"]),
              "fang": int(demo["n_single_atac_fang_cells"])}
    # the set to write in mm9 coordinates: demo['mm9_set'] if given, else the set whose assembly is mm9
    mm9_set = demo.get("mm9_set", next((n for n, spec in (atac_sets or {}).items()
                                         if (spec or {}).get("assembly") == "mm9"), None))
    if mm9_set not in (None, "li", "fang"):
        raise ValueError(f"demo.mm9_set must be li, fang or null, got {mm9_set!r}")
    labels = _make_labels(int(demo["n_cell_types"]))
    K = len(labels)
    props = _type_proportions(K, _rng(seed, 1))

    genes = _make_genes(_rng(seed, 2), int(demo["n_genes"]), labels)
    peaks = _make_snare_peaks(_rng(seed, 3), genes, int(demo["n_peaks"]))
    prog = _Programs(_rng(seed, 4), genes, peaks, labels, n_co)
    snare_gene_idx = np.flatnonzero(genes["in_snare"].to_numpy())
    summary: dict = {"labels": labels, "rare_type": RARE_LABEL,
                     "markers": {lab: lab.rsplit("-", 1)[1] for lab in labels},
                     "n_genes": len(snare_gene_idx), "n_peaks": len(peaks)}

    # ---- co-assay (SNARE-seq)
    r = _rng(seed, 10)
    t, f = _sample_cells(r, n_co, props)
    z1, z2 = r.normal(size=n_co), r.normal(size=n_co)
    rna_logdepth = np.log(700) + 0.45 * z1
    atac_ldr = 0.4 * (0.6 * z1 + 0.8 * z2)  # ATAC depth correlated with RNA depth (rho 0.6)
    rna = _rna_counts(r, prog, t, f, rna_logdepth, "snare", snare_gene_idx)
    acc = r.random((n_co, len(peaks))) < _atac_probs(prog, t, f, atac_ldr, "snare")
    atac = _binary_counts(r, acc)
    bc = _barcodes(r, n_co, 12, lambda i, s: f"{['09A', '09B', '09C', '09D', '09E', '09F'][i % 6]}_{s}")
    ident = np.array(labels, dtype=object)[t]
    ident[r.random(n_co) < 0.03] = MIS_LABEL
    rna_order = r.permutation(n_co)
    atac_order = r.permutation(n_co)
    meta_order = r.permutation(n_co)

    sym = genes["symbol"].to_numpy()
    _write_mtx_gz(rna[rna_order], outdir / files["snare_rna_counts"])
    _write_lines_gz([bc[i] for i in rna_order], outdir / files["snare_rna_barcodes"])
    _write_lines_gz(list(sym[snare_gene_idx]), outdir / files["snare_rna_genes"])
    _write_mtx_gz(atac[atac_order], outdir / files["snare_atac_counts"])
    _write_lines_gz([bc[i] for i in atac_order], outdir / files["snare_atac_barcodes"])
    _write_lines_gz([f"{c}:{s}-{e}" for c, s, e in peaks[["chrom", "start", "end"]].itertuples(index=False)],
                    outdir / files["snare_atac_peaks"])
    meta = pd.DataFrame(
        {"Ident": pd.Categorical(ident[meta_order], categories=sorted(set(labels) | {MIS_LABEL}))},
        index=pd.Index([bc[i] for i in meta_order]),
    )
    _write_rds(meta, outdir / files["snare_metadata"])
    acc_frac = acc.mean(0)
    summary["snare"] = {
        "n_cells": n_co, "rna_nnz_frac": round(rna.nnz / rna.shape[0] / rna.shape[1], 4),
        "rna_median_umi": float(np.median(np.asarray(rna.sum(1)).ravel())),
        "atac_nnz_frac": round(atac.nnz / atac.shape[0] / atac.shape[1], 4),
        "peaks_lt5_cells": int(((acc.sum(0)) < 5).sum()), "peaks_gt10pct": int((acc_frac > 0.10).sum()),
        "type_counts": {lab: int((t == k).sum()) for k, lab in enumerate(labels)},
        "n_mis": int((ident == MIS_LABEL).sum()),
    }

    # ---- single-assay RNA (Zeisel loom)
    r = _rng(seed, 20)
    n = n_sets["zeisel"]
    tz, fz = _sample_cells(r, n, _perturbed_props(r, props))
    zg = np.flatnonzero(genes["in_zeisel"].to_numpy())
    zg = zg[r.permutation(len(zg))]
    dup = r.choice(zg[~genes["is_marker"].to_numpy()[zg]], 2, replace=False)  # duplicated symbols
    cz = _rna_counts(r, prog, tz, fz, np.log(1500) + 0.5 * r.normal(size=n), "zeisel", zg)
    low = np.flatnonzero(r.random(n) < 0.01)
    cz = _thin_low_quality(r, cz, low)
    dup_counts = sp.csr_matrix(r.poisson(0.05, (n, len(dup))).astype(np.float32))
    cz = sp.hstack([cz, dup_counts], format="csr")
    zsym = list(sym[zg]) + list(sym[dup])
    gid = genes["gene_id"].to_numpy()
    zacc = list(gid[zg]) + [f"ENSMUSG{90000000000 + k:011d}" for k in range(len(dup))]
    cid = _barcodes(r, n, 14, lambda i, s: f"10X{82 + i % 5}_{1 + i % 3}_{s}-")
    zclust = [f"{labels[k].split('-')[0].upper()[:5]}{k + 1}" for k in tz]
    _write_loom(outdir / files["zeisel_loom"], cz, zsym, zacc, cid, zclust)
    summary["zeisel"] = {"n_cells": n, "n_genes": len(zsym), "n_low_quality": int(len(low)),
                         "duplicated": [str(g) for g in sym[dup]],
                         "snare_genes_in_zeisel": round(float(np.isin(snare_gene_idx, zg).mean()), 3),
                         "rna_nnz_frac": round(cz.nnz / cz.shape[0] / cz.shape[1], 4)}

    # ---- single-assay ATAC (li, fang)
    sets = {}
    for si, (name, keep) in enumerate((("li", 0.92), ("fang", 0.88))):
        r = _rng(seed, 30 + si)
        sp_peaks, parents = _derive_peak_set(r, peaks, keep)
        n = n_sets[name]
        ts_, fs_ = _sample_cells(r, n, _perturbed_props(r, props))
        ldr = np.log(1.0 if name == "li" else 1.2) + 0.35 * r.normal(size=n)
        sacc = r.random((n, len(peaks))) < _atac_probs(prog, ts_, fs_, ldr, name)
        own_q = np.exp(r.uniform(np.log(0.005), np.log(0.05), len(sp_peaks)))
        m = _set_counts(r, sacc, parents, own_q)
        low = np.flatnonzero(r.random(n) < 0.01)
        m = _thin_low_quality(r, m, low)
        bcs = (_barcodes(r, n, 16, lambda i, s: f"CEMBA{171206 + i % 4}_3C_{s}") if name == "li"
               else _barcodes(r, n, 16, lambda i, s: f"{s}-{1 + i % 2}"))
        mapped = np.zeros(len(peaks), bool)
        for par in parents:
            mapped[par] = True
        sets[name] = dict(peaks=sp_peaks, counts=m, barcodes=bcs, mapped=mapped, low=len(low))

    # ---- chain: gaps avoid every mm10 peak of every set
    ivs = {}
    for c in CHROMS:
        parts = [peaks.loc[peaks["chrom"] == c, ["start", "end"]].to_numpy()]
        for s in sets.values():
            parts.append(s["peaks"].loc[s["peaks"]["chrom"] == c, ["start", "end"]].to_numpy())
        ivs[c] = np.concatenate(parts).astype(np.int64)
    chains, mm9_only = _make_chain(_rng(seed, 40), ivs, n_mm9_only=3)
    _gz_bytes(_chain_text(chains).encode(), outdir / files["mm9_to_mm10_chain"])

    for name, s in sets.items():
        pk = s["peaks"]
        counts = s["counts"]
        if name == mm9_set:
            st, en = pk["start"].to_numpy().copy(), pk["end"].to_numpy().copy()
            for c in pk["chrom"].unique():
                msk = (pk["chrom"] == c).to_numpy()
                st[msk] = _mm10_to_mm9(chains, c, st[msk])
                en[msk] = _mm10_to_mm9(chains, c, en[msk] - 1) + 1
            pk = pd.DataFrame({"chrom": pk["chrom"], "start": st, "end": en, "kind": pk["kind"]})
            # mm9-only peaks (no mm10 counterpart) with their own accessibility
            extra = pd.DataFrame([(c, a, b, "mm9_only") for c, a, b in mm9_only], columns=pk.columns)
            pk = pd.concat([pk, extra], ignore_index=True)
            r = _rng(seed, 50)
            ex = _binary_counts(r, r.random((counts.shape[0], len(extra))) < 0.03)
            counts = sp.hstack([counts, ex], format="csr")
            order = _chrom_order(pk)
            pk = pk.iloc[order].reset_index(drop=True)
            counts = counts[:, order]
        spec = atac_sets.get(name) or {}
        if spec.get("format", "mtx_bed") == "snap":
            keys = atac_set_files(name, spec)
            if not keys:
                raise ValueError(f"single_atac_sets.{name}: format snap needs a non-empty files list")
            uq = _snap_fragments(_rng(seed, 60 + ATAC_SET_NAMES.index(name)), counts)
            for key, rows in zip(keys, np.array_split(np.arange(counts.shape[0]), len(keys))):
                write_snap(outdir / files[key], [s["barcodes"][i] for i in rows], counts[rows],
                           peaks=pk[["chrom", "start", "end"]], unique_fragments=uq[rows])
        else:
            _write_mtx_gz(counts, outdir / files[f"{name}_atac_counts"])
            _write_lines_gz(s["barcodes"], outdir / files[f"{name}_atac_barcodes"])
            bed = [f"{c}\t{a}\t{b}" for c, a, b in pk[["chrom", "start", "end"]].itertuples(index=False)]
            _write_lines_gz(bed, outdir / files[f"{name}_atac_peaks"])
        summary[name] = {"format": spec.get("format", "mtx_bed"),
            "n_cells": counts.shape[0], "n_peaks": len(pk), "n_low_quality": s["low"],
            "assembly": "mm9" if name == mm9_set else "mm10",
            "peak_kinds": {k: int(v) for k, v in pk["kind"].value_counts().sort_index().items()},
            "atac_nnz_frac": round(counts.nnz / counts.shape[0] / max(counts.shape[1], 1), 4),
            "snare_peaks_mapped_frac": round(float(s["mapped"].mean()), 4),
        }
    both = sets["li"]["mapped"] & sets["fang"]["mapped"]
    either = sets["li"]["mapped"] | sets["fang"]["mapped"]
    summary["snare_peaks_mapped_any"] = round(float(either.mean()), 4)
    summary["snare_peaks_mapped_all"] = round(float(both.mean()), 4)
    summary["mm9_only_peaks"] = len(mm9_only) if mm9_set else 0

    _write_gtf(genes, outdir / files["gencode_gtf"])
    summary["gtf_genes"] = int(genes["in_gtf"].sum())
    absent = ~genes["in_gtf"].to_numpy()[snare_gene_idx]
    summary["snare_genes_absent_from_gtf"] = [str(g) for g in sym[snare_gene_idx][absent]]
    return summary


# ----------------------------------------------------------------------------- authors' format
# Ident codes of the SNARE-seq metadata (as in the authors' evaluate_polarbear.R mapping), given
# to the simulated types in this order; Chen et al. 2019 cluster names are their inverse.
_AUTHORS_IDENTS = ["E2Rasgrf2", "OliM", "InP", "Ast", "E5Parm1", "OPC", "E6Tle4", "InS", "Mic"]
AUTHORS_STREAM = 100   # RNG streams 100+ : nothing of the raw demo files' streams is used


def _write_mtx_plain(cells_x_features: sp.csr_matrix, path) -> None:
    """MatrixMarket coordinate integer general, cells x features (as scipy mmwrite lays it out)."""
    m = sp.coo_matrix(cells_x_features)
    order = np.lexsort((m.row, m.col))
    head = f"%%MatrixMarket matrix coordinate integer general\n%\n{m.shape[0]} {m.shape[1]} {m.nnz}\n"
    body = "".join(f"{i + 1} {j + 1} {int(round(v))}\n" for i, j, v in
                   zip(m.row[order].tolist(), m.col[order].tolist(), m.data[order].tolist()))
    with atomic_path(path) as tmp:
        tmp.write_text(head + body)


def _write_onehot(cols: np.ndarray, k: int, path) -> None:
    """One-hot batch matrix in MatrixMarket *array* format (what mmwrite makes of a dense array)."""
    dense = np.zeros((len(cols), k))
    dense[np.arange(len(cols)), cols] = 1
    lines = [f"%%MatrixMarket matrix array real general\n%\n{dense.shape[0]} {dense.shape[1]}\n"]
    lines += [f"{v:.18e}\n" for v in dense.T.ravel()]   # column-major
    with atomic_path(path) as tmp:
        tmp.write_text("".join(lines))


def _write_text(lines, path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text("".join(f"{ln}\n" for ln in lines))


def simulate_authors(outdir, files: dict[str, str], seed: int = 7, n_coassay: int = 400,
                     n_single: int = 400, n_genes: int = 300, n_peaks: int = 800,
                     n_cell_types: int = 5) -> dict:
    """Write a small data set in the Polarbear authors' processed format (source ``authors``).

    ``files`` maps the authors' download keys (``authors_*`` and ``snare_metadata``, see
    workflow_lib.sources) to file names in ``outdir``. Uses its own random streams (seed,
    100+), so the raw demo files of :func:`simulate_demo` are untouched. Peaks are listed in
    lexicographic chromosome order with chrX/chrY peaks (as the authors' file does), the babel
    split holds out the two largest types (a few cells are in no list), the one-hot batch files
    are MatrixMarket arrays. Returns a summary.
    """
    from .xlsx import write_xlsx

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    path = {k: outdir / v for k, v in files.items()}
    labels = _make_labels(n_cell_types)
    idents = _AUTHORS_IDENTS[: n_cell_types]
    props = _type_proportions(len(labels), _rng(seed, AUTHORS_STREAM + 1))
    genes = _make_genes(_rng(seed, AUTHORS_STREAM + 2), n_genes, labels)
    peaks = _make_snare_peaks(_rng(seed, AUTHORS_STREAM + 3), genes, n_peaks)
    prog = _Programs(_rng(seed, AUTHORS_STREAM + 4), genes, peaks, labels, n_coassay)
    gidx = np.flatnonzero(genes["in_snare"].to_numpy())
    r = _rng(seed, AUTHORS_STREAM + 10)

    # peaks in lexicographic chromosome order (chr1, chr10, ..., chr2, ..., chrX, chrY)
    porder = np.lexsort((peaks["start"].to_numpy(), peaks["chrom"].to_numpy().astype(str)))
    pk = peaks.iloc[porder].reset_index(drop=True)

    def atac(t, f, dataset, n):
        acc = r.random((n, len(peaks))) < _atac_probs(prog, t, f, 0.3 * r.normal(size=n), dataset)
        return _binary_counts(r, acc)[:, porder]

    t, f = _sample_cells(r, n_coassay, props)
    rna = _rna_counts(r, prog, t, f, np.log(700) + 0.4 * r.normal(size=n_coassay), "snare", gidx)
    co_atac = atac(t, f, "snare", n_coassay)
    bc = _barcodes(r, n_coassay, 12, lambda i, s: f"{['09A', '09B', '09C'][i % 3]}_{s}")
    ts, fs = _sample_cells(r, n_single, _perturbed_props(r, props))
    srna = _rna_counts(r, prog, ts, fs, np.log(1500) + 0.4 * r.normal(size=n_single), "zeisel", gidx)
    ta, fa = _sample_cells(r, n_single, _perturbed_props(r, props))
    half = n_single // 2
    satac = sp.vstack([atac(ta[:half], fa[:half], "li", half),
                       atac(ta[half:], fa[half:], "fang", n_single - half)], format="csr")
    sbc = _barcodes(r, n_single, 14, lambda i, s: f"10X{82 + i % 3}_{s}")
    abc = _barcodes(r, n_single, 16, lambda i, s: f"CEMBA{180305 + i % 2}_{s}")

    sym = genes["symbol"].to_numpy()[gidx]
    _write_mtx_plain(rna, path["authors_rna_snareseq"])
    _write_mtx_plain(co_atac, path["authors_atac_snareseq"])
    _write_mtx_plain(srna, path["authors_rna_single"])
    _write_mtx_plain(satac, path["authors_atac_single"])
    for key, names in (("authors_rna_snareseq_barcodes", bc), ("authors_atac_snareseq_barcodes", bc),
                       ("authors_rna_single_barcodes", sbc), ("authors_atac_single_barcodes", abc)):
        _write_text(["\tindex"] + [f"{i}\t{b}" for i, b in enumerate(names)], path[key])
    _write_onehot(np.zeros(n_coassay, np.int64), 2, path["authors_rna_snareseq_batches"])
    _write_onehot(np.ones(n_single, np.int64), 2, path["authors_rna_single_batches"])
    _write_onehot(np.zeros(n_coassay, np.int64), 3, path["authors_atac_snareseq_batches"])
    _write_onehot(np.repeat([1, 2], [half, n_single - half]), 3, path["authors_atac_single_batches"])
    _write_text(list(sym), path["authors_rna_genes"])
    _write_text([f"{c}:{s}-{e}" for c, s, e in pk[["chrom", "start", "end"]].itertuples(index=False)],
                path["authors_atac_peaks"])
    ident = np.array(idents, dtype=object)[t]
    meta = pd.DataFrame({"Ident": pd.Categorical(ident, categories=sorted(set(idents)))},
                        index=pd.Index(list(bc)))
    _write_rds(meta, path["snare_metadata"])

    # BABEL's split: the largest type -> valid, the second -> test (Leiden-like), 2% unlisted
    sizes = pd.Series(t).value_counts()
    split = np.full(n_coassay, "train", dtype=object)
    split[t == sizes.index[0]] = "valid"
    split[t == sizes.index[1]] = "test"
    split[r.random(n_coassay) < 0.02] = "none"
    for name in ("train", "valid", "test"):
        _write_text([b for b, s in zip(bc, split) if s == name], path[f"authors_babel_{name}"])

    # DE sets: peaks by 1-based position in the authors' autosomal order; genes per cluster
    chroms = pk["chrom"].to_numpy().astype(str)
    n_auto = int((~np.isin(chroms, ["chrX", "chrY"])).sum())
    de_idx = np.sort(r.choice(n_auto, max(1, n_auto // 5), replace=False)) + 1
    _write_text(["index\tcelltype"] + [f"{i}\t{idents[i % len(idents)]}" for i in de_idx], path["authors_atac_de_peaks"])
    from .authors import CLUSTER_TO_IDENT
    cluster_of = {v: k for k, v in CLUSTER_TO_IDENT.items()}
    rows = [["Supplementary Table 1 (simulated)"], ["Differentially expressed genes"], [],
            ["Gene", "p_val", "avg_logFC", "Cluster"]]
    for k, lab in enumerate(labels):
        chosen = [lab.rsplit("-", 1)[1]] + list(r.choice(sym, 5, replace=False))
        rows += [[g, 1e-10, 1.5, cluster_of[idents[k]]] for g in dict.fromkeys(chosen)]
    write_xlsx(path["authors_de_genes"], {"Adult_cerebral_cortex": rows, "Adult_cerebral_cortex_peaks": [["x"]]})
    return {"n_coassay": n_coassay, "n_single_rna": n_single, "n_single_atac": n_single,
            "n_genes": len(sym), "n_peaks": len(pk), "n_autosomal_peaks": n_auto, "idents": idents,
            "babel": pd.Series(split).value_counts().to_dict(), "n_de_peaks": len(de_idx)}
