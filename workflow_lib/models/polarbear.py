"""The trained Polarbear model as one object: two beta-VAEs, two latent translators and the ATAC
depth regressor (Zhang et al.; think scvi-tools' model classes).

:class:`PolarbearModel` is what the workflow's predict rule, the model-directory export and the
``polarbear`` command all use, so that encode -> translate -> decode -> depth is written once::

    model = PolarbearModel.from_grid_point(gdir, co_rna, co_atac)      # after training
    model.fit_depth_regressor(X_rna, b_rna, X_atac, train_rows, alphas)
    model.save(out_dir, ...)  /  model = PolarbearModel.load(out_dir)  # model directory
    mu = model.encode("rna", X_rna, b_rna)                              # posterior means
    z = model.translate("rna", mu)                                      # into the ATAC latent
    freq = model.predict_rna(X_atac, b_atac, b_rna_target)              # ATAC -> RNA
    raw, norm, d = model.predict_atac(X_rna, b_rna, b_atac_target)       # RNA -> ATAC
    lat = model.align(X_rna, b_rna, X_atac, b_atac)                     # both latent pairs

Every method takes CSR matrices in the model's feature order (see
:func:`workflow_lib.model_dir.match_features` for user data) and one-hot batch matrices in the
model's batch categories; inference is deterministic (posterior means, eval mode, no dropout).
ATAC inputs are binarised on the fly.

The depth regressor predicts ``log d`` (d = open peaks / ATAC reference depth) from standardised
``[log RNA library size, RNA latent mean]`` by ridge regression (RidgeCV over ``alphas``, efficient
leave-one-out CV); it is kept as plain float64 tensors (mean, scale, coef, intercept, alpha) so a
model directory stores it without pickle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from ..data import SparseCellLoader
from ..sparse import as_csr
from ..depth_regressor import fit_depth_ridge, predict_log_depth
from .translator import LatentTranslator
from .vae import ATACVAE, RNAVAE, features_digest, load_vae

INFER_BATCH = 512      # cells per encoder/decoder forward pass at inference
TRANSLATE_BATCH = 4096  # cells per translator forward pass (a linear map of the latent means)
MODALITIES = ("rna", "atac")


def other(modality: str) -> str:
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; use one of {MODALITIES}")
    return "atac" if modality == "rna" else "rna"


@torch.no_grad()
def latent_posteriors(vae, X, onehot, rows=None, device="cpu", binarize=False) -> tuple[np.ndarray, np.ndarray]:
    """Posterior means and log-variances (eval mode, no dropout) of the given rows (default all)."""
    vae.eval()
    rows = np.arange(X.shape[0]) if rows is None else rows
    mus, lvs = [], []
    for batch in SparseCellLoader(X, rows, INFER_BATCH, False, 0, {"b": onehot}, device, binarize):
        mu, lv = vae.encode(batch["x"], batch["b"])
        mus.append(mu.cpu().numpy())
        lvs.append(lv.cpu().numpy())
    if not mus:
        return np.zeros((0, vae.latent), np.float32), np.zeros((0, vae.latent), np.float32)
    return np.concatenate(mus), np.concatenate(lvs)


@torch.no_grad()
def decode_rows(fn, z: np.ndarray, onehot: np.ndarray, device) -> np.ndarray:
    """``fn(z, b)`` (a VAE's ``normalized``) over blocks of INFER_BATCH rows, as float32 numpy."""
    out = []
    for s in range(0, z.shape[0], INFER_BATCH):
        zb = torch.from_numpy(np.ascontiguousarray(z[s:s + INFER_BATCH], dtype=np.float32)).to(device)
        bb = torch.from_numpy(np.ascontiguousarray(onehot[s:s + INFER_BATCH], dtype=np.float32)).to(device)
        out.append(fn(zb, bb).cpu().numpy().astype(np.float32))
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def load_checked_vae(path, modality: str, var_names: Sequence[str], batches: Sequence[str], device="cpu"):
    """A VAE saved by the workflow (``.pt`` + ``.json``), refused if it was trained on other
    features or batch categories than those of the data it is applied to."""
    vae = load_vae(path, device=device)
    cfg = vae.config()
    if cfg["features_sha1"] != features_digest(var_names):
        raise ValueError(f"{path}: the {modality} VAE was trained on other features than the co-assay file")
    if list(batches) != list(cfg["batch_categories"]):
        raise ValueError(f"{path}: batch categories {list(batches)} differ from the VAE's {cfg['batch_categories']}")
    return vae


# ----------------------------------------------------------------------------- the model


class PolarbearModel:
    """Trained Polarbear: ``vae_rna``, ``vae_atac``, ``translator_rna_to_atac`` (t_xy),
    ``translator_atac_to_rna`` (t_yx) and an optional ATAC depth regressor (tensors)."""

    MODULES = ("vae_rna", "vae_atac", "translator_rna_to_atac", "translator_atac_to_rna")

    def __init__(self, vae_rna: RNAVAE, vae_atac: ATACVAE, translator_rna_to_atac: LatentTranslator,
                 translator_atac_to_rna: LatentTranslator, depth_regressor: Mapping[str, torch.Tensor] | None = None,
                 *, device=None, card: dict | None = None):
        from ..train import get_device

        self.device = torch.device(device) if device is not None else get_device()
        self.modules = {"vae_rna": vae_rna, "vae_atac": vae_atac, "translator_rna_to_atac": translator_rna_to_atac,
                        "translator_atac_to_rna": translator_atac_to_rna}
        for name, m in self.modules.items():
            m.to(self.device).eval()
        if translator_rna_to_atac.linear.in_features != vae_rna.latent or \
                translator_rna_to_atac.linear.out_features != vae_atac.latent or \
                translator_atac_to_rna.linear.in_features != vae_atac.latent or \
                translator_atac_to_rna.linear.out_features != vae_rna.latent:
            raise ValueError("translator sizes do not match the VAE latent sizes")
        self.depth_regressor = dict(depth_regressor) if depth_regressor is not None else None
        self.card = dict(card or {})
        self.path: Path | None = None
        self.feature_names = {m: list(self.card.get("features", {}).get(m, {}).get("names", [])) for m in MODALITIES}

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_grid_point(cls, grid_dir, rna_var_names: Sequence[str], atac_var_names: Sequence[str],
                        rna_batches: Sequence[str], atac_batches: Sequence[str], device=None) -> "PolarbearModel":
        """The modules a grid point of the workflow trained (``grid/<point>/{vae_rna,vae_atac,
        translator_rna_to_atac,translator_atac_to_rna}.pt`` + ``.json``), checked against the
        features and batch categories of the co-assay data they are applied to."""
        from ..train import get_device

        gdir = Path(grid_dir)
        device = torch.device(device) if device is not None else get_device()
        vaes = {m: load_checked_vae(gdir / f"vae_{m}.pt", m, names, cats, device)
                for m, names, cats in (("rna", rna_var_names, rna_batches), ("atac", atac_var_names, atac_batches))}
        trs = {d: cls._load_translator(gdir / f"translator_{d}.pt", device) for d in ("rna_to_atac", "atac_to_rna")}
        model = cls(vaes["rna"], vaes["atac"], trs["rna_to_atac"], trs["atac_to_rna"], device=device,
                    card={"point": gdir.name})
        model.feature_names = {"rna": list(map(str, rna_var_names)), "atac": list(map(str, atac_var_names))}
        return model

    @staticmethod
    def _load_translator(pt, device) -> LatentTranslator:
        import json

        cfg = json.loads(Path(pt).with_suffix(".json").read_text())
        tr = LatentTranslator(int(cfg["latent_in"]), int(cfg["latent_out"]), int(cfg.get("dispersion_batches", 0)),
                              int(cfg.get("dispersion_genes", 0)), bool(cfg.get("dispersion_bias", False)))
        tr.load_state_dict(torch.load(pt, map_location=device, weights_only=True))
        return tr.to(device).eval()

    @classmethod
    def load(cls, model_dir, device=None, verify: bool = True) -> "PolarbearModel":
        """Load a model directory (:func:`workflow_lib.model_dir.load_model_dir`: checksums, schema,
        allow-listed classes, weights with ``weights_only=True``)."""
        from ..model_dir import load_model_dir

        md = load_model_dir(model_dir, device="cpu", verify=verify)
        missing = [m for m in cls.MODULES if m not in md.modules]
        if missing:
            raise ValueError(f"{model_dir}: not a Polarbear model directory (no modules {missing})")
        model = cls(*(md.modules[m] for m in cls.MODULES), md.tensors.get("depth_regressor"), device=device,
                    card=md.card)
        model.path = Path(model_dir)
        return model

    def save(self, out_dir, *, rna_features: Sequence[str], atac_features: Sequence[str], card: dict) -> Path:
        """Write a model directory (:func:`workflow_lib.model_dir.write_model_dir`)."""
        from ..model_dir import ModuleEntry, module_kwargs, write_model_dir

        if self.depth_regressor is None:
            raise ValueError("fit the depth regressor (fit_depth_regressor) before saving")
        modules = {name: ModuleEntry(m, module_kwargs(m)) for name, m in self.modules.items()}
        cats = {m: list(self.vae(m).config()["batch_categories"]) for m in MODALITIES}
        return write_model_dir(out_dir, modules=modules, rna_features=list(rna_features),
                               atac_features=list(atac_features), batch_categories=cats,
                               tensors={"depth_regressor": self.depth_regressor}, card=card)

    def to(self, device) -> "PolarbearModel":
        """Move every module to ``device`` (later inference runs there)."""
        self.device = torch.device(device)
        for m in self.modules.values():
            m.to(self.device)
        return self

    # ------------------------------------------------------------------ inference

    def vae(self, modality: str):
        other(modality)  # validates the name
        return self.modules[f"vae_{modality}"]

    def features(self, modality: str) -> list[str]:
        """Feature names (genes / ``chrom:start-end`` peaks) of a modality, in model order."""
        return self.feature_names[modality]

    def batch_categories(self, modality: str) -> list[str]:
        return list(self.vae(modality).config()["batch_categories"])

    @property
    def point(self) -> str:
        return str(self.card.get("point", ""))

    @property
    def latent(self) -> dict[str, int]:
        return {m: int(self.vae(m).latent) for m in MODALITIES}

    def encode_posterior(self, modality: str, X, onehot) -> tuple[np.ndarray, np.ndarray]:
        """Posterior means and log-variances of every row of ``X`` (CSR in the model's features)."""
        return latent_posteriors(self.vae(modality), as_csr(X), onehot, device=self.device,
                                 binarize=modality == "atac")

    def encode(self, modality: str, X, onehot) -> np.ndarray:
        """Posterior means (the deterministic latent code) of every row of ``X``."""
        return self.encode_posterior(modality, X, onehot)[0]

    @torch.no_grad()
    def translate(self, source: str, mu: np.ndarray) -> np.ndarray:
        """Latent codes of the ``source`` VAE mapped into the other VAE's latent space."""
        tr = self.modules[f"translator_{source}_to_{other(source)}"]
        mu = np.asarray(mu, dtype=np.float32)
        out = [tr(torch.from_numpy(mu[s:s + TRANSLATE_BATCH]).to(self.device)).cpu().numpy()
               for s in range(0, len(mu), TRANSLATE_BATCH)]
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, tr.linear.out_features), np.float32)

    def decode(self, modality: str, z: np.ndarray, onehot) -> np.ndarray:
        """Depth-normalised profiles decoded from latent codes of the ``modality`` VAE: RNA
        frequencies (rows sum to 1; the paper's norm estimation) or ATAC probabilities p_norm."""
        out = decode_rows(self.vae(modality).normalized, z, onehot, self.device)
        if modality == "rna":  # exact frequencies
            out = out.astype(np.float64)
            out = (out / out.sum(axis=1, keepdims=True)).astype(np.float32)
        return out

    def atac_depth(self, X_rna, mu_x: np.ndarray) -> np.ndarray:
        """Predicted ATAC depth factor of cells with RNA ``X_rna`` and RNA latent means ``mu_x``."""
        if self.depth_regressor is None:
            raise ValueError("the model has no depth regressor: call fit_depth_regressor first")
        return np.exp(predict_log_depth(self.depth_regressor, self._depth_features(X_rna, mu_x))).astype(np.float32)

    def _depth_features(self, X_rna, mu_x) -> np.ndarray:
        lib = np.log(self.vae("rna").size_covariate(as_csr(X_rna)).astype(np.float64))
        return np.c_[lib, mu_x]

    def fit_depth_regressor(self, X_rna, onehot_rna, X_atac, rows, alphas, mu_x: np.ndarray | None = None) -> dict:
        """Fit the ATAC depth regressor on co-assay cells ``rows``; returns alpha and training R^2."""
        if mu_x is None:
            mu_x = self.encode("rna", X_rna, onehot_rna)
        feats = self._depth_features(X_rna, mu_x)
        log_d = np.log(self.vae("atac").size_covariate(as_csr(X_atac)).astype(np.float64))
        self.depth_regressor = fit_depth_ridge(feats[rows], log_d[rows], alphas)
        pred = predict_log_depth(self.depth_regressor, feats[rows])
        ss_res = float(np.sum((log_d[rows] - pred) ** 2))
        ss_tot = float(np.sum((log_d[rows] - log_d[rows].mean()) ** 2))
        return {"alpha": float(self.depth_regressor["alpha"]), "train_r2": 1.0 - ss_res / ss_tot if ss_tot else 1.0}

    def predict_rna(self, X_atac, onehot_atac, onehot_rna_target, mu_y: np.ndarray | None = None) -> np.ndarray:
        """ATAC -> RNA: normalised expression (rows sum to 1) decoded in the target batches."""
        if mu_y is None:
            mu_y = self.encode("atac", X_atac, onehot_atac)
        return self.decode("rna", self.translate("atac", mu_y), onehot_rna_target)

    def predict_atac(self, X_rna, onehot_rna, onehot_atac_target, mu_x: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """RNA -> ATAC: (depth-rescaled probabilities, depth-normalised probabilities, depth factor)."""
        if mu_x is None:
            mu_x = self.encode("rna", X_rna, onehot_rna)
        norm = self.decode("atac", self.translate("rna", mu_x), onehot_atac_target)
        d_hat = self.atac_depth(X_rna, mu_x)
        return self.depth_scale(norm, d_hat), norm, d_hat

    def depth_scale(self, norm: np.ndarray, d_hat: np.ndarray) -> np.ndarray:
        """The ATAC VAE's depth model applied to p_norm at depth factors ``d_hat`` (float32)."""
        with torch.no_grad():
            raw = self.vae("atac").depth_prob(torch.from_numpy(np.asarray(norm, dtype=np.float32)),
                                              torch.from_numpy(np.asarray(d_hat, dtype=np.float32)).reshape(-1, 1))
        return raw.numpy().astype(np.float32)

    def align(self, X_rna, onehot_rna, X_atac, onehot_atac) -> dict[str, np.ndarray]:
        """Both latent pairings: ``rna_query`` = t_xy(mu_x) against ``atac_reference`` = mu_y (ATAC
        latent) and ``atac_query`` = t_yx(mu_y) against ``rna_reference`` = mu_x (RNA latent)."""
        mu_x = self.encode("rna", X_rna, onehot_rna)
        mu_y = self.encode("atac", X_atac, onehot_atac)
        return latent_pairs(self, mu_x, mu_y)


def latent_pairs(model: PolarbearModel, mu_x: np.ndarray, mu_y: np.ndarray) -> dict[str, np.ndarray]:
    """The latent arrays of the prediction contract from the two modalities' latent means."""
    return {"rna_query": model.translate("rna", mu_x), "atac_reference": np.asarray(mu_y, np.float32),
            "atac_query": model.translate("atac", mu_y), "rna_reference": np.asarray(mu_x, np.float32)}
