"""Fidelity report (run by hand on a finished demo run): our Polarbear against the authors' code.

Writes ``benchmarks/fidelity.md`` from a results directory:

- Table 3 rows of Polarbear and Polarbear co-assay (``<results>/eval/table3.tsv``: DE genes/peaks,
  log1p(1e4 x pred) gene Pearson, FOSCTTM of the RNA query in the ATAC latent and of the ATAC
  query in the RNA latent), next to the numbers the authors' original code (Noble-Lab/Polarbear,
  TensorFlow) and our implementation before the fidelity work reached on the same demo inputs
  and split (measured in issue 11, demo seed 7);
- every training stage of every Polarbear grid point and BABEL run: best epoch, epochs run, optimiser
  steps and why it stopped (``scores.json``, ``config.json``);
- the grid point each run selected.

    python3 benchmarks/fidelity.py results [more_results ...] [--out benchmarks/fidelity.md] [--code REV]

Further results directories (e.g. a run with another ``demo.seed``) add their Table 3 rows and
verdicts, labelled by directory name; convergence and selection are listed for every directory.
The table "Every run at a glance" accumulates: rows of runs in the previous ``--out`` file that
are not given again are kept, each with the git revision (``--code``, default HEAD) it was run with.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import pandas as pd

from workflow_lib.data import batch_onehot
from workflow_lib.evaluate import _read_table, build_table3
from workflow_lib.metrics import foscttm
from workflow_lib.polarbear import load_grid_point, read_coassay, task_points

# Measured in issue 11 on the demo (seed 7, random split 704/235/235; unseen test Ex-L23-Rasgrf2):
# the authors' code run with only API-compatibility edits (VAE stages capped at 80 epochs), and
# our implementation as landed before this work.
REFERENCE = {
    "authors' code (issue 11)": {
        ("random", "gene r"): 0.435, ("random", "peak AUROC"): 0.830, ("random", "AUPRnorm"): 0.204,
        ("random", "FOSCTTM RNA query"): 0.027, ("random", "FOSCTTM ATAC query"): 0.048,
        ("unseen", "peak AUROC"): 0.621, ("unseen", "FOSCTTM RNA query"): 0.139,
        ("unseen", "FOSCTTM ATAC query"): 0.362,
    },
    "ours before (issue 11)": {
        ("random", "gene r"): 0.387, ("random", "peak AUROC"): 0.719, ("random", "AUPRnorm"): 0.105,
        ("random", "FOSCTTM RNA query"): 0.293, ("random", "FOSCTTM ATAC query"): 0.186,
        ("unseen", "peak AUROC"): 0.537, ("unseen", "FOSCTTM RNA query"): 0.499,
        ("unseen", "FOSCTTM ATAC query"): 0.500,
    },
}
AUTHORS = REFERENCE["authors' code (issue 11)"]
METRICS = {
    "gene-wise correlation": "gene r", "peak-wise AUROC": "peak AUROC", "peak-wise AUPRnorm": "AUPRnorm",
    "FOSCTTM latent (RNA query)": "FOSCTTM RNA query", "FOSCTTM latent (ATAC query)": "FOSCTTM ATAC query",
}
LOWER_IS_BETTER = {"FOSCTTM RNA query", "FOSCTTM ATAC query"}
COLUMNS = list(METRICS.values())


TABLES = ("genes", "peaks", "cells", "markers")


def in_bar(split: str, column: str) -> bool:
    """Is this Table 3 cell part of issue 11's bar? (the unseen-split peak AUROC is not)"""
    return (split, column) in AUTHORS and (split, column) != ("unseen", "peak AUROC")


def reaches(split: str, column: str, value: float) -> bool:
    """Does ``value`` reach the authors' number of this Table 3 cell (issue 11's bar)?"""
    ref = AUTHORS[(split, column)]
    return value <= ref if column in LOWER_IS_BETTER else value >= ref


def polarbear_rows(results: Path, variant: str = "full", method: str = "polarbear") -> dict:
    """{(scenario, column): mean} of the runs present below ``results/eval/<variant>``."""
    out = {}
    for scenario in ("random", "unseen"):
        d = results / "eval" / variant / scenario / method
        if not all((d / f"{t}.tsv").exists() for t in TABLES):
            continue
        tables = {(scenario, method, t): (_read_table(d / f"{t}.tsv"), d / f"{t}.tsv") for t in TABLES}
        t3 = build_table3(tables)
        t3 = t3[(t3["definition"] == "v1") & t3["metric"].isin(list(METRICS))]
        out.update({(scenario, METRICS[m]): float(v) for m, v in zip(t3["metric"], t3["mean"])})
    return out


def table3_rows(results: Path, label: str = "") -> dict:
    if not (results / "eval" / "table3.tsv").exists():  # a run of the Polarbear methods only
        rows = {}
        for method in ("polarbear", "polarbear_coassay"):
            vals = polarbear_rows(results, method=method)
            if vals:
                rows[f"ours: {method}" + (f" ({label})" if label else "")] = vals
        return rows
    t3 = pd.read_csv(results / "eval" / "table3.tsv", sep="\t")
    if "definition" in t3.columns:  # the rows measured in issue 11 follow the "v1" definitions
        t3 = t3[t3["definition"] == "v1"]
    rows = {}
    for _, r in t3.iterrows():
        if r["metric"] in METRICS and r["method"] in ("polarbear", "polarbear_coassay"):
            name = f"ours: {r['method']}" + (f" ({label})" if label else "")
            rows.setdefault(name, {})[(r["split"], METRICS[r["metric"]])] = float(r["mean"])
    return rows


def comparison_table(rows: dict, split: str) -> list[str]:
    lines = [f"| {split} split | " + " | ".join(COLUMNS) + " |", "|---|" + "---|" * len(COLUMNS)]
    for name, vals in {**REFERENCE, **rows}.items():
        cells = [f"{vals[(split, c)]:.3f}" if (split, c) in vals else "" for c in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def coassay_better(ours: dict, co: dict, splits=("random", "unseen")) -> list[tuple[str, str]]:
    """The (split, column) cells of Table 3 on which polarbear_coassay is better than polarbear."""
    return [(s, c) for s in splits for c in COLUMNS if (s, c) in ours and (s, c) in co
            and ((ours[(s, c)] > co[(s, c)]) if c in LOWER_IS_BETTER else (ours[(s, c)] < co[(s, c)]))]


def verdict(rows: dict, label: str = "") -> list[str]:
    """Does `polarbear` reach the authors' numbers (issue 11's bar) and beat `polarbear_coassay`?"""
    sfx = f" ({label})" if label else ""
    ours, authors = rows.get("ours: polarbear" + sfx, {}), AUTHORS
    out = []
    for key, ref in authors.items():
        if key not in ours or not in_bar(*key):
            continue
        ok = reaches(*key, ours[key])
        out.append(f"- {key[0]} {key[1]}{sfx}: ours {ours[key]:.3f} vs authors {ref:.3f}: "
                   f"{'reached' if ok else 'NOT reached'}")
    co = rows.get("ours: polarbear_coassay" + sfx, {})
    for split in ("random", "unseen"):
        fos = [(split, "FOSCTTM RNA query"), (split, "FOSCTTM ATAC query")]
        if all(k in ours and k in co for k in fos):
            a, b = sum(ours[k] for k in fos) / 2, sum(co[k] for k in fos) / 2
            worse = [c for _, c in coassay_better(ours, co, (split,))]
            out.append(f"- {split} split{sfx}, mean latent FOSCTTM: polarbear {a:.4f} vs polarbear_coassay {b:.4f}: "
                       f"semi-supervised {'better' if a < b else 'NOT better'}; polarbear_coassay better on: "
                       f"{', '.join(worse) if worse else 'no column'}")
    return out


GLANCE = "## Every run at a glance"
BAR_CELLS = [(split, c) for split in ("random", "unseen") for c in COLUMNS if in_bar(split, c)]
GLANCE_HEADER = ("| run | code | " + " | ".join(f"{s} {c}" for s, c in BAR_CELLS)
                 + " | bar missed | polarbear_coassay better on |")


def seed_summary(rows: dict, labels: list[tuple[str, str]], code: str) -> dict[str, str]:
    """{shown name: table row} per (row label, shown name) of a results directory: the code
    revision that made it, polarbear's Table 3 cells of issue 11's bar, the cells that miss it,
    and the cells on which polarbear_coassay is better."""
    out = {}
    for label, shown in labels:
        sfx = f" ({label})" if label else ""
        ours, co = rows.get("ours: polarbear" + sfx, {}), rows.get("ours: polarbear_coassay" + sfx, {})
        missed = [f"{s} {c}" for s, c in BAR_CELLS if (s, c) in ours and not reaches(s, c, ours[(s, c)])]
        worse = [f"{s} {c}" for s, c in coassay_better(ours, co)]
        cells = [f"{ours[k]:.3f}" if k in ours else "" for k in BAR_CELLS]
        out[shown] = (f"| {shown} | {code} | " + " | ".join(cells) + f" | {', '.join(missed) or 'none'} | "
                      f"{', '.join(worse) or 'no column'} |")
    return out


def earlier_glance_rows(report: Path) -> dict[str, str]:
    """{run name: table row} of the "Every run at a glance" table of an earlier report: runs not
    given again keep their row (with the code revision they were measured with), so the table
    collects every demo seed run so far while each regeneration needs only the new directories."""
    if not report.exists():
        return {}
    text = report.read_text()
    lines = text.splitlines()
    if GLANCE not in lines:
        return {}
    rows = {}
    for line in lines[lines.index(GLANCE) + 1:]:
        if line.startswith("## "):
            break
        if line.startswith("| ") and not line.startswith("| run |"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) != GLANCE_HEADER.count("|") - 1:
                raise ValueError(f"{report}: a row of {GLANCE!r} does not have the columns of {GLANCE_HEADER!r}: {line}")
            rows[cells[0]] = line.strip()
    return rows


def run_name(path: Path, models: Path) -> str:
    """``variant/scenario/method`` of a file below ``<results>/models``."""
    return "/".join(path.relative_to(models).parts[:3])


def convergence_rows(results: Path) -> list[str]:
    lines = ["| run | grid point | stage | best epoch | epochs run | steps | stopped by |",
             "|---|---|---|---|---|---|---|"]
    models = results / "models"
    fits = []
    for path in sorted(models.glob("*/*/polarbear*/grid/*/scores.json")):
        rec = json.loads(path.read_text())
        fits += [(path, stage, fit) for stage, fit in {**rec["vae_fit"], **rec["fit"]}.items()]
    fits += [(path, "babel", json.loads(path.read_text())["fit"])
             for path in sorted(models.glob("*/*/babel/grid/*/config.json"))]
    for path, stage, fit in fits:
        run = run_name(path, models)
        lines.append(f"| {run} | {path.parent.name} | {stage} | {fit['best_epoch']} | {fit['epochs_run']} | "
                     f"{fit['steps']} | {fit['stop_reason']} |")
    return lines


def selected_rows(results: Path) -> list[str]:
    lines = ["| run | latent pick | translation picks (atac_to_rna / rna_to_atac) | validation FOSCTTM; "
             "translation NLL (rna_to_atac + atac_to_rna) of each point |", "|---|---|---|---|"]
    for path in sorted((results / "models").glob("*/*/polarbear*/selected.json")):
        sel = json.loads(path.read_text())
        run = run_name(path, results / "models")
        pick = task_points(sel)
        allp = ", ".join(f"{p} {v.get('foscttm', float('nan')):.3f}; {v['total']:.1f}"
                         for p, v in sorted(sel["all"].items()))
        lines.append(f"| {run} | {pick['latent']} | {pick['atac_to_rna']} / {pick['rna_to_atac']} | {allp} |")
    return lines


def grid_test_foscttm_rows(results: Path, variant: str = "full") -> list[str]:
    """Test-cell latent FOSCTTM of EVERY grid point (Table 3's definition), next to its validation
    FOSCTTM: how well validation selects on each split."""
    lines = ["| scenario | method | grid point | validation FOSCTTM (RNA / ATAC query) | "
             "test FOSCTTM (RNA / ATAC query) | latent pick |", "|---|---|---|---|---|---|"]
    proc = results / "processed" / variant
    for sel_path in sorted((results / "models" / variant).glob("*/polarbear*/selected.json")):
        scenario, method = sel_path.parts[-3], sel_path.parts[-2]
        sel = json.loads(sel_path.read_text())
        pick = task_points(sel)["latent"]
        data = read_coassay(proc / "coassay_rna.h5ad", proc / "coassay_atac.h5ad", scenario)
        t = data.test
        for point, v in sorted(sel["all"].items()):
            lat = load_grid_point(sel_path.parent / "grid" / point, data).align(
                data.rna.X[t], batch_onehot(data.rna.obs["batch"])[t], data.atac.X[t],
                batch_onehot(data.atac.obs["batch"])[t])
            rq = foscttm(lat["rna_query"], lat["atac_reference"]).mean()
            aq = foscttm(lat["atac_query"], lat["rna_reference"]).mean()
            val = (f"{v['foscttm_rna_query']:.3f} / {v['foscttm_atac_query']:.3f}" if "foscttm" in v else "")
            lines.append(f"| {scenario} | {method} | {point} | {val} | {rq:.3f} / {aq:.3f} | "
                         f"{'*' if point == pick else ''} |")
    return lines


UNSEEN_NOTE = """\
## What limits the unseen-cell-type split

On the unseen split the validation cells are a cell type of their own (the second-largest
Leiden cluster) and the test cells another (the largest). Early stopping on these validation cells
measures how well a model generalises to a new cell type, and that is worse after a few epochs of
fitting the training types: Polarbear co-assay's RNA VAE's validation reconstruction loss is
lowest after a few epochs (Polarbear's, which sees the type among its single-assay cells, keeps
improving for ~100 epochs: the last paragraph) and the translators' validation loss after a few
hundred steps, so the restored models are early ones. `min_steps` keeps the translators from being restored at their initial weights (the
bug issue 11 found: 9 optimiser steps).

The largest remaining effect was the RNA encoder's input. With the authors' raw counts, the
demo-seed-7 unseen split reached FOSCTTM 0.185 / 0.116 (RNA / ATAC query), above the authors'
0.139 for the RNA query; log1p(counts) gave 0.096 / 0.105 there and 0.101 / 0.098 on demo seed
11 (raw counts: 0.125 / 0.121), with the random split unchanged or better. Raw counts let a few
highly expressed genes dominate the first layer, and those genes differ most between cell types,
which hurts cells of a type the encoder never saw during translator training. The default is now
log1p of the counts scaled to the median library size of the VAE's training cells
(`polarbear.vae.rna_input: log1p_norm`, a named departure): the decoder is given each cell's
library size, so the encoder need not see it. `benchmarks/rna_input.md` compares it with log1p
on seeds 7 and 13. Other by-hand runs on seed 7 (FOSCTTM RNA / ATAC query, log1p input): RNA KL
warm-up over 40 epochs 0.143 / 0.070, translators at lr 1e-3 with patience 45 0.167 / 0.123, ATAC
VAE at the authors' lr 1e-4 0.221 / 0.274.

Which grid point's latent is used matters as much (the numbers of this paragraph and the next are
from runs with the log1p RNA input). The table "Latent FOSCTTM of every grid point"
above lists both points of every run. Until the selection went per task, one point (the lowest
sum of the two validation translation NLLs) served every task: on demo seed 3 that was beta 0 for
the unseen split (NLL 1124.0 against 1166.1), with test FOSCTTM 0.167 / 0.111, worse than
polarbear_coassay (0.140 / 0.205 then) and above the authors' 0.139. The translation NLL of the
validation cell type says little about how well the latent spaces line up. The latent is now
picked by the validation FOSCTTM, the alignment task's own score (as for BABEL): beta 1 there,
0.094 / 0.073 on the test cells. In demo seeds 7, 11, 3, 5 and 13 it picked, in all ten unseen-split
runs (polarbear and polarbear_coassay), the point with the lower mean test FOSCTTM; on the random
split it does so in six runs and the two points are within 0.001 of each other in the other four.
One point for every task would have picked beta 0 on seeds 3, 5 and 13 (test RNA-query FOSCTTM
0.167, 0.206 and 0.240); the per-task pick gives 0.094, 0.085 and 0.172. (All with PyTorch's
initial weights. With the authors' initial weights, in the runs above, the two points are closer
and the validation FOSCTTM picks the one with the lower mean test FOSCTTM in 4 of the 10
unseen-split runs and 7 of the 10 random-split runs: on seed 7 it picked beta 1 for `polarbear`'s
unseen split, 0.102 / 0.103 on the test cells, where beta 0 gives 0.073 / 0.085.)

**Initial weights (2026-12-02).** The authors' layers are `tf.layers.Dense` without initialiser
arguments: Glorot-uniform weights and zero biases. Ours started from PyTorch's `nn.Linear` defaults
(Kaiming-uniform weights with a = sqrt(5), random biases) until 2026-12-02; the default is now the
authors' (`polarbear.vae.init` / `translator.init: glorot`, each chromosome block with the fans of
the authors' per-chromosome layer); `init: torch` keeps the old one. All runs above use the
authors' initial weights. Unseen-split latent FOSCTTM (RNA / ATAC query), PyTorch's -> the
authors' initial weights, same code otherwise: demo seed 7 0.079 / 0.107 -> 0.102 / 0.103, seed 13
0.144 / 0.099 -> 0.115 / 0.135, seed 3 0.100 / 0.068 -> 0.079 / 0.081, seed 17 0.071 / 0.059 ->
0.100 / 0.114. Polarbear co-assay gains more from them: seed 17's unseen split 0.136 / 0.131 ->
0.093 / 0.102, so that there it passes Polarbear with the authors' initial weights and not with
PyTorch's (seed 7, random: 0.021 / 0.033 -> 0.013 / 0.013). Seed 13's RNA query, which missed
the authors' 0.139 with PyTorch's initial weights, now reaches it, and every run in the
table "Every run at a glance" reaches every cell of the bar. The random split moved by at most
0.02 on every column (seed 7: gene r 0.459 -> 0.458, AUROC 0.863 -> 0.864, AUPRnorm 0.267 -> 0.266).

**Thirteen demo seeds (2026-12-02).** Six more seeds (23, 29, 31, 37, 41, 43; e92835a, the same
results as 83b07de: its seed-7 run `base7` repeats `g7`'s row) reach every cell of the bar too, so
all 13 seeds in the table "Every run at a glance" do. The closest cells: seed 43's unseen RNA
query 0.137 (bar 0.139) and seed 13's random gene r 0.4353 (bar 0.435); over the 13 seeds random
gene r is 0.435-0.481 and the unseen RNA query 0.077-0.137.

**Polarbear against Polarbear co-assay.** Polarbear is better on gene r, DE-peak AUROC and AUPRnorm
of both splits in every run (13 seeds). On the mean latent FOSCTTM of both queries it is better in
22 of the 26 split x seed pairs. The new exceptions: seed 31's random split (0.0109 against
0.0106, at the floor as below) and seed 43's unseen split (0.120 against 0.102). The earlier
ones: seed 17's unseen split, where Polarbear co-assay reached
0.093 / 0.102 against Polarbear's 0.100 / 0.114 (Polarbear's validation FOSCTTM picked beta 1;
beta 0 gives 0.070 / 0.131 on the test cells), and seed 7's random split. The random split's latent FOSCTTM
is at its floor for both (0.006-0.016, i.e. about 1-4 of the ~235 test cells ranked closer than
the true partner), and there one column can go to Polarbear co-assay: on seed 7 its RNA query
0.013 against Polarbear's 0.016 (Polarbear better on 77 test cells, worse on 95; one-sided
rank-sum p 0.95 in `results/eval/table3.md`), so that the mean of both queries is 0.0133 against
0.0148; on seed 5 its ATAC query 0.0102 against 0.0104. With PyTorch's initial weights the same
happened on seed 3 (mean 0.0097 against 0.0099). On the unseen split the run-to-run noise
(+-0.02, below) is larger than the gap between the two on seed 17.

**The authors' translator dispersion and validation loss (2026-12-03).** The two paragraphs
above describe the `g` and `base7` runs (older code). Two more differences from the authors'
`bin/train_model.py` are now defaults, each kept as an option:
(1) the ATAC -> RNA translator has a ZINB dispersion of its own, one value per gene and ATAC batch,
trained with it (`translator_yx_px_r_genebatch`, lines 289-290; `translator.dispersion:
translator`); ours used the frozen RNA VAE's (`vae`). On its own (the `d` runs, code 2bd72b5) it
moved little: unseen ATAC query 0.103 -> 0.109 (seed 7), 0.135 -> 0.128 (13), 0.103 -> 0.106 (43),
0.114 -> 0.109 (17); seed 13's random gene r went 0.4353 -> 0.4350, a hair under the authors'
0.435. (2) Early stopping's validation loss is computed as in the authors' code, on the training
graph with dropout on and z sampled (lines 388-397, 415-424; `vae.validation` /
`translator.validation: train`; the draws are seeded, so a run repeats exactly); ours was taken in
eval mode (`eval`). Both together (the `v` runs and the main run, code 0390532) against the
older code (`g` rows), Polarbear's test latent FOSCTTM (RNA / ATAC query) on the unseen split:
seed 7 0.102 / 0.103 -> 0.093 / 0.090, seed 13 0.115 / 0.135 -> 0.107 / 0.140, seed 43 0.137 /
0.103 -> 0.075 / 0.077, seed 17 0.100 / 0.114 -> 0.062 / 0.107, seed 31 0.103 / 0.089 -> 0.120 /
0.098, seed 3 0.079 / 0.081 -> 0.065 / 0.080 (means over the six seeds 0.106 / 0.104 -> 0.087 /
0.099); random split gene r, AUROC and AUPRnorm within 0.005 on every seed (seed 13's gene r
0.4357), random-split FOSCTTM 0.006-0.010 / 0.007-0.013. Every cell of the bar is reached on all
six seeds. Polarbear beats Polarbear co-assay on the mean latent FOSCTTM in 11 of the 12 split x
seed pairs, among them the earlier exceptions (seed 7 random 0.0117 against 0.0145, seed 17
unseen 0.085 against 0.103, seed 43 unseen 0.076 against 0.105, seed 31 random 0.0099 against
0.0119); the one exception is seed 31's unseen split, 0.109 against 0.108, within the noise.
The noisy validation loss changes which epochs are restored (seed 7, random split, Polarbear's
ATAC VAE: best epoch 18 instead of 25) but not the amount of training: the seed-7 runs' VAEs took
110,620 optimiser steps in all against 110,959 with `validation: eval`. The whole demo took 10 min
20 s with the new defaults and 10 min 29 s with the code of 2026-12-02 on the same day (that code
reproduced its earlier Table 3 rows exactly); the machine was about 1.5x faster than the day before.

**Why Polarbear co-assay's unseen-split VAEs are restored at `min_steps`.** Their training cells
never include the validation cell type, and its reconstruction loss is lowest in the first epochs
and rises from then on (base7, latent 25 / beta 0: ATAC 631.7 at epoch 0, 830.6 at epoch 87; RNA
617.3 at epoch 9, 693.0 at epoch 87). So the first epoch allowed by `min_steps` (3,000 steps,
epoch 83 at ~41 steps per epoch) is the restored one: `min_steps` sets their training length. On
the random split their validation loss bottoms out at epoch 48-51 (~2,200 steps) and the restored
epoch is again the first allowed one (68). Polarbear's VAEs see the unseen type in the
single-assay cells; their validation loss improves for 19-32 epochs (7,600-12,600 steps), far past
`min_steps`.

**What still limits the unseen split is an offset, not lost structure.**
`benchmarks/diag_unseen_offset.py` on seed 13 (selected point, latent 25 / beta 0): the translated
RNA query of the test cells sits off their ATAC latent as a group (distance of the set means 12.6,
against 12.4 for the norm of the reference's per-dimension SD), while centring the query and the
reference separately (with the test cells' own means, so a diagnostic, not a method) gives 0.071 /
0.073. A linear translator fitted on the other cell types places a new type's centroid wrongly
when that type's ATAC identity is not a linear function of its RNA identity (the simulator gives
every type its own randomly drawn peak program). A least-squares map between the latent means of
the training cells, instead of the translation NLL through the frozen decoder (the paper's
objective), lines the unseen type up better: test RNA-query FOSCTTM 0.075 against the stored
translator's 0.102 on seed 7 (latent 25 / beta 1), 0.100 against 0.115 on seed 13, 0.070 against
0.100 on seed 3 with PyTorch's initial weights (by hand, `/tmp` scripts, not part of the
workflow). That would be a departure from the paper's method and is not an option here.

With PyTorch's initial weights, two earlier explanations were ruled out on seed 13: RNA library
size leaking into the latent (variance explained below 1%; translators given the standardised log
library size reached 0.164 / 0.107 against 0.167 / 0.086 without), and the latent size (at beta 1,
latent 10 gave 0.131 / 0.097 and latent 50 0.149 / 0.118, but latent 10 gave 0.215 / 0.328 on seed
7). Training is not bit-reproducible across machines (the same seed-13 configuration gave 0.148
on one machine and 0.167 on another; log1p input 0.172 and 0.230), so a single run's unseen
FOSCTTM carries about +-0.02 of noise.

**The authors' remaining training details (2026-12-03, 18f83f5 and bf9630f).** Five more
differences from `bin/train_model.py` / `bin/run_polarbear.py`: the translators' Adam eps
(`tf.train.AdamOptimizer`'s 1e-8; ours was Keras' 1e-7), the LayerNorm variance epsilon
(`tf.contrib.layers.layer_norm`'s 1e-12; torch's 1e-5), the ATAC log-variance clip (only above, at
15; ours also below, at -15), the RNA dispersion's start (Glorot-uniform, the authors' dense layer
of the batch one-hot; ours 0) and the order of the training cells (the authors shuffle their
matrices once and walk them in the same order every epoch). The first four are defaults now. The
fifth is the option `shuffle: once`; the default stays `epoch` (a new seeded order every epoch), a
named departure, because of the `f` and `e` rows above: with one order (`f`, 12 seeds) every cell
of the bar is reached on every seed, but Polarbear beats Polarbear co-assay on the unseen split's
mean latent FOSCTTM in only 7 of 12 seeds (not on 3, 11, 13, 31, 41); reshuffled every epoch (`e`,
seeds 5, 11, 13, 21, 31) it does so in 5 of 5, as in 5 of 6 `v` runs (0390532, also reshuffled).
Polarbear's own unseen FOSCTTM hardly moves (mean over seeds 5, 11, 13, 21, 31: RNA query 0.098
once, 0.104 every epoch; ATAC query 0.119 and 0.107); what moves is Polarbear co-assay's, which the
demo's noise dominates (seed 31: 0.089 once, 0.110 every epoch). The random split's latent
FOSCTTM goes to Polarbear in all 17 of these runs. One cell was missed: `e13`'s unseen RNA query,
0.140 against the authors' 0.139 (`f13` 0.132, `v13` 0.107).

**The dispersion layers' bias, the authors' epoch counts and selection by each task's validation
statistic (2026-12-03, 74d0b99, dbf51b9, 815d8a0).** (1) The ZINB dispersion of the RNA VAE and of
the ATAC -> RNA translator is, as the authors' `tf.layers.Dense` of the batch one-hot, W b + c with
a per-gene bias c (`dispersion_bias: true`; ours had W only). (2) The paper-scale epoch limits and
patience count epochs as the authors' loop does (499 / 99 epochs, 46 without improvement; no demo
change). (3) Each translation task's grid point is the one with the best validation statistic the
authors' `run_polarbear.py` reports for a model (`selection: task_metric`: ATAC -> RNA gene-wise
correlation, RNA -> ATAC peak AUROC; the latent as before by FOSCTTM); ours took the validation NLL
of the translated profile. `h` rows have (1) and (2), `i` rows all three; the `i` runs' trained
models are bitwise those of the `h` runs (seed 7: all 32 weight files equal), so `h` against `i` is
the selection alone. The two grid points' validation NLLs of ATAC -> RNA differ by 0.5 or less, and
the NLL picked beta 0 on seeds 13 and 5 although beta 1 has the higher test gene r on every seed
(seed 13: 0.4356 against 0.4324, seed 5: 0.4568 against 0.4538); the validation correlation picked
beta 1 in all 10 runs of seeds 7, 13, 5, 11 and 31 (`python3 benchmarks/diag_selection.py
<results> ...`). So seed 13's random gene r, 0.432 with NLL selection (`h13`, under the authors'
0.435), is 0.436. On the unseen split the new RNA -> ATAC pick raised seed 7's DE-peak AUROC /
AUPRnorm from 0.684 / 0.118 to 0.690 / 0.137. The bias (1), `h` against `e` on seeds 7, 13, 5, 11,
31: unseen latent FOSCTTM RNA / ATAC query means 0.108 / 0.114 -> 0.098 / 0.108 (seed 13's RNA
query 0.140 -> 0.119, seed 31 0.106 / 0.109 -> 0.071 / 0.082, seed 11 0.103 / 0.118 -> 0.109 /
0.114), random split within 0.004 on gene r, AUROC and AUPRnorm. With all three (`i`, seeds 7, 13, 5, 11, 31, 21, 3, 17, 23):
every cell of the bar is reached on all nine seeds (random gene r 0.436-0.477, unseen FOSCTTM RNA query 0.066-0.119,
ATAC query 0.064-0.135), and Polarbear beats Polarbear co-assay on gene r, DE-peak AUROC and AUPRnorm of
both splits and on the mean latent FOSCTTM of both splits on every seed (single queries go to Polarbear co-assay on the unseen split of seeds 11, 3 and 17, where the
means still favour Polarbear: 0.111 / 0.113, 0.081 / 0.091, 0.097 / 0.101, and on the random
split's ATAC query of seeds 31 and 23, at the FOSCTTM floor). The demo run of the clean-clone CI (51a85c5, seed 7) repeats `i7`'s rows.

**The authors' validation average (2026-12-03, dbb8a04, `k` rows).** The validation losses of
both Polarbear stages are now the mean of the per-batch means over validation batches of 16
(the authors' `np.nanmean` over their batches) instead of the mean over all cells in larger
batches. It changes only the weight of the last, smaller batch and the shapes in which dropout
masks and z are drawn during validation, and so every training trajectory after the first
validation. Seeds 7, 13, 5 and 11: random split gene r 0.458 / 0.436 / 0.455 / 0.444 (`i`: 0.455 /
0.436 / 0.457 / 0.444), unseen FOSCTTM RNA / ATAC query 0.079 / 0.077, 0.165 / 0.143, 0.112 / 0.105,
0.085 / 0.119 (`i`: 0.086 / 0.096, 0.119 / 0.135, 0.103 / 0.111, 0.109 / 0.114). Seed 13's unseen RNA
query misses the bar (0.139); seeds 13 and 5 give that single query to Polarbear co-assay (0.157,
0.110) and seed 11 the ATAC query (0.118), while the mean of both queries still favours Polarbear
(0.154 / 0.154, 0.109 / 0.120, 0.102 / 0.117). Seed 13's unseen RNA query was
the lucky draw in `i13`, not the default: the test RNA-query FOSCTTM of the other grid point
(latent 25, beta 0) was 0.187 in `i13` and 0.185 in `k13`, and Polarbear co-assay's pick 0.160
and 0.157 (validation FOSCTTM of all four 0.097-0.106). On this split, one seed's single query
is within the run-to-run noise of the bar.

**More seeds with the authors' validation average (2026-12-03 evening, e49f88a, `k` rows of demo seeds
31, 21, 3, 17, 23; the same numerics as dbb8a04).** Over the nine seeds that also have `i` rows, Polarbear
reaches every cell of the bar on eight (seed 13's unseen RNA query 0.165 is the miss) and beats Polarbear
co-assay on gene r, DE-peak AUROC and AUPRnorm of both splits on all nine, and on the mean of both
latent FOSCTTM queries of the random split on all nine and of the unseen split on eight. Seed 17's
unseen split goes to Polarbear co-assay, 0.123 against 0.102: the latent pick was beta 0 by validation
FOSCTTM 0.110 against 0.113 for beta 1, and on the test cells beta 0 gave 0.078 / 0.169 (RNA / ATAC
query) where beta 1 gave 0.087 / 0.114. Seeds 13 and 31 are near ties there (0.1540 / 0.1541, 0.1066 /
0.1071; seed 31's pick was also beta 0 by 0.0899 against 0.0903, 0.127 / 0.086 on the test cells against
beta 1's 0.083 / 0.082). Paired with the `i` rows (the mean over cells), the unseen split's mean latent
FOSCTTM is 0.008 higher with the authors' average (per seed -0.013 to +0.030, sd 0.016; paired t 1.52,
Wilcoxon signed-rank p 0.25 over nine seeds), the random split's the same (+0.0002). The two averages
estimate the same expected loss; only the last batch's weight and the shapes of the validation draws
differ, so this is read as noise, not an effect, and the authors' average stays the default. On this
split, with two grid points whose validation FOSCTTM are within 0.003 of each other on three of the
nine seeds, the latent pick is a coin toss between test outcomes up to 0.05 apart. Training seed 1 on demo seed
13 (`k13s1`, `seeds: [1]`, the same data and splits) reaches every cell of the bar: unseen FOSCTTM
0.109 / 0.102 against training seed 0's 0.165 / 0.143, and it beats Polarbear co-assay (0.139 /
0.140) on every column; seed 13's miss is one draw of the training noise.

**The demo's RNA VAE at the authors' patience (2026-12-03 late evening, c184fdf, `m` rows).** The
unseen split's misses in the `k` rows came from Polarbear's RNA VAE stopping too early. It sees the
validation cell type among its single-assay cells, and its validation reconstruction loss keeps
falling slowly for ~100 epochs, with new bests up to ~20 epochs apart: seed 13, beta 0, 601 at
epoch 13 and 551 at epoch 102; seed 17, beta 0, 546 at epoch 38 and 510 at epoch 181. The demo's
patience 10 (for both VAEs) ended it at epoch 24 on seed 13 (best epoch 13, both grid points). The
demo now keeps the authors' patience 46 for the RNA VAE (`vae.rna: {patience}` overrides the
shared value) and 10 for the ATAC VAE, whose validation loss is flat or rising 10 epochs after
its best. Unseen split, Polarbear's test latent FOSCTTM (RNA / ATAC query), `k` -> `m`: seed 13
0.165 / 0.143 -> 0.123 / 0.143 (the bar's 0.139 now reached), seed 17 0.078 / 0.169 -> 0.087 /
0.114 (the latent pick moved from beta 0 to beta 1), seed 31 0.127 / 0.086 -> 0.099 / 0.116. The
mean of both queries against Polarbear co-assay: seed 13 0.133 against 0.154 (0.154 before), seed
17 0.101 against 0.102 (0.123 before, a loss), seed 31 0.1075 against 0.1071 (0.1066 before, a
win): the two near ties changed sides. The random split is unchanged on seeds 13 and 31 (the same
epochs are restored) and moved by at most 0.0011 on seed 17; Polarbear co-assay's results are the
same on all three (its VAEs restore the first epoch `min_steps` allows, as before). Unseen-split
runs of seeds 5, 7, 11 and 21 with only the RNA VAE's patience changed (by hand) restored the same
RNA VAE epochs, so their `k` rows stand. Every cell of the bar is reached on all three `m` seeds;
Polarbear beats Polarbear co-assay on gene r, DE-peak AUROC and AUPRnorm of both splits on all
three and on the mean latent FOSCTTM on five of the six split x seed pairs. The price is training:
the RNA VAEs now run about twice the steps (Polarbear's runs of seed 13: 122,458 -> 216,690
optimiser steps in all; seed 17 168,660 -> 254,509; seed 31 134,192 -> 201,910).
"""


def glance_block(glance: dict[str, str]) -> list[str]:
    """The "Every run at a glance" section: what the run names mean and one row per run."""
    return [GLANCE, "", "`polarbear`'s cells of issue 11's bar (authors' code, demo seed 7: "
              + ", ".join(f"{s} {c} {AUTHORS[(s, c)]:.3f}" for s, c in BAR_CELLS)
              + "). The run's name gives its demo seed (`g13`: `demo.simulate.seed: 13`); `code` is the git "
              "revision it was run with. Rows of runs not given to this script are kept from the previous "
              "report (their directories are listed below only when given). `m` rows use the current defaults "
              "(c184fdf: the demo's RNA VAE at the authors' patience 46, the ATAC VAE at 10). `k` rows the "
              "defaults before (dbb8a04, and e49f88a with the same numerics: the validation losses of both Polarbear stages averaged as the authors', the mean of the "
              "per-batch means over batches of 16, `val_average: batches`; added with `--glance-only`; `k13s1`: "
              "demo seed 13 with training seed 1, `seeds: [1]`). `j` rows: "
              "demo seeds run with 4503fcc (the `i` code with the chromosome-split layers' cached block views and "
              "the umap numba cache: bitwise the same training, so they are `i` rows of other seeds). `i` rows use "
              "the defaults "
              "of 815d8a0 (the same Polarbear numbers as 51a85c5: the validation loss a mean over cells; grid points per task by the authors' "
              "validation statistics; their trained models are bitwise those of the `h` run of the same "
              "seed, checked on seed 7, so an `i` row differs from its `h` row only by the selection); `h` rows the defaults of dbf51b9 (the dispersion layers' bias and the epoch counts "
              "as the authors', selection by validation NLL); `e` rows the defaults before them "
              "(bf9630f, and 316a406 with the same numerics); `f` rows the same code with `shuffle: once` (the authors' one order of the training "
              "cells, 18f83f5); `v` rows (and the main run) the defaults of 0390532 (before the translators' Adam "
              "eps 1e-8, LayerNorm eps 1e-12, the ATAC log-variance clipped only above and the RNA dispersion's "
              "Glorot start); `d` rows the translator's own dispersion with the deterministic "
              "validation loss (`validation: eval`); `g` and `base7` rows older code (see the notes below).", "",
              GLANCE_HEADER, "|---|" + "---|" * (len(BAR_CELLS) + 3)] + list(glance.values()) + [""]


def update_glance(report: Path, dirs: list[Path], code: str) -> int:
    """Replace the glance section of ``report`` by its rows plus those of ``dirs`` (named by their
    directory); every other section stays as it was."""
    if not report.exists():
        raise SystemExit(f"{report} does not exist: --glance-only adds rows to an existing report")
    text = report.read_text()
    lines = text.splitlines()
    if GLANCE not in lines:
        raise SystemExit(f"{report} has no {GLANCE!r} section")
    rows = {}
    for d in dirs:
        rows.update(table3_rows(d, d.name))
    glance = earlier_glance_rows(report)
    new = seed_summary(rows, [(d.name, d.name) for d in dirs], code)
    glance = {**{k: v for k, v in glance.items() if k not in new}, **new}
    start = lines.index(GLANCE)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    lines[start:end] = glance_block(glance)
    ending = "\n" if text.endswith("\n") else ""
    report.write_text("\n".join(lines) + ending)
    print(f"updated the glance table of {report} with {', '.join(new)}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path, nargs="+")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("fidelity.md"))
    ap.add_argument("--command", default="snakemake --cores 2", help="the command that produced the results")
    ap.add_argument("--code", default=None, help="git revision the results were made with (default: HEAD)")
    ap.add_argument("--glance-only", action="store_true",
                    help="only add the given runs' rows to the glance table of the existing report, keeping the "
                         "rest of it (e.g. when the main run's directory is gone)")
    args = ap.parse_args(argv)
    args.code = args.code or subprocess.run(["git", "-C", Path(__file__).resolve().parents[1], "rev-parse", "--short",
                                             "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    if args.glance_only:
        return update_glance(args.out, args.results, args.code)
    main_dir, more = args.results[0], args.results[1:]
    rows = table3_rows(main_dir)
    for d in more:
        rows.update(table3_rows(d, d.name))
    shown = " ".join(str(d) for d in args.results)
    lines = ["# Fidelity: our Polarbear against the authors' code on the demo", "",
             f"Generated by `python3 benchmarks/fidelity.py {shown}` from demo runs made with "
             f"`{args.command}` (config.yaml defaults: demo seed 7, one training seed"
             + ("; the other directories changed only `demo.seed` and `results`" if more else "")
             + ("; a directory without `eval/table3.tsv` ran only the Polarbear runs' targets "
                "`eval/full/{random,unseen}/{polarbear,polarbear_coassay}/{genes,peaks,cells,markers}.tsv`"
                if any(not (d / "eval" / "table3.tsv").exists() for d in args.results) else "")
             + "). Table 3 rows of definition `v1` (`results/eval/table3.tsv`; the definitions the authors' code "
             "was compared under): means over DE genes / DE peaks / test cells. The authors' and the 'before' numbers were measured on demo seed 7.", "",
             "## Table 3 rows", ""]
    for split in ("random", "unseen"):
        lines += comparison_table(rows, split) + [""]
    glance = earlier_glance_rows(args.out)
    new = seed_summary(rows, [("", main_dir.name)] + [(d.name, d.name) for d in more], args.code)
    glance = {**{k: v for k, v in glance.items() if k not in new}, **new}
    lines += glance_block(glance)
    lines += ["## Against the authors' numbers (issue 11's bar)", ""] + verdict(rows)
    for d in more:
        lines += verdict(rows, d.name)
    lines += [""]
    for d in args.results:
        lines += [f"## Selected grid points ({d})", ""] + selected_rows(d) + [""]
        lines += [f"## Latent FOSCTTM of every grid point, validation and test cells ({d})", ""]
        lines += grid_test_foscttm_rows(d) + [""]
        lines += [f"## Convergence of every training stage ({d})", ""] + convergence_rows(d) + [""]
    lines += [UNSEEN_NOTE]
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
