"""Trust (issue 12): model directories and checkpoints are data, never code; bad values never
pass silently; a killed writer leaves nothing behind; outputs never overwrite inputs.

The attacks are those a shared model directory or a planted file allows: a ``model.json`` that
names an arbitrary callable (re-checksummed, as an attacker would), weights files that are
pickles with code in them, path tricks in file names, and shapes that do not fit.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from workflow_lib import cli
from workflow_lib.fileutils import InputFormatError, atomic_path, check_values, clean_stale_temps
from workflow_lib.io import read_mtx_csr
from workflow_lib.model_dir import (MODEL_JSON_SHA, ModuleEntry, import_class, load_model_dir, read_card,
                                    write_model_dir)
from workflow_lib.models.translator import LatentTranslator
from workflow_lib.models.vae import ATACVAE, RNAVAE
from workflow_lib.snap import read_snap, write_snap
from workflow_lib.data import SparseCellLoader
from workflow_lib.polarbear import vae_loss_fn
from workflow_lib.train import FitConfig, fit

GENES = [f"Gene{i}" for i in range(12)]
PEAKS = [f"chr1:{1000 + 500 * i}-{1300 + 500 * i}" for i in range(7)] + \
        [f"chr2:{1000 + 500 * i}-{1300 + 500 * i}" for i in range(5)]


class _PlantedCode:
    """Pickles as a call to ``open(path, 'w')``: unpickling it would create the file."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _model_dir(path: Path) -> Path:
    """A small, untrained but complete Polarbear model directory."""
    torch.manual_seed(0)
    cats = {"rna": ["snare", "zeisel"], "atac": ["snare", "li"]}
    rna = RNAVAE(len(GENES), 2, 4, batch_categories=cats["rna"])
    atac = ATACVAE(len(PEAKS), 2, 3, [7, 5], depth_ref=5.0, batch_categories=cats["atac"])
    t_xy, t_yx = LatentTranslator(4, 3), LatentTranslator(3, 4, 2, len(GENES))  # t_yx: its own dispersion

    def kw(vae):
        c = vae.config()
        c.pop("kind")
        return c
    modules = {"vae_rna": ModuleEntry(rna, kw(rna)), "vae_atac": ModuleEntry(atac, kw(atac)),
               "translator_rna_to_atac": ModuleEntry(t_xy, {"latent_in": 4, "latent_out": 3}),
               "translator_atac_to_rna": ModuleEntry(t_yx, kw(t_yx))}
    ridge = {"mean": torch.zeros(5, dtype=torch.float64), "scale": torch.ones(5, dtype=torch.float64),
             "coef": torch.zeros(5, dtype=torch.float64), "intercept": torch.tensor(0.0, dtype=torch.float64)}
    return write_model_dir(path, modules=modules, rna_features=GENES, atac_features=PEAKS, batch_categories=cats,
                           tensors={"depth_regressor": ridge},
                           card={"point": "latent4_beta1", "default_batch": {"rna": "snare", "atac": "snare"}})


@pytest.fixture()
def model(tmp_path):
    return _model_dir(tmp_path / "model")


def _rewrite_card(model: Path, mutate, rechecksum: bool = True) -> None:
    """Edit model.json as an attacker would: and (by default) recompute its checksum file."""
    card = json.loads((model / "model.json").read_text())
    mutate(card)
    (model / "model.json").write_text(json.dumps(card))
    if rechecksum:
        digest = hashlib.sha256((model / "model.json").read_bytes()).hexdigest()
        (model / MODEL_JSON_SHA).write_text(f"{digest}  model.json\n")


def _replace_file(model: Path, name: str, writer) -> None:
    """Replace a weights file and update both checksums (a consistent but malicious directory)."""
    writer(model / name)
    digest = hashlib.sha256((model / name).read_bytes()).hexdigest()
    _rewrite_card(model, lambda c: c["files_sha256"].__setitem__(name, digest))


def _rna_input(path: Path, values=None) -> Path:
    X = np.random.default_rng(0).poisson(2.0, (6, len(GENES))).astype(np.float32) if values is None else values
    a = ad.AnnData(sp.csr_matrix(X), obs=pd.DataFrame(index=[f"c{i}" for i in range(X.shape[0])]),
                   var=pd.DataFrame(index=GENES))
    a.write_h5ad(path)
    return path


# ----------------------------------------------------------------------------- model directories


def test_a_clean_model_directory_loads_and_translates(model, tmp_path):
    m = load_model_dir(model)
    assert set(m.modules) == {"vae_rna", "vae_atac", "translator_rna_to_atac", "translator_atac_to_rna"}
    out = tmp_path / "pred.h5ad"
    assert cli.main(["-q", "translate", "--model", str(model), "--input", str(_rna_input(tmp_path / "in.h5ad")),
                     "--output", str(out)]) == 0
    assert ad.read_h5ad(out).shape == (6, len(PEAKS))


@pytest.mark.parametrize("cls", ["workflow_lib.download.download", "os.system", "builtins.eval",
                                 "workflow_lib.models.vae.RNAVAE.__init__", "workflow_lib.fileutils.write_json"])
def test_model_json_naming_any_other_callable_runs_nothing(model, tmp_path, cls, capsys):
    """The crafted model.json of the issue: re-checksummed, naming a function with arguments that
    would write a file. Loading and `polarbear translate` refuse before anything runs."""
    marker = tmp_path / "downloaded"
    src = tmp_path / "payload.txt"
    src.write_text("x")
    kwargs = {"url": src.as_uri(), "dest": str(marker)}
    _rewrite_card(model, lambda c: c["modules"]["vae_rna"].update({"class": cls, "kwargs": kwargs}))
    with pytest.raises(InputFormatError, match="invalid model card at modules/vae_rna"):
        load_model_dir(model)
    out = tmp_path / "pred.h5ad"
    rc = cli.main(["-q", "translate", "--model", str(model), "--input", str(_rna_input(tmp_path / "in.h5ad")),
                   "--output", str(out)])
    assert rc == 2 and "invalid model card" in capsys.readouterr().err
    assert not marker.exists() and not out.exists()
    with pytest.raises(ValueError, match="refusing to load class"):
        import_class(cls)


def test_model_json_edited_without_its_checksum_is_refused(model):
    _rewrite_card(model, lambda c: c.update(point="tampered"), rechecksum=False)
    with pytest.raises(InputFormatError, match="checksum does not match model.json.sha256"):
        read_card(model)
    with pytest.raises(InputFormatError, match="checksum does not match"):
        load_model_dir(model)


def test_model_json_without_checksum_file_or_of_an_old_format_is_refused(model):
    (model / MODEL_JSON_SHA).unlink()
    with pytest.raises(InputFormatError, match="model.json.sha256: missing"):
        load_model_dir(model)
    _rewrite_card(model, lambda c: c.update(format_version=1))
    with pytest.raises(InputFormatError, match="format_version 1 predates checksummed model cards"):
        load_model_dir(model)


@pytest.mark.parametrize("what, mutate, message", [
    ("unknown constructor argument", lambda c: c["modules"]["vae_rna"]["kwargs"].update(evil="x"),
     "Additional properties are not allowed"),
    ("negative latent", lambda c: c["modules"]["translator_rna_to_atac"]["kwargs"].update(latent_in=-4),
     "modules/translator_rna_to_atac/kwargs/latent_in"),
    ("dropout of 2", lambda c: c["modules"]["vae_atac"]["kwargs"].update(dropout=2), "kwargs/dropout"),
    ("string where a number belongs", lambda c: c["modules"]["vae_rna"]["kwargs"].update(n_genes="12"),
     "kwargs/n_genes"),
    ("unknown activation", lambda c: c["modules"]["vae_rna"]["kwargs"].update(activation="exec"),
     "kwargs/activation"),
    ("weights outside the directory", lambda c: c["modules"]["vae_rna"].update(weights="../../etc/x.pt"),
     "modules/vae_rna/weights"),
    ("absolute weights path", lambda c: c["tensors"].update(depth_regressor="/tmp/x.pt"), "tensors/depth_regressor"),
    ("an extra module", lambda c: c["modules"].update(extra=c["modules"]["vae_rna"]), "modules"),
    ("a module missing", lambda c: c["modules"].pop("translator_atac_to_rna"), "modules"),
    ("weights without a checksum", lambda c: c["files_sha256"].pop("vae_atac.pt"), "has no checksum"),
    ("feature count disagrees", lambda c: c["features"]["rna"]["names"].pop(), "features/rna"),
    ("n_genes disagrees with the features",
     lambda c: (c["modules"]["vae_rna"]["kwargs"].update(n_genes=13), c["features"]["rna"].update(n=13),
                c["modules"]["translator_atac_to_rna"]["kwargs"].update(dispersion_genes=13),
                c["features"]["rna"]["names"].append("GeneX")), "weights do not fit"),
    ("translator does not fit the latents", lambda c: c["modules"]["translator_rna_to_atac"]["kwargs"].update(
        latent_in=5), "translator_rna_to_atac does not fit"),
    ("translator dispersion does not fit the genes", lambda c: c["modules"]["translator_atac_to_rna"]["kwargs"].update(
        dispersion_genes=13), "translator_atac_to_rna's dispersion does not fit"),
    ("an RNA dispersion on the RNA->ATAC translator", lambda c: c["modules"]["translator_rna_to_atac"][
        "kwargs"].update(dispersion_batches=2, dispersion_genes=12), "translator_rna_to_atac cannot have"),
    ("chromosome blocks do not sum to the peaks", lambda c: c["modules"]["vae_atac"]["kwargs"].update(
        chrom_sizes=[7, 6]), "chrom_sizes do not sum"),
])
def test_invalid_model_cards_are_refused_with_where(model, what, mutate, message):
    _rewrite_card(model, mutate)
    with pytest.raises(InputFormatError, match=message.replace("(", r"\(")):
        load_model_dir(model)


def test_weights_that_do_not_fit_the_architecture_are_refused_before_building(model):
    """A huge architecture in model.json with small weights: refused from the meta-device
    skeleton (no memory allocated), naming the first mismatching tensor."""
    def grow(c):
        c["modules"]["vae_rna"]["kwargs"]["hidden"] = 500_000  # 500k x 14 floats per layer
    _rewrite_card(model, grow)
    with pytest.raises(InputFormatError, match=r"vae_rna.pt: weights do not fit the architecture .*shape of"):
        load_model_dir(model)


@pytest.mark.parametrize("name", ["vae_rna.pt", "depth_regressor.pt"])
def test_pickled_code_in_model_weights_is_not_executed(model, tmp_path, name):
    marker = tmp_path / "code_ran"
    _replace_file(model, name, lambda p: torch.save({"w": _PlantedCode(marker)}, p))
    with pytest.raises(InputFormatError, match="not a tensors-only weights file"):
        load_model_dir(model)
    assert not marker.exists()


def test_pickled_code_in_a_training_checkpoint_is_not_executed(tmp_path, caplog):
    """Training checkpoints (pretrain_vae / train_translators / BABEL / `polarbear train`'s
    work directory) are read with weights_only=True: a planted pickle does not run; the
    checkpoint is ignored with a warning and training starts over."""
    marker = tmp_path / "code_ran"
    ckpt = tmp_path / "vae_rna.ckpt"
    torch.save({"key": _PlantedCode(marker), "model": {}}, ckpt)
    rng = np.random.default_rng(0)
    X = sp.csr_matrix(rng.poisson(1.0, (64, 30)).astype(np.float32))
    model = RNAVAE(30, 2, 4)
    cov = {"b": np.eye(2, dtype=np.float32)[rng.integers(0, 2, 64)],
           "size": np.asarray(X.sum(1)).ravel().astype(np.float32) + 1}
    rows = np.arange(64)
    with caplog.at_level("WARNING"):
        res = fit(model, vae_loss_fn(0.0, 0), SparseCellLoader(X, rows, 32, True, 0, cov),
                  SparseCellLoader(X, rows, 32, False, 0, cov), FitConfig(32, 1e-3, 2, 5), ckpt,
                  logging.getLogger("test_security"))
    assert not marker.exists()
    assert "ignoring unreadable checkpoint" in caplog.text and res["epochs_run"] == 2
    assert torch.load(ckpt, weights_only=True)["epoch"] == 1  # rewritten as plain tensors


# ----------------------------------------------------------------------------- bad values


@pytest.mark.parametrize("bad, kind", [(np.nan, "NaN"), (np.inf, "infinite"), (-5.0, "negative")])
def test_translate_refuses_nan_inf_and_negative_values_naming_cell_and_feature(model, tmp_path, bad, kind, capsys):
    X = np.random.default_rng(0).poisson(2.0, (6, len(GENES))).astype(np.float32)
    X[3, 7] = bad
    f = _rna_input(tmp_path / "bad.h5ad", X)
    out = tmp_path / "pred.h5ad"
    assert cli.main(["-q", "translate", "--model", str(model), "--input", str(f), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(f) in err and f"({kind}) at cell 'c3', feature 'Gene7'" in err
    assert not out.exists() and not list(tmp_path.glob(".pred.h5ad*"))


def test_align_refuses_infinite_values(model, tmp_path, capsys):
    rna = _rna_input(tmp_path / "rna.h5ad")
    Y = (np.random.default_rng(1).random((6, len(PEAKS))) < 0.4).astype(np.float32)
    Y[0, 2] = np.inf
    atac = ad.AnnData(sp.csr_matrix(Y), obs=pd.DataFrame(index=[f"c{i}" for i in range(6)]),
                      var=pd.DataFrame(index=PEAKS))
    atac.write_h5ad(tmp_path / "atac.h5ad")
    rc = cli.main(["-q", "align", "--model", str(model), "--rna", str(rna), "--atac", str(tmp_path / "atac.h5ad"),
                   "--output", str(tmp_path / "pairs.tsv")])
    assert rc == 2
    assert f"atac.h5ad: X has 1 invalid value(s) (NaN, infinite or negative); the first is inf (infinite) at " \
           f"cell 'c0', feature '{PEAKS[2]}'" in capsys.readouterr().err


def test_check_values_on_dense_and_sparse_names_the_first_bad_entry():
    X = np.zeros((3, 4), np.float32)
    X[2, 1], X[1, 3] = -1, np.nan
    for M in (X, sp.csr_matrix(X), sp.csc_matrix(X)):
        with pytest.raises(InputFormatError, match=r"m.tsv: counts has 2 invalid value\(s\).*\(NaN\) at row 2, column 4"):
            check_values(M, "m.tsv", "counts")
    check_values(np.abs(np.nan_to_num(X)), "ok")  # fine
    check_values(np.array([[-1.0]]), "ok", nonnegative=False)


def _mtx(path: Path, lines: list[str], shape=(3, 4)) -> Path:
    body = "%%MatrixMarket matrix coordinate real general\n% a comment\n" \
           f"{shape[0]} {shape[1]} {len(lines)}\n" + "".join(f"{x}\n" for x in lines)
    path.write_bytes(gzip.compress(body.encode()))
    return path


@pytest.mark.parametrize("entry, message", [
    ("2 3 -5", "matrix value -5 (counts must be finite and >= 0)"),
    ("2 3 inf", "matrix value inf"),
    ("2 3 nan", "matrix value missing"),
    ("2 3 abc", "malformed matrix entry '2 3 abc'"),
    ("2 x 1", "malformed matrix entry '2 x 1'"),
    ("2 3 1 7", "malformed matrix entry '2 3 1 7'"),
])
def test_mtx_bad_entries_name_file_and_line(tmp_path, entry, message):
    f = _mtx(tmp_path / "counts.mtx.gz", ["1 1 2", "3 4 1", entry, "1 2 1"])
    with pytest.raises(InputFormatError, match=rf"counts.mtx.gz, line 6: {message.replace('(', '.').replace(')', '.')}"):
        read_mtx_csr(f, transpose=False)


def test_corrupt_snap_names_the_file(tmp_path):
    peaks = pd.DataFrame({"chrom": ["chr1"] * 4, "start": [0, 500, 1000, 1500], "end": [300, 800, 1300, 1800]})
    X = sp.random(50, 4, density=0.5, format="csr", random_state=0, dtype=np.float32)
    X.data[:] = 1
    good = tmp_path / "sample.snap"
    write_snap(good, [f"bc{i}" for i in range(50)], X, peaks=peaks)
    assert read_snap(good).shape == (50, 4)
    # flip bytes inside the count dataset's storage: h5py fails while reading, not while opening
    with h5py.File(good, "r") as f:
        ds = f["PM/count"].id
        offset = ds.get_offset() if ds.get_offset() is not None else ds.get_chunk_info(0).byte_offset
    raw = bytearray(good.read_bytes())
    bad = tmp_path / "broken.snap"
    raw[offset:offset + 64] = b"\xff" * 64
    bad.write_bytes(bytes(raw))
    with pytest.raises(InputFormatError, match=r"broken.snap"):
        read_snap(bad)
    truncated = tmp_path / "truncated.snap"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(InputFormatError, match=r"truncated.snap"):
        read_snap(truncated)


# ----------------------------------------------------------------------------- outputs


def test_output_equal_to_an_input_is_refused(model, tmp_path, capsys):
    f = _rna_input(tmp_path / "cells.h5ad")
    before = f.read_bytes()
    assert cli.main(["-q", "translate", "--model", str(model), "--input", str(f), "--output", str(f)]) == 2
    assert "would overwrite the input" in capsys.readouterr().err and f.read_bytes() == before
    inside = model / "pred.h5ad"
    assert cli.main(["-q", "translate", "--model", str(model), "--input", str(f), "--output", str(inside)]) == 2
    assert not inside.exists()
    atac = tmp_path / "atac.h5ad"
    atac.write_bytes(b"")
    assert cli.main(["-q", "align", "--model", str(model), "--rna", str(f), "--atac", str(atac),
                     "--output", str(f)]) == 2
    assert f.read_bytes() == before


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_temporary_files_of_killed_writers_are_cleaned_on_the_next_write(tmp_path):
    import socket

    out = tmp_path / "pred.h5ad"
    host = socket.gethostname()
    stale = tmp_path / f".pred.h5ad.tmp-{host}-{_dead_pid()}-abc123.h5ad"
    live = tmp_path / f".pred.h5ad.tmp-{host}-{os.getppid()}-def456.h5ad"   # a running writer
    other_host = tmp_path / f".pred.h5ad.tmp-otherhost-{_dead_pid()}-x.h5ad"
    unrelated = tmp_path / ".other.h5ad.tmp-x"
    for f in (stale, live, other_host, unrelated):
        f.write_bytes(b"partial")
    with atomic_path(out) as tmp:
        tmp.write_text("done")
    assert out.read_text() == "done"
    assert not stale.exists() and live.exists() and other_host.exists() and unrelated.exists()
    assert clean_stale_temps(out) == []


def test_a_killed_translate_leaves_no_temp_file_after_the_next_run(model, tmp_path):
    """Kill -9 a `polarbear translate` while it writes; the rerun completes and cleans up."""
    f = _rna_input(tmp_path / "in.h5ad")
    out = tmp_path / "pred.h5ad"
    code = (
        "import os, sys, h5py\n"
        "from workflow_lib import cli\n"
        "orig = h5py.File.__init__\n"
        "def die(self, name, *a, **k):\n"
        "    orig(self, name, *a, **k)\n"
        "    if '.tmp-' in str(name):\n"
        "        os.kill(os.getpid(), 9)\n"
        "h5py.File.__init__ = die\n"
        f"cli.main(['-q', 'translate', '--model', {str(model)!r}, '--input', {str(f)!r}, '--output', {str(out)!r}])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert proc.returncode == -9
    assert not out.exists() and list(tmp_path.glob(".pred.h5ad.tmp-*"))  # the killed writer's file
    assert cli.main(["-q", "translate", "--model", str(model), "--input", str(f), "--output", str(out)]) == 0
    assert out.exists() and not list(tmp_path.glob(".pred.h5ad.tmp-*"))
