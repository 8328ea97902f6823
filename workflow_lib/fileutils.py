"""Shared file helpers: atomic writes, logging set-up and input errors that name their file.

Every stage writes its outputs through :func:`atomic_path` so that an interrupted job never
leaves a half-written file behind under the final name.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


class InputFormatError(ValueError):
    """A user-facing error about one input file (and, where known, one line of it)."""

    def __init__(self, path, message: str, line: int | None = None):
        self.path = str(path)
        self.line = line
        where = f"{self.path}, line {line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.tmp-{socket.gethostname()}-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def clean_stale_temps(path) -> list[Path]:
    """Remove temporary files of ``path`` left by killed writers (:func:`atomic_path` names them
    ``.<name>.tmp-<host>-<pid>-*``): only those of this host whose process no longer runs."""
    path = Path(path)
    prefix = _temp_prefix(path)
    pat = re.compile(re.escape(prefix) + r"(\d+)-")
    removed = []
    if not path.parent.is_dir():
        return removed
    for f in path.parent.iterdir():
        m = pat.match(f.name)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            with contextlib.suppress(FileNotFoundError):
                f.unlink()
                removed.append(f)
    return removed


@contextlib.contextmanager
def atomic_path(path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success.

    The temporary file keeps the final suffix (``suffix`` or that of ``path``) so writers that
    look at extensions (h5py, anndata, matplotlib) behave the same. On error it is removed;
    temporary files that killed writers of the same ``path`` left behind are removed on start.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(path)
    fd, tmp = tempfile.mkstemp(
        prefix=f"{_temp_prefix(path)}{os.getpid()}-", suffix=suffix if suffix is not None else "".join(path.suffixes),
        dir=path.parent,
    )
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        if tmp.exists():  # mkstemp creates 0600; give the result the usual umask permissions
            os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def check_values(X, where, what: str = "X", obs_names=None, var_names=None, nonnegative: bool = True) -> None:
    """Refuse NaN, +-Inf and (``nonnegative``) negative values in a cells x features matrix.

    Raises :class:`InputFormatError` naming ``where`` (the file), ``what`` (the matrix) and the
    first offending cell and feature (by name when ``obs_names``/``var_names`` are given, else
    1-based row/column). Sparse-aware: only stored values are scanned.
    """
    import numpy as np
    import scipy.sparse as sp

    if sp.issparse(X):
        X = X if X.format == "csr" else X.tocsr()
        data = np.asarray(X.data)
    else:
        data = np.asarray(X)
    if data.size == 0 or not np.issubdtype(data.dtype, np.number):
        return
    bad = ~np.isfinite(data)
    if nonnegative:
        bad |= data < 0
    if not bad.any():
        return
    flat = int(np.flatnonzero(bad.ravel())[0])
    if sp.issparse(X):
        row = int(np.searchsorted(X.indptr, flat, side="right") - 1)
        col = int(X.indices[flat])
        value = data[flat]
    else:
        row, col = (int(v) for v in np.unravel_index(flat, data.shape)) if data.ndim == 2 else (flat, 0)
        value = data.ravel()[flat]
    kind = "NaN" if np.isnan(value) else ("infinite" if np.isinf(value) else "negative")
    cell = f"cell {obs_names[row]!r}" if obs_names is not None else f"row {row + 1}"
    feat = f"feature {var_names[col]!r}" if var_names is not None else f"column {col + 1}"
    n = int(bad.sum())
    allowed = "NaN, infinite or negative" if nonnegative else "NaN or infinite"
    raise InputFormatError(where, f"{what} has {n} invalid value(s) ({allowed}); the first is "
                                  f"{float(value):g} ({kind}) at {cell}, {feat}"
                                  + ("; raw counts (or 0/1 accessibility) are expected" if nonnegative else ""))


def write_h5ad(adata, path) -> None:
    """Write an AnnData atomically (gzip-free: fast to read back in training)."""
    with atomic_path(path) as tmp:
        adata.write_h5ad(tmp)


def as_bool(values):
    """Coerce a 0/1, True/False or 'True'/'False' column (pandas Series) to bool (NaN -> False)."""
    import pandas as pd

    if values.dtype == bool:
        return values
    if pd.api.types.is_numeric_dtype(values):
        return values.fillna(0).astype(float) != 0
    s = values.astype(str).str.strip().str.lower()
    return s.isin(("true", "1", "yes", "t", "1.0"))


def write_tsv(df, path, index: bool = False) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, sep="\t", index=index)


def write_json(obj, path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def get_logger(log_path=None, name: str = "polarbear") -> logging.Logger:
    """A logger writing timestamped lines to stderr and, if given, to ``log_path``."""
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    for h in list(logger.handlers):
        logger.removeHandler(h)
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(fmt)
    logger.addHandler(stream)
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(log_path, mode="a")
        fh.setFormatter(fmt)
        logger.addHandler(fh)
        _log_uncaught_exceptions(logger)
    return logger


def _log_uncaught_exceptions(logger: logging.Logger) -> None:
    """Route an exception that ends the process through ``logger`` (stderr and the rule log), so
    the traceback is in ``results/logs/...`` for ``--show-failed-logs`` and cluster users."""
    def hook(exc_type, exc, tb):
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc, tb)
            return
        logger.error("failed with %s: %s", exc_type.__name__, exc, exc_info=(exc_type, exc, tb))
    sys.excepthook = hook


@contextlib.contextmanager
def timed(logger: logging.Logger, what: str) -> Iterator[None]:
    """Log the start and the wall time of a step."""
    logger.info("%s ...", what)
    t0 = time.perf_counter()
    yield
    logger.info("%s done in %.1f s", what, time.perf_counter() - t0)
