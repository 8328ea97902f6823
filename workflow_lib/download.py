"""Verified downloads: one urllib code path for http(s):// and file:// URLs.

The body is streamed into a temporary file next to the destination while its md5/sha256 are
computed; .gz files are decompressed once to the end (CRC + length check) to catch truncation;
only a fully verified file is renamed onto the final name. Any failure removes the temporary
file and raises :class:`DownloadError` naming the file.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

from .fileutils import atomic_path

CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A download that failed or did not verify; the message names the file."""


def check_gzip(path) -> None:
    """Decompress a gzip file to its end (verifies every member's CRC and length)."""
    try:
        with gzip.open(path, "rb") as fh:
            while fh.read(CHUNK * 8):
                pass
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as e:
        raise DownloadError(f"{path}: truncated or corrupt gzip file ({e.__class__.__name__}: {e})") from e


def _fetch(url: str, dest: Path, timeout: float) -> tuple[str, str, int]:
    md5, sha = hashlib.md5(), hashlib.sha256()
    n = 0
    req = urllib.request.Request(url, headers={"User-Agent": "polarbear-workflow/0.1"})
    with urllib.request.urlopen(req, timeout=timeout) as r, open(dest, "wb") as out:
        expected = r.headers.get("Content-Length") if url.startswith("http") else None
        while True:
            buf = r.read(CHUNK)
            if not buf:
                break
            out.write(buf)
            md5.update(buf)
            sha.update(buf)
            n += len(buf)
    if expected is not None and int(expected) != n:
        raise DownloadError(f"{dest.name}: received {n} bytes, server announced {expected} (truncated)")
    return md5.hexdigest(), sha.hexdigest(), n


def download(url: str, dest, md5: str | None = None, sha256: str | None = None, retries: int = 3,
             timeout: float = 60.0, sidecar=None, logger: logging.Logger | None = None) -> dict:
    """Fetch ``url`` to ``dest`` atomically and verify it.

    ``md5``/``sha256``: expected checksum (either). When both are None the observed sha256 is
    recorded in ``sidecar`` (default ``<dest>.sha256``, sha256sum format) and a warning logged.
    Returns dict(file, bytes, md5, sha256, verified). Network errors are retried ``retries``
    times with backoff; checksum or gzip failures are not retried.
    """
    dest = Path(dest)
    log = logger or logging.getLogger("polarbear")
    last = None
    ok = False
    for attempt in range(1, retries + 1):
        try:
            with atomic_path(dest) as tmp:
                got_md5, got_sha, n = _fetch(url, tmp, timeout)
                if md5 and got_md5 != md5.lower():
                    raise DownloadError(f"{dest.name}: md5 mismatch (expected {md5}, got {got_md5}) for {url}")
                if sha256 and got_sha != sha256.lower():
                    raise DownloadError(f"{dest.name}: sha256 mismatch (expected {sha256}, got {got_sha}) for {url}")
                if dest.name.endswith(".gz"):
                    try:
                        check_gzip(tmp)
                    except DownloadError as e:
                        raise DownloadError(f"{dest.name}: {str(e).split(': ', 1)[1]} ({url})") from e
            ok = True
            break
        except DownloadError:
            raise
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
            last = e
            if isinstance(e, urllib.error.HTTPError) and 400 <= e.code < 500:
                break
            if url.startswith("file:"):
                break
            log.warning("download of %s failed (attempt %d/%d): %s", url, attempt, retries, e)
            time.sleep(min(30, 2 ** attempt))
    if not ok:
        raise DownloadError(f"{dest.name}: download from {url} failed ({last})") from last
    verified = bool(md5 or sha256)
    info = {"file": dest.name, "bytes": n, "md5": got_md5, "sha256": got_sha, "verified": verified}
    if not verified:
        side = Path(sidecar) if sidecar else dest.with_name(dest.name + ".sha256")
        with atomic_path(side) as tmp:
            tmp.write_text(f"{got_sha}  {dest.name}\n")
        log.warning("%s: no checksum in config; recorded sha256 %s in %s (add it to config to verify)",
                    dest.name, got_sha, side)
    else:
        log.info("%s: %d bytes, checksum verified", dest.name, n)
    return info
