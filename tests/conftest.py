"""Shared pytest fixtures and helpers: repository paths, the validated default config, the demo
run of the end-to-end tests, and small data / trained models used by more than one test module.

Helpers that need more code live in their own modules next to this file (synthetic_coassay.py,
polarbear_toy.py, snap_files.py, toy_counts.py, local_http.py).
"""

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import yaml

REPO = Path(__file__).resolve().parents[1]
GEO_FIXTURES = REPO / "tests" / "data" / "snareseq_geo"  # copies of the real GEO files (see its README)
CHAIN = REPO / "tests" / "data" / "tiny.over.chain"     # a hand-made liftover chain (test_genome, test_features)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def default_config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


@pytest.fixture(scope="session")
def geo_fixtures() -> Path:
    if not GEO_FIXTURES.is_dir():
        pytest.fail(f"real GEO fixture folder missing: {GEO_FIXTURES}")
    return GEO_FIXTURES


def copy_repo(dest: Path) -> Path:
    """Copy the tracked workflow files (not results/ or .snakemake/) into ``dest``."""
    import shutil

    ignore = shutil.ignore_patterns("results", ".snakemake", "__pycache__", ".pytest_cache", "*.egg-info", ".git")
    shutil.copytree(REPO, dest, ignore=ignore, dirs_exist_ok=True)
    return dest


def demo_raw_files(config: dict) -> list[str]:
    """File names (under results/raw/) that the demo's simulate_demo job writes for ``config``
    (config.yaml as read; the demo overlay is merged here, as the Snakefile does)."""
    from workflow_lib.settings import source_config
    from workflow_lib.sources import demo_file_names

    return list(demo_file_names(source_config(config)).values())


def run_snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 3600):
    """Run snakemake in ``workdir``; on failure show the tail of its output."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "snakemake", *args]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        pytest.fail(
            f"{' '.join(cmd)} failed ({proc.returncode}) in {workdir}\n"
            f"--- stdout (tail) ---\n{proc.stdout[-6000:]}\n--- stderr (tail) ---\n{proc.stderr[-6000:]}"
        )
    return proc


@pytest.fixture(scope="session")
def demo_workdir(tmp_path_factory) -> Path:
    """A copy of the workflow on which the whole demo (`snakemake --cores 2`) has run once.

    Shared by every end-to-end test so the expensive run happens once per session.
    """
    work = copy_repo(tmp_path_factory.mktemp("demo") / "workflow")
    run_snakemake(work, "--cores", "2")
    return work


# ----------------------------------------------------------------------------- small shared data


def peak_table(rows):
    """Peaks (chrom, start, end) as a data frame indexed by their ``chrom:start-end`` names."""
    from workflow_lib import genome

    df = pd.DataFrame(rows, columns=["chrom", "start", "end"])
    df.index = genome.peak_names(df)
    return df


@pytest.fixture(scope="session")
def clustered():
    """300 cells of 4 simulated types (120/80/60/40 cells) x 100 genes: (AnnData, type per cell).
    Used by the Leiden split (test_splits) and attach_splits (test_cells) tests."""
    rng = np.random.default_rng(0)
    t = np.repeat(np.arange(4), [120, 80, 60, 40])
    mu = rng.gamma(1, 2, (4, 100))
    X = rng.poisson(mu[t] * 3).astype(np.float32)
    obs = pd.DataFrame({"cell_type": [f"T{k}" for k in t]}, index=[f"bc{i}" for i in range(len(t))])
    return ad.AnnData(X=sp.csr_matrix(X), obs=obs), t


# ----------------------------------------------------------------------------- small trained models


@pytest.fixture()
def one_torch_thread():
    """Tiny models: one thread is fastest (and avoids oversubscription on a 2-core CI runner).
    Modules use it for every test with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


BABEL_FIT = {"batch_size": 32, "learning_rate": 0.003, "max_epochs": 6, "patience": 3}


@pytest.fixture(scope="session")
def babel_trained(tmp_path_factory):
    """Two BABEL grid points trained by the stage function on the synthetic co-assay:
    ``(tmp, rna path, atac path, grid dir, config.json paths)``. Used by test_babel (stage) and
    models/test_babel (TrainedBabel)."""
    from synthetic_coassay import write_coassay
    from workflow_lib.babel import train_babel_point

    tmp = tmp_path_factory.mktemp("babel")
    rp, ap, truth = write_coassay(tmp, seed=4)
    grid = tmp / "grid"
    cfgs = []
    for lat, w in [(4, 1.33), (6, 0.2)]:
        pt = f"latent{lat}_weight{w:g}"
        train_babel_point(rp, ap, "random", pt, lat, w, BABEL_FIT, grid / pt / "model.pt", grid / pt / "config.json",
                          seed=0)
        cfgs.append(grid / pt / "config.json")
    return tmp, rp, ap, grid, cfgs


@pytest.fixture(scope="session")
def cli_model(tmp_path_factory) -> dict:
    """One Polarbear model trained through ``polarbear train`` on the toy data set of
    polarbear_toy.py (see :func:`polarbear_toy.train_toy_model` for the keys). Used by test_cli
    and test_export."""
    from polarbear_toy import train_toy_model

    return train_toy_model(tmp_path_factory.mktemp("cli"))
