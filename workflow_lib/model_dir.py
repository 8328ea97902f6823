"""Self-contained, portable Polarbear model directories (export, load, feature matching).

A model directory holds everything needed to translate or align new cells, and nothing that
needs pickle to read::

    <dir>/model.json          model card: format version, architecture (class + constructor
                              arguments of every module), feature names, batch categories,
                              hyper-parameters, training-data summary, validation scores
    <dir>/features_rna.txt    gene symbols, one a line, in model order (also in model.json)
    <dir>/features_atac.txt   peaks ``chrom:start-end`` (mm10, 0-based start), model order
    <dir>/<module>.pt         one state_dict per module (plain ``dict[str, Tensor]``)
    <dir>/depth_regressor.pt  ridge regression RNA -> ATAC depth factor, as tensors

    <dir>/model.json.sha256   sha256 of model.json (``sha256sum -c`` format)

Every ``.pt`` file is a flat dict of tensors, so ``torch.load(path, weights_only=True)`` reads
it. A model directory is data, never code: loading it (:func:`read_card`, :func:`load_model_dir`)

* verifies ``model.json`` against ``model.json.sha256`` and every weights file against the
  sha256 listed in ``model.json`` (every weights file must be listed);
* validates ``model.json`` against :data:`MODEL_CARD_SCHEMA` (types, ranges, file names without
  directories, no unknown constructor arguments) and checks that the modules agree with the
  feature lists;
* rebuilds each module only from :data:`MODEL_CLASSES`, an explicit list of the package's model
  classes, first on the ``meta`` device (no memory) to check every weight's name and shape
  against the weights file, then for real.

Feature matching (:func:`match_features`) maps a user's AnnData onto the model's features by
name: extra features are dropped, duplicate names are summed, missing features are filled with
zeros (and listed), and inputs missing more than ``max_missing_frac`` of the model's features are
refused with an :class:`~workflow_lib.fileutils.InputFormatError`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .fileutils import InputFormatError, check_values, write_json

FORMAT_NAME = "polarbear-model-dir"
FORMAT_VERSION = 2  # 2: model.json covered by model.json.sha256, schema-validated
MODEL_JSON = "model.json"
MODEL_JSON_SHA = "model.json.sha256"
DEFAULT_MAX_MISSING_FRAC = 0.5

# The only classes a model directory may name: class path -> (module, attribute).
MODEL_CLASSES = {
    "workflow_lib.models.vae.RNAVAE": ("workflow_lib.models.vae", "RNAVAE"),
    "workflow_lib.models.vae.ATACVAE": ("workflow_lib.models.vae", "ATACVAE"),
    "workflow_lib.models.translator.LatentTranslator": ("workflow_lib.models.translator", "LatentTranslator"),
}
POLARBEAR_MODULES = {
    "vae_rna": "workflow_lib.models.vae.RNAVAE",
    "vae_atac": "workflow_lib.models.vae.ATACVAE",
    "translator_rna_to_atac": "workflow_lib.models.translator.LatentTranslator",
    "translator_atac_to_rna": "workflow_lib.models.translator.LatentTranslator",
}


# ----------------------------------------------------------------------------- weights


def tensor_state(obj) -> dict[str, torch.Tensor]:
    """A CPU copy of a module's state_dict (or of a mapping of arrays) with tensors only."""
    import torch

    state = obj.state_dict() if isinstance(obj, torch.nn.Module) else dict(obj)
    out = {}
    for k, v in state.items():
        if isinstance(v, np.ndarray) or np.isscalar(v):
            v = torch.as_tensor(np.asarray(v))
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"state entry {k!r} is a {type(v).__name__}, not a tensor")
        out[str(k)] = v.detach().to("cpu").clone()
    return out


def save_weights(obj, path) -> str:
    """Save a tensors-only state dict to ``path``; return its sha256."""
    import torch

    path = Path(path)
    torch.save(tensor_state(obj), path)
    return _sha256(path)


def load_weights(path) -> dict[str, torch.Tensor]:
    """Load a weights file without unpickling arbitrary objects (``weights_only=True``)."""
    import torch

    try:
        return torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # corrupted file or a pickle with non-tensor objects
        raise InputFormatError(path, f"not a tensors-only weights file ({e})") from e


def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def class_path(obj_or_cls) -> str:
    cls = obj_or_cls if isinstance(obj_or_cls, type) else type(obj_or_cls)
    return f"{cls.__module__}.{cls.__qualname__}"


def import_class(path: str):
    """The model class named ``path``; only the classes of :data:`MODEL_CLASSES` are allowed."""
    if path not in MODEL_CLASSES:
        raise ValueError(f"refusing to load class {path!r}: a model directory may only name "
                         f"{', '.join(sorted(MODEL_CLASSES))}")
    module, name = MODEL_CLASSES[path]
    return getattr(importlib.import_module(module), name)


# ----------------------------------------------------------------------------- writing


@dataclass
class ModuleEntry:
    """One network of a model: its class, constructor keyword arguments and weights."""

    module: torch.nn.Module
    kwargs: dict[str, Any]
    cls: str | None = None  # defaults to the module's own class

    def spec(self) -> dict[str, Any]:
        return {"class": self.cls or class_path(self.module), "kwargs": _jsonable(self.kwargs)}


def _jsonable(obj):
    """Round-trip through JSON (numpy scalars/arrays -> python) so model.json stays plain."""
    from .fileutils import _json_default

    return json.loads(json.dumps(obj, default=_json_default))


@contextlib.contextmanager
def _atomic_dir(path: Path):
    """Build a directory under a temporary name; swap it into place only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        old = None
        if path.exists():
            old = path.parent / f".{path.name}.old.{os.getpid()}"
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_model_dir(
    out_dir,
    *,
    modules: Mapping[str, ModuleEntry],
    rna_features: Sequence[str],
    atac_features: Sequence[str],
    batch_categories: Mapping[str, Sequence[str]],
    tensors: Mapping[str, Mapping[str, Any]] | None = None,
    card: Mapping[str, Any] | None = None,
) -> Path:
    """Write a model directory atomically (built under a temporary name, then renamed).

    ``modules``: name -> :class:`ModuleEntry` (saved as ``<name>.pt``); ``tensors``: extra
    tensor dicts such as the depth regressor (saved as ``<name>.pt``); ``card``: free-form
    model-card fields (hyper-parameters, training data, validation scores, ...).
    """
    import torch

    from . import __version__

    out_dir = Path(out_dir)
    with _atomic_dir(out_dir) as tmp:
        files = {}
        specs = {}
        for name, entry in modules.items():
            fname = f"{name}.pt"
            files[fname] = save_weights(entry.module, tmp / fname)
            specs[name] = {**entry.spec(), "weights": fname}
        extra = {}
        for name, tdict in (tensors or {}).items():
            fname = f"{name}.pt"
            files[fname] = save_weights(tdict, tmp / fname)
            extra[name] = fname
        (tmp / "features_rna.txt").write_text("".join(f"{f}\n" for f in rna_features))
        (tmp / "features_atac.txt").write_text("".join(f"{f}\n" for f in atac_features))
        meta = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "package_version": __version__,
            "torch_version": torch.__version__,
            "modules": specs,
            "tensors": extra,
            "files_sha256": files,
            "features": {
                "rna": {"n": len(rna_features), "kind": "gene symbol", "names": list(map(str, rna_features))},
                "atac": {
                    "n": len(atac_features),
                    "kind": "peak chrom:start-end (mm10, 0-based start, end exclusive)",
                    "names": list(map(str, atac_features)),
                },
            },
            "batch_categories": {k: list(map(str, v)) for k, v in batch_categories.items()},
            **_jsonable(dict(card or {})),
        }
        write_json(meta, tmp / MODEL_JSON)
        (tmp / MODEL_JSON_SHA).write_text(f"{_sha256(tmp / MODEL_JSON)}  {MODEL_JSON}\n")
    return out_dir


# ----------------------------------------------------------------------------- reading


_FILE_NAME = {"type": "string", "pattern": r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}\.pt$"}
_INT = {"type": "integer"}
_COMMON_VAE_KWARGS = {
    "n_batches": {**_INT, "minimum": 1, "maximum": 10_000},
    "latent": {**_INT, "minimum": 1, "maximum": 1024},
    "hidden": {**_INT, "minimum": 1, "maximum": 1_000_000},
    "dropout": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
    "activation": {"enum": ["leaky_relu", "relu"]},
    # training metadata stored with the module
    "batch_categories": {"type": "array", "items": {"type": "string", "maxLength": 1000}, "maxItems": 10_000},
    "features_sha1": {"type": "string", "pattern": "^[0-9a-f]{40}$"},
    "point": {"type": "string", "maxLength": 200},
    "method": {"type": "string", "maxLength": 200},
    "scenario": {"type": "string", "maxLength": 200},
    "beta": {"type": "number", "minimum": 0, "maximum": 1000},
}
_KWARGS_SCHEMAS = {
    "workflow_lib.models.vae.RNAVAE": {
        "type": "object", "additionalProperties": False,
        "required": ["n_genes", "n_batches", "latent"],
        "properties": {**_COMMON_VAE_KWARGS,
                       "n_genes": {**_INT, "minimum": 1, "maximum": 1_000_000},
                       "input_transform": {"enum": ["counts", "log1p", "log1p_norm"]},
                       "norm_target": {"type": "number", "exclusiveMinimum": 0, "maximum": 1e9},
                       "decoder_dropout": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
                       "dispersion_bias": {"type": "boolean"}},
    },
    "workflow_lib.models.vae.ATACVAE": {
        "type": "object", "additionalProperties": False,
        "required": ["n_peaks", "n_batches", "latent", "chrom_sizes"],
        "properties": {**_COMMON_VAE_KWARGS,
                       "n_peaks": {**_INT, "minimum": 1, "maximum": 10_000_000},
                       "chrom_sizes": {"type": "array", "items": {**_INT, "minimum": 1}, "minItems": 1,
                                       "maxItems": 10_000},
                       "depth_ref": {"type": "number", "exclusiveMinimum": 0, "maximum": 1e9},
                       "hidden_rule": {"enum": ["per_chromosome", "total"]},
                       "input_transform": {"enum": ["binary", "idf"]},
                       "depth_model": {"enum": ["linear", "complement"]}},
    },
    "workflow_lib.models.translator.LatentTranslator": {
        "type": "object", "additionalProperties": False, "required": ["latent_in", "latent_out"],
        "properties": {"latent_in": {**_INT, "minimum": 1, "maximum": 1024},
                       "latent_out": {**_INT, "minimum": 1, "maximum": 1024},
                       "dispersion_batches": {**_INT, "minimum": 0, "maximum": 10_000},
                       "dispersion_genes": {**_INT, "minimum": 0, "maximum": 1_000_000},
                       "dispersion_bias": {"type": "boolean"}},
    },
}


def _module_schema(cls_path: str) -> dict:
    return {"type": "object", "additionalProperties": False, "required": ["class", "kwargs", "weights"],
            "properties": {"class": {"const": cls_path}, "kwargs": _KWARGS_SCHEMAS[cls_path],
                           "weights": _FILE_NAME}}


def _feature_schema() -> dict:
    return {"type": "object", "required": ["n", "names"],
            "properties": {"n": {**_INT, "minimum": 1}, "kind": {"type": "string"},
                           "names": {"type": "array", "items": {"type": "string", "maxLength": 1000}}}}


#: JSON schema of ``model.json``: the fields the loader acts on are closed and typed; the model
#: card's descriptive fields (hyper-parameters, training data, scores) are free-form.
MODEL_CARD_SCHEMA = {
    "type": "object",
    "required": ["format", "format_version", "modules", "tensors", "files_sha256", "features", "batch_categories"],
    "properties": {
        "format": {"const": FORMAT_NAME},
        "format_version": {**_INT, "minimum": 1},
        "modules": {"type": "object", "additionalProperties": False, "required": sorted(POLARBEAR_MODULES),
                    "properties": {name: _module_schema(cls) for name, cls in POLARBEAR_MODULES.items()}},
        "tensors": {"type": "object", "additionalProperties": False, "properties": {"depth_regressor": _FILE_NAME}},
        "files_sha256": {"type": "object", "propertyNames": _FILE_NAME,
                         "additionalProperties": {"type": "string", "pattern": "^[0-9a-f]{64}$"}},
        "features": {"type": "object", "additionalProperties": False, "required": ["rna", "atac"],
                     "properties": {"rna": _feature_schema(), "atac": _feature_schema()}},
        "batch_categories": {"type": "object", "additionalProperties": False, "required": ["rna", "atac"],
                             "properties": {m: {"type": "array", "minItems": 1, "maxItems": 10_000,
                                                "items": {"type": "string", "maxLength": 1000}}
                                            for m in ("rna", "atac")}},
        "default_batch": {"type": "object", "additionalProperties": False,
                          "properties": {"rna": {"type": "string"}, "atac": {"type": "string"}}},
    },
}


def _json_where(err) -> str:
    return "/".join(map(str, err.absolute_path)) or "(top level)"


def _check_card(card: dict, path: Path) -> None:
    """Schema validation plus the cross-field checks a schema cannot express."""
    import jsonschema

    if not isinstance(card, dict):
        raise InputFormatError(path, "model.json must hold a JSON object")
    if card.get("format") != FORMAT_NAME:
        raise InputFormatError(path, f"format is {card.get('format')!r}, expected {FORMAT_NAME!r}")
    version = card.get("format_version")
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise InputFormatError(path, f"format_version {version} is newer than this package reads ({FORMAT_VERSION})")
    errors = sorted(jsonschema.Draft7Validator(MODEL_CARD_SCHEMA).iter_errors(card),
                    key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        e = errors[0]
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise InputFormatError(path, f"invalid model card at {_json_where(e)}: {e.message}{more}")
    if version < FORMAT_VERSION:
        raise InputFormatError(path, f"format_version {version} predates checksummed model cards; "
                                     "re-export the model with this version (workflow rule export_model or "
                                     "`polarbear train`)")
    feats, mods = card["features"], card["modules"]
    for m in ("rna", "atac"):
        if feats[m]["n"] != len(feats[m]["names"]):
            raise InputFormatError(path, f"features/{m}: n = {feats[m]['n']} but {len(feats[m]['names'])} names")
    kw = {name: spec["kwargs"] for name, spec in mods.items()}
    checks = [
        (kw["vae_rna"]["n_genes"] == feats["rna"]["n"], "modules/vae_rna n_genes differs from the RNA feature count"),
        (kw["vae_atac"]["n_peaks"] == feats["atac"]["n"], "modules/vae_atac n_peaks differs from the peak count"),
        (sum(kw["vae_atac"]["chrom_sizes"]) == kw["vae_atac"]["n_peaks"],
         "modules/vae_atac chrom_sizes do not sum to n_peaks"),
        (kw["vae_rna"]["n_batches"] == len(card["batch_categories"]["rna"]),
         "modules/vae_rna n_batches differs from batch_categories/rna"),
        (kw["vae_atac"]["n_batches"] == len(card["batch_categories"]["atac"]),
         "modules/vae_atac n_batches differs from batch_categories/atac"),
        ((kw["translator_rna_to_atac"]["latent_in"], kw["translator_rna_to_atac"]["latent_out"])
         == (kw["vae_rna"]["latent"], kw["vae_atac"]["latent"]), "translator_rna_to_atac does not fit the VAE latents"),
        ((kw["translator_atac_to_rna"]["latent_in"], kw["translator_atac_to_rna"]["latent_out"])
         == (kw["vae_atac"]["latent"], kw["vae_rna"]["latent"]), "translator_atac_to_rna does not fit the VAE latents"),
        (kw["translator_atac_to_rna"].get("dispersion_genes", 0) in (0, feats["rna"]["n"])
         and kw["translator_atac_to_rna"].get("dispersion_batches", 0) in (0, len(card["batch_categories"]["atac"])),
         "translator_atac_to_rna's dispersion does not fit the RNA genes and ATAC batch categories"),
        (not kw["translator_rna_to_atac"].get("dispersion_genes", 0),
         "translator_rna_to_atac cannot have an RNA dispersion"),
    ]
    for ok, msg in checks:
        if not ok:
            raise InputFormatError(path, msg)
    listed = set(card["files_sha256"])
    for fname in [s["weights"] for s in mods.values()] + list(card["tensors"].values()):
        if fname not in listed:
            raise InputFormatError(path, f"weights file {fname} has no checksum in files_sha256")


def read_card(model_dir) -> dict[str, Any]:
    """The parsed ``model.json`` of a model directory: checksum verified (``model.json.sha256``),
    validated against :data:`MODEL_CARD_SCHEMA` and cross-checked. Raises InputFormatError."""
    path = Path(model_dir) / MODEL_JSON
    if not path.is_file():
        raise InputFormatError(model_dir, f"not a Polarbear model directory (no {MODEL_JSON})")
    raw = path.read_bytes()
    try:
        card = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputFormatError(path, f"invalid JSON ({getattr(e, 'msg', e)})", line=getattr(e, "lineno", None)) from e
    if isinstance(card, dict) and isinstance(card.get("format_version"), int) and card["format_version"] >= 2:
        sha_path = Path(model_dir) / MODEL_JSON_SHA
        if not sha_path.is_file():
            raise InputFormatError(sha_path, "missing: the model card's checksum file is required")
        expected = sha_path.read_text(errors="replace").split()
        if not expected or hashlib.sha256(raw).hexdigest() != expected[0].lower():
            raise InputFormatError(path, f"checksum does not match {MODEL_JSON_SHA} (file changed or truncated)")
    _check_card(card, path)
    return card


@dataclass
class ModelDir:
    """A loaded model directory: the card, feature names and the rebuilt modules (eval mode)."""

    path: Path
    card: dict[str, Any]
    modules: dict[str, torch.nn.Module] = field(default_factory=dict)
    tensors: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)

    @property
    def rna_features(self) -> list[str]:
        return self.card["features"]["rna"]["names"]

    @property
    def atac_features(self) -> list[str]:
        return self.card["features"]["atac"]["names"]

    def features(self, modality: str) -> list[str]:
        return self.rna_features if modality == "rna" else self.atac_features

    def batch_categories(self, modality: str) -> list[str]:
        return list(self.card["batch_categories"][modality])


def _build_module(cls_path: str, kwargs: dict, state: Mapping[str, Any], where: Path):
    """Build an allowed class on the ``meta`` device, check the weights' names and shapes, then
    build it for real and load the weights (strict)."""
    import torch

    cls = import_class(cls_path)
    try:
        with torch.device("meta"):
            skeleton = cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise InputFormatError(where, f"cannot build {cls_path} from model.json ({e})") from e
    want = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in state.items()}
    if want != have:
        missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
        wrong = [k for k in set(want) & set(have) if want[k] != have[k]]
        detail = "; ".join(x for x in (
            f"missing {missing[:3]}" if missing else "", f"unexpected {extra[:3]}" if extra else "",
            f"shape of {wrong[0]} is {have[wrong[0]]}, the architecture needs {want[wrong[0]]}" if wrong else "") if x)
        raise InputFormatError(where, f"weights do not fit the architecture in model.json ({detail})")
    module = cls(**kwargs)
    module.load_state_dict(state)
    return module


def load_model_dir(model_dir, device: torch.device | str = "cpu", verify: bool = True) -> ModelDir:
    """Load a model directory: verify and validate ``model.json`` (:func:`read_card`), verify every
    weights file's sha256 (``verify``), rebuild each module from :data:`MODEL_CLASSES` and load its
    weights with ``weights_only=True``."""
    model_dir = Path(model_dir)
    card = read_card(model_dir)
    if verify:
        for fname, digest in card["files_sha256"].items():
            f = model_dir / fname
            if not f.is_file():
                raise InputFormatError(f, "weights file listed in model.json is missing")
            if _sha256(f) != digest:
                raise InputFormatError(f, "checksum does not match model.json (file changed or truncated)")
    modules = {}
    for name, spec in card["modules"].items():
        wpath = model_dir / spec["weights"]
        module = _build_module(spec["class"], spec["kwargs"], load_weights(wpath), wpath)
        modules[name] = module.to(device).eval()
    tensors = {name: load_weights(model_dir / fname) for name, fname in card["tensors"].items()}
    return ModelDir(path=model_dir, card=card, modules=modules, tensors=tensors)


# ----------------------------------------------------------------------------- features

_PEAK_RE = re.compile(r"^(?P<chrom>[^:_\-\s]+)[:_\-](?P<start>\d+)[:_\-](?P<end>\d+)$")


def normalise_peak_name(name: str) -> str:
    """``chr1-100-200`` / ``chr1_100_200`` / ``chr1:100:200`` -> ``chr1:100-200``; else unchanged."""
    m = _PEAK_RE.match(str(name).strip())
    return f"{m['chrom']}:{int(m['start'])}-{int(m['end'])}" if m else str(name).strip()


RNA_NAME_COLUMNS = ("gene_name", "gene_symbol", "gene_symbols", "feature_name", "symbol", "Gene")


def input_feature_names(adata, modality: str, model_features: Sequence[str]) -> tuple[np.ndarray, str]:
    """Feature names of ``adata`` to match against the model, and where they came from.

    RNA: ``var_names``, or a gene-symbol column of ``var`` (first of :data:`RNA_NAME_COLUMNS`)
    when that matches more model genes (e.g. var_names are Ensembl ids). ATAC: ``var_names``
    normalised to ``chrom:start-end``, or built from ``var`` columns chrom/start/end when present
    and matching more peaks.
    """
    model_set = set(model_features)
    candidates: list[tuple[str, np.ndarray]] = []
    if modality == "rna":
        candidates.append(("var_names", np.asarray(adata.var_names, dtype=str)))
        for col in RNA_NAME_COLUMNS:
            if col in adata.var.columns:
                candidates.append((f"var['{col}']", adata.var[col].astype(str).to_numpy()))
    else:
        candidates.append(("var_names", np.array([normalise_peak_name(n) for n in adata.var_names], dtype=object).astype(str)))
        if {"chrom", "start", "end"} <= set(adata.var.columns):
            v = adata.var
            built = (v["chrom"].astype(str) + ":" + v["start"].astype(np.int64).astype(str) + "-"
                     + v["end"].astype(np.int64).astype(str)).to_numpy()
            candidates.append(("var[chrom,start,end]", built.astype(str)))
    best = max(candidates, key=lambda c: sum(n in model_set for n in c[1]))  # first wins ties
    return best[1], best[0]


@dataclass
class FeatureMatch:
    """Result of mapping an input's features onto the model's features."""

    X: sp.csr_matrix             # cells x model features (missing ones are all-zero columns)
    modality: str
    source: str                  # where the input names came from (var_names or a var column)
    n_model: int
    n_input: int
    n_matched: int               # model features found in the input
    missing: list[str]           # model features absent from the input (filled with zeros)
    n_extra: int                 # input features unknown to the model (dropped)
    extra_examples: list[str]
    n_duplicates: int            # input features whose name occurs more than once (summed)

    @property
    def missing_frac(self) -> float:
        return len(self.missing) / max(self.n_model, 1)

    def summary(self) -> str:
        ex_missing = ", ".join(self.missing[:5]) + (" ..." if len(self.missing) > 5 else "")
        ex_extra = ", ".join(self.extra_examples[:5]) + (" ..." if self.n_extra > 5 else "")
        s = (f"{self.modality.upper()} features (names from {self.source}): {self.n_matched}/{self.n_model} "
             f"model features found; {len(self.missing)} missing ({100 * self.missing_frac:.1f}%)")
        if self.missing:
            s += f" [{ex_missing}] -> filled with zeros"
        s += f"; {self.n_extra} extra input features dropped"
        if self.n_extra:
            s += f" [{ex_extra}]"
        if self.n_duplicates:
            s += f"; {self.n_duplicates} duplicated input features summed"
        return s

    def uns(self) -> dict[str, Any]:
        """Record of the fill rule for the output file's ``uns``."""
        return {
            "modality": self.modality,
            "names_from": self.source,
            "n_model_features": self.n_model,
            "n_input_features": self.n_input,
            "n_matched": self.n_matched,
            "n_missing": len(self.missing),
            "missing_features": np.asarray(self.missing, dtype=str),
            "fill_rule": "missing features filled with 0; extra features dropped; duplicates summed",
            "n_extra_dropped": self.n_extra,
            "n_duplicates_summed": self.n_duplicates,
        }


def match_features(
    adata,
    modality: str,
    model_features: Sequence[str],
    max_missing_frac: float = DEFAULT_MAX_MISSING_FRAC,
    path=None,
) -> FeatureMatch:
    """Map ``adata`` (cells x features, counts in X) onto the model's features by name.

    Sparse throughout: builds a (n_input x n_model) 0/1 assignment matrix ``M`` and returns
    ``X @ M``, so extra features disappear, duplicated names are summed and missing model
    features are zero columns. Raises :class:`InputFormatError` if more than
    ``max_missing_frac`` of the model's features are missing.
    """
    if modality not in ("rna", "atac"):
        raise ValueError(f"modality must be 'rna' or 'atac', not {modality!r}")
    where = path if path is not None else "<input AnnData>"
    if adata.n_obs == 0:
        raise InputFormatError(where, "contains no cells")
    names, source = input_feature_names(adata, modality, model_features)
    index = pd.Index(list(model_features))
    pos = index.get_indexer(names)
    hit = pos >= 0
    counts = pd.Series(names[hit]).value_counts()
    n_dup = int((counts[counts > 1]).sum())
    matched_pos = np.unique(pos[hit])
    missing_mask = np.ones(len(index), dtype=bool)
    missing_mask[matched_pos] = False
    missing = list(index[missing_mask])
    fm = FeatureMatch(
        X=None, modality=modality, source=source, n_model=len(index), n_input=len(names),
        n_matched=len(matched_pos), missing=missing, n_extra=int((~hit).sum()),
        extra_examples=list(names[~hit][:10]), n_duplicates=n_dup,
    )
    if fm.missing_frac > max_missing_frac:
        raise InputFormatError(
            where,
            f"{fm.summary()}. More than {100 * max_missing_frac:g}% of the model's {modality.upper()} features "
            f"are missing, refusing to predict (raise --max-missing-frac to override; are the features "
            f"named like the model's, e.g. {', '.join(index[:3])}?)",
        )
    rows = np.flatnonzero(hit)
    M = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, pos[hit])), shape=(len(names), len(index))
    )
    X = adata.X
    X = sp.csr_matrix(X, dtype=np.float32) if sp.issparse(X) else sp.csr_matrix(np.asarray(X, dtype=np.float32))
    check_values(X, where, "X", adata.obs_names, adata.var_names)
    out = (X @ M).tocsr()
    if modality == "atac" and out.nnz:
        out.data[:] = 1.0  # binarise, as in training (duplicates summed first)
    out.eliminate_zeros()
    fm.X = out.astype(np.float32)
    return fm


def looks_like_counts(X) -> bool:
    """True if the stored values are non-negative integers (raw counts or 0/1)."""
    data = X.data if sp.issparse(X) else np.asarray(X).ravel()
    data = data[: 1_000_000]
    return bool(data.size == 0 or (np.all(data >= 0) and np.allclose(data, np.round(data))))


# ----------------------------------------------------------------------------- export


def module_kwargs(module) -> dict[str, Any]:
    """Constructor keyword arguments of a package module: its ``config()`` without the
    bookkeeping keys (``kind``, ``fit``)."""
    cfg = dict(module.config())
    cfg.pop("kind", None)
    cfg.pop("fit", None)
    return cfg
