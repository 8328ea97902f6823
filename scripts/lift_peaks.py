"""Snakemake script for rule `lift_peaks`: single-assay peaks to mm10 (liftover or identity)."""
from workflow_lib.fileutils import get_logger
from workflow_lib.features import lift_peaks

lift_peaks(snakemake.input.bed, snakemake.output.bed, snakemake.output.report,
           chain=snakemake.input.get("chain"), dataset=snakemake.wildcards.dataset,
           logger=get_logger(snakemake.log[0]))
