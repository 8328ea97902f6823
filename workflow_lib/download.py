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

A config entry may list several URLs (``urls: [primary, mirror, ...]``, :func:`entry_urls`):
they are tried in order and each result is verified the same way, so a corrupt mirror copy is
refused like any other. Large files: a dropped connection is retried with exponential backoff
and resumed with an HTTP Range request into the same temporary file; the byte count is checked
against Content-Length (or Content-Range); progress (bytes, rate, ETA) is logged every 30 s.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import http.client
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
USER_AGENT = "polarbear-workflow/0.1"
_NET_ERRORS = (urllib.error.URLError, TimeoutError, ConnectionError, OSError, http.client.HTTPException)
BACKOFF_SECONDS = 2.0      # wait before retry k: BACKOFF_SECONDS * 2**(k-1), at most BACKOFF_MAX
BACKOFF_MAX = 60.0
PROGRESS_EVERY = 30.0      # seconds between progress lines of a running download
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
        new_req = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new_req is not None and req.get_method() == "HEAD":
            new_req.method = "HEAD"   # urllib turns a redirected HEAD into a GET (a whole download)
        return new_req


_OPENER = urllib.request.build_opener(_RedirectPolicy)


def _open(url: str, timeout: float, headers: dict | None = None, method: str | None = None):
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **(headers or {})}, method=method)
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


class _Incomplete(ConnectionError):
    """The body ended before the announced length (or a resume could not continue): retried,
    resuming from the bytes already in the temporary file."""


_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)


def parse_content_range(value: str | None) -> tuple[int, int, int | None] | None:
    """``bytes <first>-<last>/<total|*>`` -> (first, last, total or None); None if malformed."""
    m = _CONTENT_RANGE.match(value or "")
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), None if m.group(3) == "*" else int(m.group(3))


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KiB' (binary units up to GiB)."""
    for unit in ("B", "KiB", "MiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class _Partial:
    """The temporary file of one download and the running checksums of the bytes in it, so that a
    dropped connection resumes (HTTP Range) where it stopped instead of starting over."""

    def __init__(self, path: Path, name: str, log: logging.Logger, progress_every: float | None):
        self.path, self.name, self.log, self.progress_every = path, name, log, progress_every
        self.reset()

    def reset(self) -> None:
        self.md5, self.sha = hashlib.md5(), hashlib.sha256()
        self.n = 0
        self.total: int | None = None
        self.headers: dict = {}
        self.path.write_bytes(b"")

    def fetch(self, url: str, timeout: float) -> None:
        """Fetch the rest of ``url`` (all of it when nothing is stored yet) into the file."""
        if self.n and not url.startswith("http"):
            self.reset()   # file:// has no ranges
        extra = {"Range": f"bytes={self.n}-"} if self.n else {}
        try:
            r = _open(url, timeout, extra)
        except urllib.error.HTTPError as e:
            if e.code == 416 and self.n:   # range not satisfiable: start over
                self.log.warning("%s: server refused resuming at byte %d (HTTP 416); starting over",
                                 self.name, self.n)
                self.reset()
                raise _Incomplete(f"HTTP 416 when resuming {url}") from e
            raise
        with r:
            headers = _headers(url, r)
            status = getattr(r, "status", None) or 200
            if self.n:
                rng = parse_content_range(headers.get("content-range")) if status == 206 else None
                if rng is None or rng[0] != self.n:
                    self.log.warning("%s: server did not resume at byte %d (HTTP %s, Content-Range %r); "
                                     "starting over", self.name, self.n, status, headers.get("content-range"))
                    self.reset()
                    if status == 206:  # a range we did not ask for: ask again from the start
                        raise _Incomplete(f"unexpected Content-Range {headers.get('content-range')!r} from {url}")
                else:
                    self.log.info("%s: resuming at byte %d of %s", self.name, self.n, rng[2])
                    if rng[2] is not None:
                        self.total = rng[2]
            if not self.n:
                self.headers = headers   # server md5 headers describe the whole body: 200 responses only
                length = headers.get("content-length", "")
                self.total = int(length) if length.strip().isdigit() else None
            self._stream(r)
        if self.total is not None and self.n != self.total:
            raise _Incomplete(f"{self.name}: received {self.n} bytes, server announced {self.total} (truncated)")

    def _stream(self, r) -> None:
        t0 = last = time.monotonic()
        start = self.n
        with open(self.path, "ab") as out:
            while True:
                buf = r.read(CHUNK)
                if not buf:
                    break
                out.write(buf)
                self.md5.update(buf)
                self.sha.update(buf)
                self.n += len(buf)
                now = time.monotonic()
                if self.progress_every is not None and now - last >= self.progress_every:
                    last = now
                    self.log.info("%s", self.progress(self.n - start, now - t0))

    def progress(self, got: int, elapsed: float) -> str:
        """``<name>: <bytes> of <total> (<pct>), <rate>/s, ETA <time>`` (rate of this connection)."""
        rate = got / elapsed if elapsed > 0 else 0.0
        if self.total:
            eta = _duration((self.total - self.n) / rate) if rate > 0 else "unknown"
            return (f"{self.name}: {human_bytes(self.n)} of {human_bytes(self.total)} "
                    f"({100 * self.n / self.total:.1f}%), {human_bytes(rate)}/s, ETA {eta}")
        return f"{self.name}: {human_bytes(self.n)} (size unknown), {human_bytes(rate)}/s"


def _fetch_text(url: str, timeout: float) -> str:
    with _open(url, timeout) as r:
        data = r.read(MANIFEST_MAX_BYTES + 1)
    if len(data) > MANIFEST_MAX_BYTES:
        raise ValueError(f"larger than {MANIFEST_MAX_BYTES} bytes, not a checksum manifest")
    return data.decode("utf-8", errors="replace")


def _retry(fn, url: str, retries: int, log: logging.Logger, failure: str, backoff: float | None = None):
    """``fn()``, retrying network errors (5xx, timeouts, dropped connections) with exponential
    backoff; not HTTP 3xx/4xx, not file://.

    Raises DownloadError(``failure`` + the last error) when every attempt failed; a
    DownloadError raised by ``fn`` (checksum, gzip) is passed through without retrying.
    """
    base = BACKOFF_SECONDS if backoff is None else backoff
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
            wait = min(BACKOFF_MAX, base * 2 ** (attempt - 1))
            log.warning("download of %s failed (attempt %d/%d): %s; retrying in %.0f s", url, attempt, retries, e, wait)
            time.sleep(wait)
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


def entry_urls(entry: dict) -> list[str]:
    """The URLs of a config ``downloads`` entry, in the order they are tried: ``urls`` (primary
    first, then mirrors) or the single ``url``."""
    urls = entry.get("urls") or ([entry["url"]] if entry.get("url") else [])
    if not urls:
        raise ValueError(f"download entry {entry.get('file')!r} has no url/urls")
    return list(urls)


def download(url, dest, md5: str | None = None, sha256: str | None = None, retries: int = 3,
             timeout: float = 60.0, sidecar=None, logger: logging.Logger | None = None,
             checksum_url: str | None = None, progress_every: float | None = PROGRESS_EVERY,
             backoff: float | None = None) -> dict:
    """Fetch ``url`` to ``dest`` atomically and verify it against every checksum available.

    ``url``: one URL or a list (primary, then mirrors), tried in order until one gives a file
    that verifies; every URL's result is checked the same way. ``md5``/``sha256``: expected
    checksums from the config. ``checksum_url``: a publisher manifest (fetched first; the file
    must be listed in it under the primary URL's file name). An md5 reported by the HTTP server
    is checked too. All of them must match. When none was available the observed sha256 is
    recorded in ``sidecar`` (default ``<dest>.sha256``, sha256sum format) and a warning logged.
    Returns dict(file, url, bytes, md5, sha256, verified, verified_by).

    Network errors (5xx, timeouts, a body shorter than its Content-Length) are retried
    ``retries`` times per URL with exponential backoff (``backoff`` seconds, doubling); an
    interrupted body is resumed with an HTTP Range request into the same temporary file (from
    the start when the server does not honour the range). Checksum or gzip failures are not
    retried on the same URL. Progress (bytes, rate, ETA) is logged every ``progress_every`` s.
    """
    dest = Path(dest)
    urls = [url] if isinstance(url, str) else list(url)
    if not urls:
        raise DownloadError(f"{dest.name}: no URL to download from")
    log = logger or logging.getLogger("polarbear")
    expected = [(f"config {algo}", v.lower()) for algo, v in (("md5", md5), ("sha256", sha256)) if v]
    if checksum_url:
        digest = manifest_checksum(checksum_url, urls[0], dest.name, retries, timeout, log)
        expected.append((f"manifest {_ALGO[len(digest)]} ({checksum_url})", digest))
    _agree(dest.name, expected)

    errors: list[str] = []
    with atomic_path(dest) as tmp:
        part = _Partial(tmp, dest.name, log, progress_every)
        for k, u in enumerate(urls):
            if k:
                log.warning("%s: trying mirror %d/%d: %s", dest.name, k + 1, len(urls), u)
                part.reset()
            try:
                info = _retry(lambda: _fetch_verified(part, u, timeout, expected), u, retries, log,
                              f"{dest.name}: download from {u} failed", backoff)
                break
            except DownloadError as e:
                errors.append(str(e))
                if len(urls) > 1:
                    log.warning("%s", e)
        else:
            if len(urls) == 1:
                raise DownloadError(errors[0])
            raise DownloadError(f"{dest.name}: none of its {len(urls)} URLs gave a verified file: "
                                + "; ".join(f"[{i + 1}] {e}" for i, e in enumerate(errors)))
    if not info["verified"]:
        side = Path(sidecar) if sidecar else dest.with_name(dest.name + ".sha256")
        with atomic_path(side) as tmp:
            tmp.write_text(f"{info['sha256']}  {dest.name}\n")
        log.warning("%s: no checksum available (config, manifest or server); recorded sha256 %s in %s "
                    "(add it to config to verify)", dest.name, info["sha256"], side)
    else:
        log.info("%s: %d bytes from %s, verified by %s", dest.name, info["bytes"], info["url"],
                 ", ".join(info["verified_by"]))
    return info


def _fetch_verified(part: _Partial, url: str, timeout: float, expected: list[tuple[str, str]]) -> dict:
    """Fetch (or resume) ``url`` into ``part`` and verify the complete body."""
    part.fetch(url, timeout)
    name = part.name
    got_md5, got_sha = part.md5.hexdigest(), part.sha.hexdigest()
    checks = expected + [(f"server md5 ({h})", v) for h, v in _server_md5s(part.headers)]
    try:
        _verify(name, url, checks, got_md5, got_sha)
        if name.endswith(".gz"):
            try:
                check_gzip(part.path)
            except DownloadError as e:
                raise DownloadError(f"{name}: {str(e).split(': ', 1)[1]} ({url})") from e
    except DownloadError:
        part.reset()   # a complete but wrong body is not resumed
        raise
    return {"file": name, "url": url, "bytes": part.n, "md5": got_md5, "sha256": got_sha,
            "verified": bool(checks), "verified_by": [label for label, _ in checks]}


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
