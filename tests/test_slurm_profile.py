"""profiles/slurm: resource semantics (dry run) and a real run on a throw-away local SLURM cluster.

The real run starts slurmctld + slurmd + munged with tests/slurm/start_slurm.sh (installing
slurm-wlm/munge with apt-get if needed: root required), runs the demo simulation and the co-assay
pairing rule through `snakemake --workflow-profile profiles/slurm`, checks the outputs, the per-job
SLURM logs and what SLURM itself recorded for every job (state, memory, time limit, GPU), and
stops the daemons by pid file. Status is queried with squeue (the test cluster has no sacct).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO, copy_repo, demo_raw_files, run_snakemake

SLURM_DIR = REPO / "tests" / "slurm"
PROFILE = "profiles/slurm"
LOCK_FILE = Path("/tmp/polarbear-slurm-test.lock")
# Rules run through SLURM in the real test: the demo simulation and the co-assay pairing rule.
SLURM_RULES = ("simulate_demo", "coassay")
SLURM_TARGET = "interim/coassay_rna.h5ad"


def _profile() -> dict:
    return yaml.safe_load((REPO / PROFILE / "config.v8+.yaml").read_text())


def _dry_run_jobs(stdout: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, resources) of every job block printed by `snakemake -n`."""
    jobs = []
    for block in re.split(r"\n(?=\[[^\]]+\]\n|(?:local)?rule \w+:)", stdout):
        m = re.search(r"^(?:local)?rule (\w+):", block, re.M)
        r = re.search(r"^\s+resources: (.*)$", block, re.M)
        if m and r:
            res = dict(kv.split("=", 1) for kv in r.group(1).split(", ") if "=" in kv)
            jobs.append((m.group(1), res))
    return jobs


# --- profile semantics, no cluster needed -------------------------------------------------------


def test_slurm_profile_is_found_and_uses_the_slurm_executor():
    prof = _profile()
    assert prof["executor"] == "slurm"
    assert int(prof["jobs"]) >= 1
    # mem_mb / runtime of the workflow's rules come from config.yaml, never from set-resources
    for rule, res in prof.get("set-resources", {}).items():
        assert set(res) <= {"gpu", "gpu_model", "slurm_extra", "constraint", "slurm_partition"}, rule


def test_slurm_profile_requests_gpus_only_for_training_rules(tmp_path, default_config):
    """Dry run of the whole demo workflow with the slurm profile: every job of a training rule
    asks for one GPU and keeps mem_mb/runtime from config resources.train; no other job asks
    for a GPU; every rule named in the profile exists in the workflow."""
    work = copy_repo(tmp_path / "wf")
    proc = run_snakemake(work, "--workflow-profile", PROFILE, "--slurm-no-account", "-n")
    jobs = _dry_run_jobs(proc.stdout)
    assert jobs, proc.stdout[-3000:]
    rules_run = {rule for rule, _ in jobs}
    gpu_rules = set(_profile()["set-resources"])
    assert gpu_rules <= rules_run, f"profile names rules the workflow does not run: {gpu_rules - rules_run}"
    train = default_config["resources"]["train"]
    for rule, res in jobs:
        if rule in gpu_rules:
            assert res.get("gpu") == "1", (rule, res)
            assert int(res["mem_mb"]) == train["mem_mb"], (rule, res)
            assert int(res["runtime"]) == train["runtime"], (rule, res)
        else:
            assert res.get("gpu", "0") == "0", (rule, res)


def test_site_profile_settings_survive_the_workflow_profile(tmp_path, default_config):
    """README recipe: account/partition from a site --profile reach the jobs, while mem_mb and
    runtime still come from config.yaml."""
    work = copy_repo(tmp_path / "wf")
    site = tmp_path / "site"
    site.mkdir()
    (site / "config.v8+.yaml").write_text(
        yaml.safe_dump({"default-resources": {"slurm_account": "labacct", "slurm_partition": "cpu"}})
    )
    target = f"{default_config['results']}/interim/coassay_rna.h5ad"
    proc = run_snakemake(work, "--profile", str(site), "--workflow-profile", PROFILE, "-n", target)
    jobs = dict(_dry_run_jobs(proc.stdout))
    assert set(jobs) == {"simulate_demo", "coassay"}, proc.stdout[-3000:]
    for rule, res in jobs.items():
        assert res.get("slurm_account") == "labacct" and res.get("slurm_partition") == "cpu", (rule, res)
    feat = default_config["resources"]["features"]
    assert int(jobs["coassay"]["mem_mb"]) == feat["mem_mb"] and int(jobs["coassay"]["runtime"]) == feat["runtime"]


def test_default_profile_is_picked_up_automatically(tmp_path):
    work = copy_repo(tmp_path / "wf")
    proc = run_snakemake(work, "-n")
    out = proc.stdout + proc.stderr
    assert "workflow specific profile profiles/default" in out, out[-2000:]


# --- a real SLURM run -------------------------------------------------------------------------------


def _skip_loudly(reason: str):
    msg = f"SLURM TEST NOT RUN: {reason}"
    print(f"\n{'!' * 80}\n{msg}\n{'!' * 80}", file=sys.stderr)
    pytest.skip(msg)


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A running single-node SLURM cluster; yields the environment to talk to it."""
    if os.geteuid() != 0:
        _skip_loudly("needs root to install and start slurmctld/slurmd/munged (run the suite as root)")
    if not shutil.which("slurmctld") and not shutil.which("apt-get"):
        _skip_loudly("slurm is not installed and apt-get is not available to install it")
    # Concurrent test sessions on one machine share /etc/slurm/slurm.conf and the SLURM ports.
    lock = open(LOCK_FILE, "w")
    deadline = time.monotonic() + 1800
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                pytest.fail(f"another session held {LOCK_FILE} for 30 minutes")
            time.sleep(2)
    state = tmp_path_factory.mktemp("slurm_state")
    env = dict(os.environ, SLURM_CONF=str(state / "slurm.conf"))
    try:
        start = subprocess.run(
            ["bash", str(SLURM_DIR / "start_slurm.sh"), str(state)],
            capture_output=True, text=True, timeout=900,
        )
        if start.returncode != 0:
            pytest.fail(f"start_slurm.sh failed ({start.returncode}):\n{start.stdout}\n{start.stderr}")
        yield env
    finally:
        subprocess.run(["bash", str(SLURM_DIR / "stop_slurm.sh"), str(state)], capture_output=True, timeout=120)
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def _scontrol_job(jobid: str, env) -> dict[str, str]:
    out = subprocess.run(
        ["scontrol", "show", "job", "-o", jobid], capture_output=True, text=True, env=env, check=True
    ).stdout
    return dict(tok.split("=", 1) for tok in out.split() if "=" in tok)


@pytest.fixture(scope="module")
def slurm_run(slurm_cluster, tmp_path_factory):
    """The demo data + the paired co-assay AnnData built through SLURM in a fresh copy."""
    work = copy_repo(tmp_path_factory.mktemp("slurm") / "wf")
    cfg = yaml.safe_load((work / "config.yaml").read_text())
    target = f"{cfg['results']}/{SLURM_TARGET}"
    cmd = [
        sys.executable, "-m", "snakemake", target,
        "--workflow-profile", PROFILE,
        "--jobs", "2",
        "--slurm-no-account",                # the test cluster has no accounting
        "--slurm-status-command", "squeue",  # ... hence no sacct
        "--slurm-init-seconds-before-status-checks", "2",
        "--slurm-keep-successful-logs",
        "--latency-wait", "5",
        "--retries", "0",
        # replaces the profile's set-resources (no training rule runs here): coassay's 64 GB
        # from config.yaml do not fit the test node, and coassay asks for the test node's
        # pretend GPU to exercise the GPU request path the profile uses (sbatch --gpus=1).
        "--set-resources", "coassay:mem_mb=3000", "coassay:gpu=1",
    ]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, env=slurm_cluster, timeout=1800)
    elapsed = time.monotonic() - t0
    if proc.returncode != 0:
        logs = "\n".join(
            f"--- {p}\n{p.read_text()[-3000:]}" for p in sorted((work / ".snakemake" / "slurm_logs").rglob("*.log"))
        ) if (work / ".snakemake" / "slurm_logs").is_dir() else ""
        pytest.fail(f"slurm run failed ({proc.returncode}):\n{proc.stdout[-5000:]}\n{proc.stderr[-5000:]}\n{logs}")
    print(f"\nslurm run of {SLURM_RULES} took {elapsed:.1f} s", file=sys.stderr)
    return work, cfg, proc


@pytest.mark.slurm
def test_slurm_run_builds_the_outputs(slurm_run):
    work, cfg, _ = slurm_run
    res = work / cfg["results"]
    for name in demo_raw_files(cfg):   # every raw file the demo simulates
        assert (res / "raw" / name).stat().st_size > 0, name
    for f in ("interim/coassay_rna.h5ad", "interim/coassay_atac.h5ad"):
        assert (res / f).stat().st_size > 0, f
    for rule in SLURM_RULES:  # rule logs and benchmarks written on the SLURM node
        assert list((res / "logs" / rule).glob("*.log")), rule
        assert list((res / "benchmarks" / rule).glob("*.tsv")), rule


@pytest.mark.slurm
def test_every_job_went_through_slurm(slurm_run, slurm_cluster, default_config):
    work, _, proc = slurm_run
    out = proc.stdout + proc.stderr
    submitted = dict(re.findall(r"submitted with SLURM jobid (\d+) \(log: .*?/rule_(\w+)/", out))
    submitted = {rule: jobid for jobid, rule in submitted.items()}
    assert set(submitted) == set(SLURM_RULES), out[-3000:]
    cpu_rules = default_config["resources"]["default"]
    for rule, jobid in submitted.items():
        log = work / ".snakemake" / "slurm_logs" / f"rule_{rule}" / f"{jobid}.log"
        text = log.read_text()
        assert f"rule {rule}:" in text and "1 of 1 steps (100%) done" in text, text[-2000:]
        job = _scontrol_job(jobid, slurm_cluster)
        assert job["JobState"] == "COMPLETED", job
        assert Path(job["WorkDir"]).resolve() == work.resolve()
        if rule == "simulate_demo":  # mem/runtime declared from config resources.default
            assert job["TimeLimit"] == f"{cpu_rules['runtime'] // 60:02d}:{cpu_rules['runtime'] % 60:02d}:00", job
            assert f"mem={cpu_rules['mem_mb']}M" in job["TRES"], job
        if rule == "coassay":
            assert "mem=3000M" in job["TRES"], job
            assert "gpu:1" in job.get("TresPerJob", ""), job
        else:
            assert "gpu" not in job.get("TresPerJob", ""), job


@pytest.mark.slurm
def test_second_slurm_run_submits_nothing(slurm_run, slurm_cluster):
    work, cfg, _ = slurm_run
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", f"{cfg['results']}/{SLURM_TARGET}",
         "--workflow-profile", PROFILE, "--jobs", "2", "--slurm-no-account",
         "--slurm-status-command", "squeue"],
        cwd=work, capture_output=True, text=True, env=slurm_cluster, timeout=600,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "Nothing to be done" in out and "SLURM jobid" not in out, out[-3000:]
