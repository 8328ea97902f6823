"""BABEL baseline (Wu et al., PNAS 2021): two autoencoders, one per modality, sharing ONE latent space.

Training runs all four paths on every co-assay minibatch -- RNA->RNA, ATAC->ATAC, RNA->ATAC,
ATAC->RNA -- so an RNA cell and its ATAC profile must map to the same code to be decoded well by
both decoders. Loss per minibatch (means over cells and features), no KL term:
``NLL_NB(rna|z_rna) + NLL_NB(rna|z_atac) + weight * (BCE(atac|z_atac) + BCE(atac|z_rna))``;
``weight`` balances the ATAC loss (BABEL's default 1.33).

Two implementations (config ``babel.architecture``):

:class:`BabelAuthorsModel` (``authors``, the default) follows the authors' code
(wukevin/babel, ``babel/models/autoencoders.py`` AssymSplicedAutoEncoder with its Encoder,
Decoder, ChromEncoder and ChromDecoder; ``bin/train_model.py``; ``babel/sc_data_loaders.py``):

* every hidden layer, including the latent code, is Linear -> BatchNorm1d -> PReLU (one PReLU
  slope per layer, per chromosome in the per-chromosome blocks); Linear weights Xavier-uniform;
* RNA input: counts scaled to the median library size, log1p, z-scored per gene, clipped to the
  0.5th / 99.5th percentile of all entries (statistics stored as buffers of the model);
* RNA encoder: G -> ``rna_hidden`` (64) -> latent (16); RNA decoder: latent -> 64 -> two heads,
  mean = clamp(exp(.), 1e-5, 1e6) and dispersion = clamp(softplus(.), 1e-4, 1e3) per cell and gene;
  the RNA target is the size-normalised count (counts / library * median library); loss = NB NLL;
* ATAC encoder: per chromosome peaks -> 32 -> 16, concatenated -> latent; ATAC decoder: latent ->
  16 per chromosome -> 32 per chromosome -> that chromosome's peaks, sigmoid; loss = BCE.

:class:`BabelModel` (``compact``) is the earlier, independent implementation from the paper's
description: no BatchNorm, a linear latent layer, log1p(counts / library * median) input, a
softmax RNA decoder whose frequencies times the cell's library give the NB mean, and one learned
inverse dispersion per gene (on raw counts).

Both expose the same interface (``encode_rna``, ``encode_atac``, ``rna_frequencies`` -- the
predicted expression frequencies, rows summing to 1 --, ``atac_probs``, ``path_losses``, ``loss``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .chromsplit import ChromSplitLinear
from .distributions import bernoulli_log_prob, nb_log_prob


ARCHITECTURES = ("authors", "compact")


class _FourPaths:
    """BABEL's training objective, shared by both architectures: every minibatch runs RNA->RNA,
    ATAC->RNA (NLL) and ATAC->ATAC, RNA->ATAC (BCE); the subclass provides the encoders,
    ``rna_nll`` and ``atac_bce``."""

    def _set_sizes(self, n_genes, atac_chrom_sizes, n_latent, chrom_hidden) -> tuple[int, int, int]:
        """Store the data sizes both architectures share; (n chromosomes, chrom_hidden[0], [1])."""
        self.n_genes = int(n_genes)
        self.atac_chrom_sizes = [int(s) for s in atac_chrom_sizes]
        self.n_peaks = sum(self.atac_chrom_sizes)
        self.n_latent = int(n_latent)
        h1, h2 = (int(h) for h in chrom_hidden)
        return len(self.atac_chrom_sizes), h1, h2

    def path_losses(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-cell losses of the four paths: rna_rna, atac_rna (NLL), atac_atac, rna_atac (BCE)."""
        z_r, z_a = self.encode_rna(x), self.encode_atac(y)
        return {
            "rna_rna": self.rna_nll(x, z_r), "atac_rna": self.rna_nll(x, z_a),
            "atac_atac": self.atac_bce(y, z_a), "rna_atac": self.atac_bce(y, z_r),
        }

    def loss(self, x: torch.Tensor, y: torch.Tensor, weight: float) -> torch.Tensor:
        p = self.path_losses(x, y)
        return (p["rna_rna"] + p["atac_rna"] + weight * (p["atac_atac"] + p["rna_atac"])).mean()


class BabelModel(_FourPaths, nn.Module):
    """The compact BABEL (``babel.architecture: compact``), see the module docstring."""

    def __init__(self, n_genes: int, atac_chrom_sizes: Sequence[int], n_latent: int = 16,
                 rna_hidden: int = 64, chrom_hidden: Sequence[int] = (32, 16), size_scale: float = 1e4):
        super().__init__()
        n_chrom, h1, h2 = self._set_sizes(n_genes, atac_chrom_sizes, n_latent, chrom_hidden)
        self.register_buffer("size_scale", torch.tensor(float(size_scale)))

        self.rna_encoder = nn.Sequential(
            nn.Linear(self.n_genes, rna_hidden), nn.PReLU(), nn.Linear(rna_hidden, self.n_latent))
        self.rna_decoder = nn.Sequential(
            nn.Linear(self.n_latent, rna_hidden), nn.PReLU(), nn.Linear(rna_hidden, self.n_genes))
        self.rna_log_theta = nn.Parameter(torch.zeros(self.n_genes))

        self.atac_encoder = nn.Sequential(
            ChromSplitLinear(self.atac_chrom_sizes, [h1] * n_chrom), nn.PReLU(),
            ChromSplitLinear([h1] * n_chrom, [h2] * n_chrom), nn.PReLU(),
            nn.Linear(h2 * n_chrom, self.n_latent))
        self.atac_decoder = nn.Sequential(
            nn.Linear(self.n_latent, h2 * n_chrom), nn.PReLU(),
            ChromSplitLinear([h2] * n_chrom, [h1] * n_chrom), nn.PReLU(),
            ChromSplitLinear([h1] * n_chrom, self.atac_chrom_sizes))

    # --- encoders / decoders -----------------------------------------------------------------
    def encode_rna(self, x: torch.Tensor) -> torch.Tensor:
        lib = x.sum(dim=1, keepdim=True).clamp_min(1.0)
        return self.rna_encoder(torch.log1p(x / lib * self.size_scale))

    def encode_atac(self, y: torch.Tensor) -> torch.Tensor:
        return self.atac_encoder(y)

    def rna_frequencies(self, z: torch.Tensor) -> torch.Tensor:
        """Decoded expression frequencies (rows sum to 1)."""
        return torch.softmax(self.rna_decoder(z), dim=-1)

    def atac_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.atac_decoder(z)

    def atac_probs(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.atac_logits(z))

    @property
    def theta(self) -> torch.Tensor:
        return torch.exp(self.rna_log_theta)

    # --- losses ------------------------------------------------------------------------------
    def rna_nll(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Per-cell mean (over genes) NB negative log-likelihood of counts x given code z."""
        lib = x.sum(dim=1, keepdim=True)
        mu = self.rna_frequencies(z) * lib
        return -nb_log_prob(x, mu, self.theta).mean(dim=1)

    def atac_bce(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Per-cell mean (over peaks) binary cross-entropy of accessibility y given code z."""
        return -bernoulli_log_prob(y, self.atac_probs(z)).mean(dim=1)



# ------------------------------------------------------------------------------------------------
# the authors' architecture


class ChromPReLU(nn.Module):
    """PReLU with one learnable slope per chromosome block of ``width`` units.

    The authors' ChromEncoder/ChromDecoder build one ``nn.PReLU()`` (a single slope) per
    chromosome and layer; this is the same, for the concatenated blocks of all chromosomes.
    """

    def __init__(self, n_blocks: int, width: int, init: float = 0.25):
        super().__init__()
        self.n_blocks, self.width = int(n_blocks), int(width)
        self.weight = nn.Parameter(torch.full((self.n_blocks,), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        slope = self.weight.repeat_interleave(self.width)
        return torch.where(x >= 0, x, slope * x)

    def extra_repr(self) -> str:
        return f"blocks={self.n_blocks}, width={self.width}"


def _xavier(module: nn.Module) -> None:
    """Xavier-uniform weights of every Linear / ChromSplitLinear block (biases keep torch's default)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
        elif isinstance(m, ChromSplitLinear):
            for w in m.weights:  # one (out, in) matrix per chromosome, as the authors' per-chromosome Linear
                nn.init.xavier_uniform_(w)


def _dense_block(n_in: int, n_out: int) -> list[nn.Module]:
    return [nn.Linear(n_in, n_out), nn.BatchNorm1d(n_out), nn.PReLU()]


def _chrom_block(in_sizes: Sequence[int], width: int) -> list[nn.Module]:
    n = len(in_sizes)
    return [ChromSplitLinear(in_sizes, [width] * n), nn.BatchNorm1d(width * n), ChromPReLU(n, width)]


class BabelAuthorsModel(_FourPaths, nn.Module):
    """BABEL as in the authors' code (``babel.architecture: authors``), see the module docstring.

    ``rna_stats`` (optional at construction, else neutral; :meth:`set_rna_stats` fills it from
    training data) holds the RNA input normalisation: ``size_scale`` (median library size, the
    target scale), per-gene ``rna_mean`` / ``rna_std`` of log1p(size-normalised counts) and the
    clip range ``rna_clip``. All are buffers, so a state_dict is self-contained.
    """

    MEAN_CLAMP = (1e-5, 1e6)   # babel/activations.py Exp
    DISP_CLAMP = (1e-4, 1e3)   # babel/activations.py ClippedSoftplus

    def __init__(self, n_genes: int, atac_chrom_sizes: Sequence[int], n_latent: int = 16,
                 rna_hidden: int = 64, chrom_hidden: Sequence[int] = (32, 16), size_scale: float = 1e4):
        super().__init__()
        n_chrom, h1, h2 = self._set_sizes(n_genes, atac_chrom_sizes, n_latent, chrom_hidden)
        rna_hidden = int(rna_hidden)
        self.register_buffer("size_scale", torch.tensor(float(size_scale)))
        self.register_buffer("rna_mean", torch.zeros(self.n_genes))
        self.register_buffer("rna_std", torch.ones(self.n_genes))
        self.register_buffer("rna_clip", torch.tensor([-np.inf, np.inf], dtype=torch.float32))

        # babel Encoder: Linear(G, 64) BN PReLU, Linear(64, latent) BN PReLU
        self.rna_encoder = nn.Sequential(*_dense_block(self.n_genes, rna_hidden),
                                         *_dense_block(rna_hidden, self.n_latent))
        # babel Decoder: Linear(latent, 64) BN PReLU, then one Linear per output (mean, dispersion)
        self.rna_decoder = nn.Sequential(*_dense_block(self.n_latent, rna_hidden))
        self.rna_mean_head = nn.Linear(rna_hidden, self.n_genes)
        self.rna_disp_head = nn.Linear(rna_hidden, self.n_genes)
        # babel ChromEncoder: per chromosome Linear(n_c, 32) BN PReLU, Linear(32, 16) BN PReLU;
        # concatenation -> Linear(16 * C, latent) BN PReLU
        self.atac_encoder = nn.Sequential(
            *_chrom_block(self.atac_chrom_sizes, h1), *_chrom_block([h1] * n_chrom, h2),
            *_dense_block(h2 * n_chrom, self.n_latent))
        # babel ChromDecoder: Linear(latent, 16 * C) BN PReLU; per chromosome Linear(16, 32) BN PReLU,
        # Linear(32, n_c) -> sigmoid
        self.atac_decoder = nn.Sequential(
            *_dense_block(self.n_latent, h2 * n_chrom), *_chrom_block([h2] * n_chrom, h1),
            ChromSplitLinear([h1] * n_chrom, self.atac_chrom_sizes))
        _xavier(self)

    # --- RNA input normalisation -----------------------------------------------------------
    @torch.no_grad()
    def set_rna_stats(self, size_scale: float, mean, std, clip) -> None:
        self.size_scale.fill_(float(size_scale))
        self.rna_mean.copy_(torch.as_tensor(np.asarray(mean), dtype=torch.float32))
        self.rna_std.copy_(torch.as_tensor(np.asarray(std), dtype=torch.float32))
        self.rna_clip.copy_(torch.as_tensor(np.asarray(clip, dtype=np.float32)))

    def rna_target(self, x: torch.Tensor) -> torch.Tensor:
        """Size-normalised counts: every cell scaled to the median library size (the NB target)."""
        lib = x.sum(dim=1, keepdim=True).clamp_min(1.0)
        return x / lib * self.size_scale

    def rna_input(self, x: torch.Tensor) -> torch.Tensor:
        h = (torch.log1p(self.rna_target(x)) - self.rna_mean) / self.rna_std
        return torch.clamp(h, self.rna_clip[0], self.rna_clip[1])

    # --- encoders / decoders -----------------------------------------------------------------
    def encode_rna(self, x: torch.Tensor) -> torch.Tensor:
        return self.rna_encoder(self.rna_input(x))

    def encode_atac(self, y: torch.Tensor) -> torch.Tensor:
        return self.atac_encoder(y)

    def rna_params(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """NB mean (on the size-normalised scale) and dispersion, per cell and gene."""
        h = self.rna_decoder(z)
        mean = torch.exp(self.rna_mean_head(h)).clamp(*self.MEAN_CLAMP)
        disp = F.softplus(self.rna_disp_head(h)).clamp(*self.DISP_CLAMP)
        return mean, disp

    def rna_frequencies(self, z: torch.Tensor) -> torch.Tensor:
        """Decoded mean divided by its row sum (rows sum to 1; the workflow's prediction format)."""
        mean, _ = self.rna_params(z)
        return mean / mean.sum(dim=1, keepdim=True)

    def atac_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.atac_decoder(z)

    def atac_probs(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.atac_logits(z))

    # --- losses ------------------------------------------------------------------------------
    def rna_nll(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Per-cell mean (over genes) NB NLL of the size-normalised counts of x given code z."""
        mean, disp = self.rna_params(z)
        return -nb_log_prob(self.rna_target(x), mean, disp).mean(dim=1)

    def atac_bce(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Per-cell mean (over peaks) binary cross-entropy (computed from the logits)."""
        return F.binary_cross_entropy_with_logits(self.atac_logits(z), y, reduction="none").mean(dim=1)



def rna_input_stats(X, rows=None, clip_percent: float = 0.5) -> dict:
    """The authors' RNA input normalisation statistics, from the cells ``rows`` of counts ``X``.

    As ``babel/adata_utils.py::normalize_count_table`` + the clip of ``sc_data_loaders.py``:
    counts scaled to the median library size (``sc.pp.normalize_total``; cells with no counts
    ignored for the median), ``log1p``, per-gene z-score (``sc.pp.scale``: unbiased SD, 1 where
    the SD is 0), then the ``clip_percent`` / ``100 - clip_percent`` percentiles of ALL entries
    (numpy's linear interpolation). Computed from the sparse matrix without densifying it: the
    zeros of a gene all map to one value, counted with their multiplicity.
    Returns ``dict(size_scale, mean, std, clip)``.
    """
    import scipy.sparse as sp

    X = sp.csr_matrix(X, dtype=np.float64) if not sp.issparse(X) else X.tocsr().astype(np.float64)
    if rows is not None:
        X = X[np.asarray(rows)]
    n, g = X.shape
    if n < 2:
        raise ValueError("need at least 2 cells for the RNA input statistics")
    lib = np.asarray(X.sum(axis=1)).ravel()
    size_scale = float(np.median(lib[lib > 0])) if (lib > 0).any() else 1.0
    L = sp.diags(size_scale / np.maximum(lib, 1e-12)) @ X
    L = L.tocsr()
    L.data = np.log1p(L.data)
    s1 = np.asarray(L.sum(axis=0)).ravel()
    s2 = np.asarray(L.multiply(L).sum(axis=0)).ravel()
    mean = s1 / n
    var = np.maximum(s2 / n - mean * mean, 0.0) * n / (n - 1)
    std = np.sqrt(var)
    std[std == 0] = 1.0
    # scaled values: the non-zeros, plus each gene's zero value with its count
    Lc = L.tocsc()
    nnz = np.diff(Lc.indptr)
    vals = np.concatenate([(Lc.data - np.repeat(mean, nnz)) / np.repeat(std, nnz), -mean / std])
    wts = np.concatenate([np.ones(Lc.data.size), (n - nnz).astype(float)])
    order = np.argsort(vals, kind="stable")
    vals, cum = vals[order], np.cumsum(wts[order])
    total = n * g

    def order_stat(k: int) -> float:  # k-th smallest (0-based) of the full multiset
        return float(vals[np.searchsorted(cum, k + 1, side="left")])

    def percentile(q: float) -> float:
        pos = q / 100.0 * (total - 1)
        lo = int(np.floor(pos))
        a, b = order_stat(lo), order_stat(min(lo + 1, total - 1))
        return a + (pos - lo) * (b - a)

    clip = [percentile(clip_percent), percentile(100.0 - clip_percent)] if clip_percent > 0 else [-np.inf, np.inf]
    if clip[0] == clip[1] == 0:  # as the authors: no clip when both ends are 0
        clip = [-np.inf, np.inf]
    return {"size_scale": size_scale, "mean": mean, "std": std, "clip": clip}


ARCHITECTURE_CLASSES = {"authors": BabelAuthorsModel, "compact": BabelModel}
PREDICT_BATCH = 256  # cells per forward pass at inference


class TrainedBabel:
    """A trained BABEL grid point with the shape of
    :class:`workflow_lib.models.polarbear.PolarbearModel`: ``encode``, ``translate``, ``decode``,
    ``predict_rna``, ``predict_atac``, ``align``, ``save``/``load``.

    BABEL has one latent space shared by both modalities, so ``translate`` is the identity and the
    batch arguments (BABEL has no batch covariate) are accepted and ignored. ``predict_atac``
    returns BABEL's decoded probabilities p (it learns depth only implicitly), the depth-normalised
    probabilities q solving ``1 - (1 - q) ** d = p`` and the depth factor
    ``d = sum(p) / mean training depth`` (the inverse of ``distributions.depth_scaled_prob``).
    Files of a grid point: ``model.pt`` (state_dict, ``weights_only`` load) and ``config.json``.
    """

    def __init__(self, module: nn.Module, config: dict, device=None):
        from ..train import get_device

        self.device = torch.device(device) if device is not None else get_device()
        self.module = module.to(self.device).eval()
        self.config = dict(config)
        self.mean_atac_depth = float(self.config["mean_atac_depth_train"])

    @classmethod
    def load(cls, point_dir, device=None) -> "TrainedBabel":
        """Rebuild a grid point from ``config.json`` + ``model.pt``; a config.json without
        ``architecture`` (written before the option existed) is a compact model."""
        import json
        from pathlib import Path

        from ..fileutils import InputFormatError

        point_dir = Path(point_dir)
        cfg_path = point_dir / "config.json"
        try:
            cfg = json.loads(cfg_path.read_text())
        except json.JSONDecodeError as e:
            raise InputFormatError(cfg_path, f"invalid JSON ({e.msg})", line=e.lineno) from e
        arch = cfg.get("architecture", "compact")
        if arch not in ARCHITECTURE_CLASSES:
            raise InputFormatError(cfg_path, f"unknown architecture {arch!r}")
        module = ARCHITECTURE_CLASSES[arch](**cfg["kwargs"])
        module.load_state_dict(torch.load(point_dir / "model.pt", map_location="cpu", weights_only=True))
        return cls(module, cfg, device)

    def save(self, point_dir) -> None:
        """Write ``model.pt`` (atomic) and ``config.json``."""
        from pathlib import Path

        from ..fileutils import atomic_path, write_json

        point_dir = Path(point_dir)
        state = {k: v.detach().cpu() for k, v in self.module.state_dict().items()}
        with atomic_path(point_dir / "model.pt") as tmp:
            torch.save(state, tmp)
        write_json(self.config, point_dir / "config.json")

    # ------------------------------------------------------------------ inference

    @torch.no_grad()
    def _blocks(self, X, binarize: bool, fn) -> list:
        from ..data import SparseCellLoader

        loader = SparseCellLoader(X, np.arange(X.shape[0]), PREDICT_BATCH, False, 0, device=self.device,
                                  binarize=binarize)
        return [fn(b["x"]) for b in loader]

    def encode(self, modality: str, X, onehot=None) -> np.ndarray:
        """Latent codes (eval mode) of every row of ``X`` (RNA counts or ATAC, binarised here)."""
        enc = {"rna": self.module.encode_rna, "atac": self.module.encode_atac}[modality]
        parts = self._blocks(X, modality == "atac", lambda x: enc(x).cpu().numpy())
        return np.concatenate(parts) if parts else np.zeros((0, self.module.n_latent), np.float32)

    def translate(self, source: str, z: np.ndarray) -> np.ndarray:
        """BABEL's latent space is shared: codes need no translation."""
        return np.asarray(z, dtype=np.float32)

    @torch.no_grad()
    def _decode_rna(self, z: torch.Tensor) -> np.ndarray:
        return self.module.rna_frequencies(z).cpu().numpy()

    @torch.no_grad()
    def _decode_atac(self, z: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        p = self.module.atac_probs(z).double().clamp(0.0, 1.0 - 1e-7)
        d = (p.sum(dim=1, keepdim=True) / self.mean_atac_depth).clamp_min(1e-3)
        q = -torch.expm1(torch.log1p(-p) / d)
        return (p.float().cpu().numpy(), q.clamp(0.0, 1.0).float().cpu().numpy(),
                d.ravel().float().cpu().numpy())

    def predict_rna(self, X_atac, onehot_atac=None, onehot_rna_target=None) -> np.ndarray:
        """ATAC -> RNA: decoded expression frequencies (rows sum to 1)."""
        parts = self._blocks(X_atac, True, lambda y: self._decode_rna(self.module.encode_atac(y)))
        return np.concatenate(parts) if parts else np.zeros((0, self.module.n_genes), np.float32)

    def predict_atac(self, X_rna, onehot_rna=None, onehot_atac_target=None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """RNA -> ATAC: (probabilities p, depth-normalised probabilities q, depth factor d)."""
        parts = self._blocks(X_rna, False, lambda x: self._decode_atac(self.module.encode_rna(x)))
        return tuple(np.concatenate([part[i] for part in parts]) for i in range(3))

    def align(self, X_rna, onehot_rna, X_atac, onehot_atac) -> dict[str, np.ndarray]:
        """The latent arrays of the prediction contract (both queries live in the shared space)."""
        z_r, z_a = self.encode("rna", X_rna), self.encode("atac", X_atac)
        return {"rna_query": z_r, "rna_reference": z_r, "atac_query": z_a, "atac_reference": z_a}
