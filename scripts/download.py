"""Snakemake script for rule `download`: fetch one raw file and verify its checksum(s).

Besides the raw file (the rule's output) it writes results/raw/checksums/<file>.json, the
verification summary (bytes, md5, sha256, verified_by), next to the .sha256 sidecar that an
unverified download records.
"""
from workflow_lib.download import download, summary_path, write_summary
from workflow_lib.fileutils import get_logger

entry = snakemake.params.entry
info = download(entry["url"], snakemake.output[0], md5=entry.get("md5"), sha256=entry.get("sha256"),
                checksum_url=entry.get("checksum_url"), sidecar=snakemake.params.sidecar,
                logger=get_logger(snakemake.log[0]))
write_summary(info, summary_path(snakemake.params.sidecar))
