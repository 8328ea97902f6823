"""atomic_path: nothing half-written under the final name, normal permissions on success."""

import os
import stat

import pytest

from workflow_lib.fileutils import InputFormatError, atomic_path


def test_atomic_path_renames_on_success_with_umask_permissions(tmp_path):
    target = tmp_path / "sub" / "out.tsv"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_text("a\tb\n")
        assert not target.exists()
    assert target.read_text() == "a\tb\n"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    assert list(target.parent.iterdir()) == [target]


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.h5ad"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_input_format_error_names_file_and_line():
    err = InputFormatError("/data/x.tsv.gz", "bad peak 'chr1:5'", line=12)
    assert str(err) == "/data/x.tsv.gz, line 12: bad peak 'chr1:5'"
    assert err.path == "/data/x.tsv.gz" and err.line == 12


def test_uncaught_exception_lands_in_the_rule_log(tmp_path):
    """A script that sets up its rule log with get_logger and then fails leaves the traceback in
    that log (and on stderr), and still exits non-zero."""
    import subprocess
    import sys

    log = tmp_path / "logs" / "rule.log"
    code = ("from workflow_lib.fileutils import get_logger\n"
            f"get_logger({str(log)!r}).info('started')\n"
            "def inner():\n    raise ValueError('bad value in input.tsv line 3')\n"
            "inner()\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 1
    text = log.read_text()
    assert "started" in text and "failed with ValueError: bad value in input.tsv line 3" in text
    assert "Traceback" in text and "in inner" in text
    assert "bad value in input.tsv line 3" in proc.stderr
