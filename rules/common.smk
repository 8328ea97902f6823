# Shared helpers for all rule files (paths, grids, resources), included first by the Snakefile.
import itertools

from workflow_lib.babel_settings import babel_settings
from workflow_lib.seeds import SEED_TAG_REGEX, base_method, check_seeds, method_run_names, parse_run_name
from workflow_lib.settings import deep_merge, polarbear_settings
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
# single-assay ATAC sets with their demo overlays (source: demo) and exclude_sets resolved
ATAC_SETS = effective_atac_sets(config, DEMO)
SINGLE_ATAC_SETS = list(ATAC_SETS)
check_atac_downloads(config, DEMO)  # every set's files (by format) have a downloads entry
check_split_fractions(config)  # train/val/test fractions sum to 1
RES = config["resources"]


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
    if DEMO and dataset == config["demo"]["mm9_set"]:
        return "mm9"
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


def _fmt(x):
    return f"{x:g}"


def polarbear_grid():
    """Grid point names, e.g. latent10_beta0.5 (demo_grid for source=demo)."""
    g = PB_SETTINGS["grid"]
    return [f"latent{l}_beta{_fmt(b)}" for l, b in itertools.product(g["latent"], g["beta"])]


def babel_grid():
    """Grid point names, e.g. latent16_weight1.33 (demo_grid for source=demo)."""
    g = BABEL_SETTINGS["grid"]
    return [f"latent{l}_weight{_fmt(w)}" for l, w in itertools.product(g["latent"], g["weight"])]


def parse_point(name):
    """'latent10_beta0.5' -> {'latent': 10, 'beta': 0.5}."""
    out = {}
    for part in name.split("_"):
        key = part.rstrip("0123456789.e-+")
        val = part[len(key):]
        out[key] = int(val) if key == "latent" else float(val)
    return out


SPLIT_SETTINGS = deep_merge(config["splits"], config["splits"].get("demo") if DEMO else None)  # demo overlay
PB_SETTINGS = polarbear_settings(config["polarbear"], DEMO)  # demo: overlay polarbear.demo applied
# babel.architecture picks the model; its overlays (babel.demo, babel.compact[.demo]) applied
BABEL_SETTINGS = babel_settings(config["babel"], DEMO)


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
