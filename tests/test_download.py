"""Verified downloads through file:// URLs (same urllib code path as http(s)://)."""

import gzip
import hashlib

import pytest

from workflow_lib.download import DownloadError, check_gzip, download


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
