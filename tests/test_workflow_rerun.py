"""Rerun behaviour of the built demo workflow: what a parameter change, --forcerun and a second
run plan. Uses a private copy of the session's built demo (conftest.demo_workdir, which the
end-to-end tests build anyway), so the only extra cost is dry runs and one cheap forced rule."""

from __future__ import annotations

import re
import shutil

import pytest
import yaml

from conftest import run_snakemake

pytestmark = pytest.mark.e2e

FORCED_RULE = "table3"  # cheap: aggregates the per-run evaluation tables


def job_stats(output: str) -> dict[str, int]:
    """Rule -> job count from the first 'Job stats:' table of a snakemake (dry) run."""
    m = re.search(r"Job stats:\n\s*job\s+count\n[-\s]+\n(.*?)\n\s*total\s+(\d+)", output, re.S)
    if not m:
        return {}
    stats = {}
    for line in m.group(1).splitlines():
        name, count = line.split()
        stats[name] = int(count)
    assert sum(stats.values()) == int(m.group(2))
    return stats


def descendants(workdir, rule: str) -> set[str]:
    """Rules downstream of ``rule`` in `snakemake --rulegraph`."""
    dot = run_snakemake(workdir, "--rulegraph").stdout
    labels = dict(re.findall(r"^\s*(\d+)\[label = \"(\w+)\"", dot, re.M))
    children: dict[str, set[str]] = {}
    for a, b in re.findall(r"^\s*(\d+) -> (\d+)", dot, re.M):
        children.setdefault(labels[a], set()).add(labels[b])
    assert rule in labels.values(), f"{rule} not in the rule graph"
    seen, todo = set(), [rule]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


@pytest.fixture(scope="module")
def built(demo_workdir, tmp_path_factory):
    """A private copy of the built demo (mtimes and .snakemake metadata preserved)."""
    dest = tmp_path_factory.mktemp("rerun") / "wf"
    shutil.copytree(demo_workdir, dest, symlinks=True)  # copy2 keeps modification times
    return dest


@pytest.fixture(scope="module")
def all_jobs(built) -> dict[str, int]:
    """Job counts of the complete demo DAG."""
    stats = job_stats(run_snakemake(built, "-n", "--forceall").stdout)
    assert stats.get("train_translators", 0) > 0, stats
    return stats


def test_second_run_does_nothing(built):
    proc = run_snakemake(built, "--cores", "2")
    out = proc.stdout + proc.stderr
    assert "Nothing to be done" in out, out[-3000:]
    assert not job_stats(out)


def test_translator_learning_rate_change_reruns_only_translators_and_downstream(built, all_jobs, tmp_path):
    cfg = yaml.safe_load((built / "config.yaml").read_text())
    # the demo's own translator settings (demo.polarbear overlay) are what a demo user edits
    lr = cfg["demo"]["polarbear"]["translator"]["learning_rate"]
    # --configfile (not --config) so the nested value stays a number and passes the schema.
    overlay = tmp_path / "lr.yaml"
    overlay.write_text(yaml.safe_dump({"demo": {"polarbear": {"translator": {"learning_rate": lr * 2}}}}))
    proc = run_snakemake(built, "-n", "--rerun-triggers", "params", "--configfile", str(overlay))
    out = proc.stdout + proc.stderr
    planned = job_stats(out)
    downstream = descendants(built, "train_translators")
    # every translator (all grid points of both Polarbear methods) is retrained ...
    assert planned.get("train_translators") == all_jobs["train_translators"], planned
    # ... and exactly the rules downstream of it follow; nothing upstream or unrelated
    assert set(planned) == {"train_translators"} | downstream, (planned, downstream)
    assert "pretrain_vae" not in planned and "train_babel" not in planned
    # only the Polarbear runs are re-evaluated, not BABEL / knn / ridge
    assert planned["evaluate_run"] == planned["select_polarbear"] < all_jobs["evaluate_run"], planned
    assert re.search(r"reason: .*[Pp]arams have changed", out), out[-3000:]


def test_unchanged_config_with_params_trigger_plans_nothing(built):
    proc = run_snakemake(built, "-n", "--rerun-triggers", "params")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_forcerun_reruns_the_rule_and_downstream_then_settles(built):
    cfg = yaml.safe_load((built / "config.yaml").read_text())
    out_file = built / cfg["results"] / "eval" / "table3.tsv"
    before = out_file.stat().st_mtime_ns
    proc = run_snakemake(built, "--cores", "2", "--forcerun", FORCED_RULE)
    ran = job_stats(proc.stdout + proc.stderr)
    assert ran.get(FORCED_RULE) == 1, ran
    assert set(ran) <= {FORCED_RULE} | descendants(built, FORCED_RULE), ran
    assert out_file.stat().st_mtime_ns > before
    again = run_snakemake(built, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr, again.stdout[-3000:]
