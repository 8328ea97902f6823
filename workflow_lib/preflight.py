"""Preflight of the download sources: which links answer, without downloading anything.

:func:`check_sources` asks every URL of the given config ``downloads`` entries (primary and
mirrors) and every ``checksum_url`` for its headers only -- ``HEAD``, or a 1-byte
``Range: bytes=0-0`` GET where the server refuses HEAD (405/501/403/400) -- in parallel, and
returns one row per URL: key, file, role, url, status, ok, method, bytes, server md5,
last-modified, redirect target, error, seconds. :func:`write_report` writes the table
(``results/raw/sources_check.tsv``) and a readable summary; :func:`unreachable` lists the
entries none of whose URLs answered (and unreachable checksum manifests).
"""

from __future__ import annotations

import concurrent.futures
import socket
import time
import urllib.error
from typing import Mapping

import pandas as pd

from .download import DownloadError, _open, entry_urls, human_bytes, parse_content_range, server_md5
from .fileutils import atomic_path, write_tsv

HEAD_REFUSED = (400, 403, 405, 501)
COLUMNS = ["key", "file", "role", "url", "status", "ok", "method", "bytes", "server_md5",
           "last_modified", "redirect", "error", "seconds"]


class PreflightError(RuntimeError):
    """Some sources are unreachable; the message lists them."""


def _lower_headers(response) -> dict:
    out: dict[str, str] = {}
    for k, v in response.headers.items():
        k = k.lower()
        out[k] = f"{out[k]},{v}" if k in out else v
    return out


def _row(url: str, method: str, response, t0: float) -> dict:
    h = _lower_headers(response)
    status = getattr(response, "status", None) or 200
    size = None
    if status == 206:
        rng = parse_content_range(h.get("content-range"))
        size = rng[2] if rng else None
    elif h.get("content-length", "").strip().isdigit():
        size = int(h["content-length"])
    final = response.geturl()
    return {"url": url, "status": str(status), "ok": 200 <= status < 300, "method": method,
            "bytes": size, "server_md5": server_md5(h) or "", "last_modified": h.get("last-modified", ""),
            "redirect": final if final and final != url else "", "error": "",
            "seconds": round(time.monotonic() - t0, 3)}


def _failure(url: str, method: str, status: str, error: str, t0: float) -> dict:
    return {"url": url, "status": status, "ok": False, "method": method, "bytes": None, "server_md5": "",
            "last_modified": "", "redirect": "", "error": error, "seconds": round(time.monotonic() - t0, 3)}


def _is_timeout(e: BaseException) -> bool:
    reason = getattr(e, "reason", e)
    return isinstance(reason, (TimeoutError, socket.timeout)) or "timed out" in str(reason)


def probe(url: str, timeout: float = 20.0) -> dict:
    """Headers of one URL (nothing downloaded): HEAD, else a 1-byte range GET if HEAD is refused."""
    t0 = time.monotonic()
    method = "HEAD"
    try:
        try:
            with _open(url, timeout, method="HEAD") as r:
                return _row(url, "HEAD", r, t0)
        except urllib.error.HTTPError as e:
            if e.code not in HEAD_REFUSED or not url.startswith("http"):
                raise
            e.close()
        method = "GET bytes=0-0"
        with _open(url, timeout, headers={"Range": "bytes=0-0"}) as r:
            r.read(1)
            return _row(url, method, r, t0)
    except urllib.error.HTTPError as e:
        e.close()
        return _failure(url, method, str(e.code), f"HTTP {e.code} {e.reason}", t0)
    except DownloadError as e:   # a refused redirect (scheme change)
        return _failure(url, method, "redirect refused", str(e), t0)
    except (urllib.error.URLError, OSError, ValueError) as e:
        if _is_timeout(e):
            return _failure(url, method, "timeout", f"no answer within {timeout:g} s", t0)
        return _failure(url, method, "error", str(getattr(e, "reason", e)), t0)


def _targets(entries: Mapping[str, dict]) -> list[dict]:
    out = []
    for key, e in entries.items():
        urls = entry_urls(e)
        for i, u in enumerate(urls):
            out.append({"key": key, "file": e["file"], "role": "primary" if i == 0 else f"mirror {i}", "url": u})
        if e.get("checksum_url"):
            out.append({"key": key, "file": e["file"], "role": "checksum_url", "url": e["checksum_url"]})
    return out


def check_sources(entries: Mapping[str, dict], timeout: float = 20.0, workers: int = 16) -> pd.DataFrame:
    """Probe every URL of ``entries`` (config ``downloads`` entries by key) in parallel."""
    targets = _targets(entries)
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(workers, len(targets) or 1))) as ex:
        rows = list(ex.map(lambda t: {**t, **probe(t["url"], timeout)}, targets))
    df = pd.DataFrame(rows, columns=COLUMNS)
    df["bytes"] = df["bytes"].astype("Int64")
    return df


def unreachable(df: pd.DataFrame) -> dict[str, list[str]]:
    """``{"entries": keys none of whose URLs answered, "checksum_urls": keys whose manifest did
    not answer, "mirrors": 'key: url' of URLs that failed while another URL of the key answered}``."""
    files = df[df["role"] != "checksum_url"]
    ok_keys = set(files.loc[files["ok"], "key"])
    dead = [k for k in dict.fromkeys(files["key"]) if k not in ok_keys]
    manif = df[(df["role"] == "checksum_url") & ~df["ok"]]
    mirrors = files[~files["ok"] & files["key"].isin(ok_keys)]
    return {"entries": dead, "checksum_urls": list(manif["key"]),
            "mirrors": [f"{k}: {u}" for k, u in zip(mirrors["key"], mirrors["url"])]}


def summary_text(df: pd.DataFrame, source: str) -> str:
    """A readable summary of a check_sources table."""
    bad = unreachable(df)
    files = df[df["role"] != "checksum_url"]
    n_keys = files["key"].nunique()
    first_ok = files[files["ok"]].drop_duplicates("key")
    total = int(first_ok["bytes"].dropna().sum()) if len(first_ok) else 0
    unknown = int(first_ok["bytes"].isna().sum())
    lines = [f"sources check (source: {source}): {n_keys} files, {len(df)} URLs probed "
             f"(HEAD, or a 1-byte range GET where HEAD is refused; nothing downloaded)",
             f"reachable: {n_keys - len(bad['entries'])}/{n_keys} files, "
             f"{human_bytes(total)} announced" + (f" ({unknown} without a size)" if unknown else ""),
             f"with a server md5: {int((first_ok['server_md5'] != '').sum())}/{len(first_ok)}"]
    if bad["entries"]:
        lines.append(f"UNREACHABLE ({len(bad['entries'])}): no URL of these entries answered:")
        for k in bad["entries"]:
            for _, r in files[files["key"] == k].iterrows():
                lines.append(f"  {k}: {r['url']} -> {r['status']} {r['error']}".rstrip())
    if bad["checksum_urls"]:
        lines.append("UNREACHABLE checksum manifests (the download of these files would fail):")
        for _, r in df[(df["role"] == "checksum_url") & ~df["ok"]].iterrows():
            lines.append(f"  {r['key']}: {r['url']} -> {r['status']} {r['error']}".rstrip())
    if bad["mirrors"]:
        lines.append(f"mirrors not answering (another URL of the entry did): {len(bad['mirrors'])}")
        lines += [f"  {m}" for m in bad["mirrors"]]
    redirected = df[df["redirect"] != ""]
    if len(redirected):
        lines.append(f"redirected: {len(redirected)}")
        lines += [f"  {r['key']}: {r['url']} -> {r['redirect']}" for _, r in redirected.iterrows()]
    if not (bad["entries"] or bad["checksum_urls"]):
        lines.append("OK: every file has at least one reachable URL")
    return "\n".join(lines) + "\n"


def write_report(df: pd.DataFrame, tsv_out, summary_out, source: str) -> str:
    """Write the table and the summary; returns the summary text."""
    write_tsv(df, tsv_out)
    text = summary_text(df, source)
    with atomic_path(summary_out) as tmp:
        tmp.write_text(text)
    return text


def run_check(entries: Mapping[str, dict], tsv_out, summary_out, source: str, timeout: float = 20.0,
              workers: int = 16, logger=None) -> pd.DataFrame:
    """Probe, write the report, log it, and raise PreflightError listing unreachable sources."""
    df = check_sources(entries, timeout=timeout, workers=workers)
    text = write_report(df, tsv_out, summary_out, source)
    if logger:
        logger.info("\n%s", text)
        logger.info("table:\n%s", df.drop(columns=["seconds"]).to_string(index=False))
    bad = unreachable(df)
    if bad["entries"] or bad["checksum_urls"]:
        raise PreflightError(f"unreachable sources: entries {bad['entries']}, checksum manifests of "
                             f"{bad['checksum_urls']} (details: {summary_out} and the rule log)")
    return df
