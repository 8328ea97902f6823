"""End to end: the default `snakemake --cores 2` builds every stage on the demo data."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import copy_repo, run_snakemake

pytestmark = pytest.mark.e2e


def test_demo_run_builds_figures_and_table3(demo_workdir):
    cfg = yaml.safe_load((demo_workdir / "config.yaml").read_text())
    res = demo_workdir / cfg["results"]
    for i in range(3, 8):
        for ext in ("pdf", "png"):
            f = res / "figures" / f"fig{i}.{ext}"
            assert f.is_file() and f.stat().st_size > 1000, f
    table = pd.read_csv(res / "eval" / "table3.tsv", sep="\t")
    assert {"polarbear", "polarbear_coassay", "babel"} <= set(table["method"])
    assert table["mean"].notna().any()


def test_processed_contract_holds(demo_workdir):
    res = demo_workdir / "results" / "processed"
    for variant in ("full", "exp", "var"):
        rna = ad.read_h5ad(res / variant / "coassay_rna.h5ad")
        atac = ad.read_h5ad(res / variant / "coassay_atac.h5ad")
        assert list(rna.obs_names) == list(atac.obs_names)
        for col in ("batch", "dataset", "cell_type", "split_random", "split_unseen"):
            assert col in rna.obs and col in atac.obs, col
        single_atac = ad.read_h5ad(res / variant / "single_atac.h5ad")
        assert list(single_atac.var_names) == list(atac.var_names)
        assert not set(atac.var["chrom"]) & {"chrX", "chrY"}
        assert set(np.unique(atac.X.data)) <= {1.0}
    full = ad.read_h5ad(res / "full" / "coassay_atac.h5ad")
    exp = ad.read_h5ad(res / "exp" / "coassay_atac.h5ad")
    assert exp.n_vars < full.n_vars


def test_second_run_has_nothing_to_do(demo_workdir):
    proc = run_snakemake(demo_workdir, "--cores", "2", "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_public_source_dry_run_resolves_without_network(tmp_path):
    work = copy_repo(tmp_path / "wf")
    proc = run_snakemake(work, "-n", "--config", "source=public")
    out = proc.stdout + proc.stderr
    assert "download" in out and "pretrain_vae" in out


def test_invalid_config_is_rejected_by_the_snakefile(tmp_path):
    work = copy_repo(tmp_path / "wf")
    proc = run_snakemake(work, "-n", "--config", "source=internet", check=False)
    assert proc.returncode != 0
    assert "source" in proc.stdout + proc.stderr


def test_html_report_contains_figures_and_table3(demo_workdir):
    report = demo_workdir / "report.html"
    run_snakemake(demo_workdir, "--report", str(report))
    html = report.read_text(errors="replace")
    assert report.stat().st_size > 100_000
    for name in [f"fig{i}.png" for i in range(3, 8)] + ["table3.html"]:
        assert name in html, f"{name} missing from the report"
