"""Which raw files (config `downloads` keys) each input data set needs, by file format."""

from __future__ import annotations

ATAC_FORMATS = ("mtx_bed", "snap")


def atac_set_files(name: str, spec: dict | None) -> list[str]:
    """Download keys of one single-assay ATAC set: its snap files (one per sample), or the
    mtx_bed triple ``<name>_atac_counts``, ``<name>_atac_barcodes``, ``<name>_atac_peaks``."""
    spec = spec or {}
    if spec.get("format", "mtx_bed") == "snap":
        return list(spec.get("files") or [])
    return [f"{name}_atac_counts", f"{name}_atac_barcodes", f"{name}_atac_peaks"]


def check_atac_downloads(config: dict) -> None:
    """Raise ValueError naming every single-assay ATAC set whose files have no `downloads` entry."""
    problems = []
    for name, spec in config["single_atac_sets"].items():
        fmt = (spec or {}).get("format", "mtx_bed")
        keys = atac_set_files(name, spec)
        if fmt == "snap" and not keys:
            problems.append(f"single_atac_sets.{name}: format snap needs a non-empty `files` list")
        missing = [k for k in keys if k not in config["downloads"]]
        if missing:
            problems.append(f"single_atac_sets.{name} (format {fmt}) needs downloads entries {missing}")
        if fmt == "snap":
            bad = [k for k in keys if k in config["downloads"] and not config["downloads"][k]["file"].endswith(".snap")]
            if bad:
                problems.append(f"single_atac_sets.{name}: snap files must be named *.snap: {bad}")
    if problems:
        raise ValueError("config.yaml: " + "; ".join(problems))
