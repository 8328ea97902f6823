"""Workflow hygiene: `snakemake --lint` is clean, and every rule that does work declares log,
benchmark, resources (mem_mb, runtime), a conda env and a script -- for both data sources."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import copy_repo, run_snakemake

# Loads the workflow with the Snakemake API (in a subprocess, so the test process stays clean)
# and prints one JSON record per rule.
_DUMP_RULES = r"""
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings, StorageSettings

overrides = json.loads(sys.argv[1])


def value(res):
    v = getattr(res, "value", res)
    return v if v is None or isinstance(v, (int, float, str)) else "callable"


with SnakemakeApi(OutputSettings(quiet={"all"})) as api:
    wapi = api.workflow(
        resource_settings=ResourceSettings(),
        config_settings=ConfigSettings(config=overrides),
        storage_settings=StorageSettings(),
        snakefile=Path("Snakefile"),
        workdir=Path("."),
    )
    wf = wapi._workflow
    out = []
    for r in wf.rules:
        out.append(dict(
            name=r.name,
            has_output=bool(r.output),
            norun=bool(r.norun),
            log=[str(x) for x in r.log],
            benchmark=str(r.benchmark) if r.benchmark else None,
            resources=sorted(k for k in r.resources if not k.startswith("_") and k != "tmpdir"),
            mem_mb=value(r.resources.get("mem_mb")),
            runtime=value(r.resources.get("runtime")),
            conda=str(r.conda_env) if r.conda_env else None,
            script=r.script,
        ))
    print("RULES_JSON=" + json.dumps(out))
"""


def _rules(workdir, overrides: dict) -> list[dict]:
    proc = subprocess.run(
        [sys.executable, "-c", _DUMP_RULES, json.dumps(overrides)],
        cwd=workdir, capture_output=True, text=True, timeout=300,
    )
    line = [l for l in proc.stdout.splitlines() if l.startswith("RULES_JSON=")]
    if proc.returncode != 0 or not line:
        pytest.fail(f"loading the workflow failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(line[0][len("RULES_JSON="):])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return copy_repo(tmp_path_factory.mktemp("lint") / "wf")


@pytest.fixture(scope="module")
def rules_by_source(workdir):
    return {source: _rules(workdir, {"source": source}) for source in ("demo", "public", "authors")}


def test_snakemake_lint_is_clean(workdir):
    proc = run_snakemake(workdir, "--lint", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Lints for" not in out, out[-6000:]


def _is_target_rule(rule: dict) -> bool:
    """Pure target rules (like `all`) only collect inputs: no outputs, nothing to run."""
    return not rule["has_output"] and rule["norun"]


@pytest.mark.parametrize("source", ["demo", "public", "authors"])
def test_every_working_rule_has_log_benchmark_resources_env_script(rules_by_source, source):
    rules = rules_by_source[source]
    names = {r["name"] for r in rules}
    assert "all" in names
    assert ("simulate_demo" in names) == (source == "demo")
    assert ("download" in names) == ("check_sources" in names) == (source != "demo")
    assert ("processed_authors" in names) == (source == "authors") != ("processed_full" in names)
    problems = []
    for r in rules:
        if r["name"] == "all" or _is_target_rule(r):
            continue
        if not r["log"]:
            problems.append(f"{r['name']}: no log")
        if not r["benchmark"]:
            problems.append(f"{r['name']}: no benchmark")
        for res in ("mem_mb", "runtime"):
            if res not in r["resources"]:
                problems.append(f"{r['name']}: no resources.{res}")
        if not r["conda"]:
            problems.append(f"{r['name']}: no conda env")
        if not r["script"]:
            problems.append(f"{r['name']}: no script")
    assert not problems, "\n".join(problems)


def test_logs_and_benchmarks_follow_the_layout(rules_by_source):
    """{R}/logs/<rule>/... and {R}/benchmarks/<rule>/... (CONTRACT)."""
    bad = []
    for rules in rules_by_source.values():
        for r in rules:
            if r["name"] == "all" or _is_target_rule(r):
                continue
            if not all(l.startswith(f"results/logs/{r['name']}/") for l in r["log"]):
                bad.append(f"{r['name']}: log {r['log']}")
            if r["benchmark"] and not r["benchmark"].startswith(f"results/benchmarks/{r['name']}/"):
                bad.append(f"{r['name']}: benchmark {r['benchmark']}")
    assert not bad, "\n".join(bad)


def test_training_rules_use_the_train_resources(rules_by_source, default_config):
    train = default_config["resources"]["train"]
    rules = {r["name"]: r for r in rules_by_source["demo"]}
    training = [n for n in rules if n.startswith(("pretrain_vae", "train_translators", "train_babel"))]
    assert {"train_babel"} <= set(training) and any(n.startswith("pretrain_vae") for n in training), training
    for n in training:
        assert rules[n]["mem_mb"] == train["mem_mb"] and rules[n]["runtime"] == train["runtime"], rules[n]
