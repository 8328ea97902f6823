"""Training-seed replicates (config `seeds`): run names, the 95% CI over seeds, and the DAG."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from conftest import copy_repo, run_snakemake
from workflow_lib import seeds as S


@pytest.mark.parametrize("method", ["polarbear", "polarbear_coassay", "babel"])
@pytest.mark.parametrize("seeds", [[0], [0, 1, 2], [7, 3, 0]])
def test_run_name_round_trip(method, seeds):
    names = S.method_run_names(method, seeds)
    assert len(names) == len(set(names)) == len(seeds)
    assert names[0] == method   # the first seed keeps today's paths
    for name, seed in zip(names, seeds):
        assert S.run_name(method, seed, seeds) == name
        assert S.parse_run_name(name, seeds) == (method, seed)
        assert S.base_method(name) == method
        assert S.is_first_seed(name) == (seed == seeds[0])
    if len(seeds) > 1:
        assert names[1] == f"{method}~s{seeds[1]}"


def test_run_names_refused():
    assert S.method_run_names("knn", [0, 1, 2]) == ["knn"]   # deterministic: one run
    assert S.parse_run_name("polarbear") == ("polarbear", None)
    with pytest.raises(ValueError):
        S.run_name("ridge", 1, [0, 1])
    with pytest.raises(ValueError):
        S.run_name("babel", 5, [0, 1])
    for bad in ("knn~s1", "polarbear~s", "polarbear~1", "polarbear~s1~s2", "polar bear", "babel~s-1", ""):
        with pytest.raises(ValueError):
            S.parse_run_name(bad)
    assert S.check_seeds(["0", "1"]) == [0, 1]   # snakemake --config seeds=[0,1]
    for bad in ([], [0, 0], [0, "0"], [-1], [True], [1.5], 0, ["x"]):
        with pytest.raises(ValueError):
            S.check_seeds(bad)


def test_mean_ci95_matches_scipy_t():
    v = np.array([[0.41, 0.38, 0.45, np.nan],      # 3 seeds
                  [0.2, 0.25, np.nan, np.nan],      # 2 seeds
                  [0.7, np.nan, np.nan, np.nan],    # 1 seed: no CI
                  [np.nan] * 4,                     # none
                  [1.0, 1.0, 1.0, 1.0]])            # zero spread
    n, mean, lo, hi = S.mean_ci95(v, axis=1)
    assert n.tolist() == [3, 2, 1, 0, 4]
    for i in (0, 1):
        x = v[i][np.isfinite(v[i])]
        ref = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
        assert mean[i] == pytest.approx(x.mean())
        assert (lo[i], hi[i]) == pytest.approx(ref, rel=1e-12)
    # two seeds: t_{0.975,1} = 12.706 -> half width 12.706 * 0.05 / 2
    assert hi[1] - mean[1] == pytest.approx(12.7062047 * np.std([0.2, 0.25], ddof=1) / np.sqrt(2))
    assert mean[2] == 0.7 and np.isnan(lo[2]) and np.isnan(hi[2])
    assert np.isnan(mean[3]) and np.isnan(lo[3])
    assert lo[4] == hi[4] == 1.0
    # axis 0 gives the same as the transpose
    n0, m0, lo0, hi0 = S.mean_ci95(v.T, axis=0)
    np.testing.assert_allclose(lo0, lo, equal_nan=True)


def test_seed_summary_groups():
    df = pd.DataFrame({"metric": ["r"] * 5 + ["a"] * 2, "method": ["pb", "pb", "pb", "knn", "b", "pb", "pb"],
                       "run": ["pb", "pb~s1", "pb~s2", "knn", "b", "pb", "pb~s1"],
                       "mean": [0.4, 0.5, 0.6, 0.3, 0.2, 0.9, np.nan]})
    out = S.seed_summary(df, ["metric", "method"]).set_index(["metric", "method"])
    assert out.loc[("r", "pb"), "n_seeds"] == 3
    assert out.loc[("r", "pb"), "seed_mean"] == pytest.approx(0.5)
    assert out.loc[("r", "pb"), "ci95_low"] == pytest.approx(0.5 - stats.t.ppf(0.975, 2) * 0.1 / np.sqrt(3))
    assert out.loc[("r", "knn"), "n_seeds"] == 1 and np.isnan(out.loc[("r", "knn"), "ci95_high"])
    assert out.loc[("a", "pb"), "n_seeds"] == 1 and out.loc[("a", "pb"), "seed_mean"] == 0.9


# Loads the workflow (Snakemake API, in a subprocess) with `seeds` and prints the params the
# scripts receive for some run names, and the runs method_runs() yields.
_PARAMS = r"""
import json, sys
from pathlib import Path
from types import SimpleNamespace
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings, StorageSettings

with SnakemakeApi(OutputSettings(quiet={"all"})) as api:
    wf = api.workflow(resource_settings=ResourceSettings(),
                      config_settings=ConfigSettings(config={"seeds": json.loads(sys.argv[1])}),
                      storage_settings=StorageSettings(), snakefile=Path("Snakefile"),
                      workdir=Path("."))._workflow
    rules = {r.name: r for r in wf.rules}
    out = {}
    for rule, wc in (("pretrain_vae", {"method": "polarbear~s2", "modality": "rna"}),
                     ("pretrain_vae", {"method": "polarbear_coassay", "modality": "atac"}),
                     ("train_translators", {"method": "polarbear_coassay~s2"}),
                     ("predict_polarbear", {"method": "polarbear~s2"}),
                     ("export_model", {"method": "polarbear_coassay~s2"}),
                     ("train_babel", {"seedtag": "~s2", "point": "latent16_weight1.33"}),
                     ("train_babel", {"seedtag": "", "point": "latent16_weight1.33"})):
        p = rules[rule].params
        w = SimpleNamespace(variant="full", scenario="random", **wc)
        got = {k: (getattr(p, k)(w) if callable(getattr(p, k)) else getattr(p, k))
               for k in ("method", "seed") if hasattr(p, k)}
        out[rule + ":" + json.dumps(wc)] = got
    out["runs"] = wf.globals["method_runs"]()
    print("PARAMS_JSON=" + json.dumps(out))
"""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return copy_repo(tmp_path_factory.mktemp("seeds") / "workflow")


def test_rules_pass_method_and_seed_as_params(workdir):
    proc = subprocess.run([sys.executable, "-c", _PARAMS, "[5, 2]"], cwd=workdir, capture_output=True,
                          text=True, timeout=300)
    line = [x for x in proc.stdout.splitlines() if x.startswith("PARAMS_JSON=")]
    assert line, proc.stderr[-3000:]
    got = json.loads(line[0].split("=", 1)[1])
    assert got.pop('pretrain_vae:{"method": "polarbear~s2", "modality": "rna"}') == {"method": "polarbear", "seed": 2}
    assert got.pop('pretrain_vae:{"method": "polarbear_coassay", "modality": "atac"}') == {
        "method": "polarbear_coassay", "seed": 5}
    assert got.pop('train_translators:{"method": "polarbear_coassay~s2"}') == {"seed": 2}
    assert got.pop('predict_polarbear:{"method": "polarbear~s2"}') == {"method": "polarbear"}
    assert got.pop('export_model:{"method": "polarbear_coassay~s2"}') == {"method": "polarbear_coassay"}
    assert got.pop('train_babel:{"seedtag": "~s2", "point": "latent16_weight1.33"}') == {"seed": 2}
    assert got.pop('train_babel:{"seedtag": "", "point": "latent16_weight1.33"}') == {"seed": 5}
    runs = {tuple(r) for r in got.pop("runs")}
    assert ("full", "random", "polarbear~s2") in runs and ("var", "unseen", "polarbear_coassay~s2") in runs
    assert ("full", "unseen", "knn") in runs and not any("knn~" in r[2] or "ridge~" in r[2] for r in runs)
    assert ("exp", "random", "babel~s2") not in runs


def test_dag_with_two_seeds_has_the_extra_runs(workdir):
    one = run_snakemake(workdir, "-n", "--forceall").stdout
    two = run_snakemake(workdir, "-n", "--forceall", "--config", "seeds=[0,1]").stdout
    assert "~s" not in one
    for path in ("results/models/full/random/polarbear~s1/grid/latent25_beta1/vae_rna.pt",
                 "results/models/full/unseen/polarbear_coassay~s1/selected.json",
                 "results/models/full/random/babel~s1/grid/latent16_weight1.33/model.pt",
                 "results/predictions/full/unseen/babel~s1/latent.h5ad",
                 "results/eval/full/random/polarbear~s1/cells.tsv",
                 "results/eval/exp/unseen/polarbear_coassay~s1/cells.tsv",
                 # the first seed keeps today's paths
                 "results/models/full/random/polarbear/grid/latent25_beta1/scores.json",
                 "results/eval/full/random/babel/genes.tsv"):
        assert path in two, path
    assert "knn~s1" not in two and "ridge~s1" not in two and "full/random/babel~s1/de" in two
    count = lambda out, rule: int(next(l.split()[1] for l in out.splitlines()  # noqa: E731
                                       if l.split()[:1] == [rule]))
    # trained runs: 2 x (full: polarbear, polarbear_coassay; exp, var: polarbear_coassay) per scenario
    assert count(two, "pretrain_vae") == 2 * count(one, "pretrain_vae")
    assert count(two, "train_babel") == 2 * count(one, "train_babel")
    assert count(two, "predict_baseline") == count(one, "predict_baseline") == 2 * 2  # knn, ridge x 2 scenarios
    # evaluate_run: every run of one seed + the second seed's polarbear/polarbear_coassay/babel runs
    assert count(two, "evaluate_run") == count(one, "evaluate_run") + 2 * (2 + 1) + 2 * 2
