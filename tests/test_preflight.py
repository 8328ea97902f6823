"""Preflight (rule check_sources): headers only, against a local HTTP server answering 200,
404, a redirect, a refused HEAD and a timeout."""

import pandas as pd
import pytest

from local_http import LocalServer
from workflow_lib.preflight import PreflightError, check_sources, probe, run_check, unreachable


@pytest.fixture()
def server():
    s = LocalServer()
    yield s
    s.close()


BODY = b"x" * 12345


def test_probe_200_head(server):
    u = server.route("/ok.snap", body=BODY, headers=[("Last-Modified", "Tue, 01 Jun 2021 10:00:00 GMT"),
                                                      ("Content-MD5", "ICy5YqxZB1uWSwcVLSNLcA==")])
    r = probe(u)
    assert r["ok"] and r["status"] == "200" and r["method"] == "HEAD" and r["bytes"] == len(BODY)
    assert r["last_modified"].startswith("Tue, 01 Jun 2021") and r["server_md5"] == "202cb962ac59075b964b07152d234b70"
    assert [m for m, _, _ in server.requests] == ["HEAD"]   # nothing downloaded


def test_probe_404(server):
    r = probe(server.url("/missing.snap"))
    assert not r["ok"] and r["status"] == "404" and "404" in r["error"]


def test_probe_redirect_records_target(server):
    target = server.route("/real/ok.snap", body=BODY)
    u = server.route("/old/ok.snap", status=302, location="/real/ok.snap")
    r = probe(u)
    assert r["ok"] and r["redirect"] == target and r["bytes"] == len(BODY)


def test_probe_refused_head_uses_one_byte_range_get(server):
    u = server.route("/nohead.snap", body=BODY, head_status=405)
    r = probe(u)
    assert r["ok"] and r["method"] == "GET bytes=0-0" and r["status"] == "206" and r["bytes"] == len(BODY)
    assert server.requests[-1] == ("GET", "/nohead.snap", "bytes=0-0")


def test_probe_timeout(server):
    u = server.route("/slow.snap", body=BODY, delay=2.0)
    r = probe(u, timeout=0.3)
    assert not r["ok"] and r["status"] == "timeout"


def test_check_sources_table_and_failure(server, tmp_path):
    ok = server.route("/a.snap", body=BODY)
    mirror_ok = server.route("/m/b.snap", body=BODY, head_status=501)
    redirect = server.route("/c.snap", status=301, location="/a.snap")
    slow = server.route("/slow.snap", body=BODY, delay=2.0)
    entries = {
        "a": {"file": "a.snap", "url": ok},
        "b": {"file": "b.snap", "urls": [server.url("/gone/b.snap"), mirror_ok]},
        "c": {"file": "c.snap", "url": redirect, "checksum_url": server.url("/MD5SUMS")},
        "d": {"file": "d.snap", "urls": [server.url("/gone/d.snap"), slow]},
    }
    df = check_sources(entries, timeout=0.5)
    assert list(df["key"]) == ["a", "b", "b", "c", "c", "d", "d"]
    assert list(df["role"]) == ["primary", "primary", "mirror 1", "primary", "checksum_url", "primary", "mirror 1"]
    bad = unreachable(df)
    assert bad["entries"] == ["d"] and bad["checksum_urls"] == ["c"] and len(bad["mirrors"]) == 1
    tsv, txt = tmp_path / "raw" / "sources_check.tsv", tmp_path / "raw" / "sources_check.txt"
    with pytest.raises(PreflightError, match=r"entries \['d'\].*\['c'\]"):
        run_check(entries, tsv, txt, "public", timeout=0.5)
    back = pd.read_csv(tsv, sep="\t")
    assert {"key", "url", "status", "bytes", "server_md5", "last_modified", "redirect"} <= set(back.columns)
    summary = txt.read_text()
    assert "UNREACHABLE (1)" in summary and "d: " in summary and "timeout" in summary
    assert "redirected: 1" in summary
    # no body was requested except the 1-byte range GETs
    assert all(m == "HEAD" or rng == "bytes=0-0" for m, _, rng in server.requests)


def test_all_reachable_passes(server, tmp_path):
    entries = {"a": {"file": "a.snap", "url": server.route("/a.snap", body=BODY)}}
    df = run_check(entries, tmp_path / "t.tsv", tmp_path / "s.txt", "authors")
    assert df["ok"].all() and "OK: every file" in (tmp_path / "s.txt").read_text()
