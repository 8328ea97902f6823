"""Shared pytest fixtures: repository paths and the validated default config."""

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
GEO_FIXTURES = REPO / "tests" / "data" / "snareseq_geo"  # copies of the real GEO files (see its README)


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
