"""Verified downloads: one urllib code path for http(s):// and file:// URLs.

The body is streamed into a temporary file next to the destination while its md5/sha256 are
computed; .gz files are decompressed once to the end (CRC + length check) to catch truncation;
only a fully verified file is renamed onto the final name. Any failure removes the temporary
file and raises :class:`DownloadError` naming the file.

Checksums come from up to three sources, and every one that is available is checked:

* the config literal (``md5`` / ``sha256``);
* a publisher checksum manifest (``checksum_url``: ``md5sum``/``sha256sum`` or BSD style),
  looked up by the file's name on the server (the last path component of its URL);
* the md5 the HTTP server reports for the body (``x-goog-hash: md5=...`` from Google Cloud
  Storage, or ``Content-MD5``).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import logging
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from pathlib import Path

from .fileutils import atomic_path, write_json

CHUNK = 1 << 20
MANIFEST_MAX_BYTES = 16 << 20
_NET_ERRORS = (urllib.error.URLError, TimeoutError, ConnectionError, OSError)
_ALGO = {32: "md5", 64: "sha256"}
_HEX = re.compile(r"[0-9a-fA-F]{32}|[0-9a-fA-F]{64}")
_GNU_LINE = re.compile(r"^([0-9a-fA-F]+)\s+\*?(.+)$")
_BSD_LINE = re.compile(r"^(MD5|SHA256)\s*\((.+)\)\s*=\s*([0-9a-fA-F]+)$")


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


def parse_checksum_manifest(text: str, name: str) -> str | None:
    """The checksum (lower-case hex: 32 = md5, 64 = sha256) listed for ``name`` in a manifest.

    Accepts ``md5sum``/``sha256sum`` lines (``<hex>  <name>``, ``<hex> *<name>``) and BSD lines
    (``MD5 (<name>) = <hex>``); a leading ``./`` on names is ignored, as are blank and ``#``
    lines. Returns None when ``name`` is not listed; raises ValueError when it is listed twice
    with different checksums of the same kind.
    """
    found: dict[int, str] = {}
    for line in text.splitlines():
        entry = _manifest_line(line.strip())
        if entry is None or entry[1] != name:
            continue
        digest = entry[0]
        if found.get(len(digest), digest) != digest:
            raise ValueError(f"{name} is listed twice with different {_ALGO[len(digest)]} checksums")
        found.setdefault(len(digest), digest)
    return found.get(64) or found.get(32)


def _manifest_line(line: str) -> tuple[str, str] | None:
    """(hex, name) of one manifest line, or None for anything that is not a checksum line."""
    if not line or line.startswith("#"):
        return None
    m = _BSD_LINE.match(line)
    if m:
        algo, name, digest = m.group(1), m.group(2), m.group(3)
        if _ALGO.get(len(digest)) != algo.lower():
            return None
    else:
        m = _GNU_LINE.match(line)
        if not m or not _HEX.fullmatch(m.group(1)):
            return None
        digest, name = m.group(1), m.group(2)
    name = name[2:] if name.startswith("./") else name
    return digest.lower(), name


def _b64_md5(value: str) -> str | None:
    """A base64-encoded 16-byte md5 as hex, or None if ``value`` is not one."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 16 else None


def _server_md5s(headers: dict) -> list[tuple[str, str]]:
    """(header name, md5 hex) for every md5 the server reported about the body it sent.

    ``headers`` maps lower-case header names to their values (repeated headers joined by ",").
    GCS's ``x-goog-hash`` describes the stored object, so it is skipped when GCS decompressed
    a gzip-encoded object on the fly (stored encoding differs from the response encoding).
    """
    out = []
    stored = headers.get("x-goog-stored-content-encoding", "identity").strip().lower()
    served = headers.get("content-encoding", "identity").strip().lower()
    if stored == served or stored == "identity":
        for part in headers.get("x-goog-hash", "").split(","):
            key, _, value = part.strip().partition("=")
            md5 = _b64_md5(value) if key.lower() == "md5" else None
            if md5:
                out.append(("x-goog-hash", md5))
    md5 = _b64_md5(headers.get("content-md5", ""))
    if md5:
        out.append(("Content-MD5", md5))
    return out


def server_md5(headers: dict) -> str | None:
    """The body md5 (hex) reported by the server in ``x-goog-hash`` or ``Content-MD5``, if any."""
    found = _server_md5s(headers)
    return found[0][1] if found else None


MAX_REDIRECTS = 5


class _RedirectPolicy(urllib.request.HTTPRedirectHandler):
    """Follow at most :data:`MAX_REDIRECTS` redirects, and only to the same scheme (or from
    http:// up to https://): a download never ends up on ftp://, file:// or downgraded to http."""

    max_redirections = MAX_REDIRECTS

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        old = urllib.parse.urlsplit(req.full_url).scheme
        new = urllib.parse.urlsplit(urllib.parse.urljoin(req.full_url, newurl)).scheme
        if new != old and not (old == "http" and new == "https"):
            raise DownloadError(f"{url_basename(req.full_url)}: refusing the redirect from {old}:// to {new}:// "
                                f"({newurl})")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_RedirectPolicy)


def _open(url: str, timeout: float):
    req = urllib.request.Request(url, headers={"User-Agent": "polarbear-workflow/0.1"})
    return _OPENER.open(req, timeout=timeout)


def _headers(url: str, response) -> dict:
    """HTTP response headers as {lower-case name: value}; {} for file:// URLs."""
    if not url.startswith("http"):
        return {}
    out: dict[str, str] = {}
    for key, value in response.headers.items():
        key = key.lower()
        out[key] = f"{out[key]},{value}" if key in out else value
    return out


def _fetch(url: str, dest: Path, timeout: float) -> tuple[str, str, int, dict]:
    """Stream ``url`` into ``dest``; returns (md5, sha256, bytes, headers)."""
    md5, sha = hashlib.md5(), hashlib.sha256()
    n = 0
    with _open(url, timeout) as r, open(dest, "wb") as out:
        headers = _headers(url, r)
        while True:
            buf = r.read(CHUNK)
            if not buf:
                break
            out.write(buf)
            md5.update(buf)
            sha.update(buf)
            n += len(buf)
    expected = headers.get("content-length")
    if expected is not None and int(expected) != n:
        raise DownloadError(f"{dest.name}: received {n} bytes, server announced {expected} (truncated)")
    return md5.hexdigest(), sha.hexdigest(), n, headers


def _fetch_text(url: str, timeout: float) -> str:
    with _open(url, timeout) as r:
        data = r.read(MANIFEST_MAX_BYTES + 1)
    if len(data) > MANIFEST_MAX_BYTES:
        raise ValueError(f"larger than {MANIFEST_MAX_BYTES} bytes, not a checksum manifest")
    return data.decode("utf-8", errors="replace")


def _retry(fn, url: str, retries: int, log: logging.Logger, failure: str):
    """``fn()``, retrying network errors with backoff (not HTTP 4xx, not file://).

    Raises DownloadError(``failure`` + the last error) when every attempt failed; a
    DownloadError raised by ``fn`` (checksum, gzip) is passed through without retrying.
    """
    last = None
    for attempt in range(1, retries + 1):
        try:
            return fn()
        except DownloadError:
            raise
        except _NET_ERRORS as e:
            last = e
            if isinstance(e, urllib.error.HTTPError) and 300 <= e.code < 500:
                break  # client errors and too many redirects are final
            if url.startswith("file:") or attempt == retries:
                break
            log.warning("download of %s failed (attempt %d/%d): %s", url, attempt, retries, e)
            time.sleep(min(30, 2 ** attempt))
    raise DownloadError(f"{failure} ({last})") from last


def url_basename(url: str) -> str:
    """The file's name on the server: the last path component of ``url`` (percent-decoded)."""
    return urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])


def manifest_checksum(checksum_url: str, url: str, name: str, retries: int = 3, timeout: float = 60.0,
                      logger: logging.Logger | None = None) -> str:
    """The checksum that the manifest at ``checksum_url`` lists for the file at ``url``.

    ``name`` (our local file name) is only used in error messages.
    """
    log = logger or logging.getLogger("polarbear")
    remote = url_basename(url)
    try:
        text = _retry(lambda: _fetch_text(checksum_url, timeout), checksum_url, retries, log,
                      f"{name}: checksum manifest {checksum_url} could not be fetched")
        digest = parse_checksum_manifest(text, remote)
    except ValueError as e:
        raise DownloadError(f"{name}: checksum manifest {checksum_url}: {e}") from e
    if digest is None:
        raise DownloadError(f"{name}: {remote} is not listed in checksum manifest {checksum_url}")
    return digest


def _verify(name: str, url: str, expected: list[tuple[str, str]], got_md5: str, got_sha: str) -> None:
    """Raise DownloadError unless every (label, hex) in ``expected`` matches the body."""
    for label, digest in expected:
        algo = _ALGO[len(digest)]
        got = got_md5 if algo == "md5" else got_sha
        if got != digest:
            raise DownloadError(f"{name}: {algo} mismatch against {label} "
                                f"(expected {digest}, got {got}) for {url}")


def _agree(name: str, expected: list[tuple[str, str]]) -> None:
    """Fail before downloading when two sources give different checksums of the same kind."""
    for i, (label_a, a) in enumerate(expected):
        for label_b, b in expected[i + 1:]:
            if len(a) == len(b) and a != b:
                raise DownloadError(f"{name}: {label_a} ({a}) and {label_b} ({b}) disagree")


def download(url: str, dest, md5: str | None = None, sha256: str | None = None, retries: int = 3,
             timeout: float = 60.0, sidecar=None, logger: logging.Logger | None = None,
             checksum_url: str | None = None) -> dict:
    """Fetch ``url`` to ``dest`` atomically and verify it against every checksum available.

    ``md5``/``sha256``: expected checksums from the config. ``checksum_url``: a publisher
    manifest (fetched first; the file must be listed in it). An md5 reported by the HTTP server
    is checked too. All of them must match. When none was available the observed sha256 is
    recorded in ``sidecar`` (default ``<dest>.sha256``, sha256sum format) and a warning logged.
    Returns dict(file, url, bytes, md5, sha256, verified, verified_by). Network errors are
    retried ``retries`` times with backoff; checksum or gzip failures are not retried.
    """
    dest = Path(dest)
    log = logger or logging.getLogger("polarbear")
    expected = [(f"config {algo}", v.lower()) for algo, v in (("md5", md5), ("sha256", sha256)) if v]
    if checksum_url:
        digest = manifest_checksum(checksum_url, url, dest.name, retries, timeout, log)
        expected.append((f"manifest {_ALGO[len(digest)]} ({checksum_url})", digest))
    _agree(dest.name, expected)

    def attempt() -> dict:
        with atomic_path(dest) as tmp:
            got_md5, got_sha, n, headers = _fetch(url, tmp, timeout)
            checks = expected + [(f"server md5 ({h})", v) for h, v in _server_md5s(headers)]
            _verify(dest.name, url, checks, got_md5, got_sha)
            if dest.name.endswith(".gz"):
                try:
                    check_gzip(tmp)
                except DownloadError as e:
                    raise DownloadError(f"{dest.name}: {str(e).split(': ', 1)[1]} ({url})") from e
        return {"file": dest.name, "url": url, "bytes": n, "md5": got_md5, "sha256": got_sha,
                "verified": bool(checks), "verified_by": [label for label, _ in checks]}

    info = _retry(attempt, url, retries, log, f"{dest.name}: download from {url} failed")
    if not info["verified"]:
        side = Path(sidecar) if sidecar else dest.with_name(dest.name + ".sha256")
        with atomic_path(side) as tmp:
            tmp.write_text(f"{info['sha256']}  {dest.name}\n")
        log.warning("%s: no checksum available (config, manifest or server); recorded sha256 %s in %s "
                    "(add it to config to verify)", dest.name, info["sha256"], side)
    else:
        log.info("%s: %d bytes, verified by %s", dest.name, info["bytes"], ", ".join(info["verified_by"]))
    return info


def summary_path(sidecar) -> Path:
    """``<dir>/<file>.json`` next to the ``<dir>/<file>.sha256`` sidecar."""
    side = Path(sidecar)
    stem = side.name[: -len(".sha256")] if side.name.endswith(".sha256") else side.name
    return side.with_name(stem + ".json")


def write_summary(info: dict, path) -> Path:
    """Write the verification summary of one download (bytes, md5, sha256, verified_by) as JSON."""
    keys = ("file", "url", "bytes", "md5", "sha256", "verified", "verified_by")
    write_json({k: info[k] for k in keys if k in info}, path)
    return Path(path)
