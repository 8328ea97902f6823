"""Which raw files (config `downloads` keys) each source and input data set needs, by file format.

Sources (config ``source``): ``demo`` (simulated, :mod:`workflow_lib.simulate`), ``public`` (the
raw public data: SNARE-seq, Zeisel 2018, Li 2021 / Fang 2021 snATAC, GENCODE, the mm9 chain) and
``authors`` (the Polarbear authors' processed matrices, :mod:`workflow_lib.authors`).
"""

from __future__ import annotations

import copy

SOURCES = ("demo", "public", "authors")
ATAC_FORMATS = ("mtx_bed", "snap")
CHAIN_KEY = "mm9_to_mm10_chain"
# raw files of the public path besides the single-assay ATAC sets (and the chain, when a set is mm9)
PUBLIC_FILES = ("snare_rna_counts", "snare_rna_barcodes", "snare_rna_genes", "snare_atac_counts",
                "snare_atac_barcodes", "snare_atac_peaks", "snare_metadata", "zeisel_loom", "gencode_gtf")
# the authors' processed files: input name of rule processed_authors -> download key
AUTHORS_FILES = {
    **{f"{m}_{p}{suffix}": f"authors_{m}_{p}{suffix}" for m in ("rna", "atac") for p in ("snareseq", "single")
       for suffix in ("", "_barcodes", "_batches")},
    "rna_genes": "authors_rna_genes",
    "atac_peaks": "authors_atac_peaks",
    "metadata": "snare_metadata",
}
# present when the authors' source provides them: the babel scenario and the authors' DE sets
AUTHORS_BABEL = {"babel_train": "authors_babel_train", "babel_valid": "authors_babel_valid",
                 "babel_test": "authors_babel_test"}
AUTHORS_DE = {"de_peaks": "authors_atac_de_peaks", "de_genes": "authors_de_genes"}
# file names of demo-only mtx_bed sets that have no `downloads` entry (the simulator writes them)
DEMO_FILES = {"li_atac_counts": "li2021_snATAC.counts.mtx.gz",
              "li_atac_barcodes": "li2021_snATAC.barcodes.tsv.gz",
              "li_atac_peaks": "li2021_snATAC.peaks.bed.gz"}


def atac_set_files(name: str, spec: dict | None) -> list[str]:
    """Download keys of one single-assay ATAC set: its snap files (one per sample), or the
    mtx_bed triple ``<name>_atac_counts``, ``<name>_atac_barcodes``, ``<name>_atac_peaks``."""
    spec = spec or {}
    if spec.get("format", "mtx_bed") == "snap":
        return list(spec.get("files") or [])
    return [f"{name}_atac_counts", f"{name}_atac_barcodes", f"{name}_atac_peaks"]


def effective_atac_sets(config: dict) -> dict[str, dict]:
    """The single-assay ATAC sets as the workflow uses them: files that the sets in
    ``exclude_sets`` also list left out (so that a sample listed by two sets is read once); the
    ``exclude_sets`` key is resolved and dropped. (With ``source: demo`` the ``demo.single_atac_sets``
    overlay has already been merged in by :func:`workflow_lib.settings.source_config`.)"""
    sets = {name: copy.deepcopy(spec or {}) for name, spec in config["single_atac_sets"].items()}
    out = {}
    for name, s in sets.items():
        excl = s.pop("exclude_sets", None) or []
        unknown = [e for e in excl if e not in sets or e == name]
        if unknown:
            raise ValueError(f"config.yaml: single_atac_sets.{name}.exclude_sets names {unknown}, "
                             f"not another set of {list(sets)}")
        if s.get("format", "mtx_bed") == "snap" and excl:
            other = {k for e in excl for k in atac_set_files(e, sets[e])}
            s["files"] = [k for k in s.get("files") or [] if k not in other]
        out[name] = s
    return out


def download_file(config: dict, key: str, demo: bool = False) -> str:
    """File name (under results/raw/) of a raw input: its `downloads` entry, or for the demo a
    built-in name of a demo-only file (:data:`DEMO_FILES`)."""
    if key in config["downloads"]:
        return config["downloads"][key]["file"]
    if demo and key in DEMO_FILES:
        return DEMO_FILES[key]
    raise KeyError(f"config.yaml: no downloads entry {key!r}")


def check_atac_downloads(config: dict, demo: bool = False) -> None:
    """Raise ValueError naming every single-assay ATAC set whose files have no `downloads` entry
    (or demo-only name)."""
    problems = []
    have = set(config["downloads"]) | (set(DEMO_FILES) if demo else set())
    for name, spec in effective_atac_sets(config).items():
        fmt = (spec or {}).get("format", "mtx_bed")
        keys = atac_set_files(name, spec)
        if fmt == "snap" and not keys:
            problems.append(f"single_atac_sets.{name}: format snap needs a non-empty `files` list"
                            + (" (after exclude_sets)" if (config["single_atac_sets"][name] or {}).get("files") else ""))
        missing = [k for k in keys if k not in have]
        if missing:
            problems.append(f"single_atac_sets.{name} (format {fmt}) needs downloads entries {missing}")
        if fmt == "snap":
            bad = [k for k in keys if k in config["downloads"] and not config["downloads"][k]["file"].endswith(".snap")]
            if bad:
                problems.append(f"single_atac_sets.{name}: snap files must be named *.snap: {bad}")
    if problems:
        raise ValueError("config.yaml: " + "; ".join(problems))


def demo_files(config: dict) -> list[str]:
    """Raw-file keys the demo simulator writes: the public path's files, the chain and the files
    of every single-assay ATAC set (``config`` with the demo overlay merged in)."""
    keys = list(PUBLIC_FILES) + [CHAIN_KEY]
    for name, spec in effective_atac_sets(config).items():
        keys += atac_set_files(name, spec)
    return list(dict.fromkeys(keys))


def demo_file_names(config: dict) -> dict[str, str]:
    """Raw-file key -> file name under results/raw/ of every file the demo simulator writes
    (``config`` with the demo overlay merged in)."""
    return {key: download_file(config, key, demo=True) for key in demo_files(config)}


def check_scenarios(scenarios, source: str, config: dict) -> list[str]:
    """The split scenarios to run: config ``scenarios``, plus ``babel`` with source authors when
    the BABEL barcode files are configured. ``babel`` exists only there (ValueError otherwise)."""
    out = list(scenarios)
    has_babel = source == "authors" and bool(authors_optional(config)["babel"])
    if "babel" in out and not has_babel:
        raise ValueError("config.yaml: scenario 'babel' needs source: authors and the downloads entries "
                         f"{list(AUTHORS_BABEL.values())} (BABEL's train/valid/test barcodes)")
    if has_babel and "babel" not in out:
        out.append("babel")
    return out


def needed_downloads(config: dict, source: str) -> list[str]:
    """Download keys the workflow fetches for ``source`` (public or authors), in config order of
    first use; what rule check_sources probes. ``demo`` downloads nothing."""
    if source == "demo":
        return []
    if source == "authors":
        opt = authors_optional(config)
        keys = [*AUTHORS_FILES.values(), *opt["babel"], *opt["de"]]
    elif source == "public":
        sets = effective_atac_sets(config)
        keys = list(PUBLIC_FILES)
        if any(s.get("assembly") != "mm10" for s in sets.values()):
            keys.append(CHAIN_KEY)
        for name, spec in sets.items():
            keys += atac_set_files(name, spec)
    else:
        raise ValueError(f"unknown source {source!r} (one of {SOURCES})")
    keys = list(dict.fromkeys(keys))
    missing = [k for k in keys if k not in config["downloads"]]
    if missing:
        raise ValueError(f"config.yaml: source {source} needs downloads entries {missing}")
    return keys


def authors_optional(config: dict) -> dict[str, list[str]]:
    """Which optional parts the authors' source provides (their download keys are configured):
    ``{"babel": [...keys] or [], "de": [...keys] or []}``."""
    d = config["downloads"]
    return {"babel": list(AUTHORS_BABEL.values()) if all(k in d for k in AUTHORS_BABEL.values()) else [],
            "de": [k for k in AUTHORS_DE.values() if k in d]}
