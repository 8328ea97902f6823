"""Mirrors (urls: [primary, mirror]), HTTP Range resume, retries with backoff and the progress
log of workflow_lib.download, against a local HTTP server."""

import hashlib
import logging

import pytest

from local_http import LocalServer
from workflow_lib import download as dl
from workflow_lib.download import DownloadError, download, entry_urls, parse_content_range


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
