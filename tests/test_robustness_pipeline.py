"""A workflow killed mid-job (SIGKILL of snakemake and its job, as on a node failure) leaves no
truncated file under a final output name, and the next run redoes the interrupted job."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time

import h5py
import pytest
import yaml

from conftest import copy_repo, demo_raw_files, run_snakemake

pytestmark = pytest.mark.e2e


def _check_complete(path):
    """Read a raw demo file completely; raises if it is truncated."""
    if path.name.endswith(".gz"):
        with gzip.open(path, "rb") as fh:
            while fh.read(1 << 20):
                pass
    elif path.suffix == ".loom":
        with h5py.File(path, "r") as fh:
            assert fh["matrix"].shape[0] > 0
    else:
        assert path.stat().st_size > 0


def test_killed_run_leaves_no_partial_outputs_and_resumes(tmp_path):
    work = copy_repo(tmp_path / "wf")
    cfg = yaml.safe_load((work / "config.yaml").read_text())
    res = work / cfg["results"]
    raw_files = [res / "raw" / name for name in demo_raw_files(cfg)]
    target = str(raw_files[0].relative_to(work))  # simulate_demo writes all raw files
    log = res / "logs" / "simulate_demo" / "simulate_demo.log"

    with open(tmp_path / "killed_run.out", "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "snakemake", "--cores", "1", target],
            cwd=work, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 300
        # kill as soon as the simulation job has started logging, i.e. in the middle of the job
        while not (log.is_file() and log.stat().st_size > 0):
            assert proc.poll() is None, (tmp_path / "killed_run.out").read_text()[-3000:]
            assert time.monotonic() < deadline, "simulate_demo never started"
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # snakemake and the job it started (own session)
        proc.wait(timeout=60)

    present = [p for p in raw_files if p.exists()]
    assert len(present) < len(raw_files), "the job finished before it could be killed"
    for p in present:  # whatever exists under a final name is complete
        _check_complete(p)

    # The killed job is planned again (its outputs are incomplete or missing) ...
    plan = run_snakemake(work, "-n", target).stdout
    assert "simulate_demo" in plan
    # ... and after removing the stale lock the run completes.
    run_snakemake(work, "--unlock")
    run_snakemake(work, "--cores", "2", target)
    for p in raw_files:
        _check_complete(p)
    again = run_snakemake(work, "-n", target)
    assert "Nothing to be done" in again.stdout + again.stderr
