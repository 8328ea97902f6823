"""Snakemake script for rule `download`: fetch one raw file and verify its checksum."""
from workflow_lib.download import download
from workflow_lib.fileutils import get_logger

entry = snakemake.params.entry
download(entry["url"], snakemake.output[0], md5=entry.get("md5"), sha256=entry.get("sha256"),
         sidecar=snakemake.params.sidecar, logger=get_logger(snakemake.log[0]))
