"""Verified downloads through file:// URLs (same urllib code path as http(s)://), checksum
manifests, and server-reported md5s from a real local HTTP server; mirrors (urls: [primary,
mirror]), HTTP Range resume, retries with backoff and the progress log against the local HTTP
server of tests/local_http.py."""

import base64
import gzip
import hashlib
import http.server
import json
import logging
import threading

import pytest

from local_http import LocalServer
from workflow_lib import download as dl
from workflow_lib.download import (DownloadError, check_gzip, download, entry_urls, parse_checksum_manifest,
                                   parse_content_range, server_md5, summary_path, write_summary)


@pytest.fixture()
def src(tmp_path):
    d = tmp_path / "remote"
    d.mkdir()
    payload = b"".join(f"line {i}\n".encode() for i in range(20000))
    gz = d / "data.tsv.gz"
    gz.write_bytes(gzip.compress(payload))
    return gz


def url(p):
    return p.resolve().as_uri()


def leftovers(d, name):
    return [p.name for p in d.iterdir() if name in p.name]


def test_md5_and_sha256_verified(src, tmp_path):
    out = tmp_path / "raw" / "data.tsv.gz"
    md5 = hashlib.md5(src.read_bytes()).hexdigest()
    info = download(url(src), out, md5=md5)
    assert out.read_bytes() == src.read_bytes() and info["verified"] and info["md5"] == md5
    out2 = tmp_path / "raw2" / "data.tsv.gz"
    download(url(src), out2, sha256=hashlib.sha256(src.read_bytes()).hexdigest())
    assert out2.exists() and not (out2.parent / "data.tsv.gz.sha256").exists()


def test_wrong_checksum_leaves_nothing(src, tmp_path):
    out = tmp_path / "raw" / "data.tsv.gz"
    with pytest.raises(DownloadError, match=r"data\.tsv\.gz: md5 mismatch"):
        download(url(src), out, md5="0" * 32)
    assert leftovers(out.parent, "data.tsv.gz") == []


def test_truncated_gzip_rejected(src, tmp_path):
    cut = tmp_path / "remote" / "cut.tsv.gz"
    raw = src.read_bytes()
    cut.write_bytes(raw[: len(raw) - 100])
    out = tmp_path / "raw" / "cut.tsv.gz"
    with pytest.raises(DownloadError, match=r"cut\.tsv\.gz: truncated or corrupt gzip"):
        download(url(cut), out)  # no checksum: the gzip check alone must catch it
    assert leftovers(out.parent, "cut.tsv.gz") == []
    corrupt = tmp_path / "remote" / "bad.gz"
    b = bytearray(raw)
    b[len(b) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(b))
    with pytest.raises(DownloadError, match="bad.gz"):
        check_gzip(corrupt)


def test_null_checksum_records_sha256_sidecar(src, tmp_path, caplog):
    out = tmp_path / "raw" / "data.tsv.gz"
    side = tmp_path / "raw" / "checksums" / "data.tsv.gz.sha256"
    info = download(url(src), out, sidecar=side)
    want = hashlib.sha256(src.read_bytes()).hexdigest()
    assert side.read_text() == f"{want}  data.tsv.gz\n" and not info["verified"]


def test_missing_source_names_file(tmp_path):
    out = tmp_path / "raw" / "nothere.rds"
    with pytest.raises(DownloadError, match=r"nothere\.rds: download from file://.*failed"):
        download(url(tmp_path / "remote_missing.rds"), out, retries=1)
    assert not out.exists()


# --- publisher checksum manifests (checksum_url) ------------------------------------------------

def md5_of(p):
    return hashlib.md5(p.read_bytes()).hexdigest()


def sha256_of(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


def manifest(tmp_path, text, name="MD5SUMS"):
    m = tmp_path / "remote" / name
    m.write_text(text)
    return url(m)


def test_parse_manifest_formats():
    md5, sha = "a" * 32, "b" * 64
    text = (f"# comment\n\n{'c' * 32}  other.gz\n{md5}  data.tsv.gz\n")
    assert parse_checksum_manifest(text, "data.tsv.gz") == md5
    assert parse_checksum_manifest(f"{md5} *data.tsv.gz\n", "data.tsv.gz") == md5
    assert parse_checksum_manifest(f"{md5}  ./data.tsv.gz\r\n", "data.tsv.gz") == md5
    assert parse_checksum_manifest(f"MD5 (data.tsv.gz) = {md5.upper()}\n", "data.tsv.gz") == md5
    assert parse_checksum_manifest(f"SHA256 (./data.tsv.gz) = {sha}\n", "data.tsv.gz") == sha
    assert parse_checksum_manifest(f"{sha}  data.tsv.gz\n", "data.tsv.gz") == sha
    # not listed / only a longer or shorter name / malformed lines
    assert parse_checksum_manifest(f"{md5}  data.tsv.gz.tbi\n{md5}  x/data.tsv.gz\n", "data.tsv.gz") is None
    assert parse_checksum_manifest(f"{'a' * 31}  data.tsv.gz\nMD5 (data.tsv.gz) = {sha}\n", "data.tsv.gz") is None
    with pytest.raises(ValueError, match="listed twice"):
        parse_checksum_manifest(f"{md5}  data.tsv.gz\n{'c' * 32}  data.tsv.gz\n", "data.tsv.gz")


@pytest.mark.parametrize("style", ["md5sum", "binary", "dotslash", "bsd", "sha256sum", "bsd_sha256"])
def test_manifest_verifies_download(src, tmp_path, style):
    md5, sha = md5_of(src), sha256_of(src)
    line = {"md5sum": f"{md5}  data.tsv.gz", "binary": f"{md5} *data.tsv.gz",
            "dotslash": f"{md5}  ./data.tsv.gz", "bsd": f"MD5 (data.tsv.gz) = {md5}",
            "sha256sum": f"{sha}  data.tsv.gz", "bsd_sha256": f"SHA256 (data.tsv.gz) = {sha}"}[style]
    murl = manifest(tmp_path, f"{'0' * 32}  other.txt\n{line}\n")
    out = tmp_path / "raw" / "data.tsv.gz"
    side = tmp_path / "raw" / "checksums" / "data.tsv.gz.sha256"
    info = download(url(src), out, checksum_url=murl, sidecar=side)
    algo = "sha256" if "sha256" in style else "md5"
    assert out.read_bytes() == src.read_bytes()
    assert info["verified"] and info["verified_by"] == [f"manifest {algo} ({murl})"]
    assert not side.exists()


def test_manifest_looks_up_server_name_not_local_name(src, tmp_path):
    murl = manifest(tmp_path, f"{md5_of(src)}  data.tsv.gz\n")
    out = tmp_path / "raw" / "renamed.tsv.gz"
    info = download(url(src), out, checksum_url=murl)
    assert info["verified_by"] == [f"manifest md5 ({murl})"] and out.exists()


def test_manifest_and_config_both_checked(src, tmp_path):
    murl = manifest(tmp_path, f"{sha256_of(src)}  data.tsv.gz\n")
    out = tmp_path / "raw" / "data.tsv.gz"
    info = download(url(src), out, md5=md5_of(src), checksum_url=murl)
    assert info["verified_by"] == ["config md5", f"manifest sha256 ({murl})"]
    # config md5 and manifest md5 disagree: fails before anything is downloaded
    murl2 = manifest(tmp_path, f"{md5_of(src)}  data.tsv.gz\n", name="md5sum.txt")
    out2 = tmp_path / "raw2" / "data.tsv.gz"
    with pytest.raises(DownloadError, match=r"data\.tsv\.gz: config md5 .* disagree"):
        download(url(src), out2, md5="0" * 32, checksum_url=murl2)
    assert not out2.parent.exists() or leftovers(out2.parent, "data.tsv.gz") == []


def test_file_missing_from_manifest(src, tmp_path):
    murl = manifest(tmp_path, f"{md5_of(src)}  something_else.tsv.gz\n")
    out = tmp_path / "raw" / "data.tsv.gz"
    with pytest.raises(DownloadError, match=r"data\.tsv\.gz: data\.tsv\.gz is not listed in checksum manifest file://.*MD5SUMS"):
        download(url(src), out, checksum_url=murl)
    assert not out.exists()


def test_manifest_mismatch_leaves_nothing(src, tmp_path):
    murl = manifest(tmp_path, f"{'0' * 32}  data.tsv.gz\n")
    out = tmp_path / "raw" / "data.tsv.gz"
    with pytest.raises(DownloadError, match=r"data\.tsv\.gz: md5 mismatch against manifest md5 .*expected 0{32}, got "
                                            + md5_of(src)):
        download(url(src), out, checksum_url=murl)
    assert leftovers(out.parent, "data.tsv.gz") == []


def test_unreachable_manifest(src, tmp_path):
    missing = url(tmp_path / "remote") + "/NO_SUCH_MD5SUMS"
    out = tmp_path / "raw" / "data.tsv.gz"
    with pytest.raises(DownloadError, match=r"data\.tsv\.gz: checksum manifest file://.*NO_SUCH_MD5SUMS could not be fetched"):
        download(url(src), out, checksum_url=missing, retries=1)
    assert not out.exists()


# --- server-reported md5 (x-goog-hash / Content-MD5) over a real local HTTP server -------------

def b64md5(data):
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def test_server_md5_header_parsing():
    data = b"hello"
    want = hashlib.md5(data).hexdigest()
    assert server_md5({"x-goog-hash": f"crc32c=AAAAAA==,md5={b64md5(data)}"}) == want
    assert server_md5({"content-md5": b64md5(data)}) == want
    assert server_md5({"x-goog-hash": "crc32c=AAAAAA=="}) is None  # composite GCS objects: no md5
    assert server_md5({"content-md5": "not base64!"}) is None
    assert server_md5({"content-md5": base64.b64encode(b"short").decode()}) is None
    assert server_md5({}) is None
    # GCS decompressed a gzip-stored object: its stored hash does not describe the body
    assert server_md5({"x-goog-hash": f"md5={b64md5(data)}", "x-goog-stored-content-encoding": "gzip"}) is None


@pytest.fixture()
def http_server():
    """A local HTTP server: serve(path, body, headers) registers a response; .url(path), .hits."""
    routes, hits = {}, []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            if self.path not in routes:
                self.send_error(404)
                return
            body, headers = routes[self.path]
            if isinstance(body, tuple):  # ("redirect", location)
                self.send_response(302)
                self.send_header("Location", body[1])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()

    class Server:
        def serve(self, path, body, headers=()):
            routes[path] = (body, list(headers))
            return f"http://127.0.0.1:{srv.server_address[1]}{path}"

        def redirect(self, path, location):
            routes[path] = (("redirect", location), [])
            return f"http://127.0.0.1:{srv.server_address[1]}{path}"

    s = Server()
    s.hits = hits
    yield s
    srv.shutdown()
    srv.server_close()
    thread.join()


@pytest.mark.parametrize("how", ["one header", "two headers"])
def test_goog_hash_verified(http_server, tmp_path, how):
    body = b"loom file bytes\n" * 5000
    if how == "one header":
        headers = [("x-goog-hash", f"crc32c=AAAAAA==,md5={b64md5(body)}")]
    else:  # GCS sends crc32c and md5 as two x-goog-hash headers
        headers = [("x-goog-hash", "crc32c=AAAAAA=="), ("x-goog-hash", f"md5={b64md5(body)}")]
    u = http_server.serve("/bucket/l5_all.loom", body, headers)
    out = tmp_path / "raw" / "l5_all.loom"
    side = tmp_path / "raw" / "checksums" / "l5_all.loom.sha256"
    info = download(u, out, sidecar=side)
    assert out.read_bytes() == body and info["verified_by"] == ["server md5 (x-goog-hash)"]
    assert not side.exists()


def test_goog_hash_mismatch_leaves_nothing_and_is_not_retried(http_server, tmp_path):
    body = b"loom file bytes\n" * 5000
    u = http_server.serve("/bucket/l5_all.loom", body, [("x-goog-hash", f"crc32c=AAAAAA==,md5={b64md5(b'other')}")])
    out = tmp_path / "raw" / "l5_all.loom"
    with pytest.raises(DownloadError, match=r"l5_all\.loom: md5 mismatch against server md5 \(x-goog-hash\)"):
        download(u, out, retries=3)
    assert leftovers(out.parent, "l5_all.loom") == [] and len(http_server.hits) == 1


def test_content_md5(http_server, tmp_path):
    body = b"some file\n" * 1000
    good = http_server.serve("/good.txt", body, [("Content-MD5", b64md5(body))])
    bad = http_server.serve("/bad.txt", body, [("Content-MD5", b64md5(b"x"))])
    out = tmp_path / "raw" / "good.txt"
    assert download(good, out)["verified_by"] == ["server md5 (Content-MD5)"]
    out_bad = tmp_path / "raw" / "bad.txt"
    with pytest.raises(DownloadError, match=r"bad\.txt: md5 mismatch against server md5 \(Content-MD5\)"):
        download(bad, out_bad)
    assert leftovers(out.parent, "bad.txt") == []


def test_http_manifest_config_and_server_md5_together(http_server, tmp_path, src):
    body = src.read_bytes()
    u = http_server.serve("/pub/data.tsv.gz", body, [("x-goog-hash", f"md5={b64md5(body)}")])
    murl = http_server.serve("/pub/md5sum.txt", f"{md5_of(src)}  data.tsv.gz\n".encode())
    out = tmp_path / "raw" / "data.tsv.gz"
    info = download(u, out, sha256=sha256_of(src), checksum_url=murl)
    assert info["verified_by"] == ["config sha256", f"manifest md5 ({murl})", "server md5 (x-goog-hash)"]
    missing = http_server.serve("/pub/data.tsv.gz", body).replace("/pub/data.tsv.gz", "/pub/NOPE")
    with pytest.raises(DownloadError, match=r"data\.tsv\.gz: checksum manifest http://.*/pub/NOPE could not be fetched.*404"):
        download(u, tmp_path / "raw2" / "data.tsv.gz", checksum_url=missing)


def test_unverified_http_download_records_sidecar(http_server, tmp_path):
    u = http_server.serve("/plain.bin", b"abc" * 100)
    out = tmp_path / "raw" / "plain.bin"
    side = tmp_path / "raw" / "checksums" / "plain.bin.sha256"
    info = download(u, out, sidecar=side)
    assert not info["verified"] and info["verified_by"] == [] and side.exists()


# --- verification summary JSON ------------------------------------------------------------------

def test_summary_json_next_to_sidecar(src, tmp_path):
    side = tmp_path / "raw" / "checksums" / "data.tsv.gz.sha256"
    assert summary_path(side) == tmp_path / "raw" / "checksums" / "data.tsv.gz.json"
    info = download(url(src), tmp_path / "raw" / "data.tsv.gz", md5=md5_of(src), sidecar=side)
    got = json.loads(write_summary(info, summary_path(side)).read_text())
    assert got["bytes"] == src.stat().st_size and got["md5"] == md5_of(src)
    assert got["sha256"] == sha256_of(src) and got["verified_by"] == ["config md5"]
    assert not side.exists()



# --- config: every public download is verifiable -------------------------------------------------

def test_every_public_download_has_a_checksum_source(default_config):
    """Checksummed, or one of the files for which nobody publishes a checksum (the CEMBA .snap
    files and the Polarbear authors' files: md5 null, written explicitly; README lists them)."""
    unverifiable = []
    for name, d in default_config["downloads"].items():
        if name.startswith(("snap_", "authors_")):
            assert "md5" in d and d["md5"] is None, name
            continue
        if name == "zeisel_loom":  # verified by the md5 Google Cloud Storage reports (x-goog-hash)
            assert d["url"].startswith("https://storage.googleapis.com/"), name
            continue
        if not (d.get("md5") or d.get("sha256") or d.get("checksum_url")):
            unverifiable.append(name)
    assert unverifiable == []
    assert default_config["downloads"]["mm9_to_mm10_chain"]["checksum_url"].endswith("/mm9/liftOver/md5sum.txt")
    assert default_config["downloads"]["gencode_gtf"]["checksum_url"].endswith("/release_M25/MD5SUMS")


def test_download_rule_does_not_repeat_final_failures(repo):
    """The rule has no Snakemake `retries:` (a wrong checksum would download the file again and
    again); transient network errors are retried inside download() instead (tested above)."""
    text = (repo / "rules" / "download.smk").read_text()
    rule = text[text.index("rule download:"):]
    assert "retries:" not in rule.split("script:")[0]


def test_redirects_are_followed_within_the_cap(http_server, tmp_path):
    body = b"payload" * 10
    target = http_server.serve("/real/data.bin", body)
    url = http_server.redirect("/hop1", "/hop2")
    http_server.redirect("/hop2", target)
    out = tmp_path / "data.bin"
    download(url, out, md5=hashlib.md5(body).hexdigest())
    assert out.read_bytes() == body


def test_redirect_loops_are_capped_and_not_retried(http_server, tmp_path):
    url = http_server.redirect("/loop", "/loop")
    out = tmp_path / "x.bin"
    with pytest.raises(DownloadError):
        download(url, out, md5="0" * 32, retries=3)
    # one attempt only (no retries of a final error), at most MAX_REDIRECTS + 1 requests
    assert len(http_server.hits) <= dl.MAX_REDIRECTS + 1
    assert not out.exists() and leftovers(out.parent, "x.bin") == []


@pytest.mark.parametrize("scheme", ["ftp", "file"])
def test_redirect_to_another_scheme_is_refused(http_server, tmp_path, scheme):
    secret = tmp_path / "secret.txt"
    secret.write_text("local file")
    target = secret.as_uri() if scheme == "file" else "ftp://127.0.0.1:9/secret.txt"
    url = http_server.redirect("/evil", target)
    out = tmp_path / "got.txt"
    with pytest.raises(DownloadError, match=f"refusing the redirect from http:// to {scheme}://|not allowed"):
        download(url, out, md5=hashlib.md5(b"local file").hexdigest())
    assert not out.exists() and len(http_server.hits) == 1


# ------------------------------------------------------------------ mirrors, Range resume, retries, progress
@pytest.fixture()
def server():
    s = LocalServer()
    yield s
    s.close()


BODY = bytes(range(256)) * 4000   # 1,024,000 bytes


def md5(b):
    return hashlib.md5(b).hexdigest()


def test_entry_urls():
    assert entry_urls({"file": "a", "url": "http://x/a"}) == ["http://x/a"]
    assert entry_urls({"file": "a", "urls": ["http://x/a", "http://y/a"]}) == ["http://x/a", "http://y/a"]
    with pytest.raises(ValueError, match="'a' has no url"):
        entry_urls({"file": "a", "urls": []})


def test_parse_content_range():
    assert parse_content_range("bytes 10-19/100") == (10, 19, 100)
    assert parse_content_range("bytes 0-0/*") == (0, 0, None)
    assert parse_content_range("items 1-2/3") is None and parse_content_range(None) is None


def test_mirror_used_when_primary_is_missing(server, tmp_path, caplog):
    primary = server.url("/gone/x.snap")
    mirror = server.route("/mirror/x.snap", body=BODY)
    out = tmp_path / "raw" / "x.snap"
    log = logging.getLogger("test.download.mirrors")   # propagates to caplog ("polarbear" may not)
    with caplog.at_level(logging.WARNING, logger=log.name):
        info = download([primary, mirror], out, md5=md5(BODY), backoff=0, logger=log)
    assert out.read_bytes() == BODY and info["url"] == mirror
    assert "trying mirror 2/2" in caplog.text


def test_corrupt_primary_copy_is_refused_and_mirror_verified(server, tmp_path):
    bad = bytearray(BODY)
    bad[1000] ^= 0xFF
    primary = server.route("/a/x.snap", body=bytes(bad))
    mirror = server.route("/b/x.snap", body=BODY)
    out = tmp_path / "raw" / "x.snap"
    info = download([primary, mirror], out, md5=md5(BODY), backoff=0)
    assert info["url"] == mirror and out.read_bytes() == BODY
    # the corrupt copy was fetched once (a checksum mismatch is not retried on the same URL)
    assert sum(1 for m, p, _ in server.requests if p == "/a/x.snap") == 1


def test_every_url_failing_names_each_error(server, tmp_path):
    a = server.url("/none1/x.snap")
    b = server.route("/b/x.snap", body=b"wrong")
    out = tmp_path / "raw" / "x.snap"
    with pytest.raises(DownloadError, match=r"x\.snap: none of its 2 URLs gave a verified file: \[1\] .*404.*\[2\] .*md5 mismatch"):
        download([a, b], out, md5=md5(BODY), backoff=0)
    assert not out.exists() and [p for p in out.parent.iterdir()] == []


def test_dropped_connection_resumes_with_range(server, tmp_path):
    u = server.route("/big.snap", body=BODY, drop_after=300_000)
    out = tmp_path / "big.snap"
    info = download(u, out, md5=md5(BODY), backoff=0)
    assert out.read_bytes() == BODY and info["bytes"] == len(BODY)
    gets = [r for r in server.requests if r[0] == "GET"]
    assert [r[2] for r in gets] == [None, "bytes=300000-"]


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    u = server.route("/big.snap", body=BODY, drop_after=300_000, ranges=False)
    out = tmp_path / "big.snap"
    download(u, out, md5=md5(BODY), backoff=0)
    assert out.read_bytes() == BODY


def test_5xx_is_retried_with_backoff(server, tmp_path, monkeypatch):
    waits = []
    monkeypatch.setattr(dl.time, "sleep", waits.append)
    u = server.route("/flaky.bin", body=BODY, fail_times=2, fail_status=503)
    out = tmp_path / "flaky.bin"
    download(u, out, md5=md5(BODY), retries=3)
    assert out.read_bytes() == BODY and waits == [2.0, 4.0]


def test_4xx_is_not_retried(server, tmp_path):
    u = server.route("/forbidden.bin", body=BODY, fail_times=5, fail_status=403)
    with pytest.raises(DownloadError, match="403"):
        download(u, tmp_path / "forbidden.bin", retries=3, backoff=0)
    assert server.routes["/forbidden.bin"].gets == 1


def test_timeout_is_retried(server, tmp_path):
    u = server.route("/slow.bin", body=b"x" * 10, delay=1.0)
    with pytest.raises(DownloadError, match=r"slow\.bin: download from .* failed .*timed out"):
        download(u, tmp_path / "slow.bin", retries=2, timeout=0.2, backoff=0)
    assert sum(1 for r in server.requests if r[1] == "/slow.bin") == 2


def test_short_body_is_resumed_not_accepted(server, tmp_path):
    # the connection drops before Content-Length bytes on the first GET only
    u = server.route("/x.gz.part", body=BODY, drop_after=10)
    out = tmp_path / "x.bin"
    assert download(u, out, backoff=0)["bytes"] == len(BODY)


def test_progress_log_has_bytes_rate_and_eta(server, tmp_path, caplog):
    u = server.route("/big.snap", body=BODY)
    log = logging.getLogger("test.download.progress")
    with caplog.at_level(logging.INFO, logger=log.name):
        download(u, tmp_path / "big.snap", md5=md5(BODY), progress_every=0, logger=log)
    lines = [r.getMessage() for r in caplog.records if "ETA" in r.getMessage()]
    assert lines and "big.snap: " in lines[-1] and " of 1000.0 KiB (" in lines[-1] and "/s, ETA " in lines[-1]


def test_human_bytes():
    assert dl.human_bytes(512) == "512 B" and dl.human_bytes(1536) == "1.5 KiB"
    assert dl.human_bytes(3 * 1024 ** 3) == "3.0 GiB"
