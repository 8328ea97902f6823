# Shared helpers for all rule files (paths, grids, resources), included first by the Snakefile.
import os

from workflow_lib.babel_settings import babel_settings
from workflow_lib.grid import grid_points, parse_point, point_regex
from workflow_lib.seeds import SEED_TAG_REGEX, base_method, check_seeds, method_run_names, parse_run_name
from workflow_lib.settings import deep_merge, polarbear_settings
from workflow_lib.sources import AUTHORS_BABEL, AUTHORS_DE, AUTHORS_FILES, authors_optional, demo_file_names, demo_files
from workflow_lib.sources import (check_atac_downloads, check_scenarios, download_file, effective_atac_sets,
                                  needed_downloads)
from workflow_lib.splits import check_split_fractions

R = config["results"]
SOURCE = config["source"]
DEMO = SOURCE == "demo"
AUTHORS = SOURCE == "authors"  # the Polarbear authors' processed files (rule processed_authors)
VARIANTS = config["variants"]
# + babel (BABEL's split) with source: authors
SCENARIOS = check_scenarios(config["scenarios"], SOURCE, config)
METHODS = config["methods"]
SEEDS = check_seeds(config["seeds"])  # training seeds; the first keeps the bare run names
MODALITY_KINDS = ["coassay_rna", "coassay_atac", "single_rna", "single_atac"]
# single-assay ATAC sets with exclude_sets resolved
ATAC_SETS = effective_atac_sets(config)
SINGLE_ATAC_SETS = list(ATAC_SETS)
check_atac_downloads(config, DEMO)  # every set's files (by format) have a downloads entry
check_split_fractions(config)  # train/val/test fractions sum to 1
RES = config["resources"]


def rule_resources(kind, runtime_of=None):
    """mem_mb and runtime (minutes) of the config `resources:` entry `kind` (runtime of `runtime_of`).
    Threads come from the profile (`set-threads`; 1 when not set)."""
    return {"mem_mb": RES[kind]["mem_mb"], "runtime": RES[runtime_of or kind]["runtime"]}


def log_path(rule, name):
    """Log file of one job of `rule` ({R}/logs/<rule>/<name>.log; `name` may hold wildcards)."""
    return f"{R}/logs/{rule}/{name}.log"


def bench_path(rule, name):
    """Benchmark file of one job of `rule` ({R}/benchmarks/<rule>/<name>.tsv)."""
    return f"{R}/benchmarks/{rule}/{name}.tsv"


def raw(name):
    """Path of one raw input file (downloaded for source=public/authors, simulated for source=demo)."""
    return f"{R}/raw/{download_file(config, name, DEMO)}"


def atac_set(dataset):
    return ATAC_SETS[dataset]


def atac_format(dataset):
    """'mtx_bed' (MatrixMarket + barcodes + BED, download keys <set>_atac_counts/_barcodes/_peaks)
    or 'snap' (SnapATAC .snap files, download keys listed in the set's `files`)."""
    return atac_set(dataset).get("format", "mtx_bed")


SNAP_SETS = [d for d in SINGLE_ATAC_SETS if atac_format(d) == "snap"]


def atac_peaks_bed(dataset):
    """The BED of a set's own features (input of liftover): downloaded, or exported from snap."""
    if atac_format(dataset) == "snap":
        return f"{R}/interim/snap/{dataset}.bed"
    return raw(f"{dataset}_atac_peaks")


def atac_counts_inputs(dataset):
    """Named inputs holding a set's counts for rule single_atac."""
    if atac_format(dataset) == "snap":
        return {"h5ad": f"{R}/interim/snap/{dataset}.h5ad"}
    return {
        "counts": raw(f"{dataset}_atac_counts"),
        "barcodes": raw(f"{dataset}_atac_barcodes"),
    }


def atac_assembly(dataset):
    """Genome assembly of a single-assay ATAC set's peak coordinates."""
    return ATAC_SETS[dataset]["assembly"]


def processed(variant, kind):
    return f"{R}/processed/{variant}/{kind}.h5ad"


def method_runs():
    """(variant, scenario, run) triples the workflow trains and evaluates.

    Every method runs on the full feature set; the exp and var variants run the co-assay-only
    Polarbear model, as in the paper's Fig. 7. A run is named after its method for the first
    seed of `seeds`; the trained methods add one run per further seed, e.g. polarbear~s1
    (workflow_lib/seeds.py; run_method / run_seed map a run back).
    """
    runs = [("full", s, r) for s in SCENARIOS for m in METHODS for r in method_run_names(m, SEEDS)]
    runs += [(v, s, r) for v in VARIANTS if v != "full" for s in SCENARIOS
             for r in method_run_names("polarbear_coassay", SEEDS)]
    return runs


def run_method(run):
    """Method of a run name: 'polarbear~s1' -> 'polarbear'."""
    return base_method(run)


def run_seed(run):
    """Training seed of a run name: 'polarbear~s1' -> 1, 'polarbear' -> the first seed."""
    return parse_run_name(run, SEEDS)[1]


def run_constraint(methods):
    """Wildcard constraint matching the runs (every seed) of `methods`."""
    alternatives = "|".join(methods)
    return f"(?:{alternatives}){SEED_TAG_REGEX}"


def polarbear_grid():
    """Grid point names, e.g. latent10_beta0.5."""
    return grid_points(PB_SETTINGS["grid"])


def babel_grid():
    """Grid point names, e.g. latent16_weight1.33."""
    return grid_points(BABEL_SETTINGS["grid"])


SPLIT_SETTINGS = config["splits"]
# params of the rules that build the splits (splits; processed_authors)
SPLIT_PARAMS = dict(seed=SPLIT_SETTINGS["seed"], fracs=SPLIT_SETTINGS["random_fracs"],
                    resolution=SPLIT_SETTINGS["leiden_resolution"], unseen_rule=SPLIT_SETTINGS["unseen_rule"],
                    n_pcs=SPLIT_SETTINGS["n_pcs"], n_neighbors=SPLIT_SETTINGS["n_neighbors"])
PB_SETTINGS = polarbear_settings(config["polarbear"])
BABEL_SETTINGS = babel_settings(config["babel"])  # babel.architecture picks the model (and babel.compact)


def vae_fit_params():
    return PB_SETTINGS["vae"]


def translator_fit_params():
    return PB_SETTINGS["translator"]


def babel_fit_params():
    return BABEL_SETTINGS["fit"]


PREDICTION_NAMES = ["atac_to_rna", "rna_to_atac", "latent", "atac_to_rna_rest"]


def predictions(variant, scenario, method):
    """Prediction files of one run (test cells; atac_to_rna_rest = RNA of the non-test cells)."""
    d = f"{R}/predictions/{variant}/{scenario}/{method}"
    return [f"{d}/{name}.h5ad" for name in PREDICTION_NAMES]


def eval_tables(variant, scenario, method):
    d = f"{R}/eval/{variant}/{scenario}/{method}"
    return [f"{d}/genes.tsv", f"{d}/peaks.tsv", f"{d}/cells.tsv", f"{d}/markers.tsv"]


FIGURES = [f"{R}/figures/fig{i}.{ext}" for i in range(3, 8) for ext in ("pdf", "png")]


# --------------------------------------------------------------------------- figures (figures.smk)
FIG_REFERENCE = "polarbear"
FIG_COMPARATORS = ["babel", "polarbear_coassay"]
FIG_DPI = 200
REPORT_TABLES = [f"{R}/figures/table3.html", f"{R}/figures/table3.tsv"]


FIG_METHODS = [FIG_REFERENCE] + FIG_COMPARATORS
# Evaluation tables read by each figure (only runs that method_runs() yields; with several
# `seeds` also the runs of the further seeds, e.g. eval/full/random/polarbear~s1/, whose per-seed
# means give the figures' seed mean and 95% CI).
FIG_INPUTS = {
    3: [f"{R}/eval/{v}/{s}/{m}/{t}.tsv" for v, s, m in method_runs()
        if v == "full" and s == "random" and run_method(m) in FIG_METHODS for t in ("genes", "peaks")],
    4: [f"{R}/eval/{v}/{s}/{m}/markers.tsv" for v, s, m in method_runs()
        if v == "full" and s == "random" and run_method(m) in FIG_METHODS],
    5: [f"{R}/eval/{v}/{s}/{m}/{t}.tsv" for v, s, m in method_runs()
        if v == "full" and s == "unseen" for t in ("genes", "peaks", "de")
        if t == "de" or run_method(m) in FIG_METHODS],
    6: [f"{R}/eval/{v}/{s}/{m}/cells.tsv" for v, s, m in method_runs() if v == "full"],
    7: [f"{R}/eval/{v}/{s}/{m}/cells.tsv" for v, s, m in method_runs()
        if run_method(m) == "polarbear_coassay"],
}


def figure_inputs(wildcards):
    """Evaluation tables of one figure (FIG_INPUTS)."""
    return FIG_INPUTS[int(wildcards.fig)]


def figure_report(ext):
    """The figure file of rule `figure`, marked for the report (one caption file for all five)."""
    return report(
        f"{R}/figures/fig{{fig}}.{ext}",
        caption="../report/figure.rst",
        category="Figures",
        subcategory="Fig. {fig}",
        labels={"figure": "Fig. {fig}", "format": ext.upper()},
    )


# --------------------------------------------------------------------------- polarbear.smk, export.smk
# {method} of the Polarbear rules is a run name (polarbear, polarbear~s1, ...); the scripts get
# the method and the seed as params. The grid-point wildcard is `pbpoint` (latent10_beta0.5).
PB_DIR = f"{R}/models/{{variant}}/{{scenario}}/{{method}}"
PB_METHODS = ["polarbear", "polarbear_coassay"]
PB_RUNS = [r for r in method_runs() if run_method(r[2]) in PB_METHODS]
PB_RUN_REGEX = run_constraint(PB_METHODS)
PB_MODULE_FILES = ["vae_rna.pt", "vae_atac.pt", "translator_rna_to_atac.pt", "translator_atac_to_rna.pt"]


def pb_run_dir(wildcards):
    """{R}/models/{variant}/{scenario}/{method} of a Polarbear run."""
    return f"{R}/models/{wildcards.variant}/{wildcards.scenario}/{wildcards.method}"


def pb_method(wildcards):
    return run_method(wildcards.method)


def pb_seed(wildcards):
    return run_seed(wildcards.method)


# params of the rules that build a PolarbearModel from a trained run (predict_polarbear, export_model)
PB_MODEL_PARAMS = dict(model_dir=pb_run_dir, method=pb_method, ridge_alphas=config["polarbear"]["ridge_alphas"])


def pretrain_vae_inputs(wildcards):
    """polarbear: co-assay + single-assay cells of the modality; polarbear_coassay: co-assay only."""
    out = {"coassay": processed(wildcards.variant, f"coassay_{wildcards.modality}")}
    if pb_method(wildcards) == "polarbear":
        out["single"] = processed(wildcards.variant, f"single_{wildcards.modality}")
    return out


def pb_grid_files(files):
    """The given files of every grid point of a Polarbear run ({variant}/{scenario}/{method} open)."""
    return expand(f"{PB_DIR}/grid/{{pbpoint}}/{{f}}", pbpoint=polarbear_grid(), f=files, allow_missing=True)


def export_single_inputs(wildcards):
    """Single-assay files (training-data summary of the model card): semi-supervised runs only."""
    if pb_method(wildcards) != "polarbear":
        return []
    return [processed(wildcards.variant, "single_rna"), processed(wildcards.variant, "single_atac")]


# --------------------------------------------------------------------------- babel.smk
# {seedtag} is empty for the first seed of `seeds` and ~s<seed> for the others (run babel~s1)
BABEL_DIR = f"{R}/models/{{variant}}/{{scenario}}/babel{{seedtag}}"
BASELINES = ["knn", "ridge"]
# knn/ridge settings + the RidgeCV alphas of the ATAC depth regressor (paper Section 2.4)
BASELINE_PARAMS = {
    **config["baselines"],
    "seed": SEEDS[0],  # deterministic methods: one run, with the first seed
    "depth_alphas": config["polarbear"]["ridge_alphas"],
}


def babel_point_params(wildcards):
    return parse_point(wildcards.point)


def babel_seed(wildcards):
    return run_seed(f"babel{wildcards.seedtag}")


def babel_grid_dir(wildcards):
    return f"{R}/models/{wildcards.variant}/{wildcards.scenario}/babel{wildcards.seedtag}/grid"


def baseline_params(wildcards):
    return {**BASELINE_PARAMS, "method": wildcards.baseline}


# --------------------------------------------------------------------------- features.smk
FEAT = config["features"]


DOWNSAMPLE_FRAC = FEAT["single_atac_downsample_frac"]


def lift_peaks_inputs(wildcards):
    """A set's own peaks; peaks not in mm10 also need the (local) liftover chain."""
    out = {"bed": atac_peaks_bed(wildcards.dataset)}
    if atac_assembly(wildcards.dataset) != "mm10":
        out["chain"] = raw("mm9_to_mm10_chain")
    return out


def atac_set_param(key, default=None):
    """Input function: value `key` of the single-assay ATAC set {dataset} (or `default`)."""

    def param(wildcards):
        return atac_set(wildcards.dataset).get(key, default)

    return param


def snap_inputs(wildcards):
    """The .snap files (one per sample) of set {dataset}."""
    return [raw(n) for n in atac_set(wildcards.dataset)["files"]]


def single_atac_count_inputs(wildcards):
    return atac_counts_inputs(wildcards.dataset)


def single_atac_bed(wildcards):
    return atac_peaks_bed(wildcards.dataset)


# --------------------------------------------------------------------------- download.smk


def output_dir(wildcards, output):
    """Directory of a job's first output."""
    return os.path.dirname(output[0])


def download_entry(wildcards):
    """The `downloads` entry of raw file {file}."""
    return next(e for e in config["downloads"].values() if e["file"] == wildcards.file)


def download_sidecar(wildcards):
    return f"{R}/raw/checksums/{wildcards.file}.sha256"


# --------------------------------------------------------------------------- cells.smk
# source authors: rule processed_authors builds the full variant from the authors' files

if AUTHORS:
    _OPT = authors_optional(config)
    # input name -> download key: the required files, BABEL's split and the DE sets if configured
    AUTHORS_INPUTS = {**AUTHORS_FILES, **{n: k for n, k in AUTHORS_BABEL.items() if k in _OPT["babel"]},
                      **{n: k for n, k in AUTHORS_DE.items() if k in _OPT["de"]}}
    AUTHORS_DE_TABLES = {n: f"{R}/features/authors_{n}.tsv" for n, k in AUTHORS_DE.items() if k in _OPT["de"]}
else:
    AUTHORS_DE_TABLES = {}


# --------------------------------------------------------------------------- evaluate.smk
# (scenario, run) of the full variant; runs of further seeds (polarbear~s1, ...) feed the
# n_seeds / seed_mean / ci95_* columns
TABLE3_RUNS = [(s, m) for v, s, m in method_runs() if v == "full"]


def evaluate_run_inputs(wildcards):
    """Predictions of the run, the processed co-assay files and the variant's references (and,
    with source authors, their DE sets, which define is_de where present: column de_set)."""
    v = wildcards.variant
    return dict(
        zip(PREDICTION_NAMES, predictions(v, wildcards.scenario, wildcards.method)),
        rna=processed(v, "coassay_rna"),
        atac=processed(v, "coassay_atac"),
        size_factors=f"{R}/eval/{v}/reference/size_factors.tsv",
        genes_de=f"{R}/eval/{v}/reference/genes_de.tsv",
        peaks_de=f"{R}/eval/{v}/reference/peaks_de.tsv",
        **{f"authors_{n}": p for n, p in AUTHORS_DE_TABLES.items()},
    )
