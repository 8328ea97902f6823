"""polarbear-workflow: all logic of the Polarbear reproduction, importable without Snakemake."""

__version__ = "0.1.0"
