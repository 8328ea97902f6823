"""Snakemake script for rule `download`: fetch one raw file (its URLs in order: primary, then
mirrors) and verify its checksum(s).

Besides the raw file (the rule's output) it writes results/raw/checksums/<file>.json, the
verification summary (bytes, md5, sha256, verified_by, the URL that gave the file), next to the
.sha256 sidecar that an unverified download records.
"""
from workflow_lib.download import download, entry_urls, summary_path, write_summary
from workflow_lib.fileutils import get_logger

entry = snakemake.params.entry
info = download(entry_urls(entry), snakemake.output[0], md5=entry.get("md5"), sha256=entry.get("sha256"),
                checksum_url=entry.get("checksum_url"), sidecar=snakemake.params.sidecar,
                retries=snakemake.params.retries, logger=get_logger(snakemake.log[0]))
write_summary(info, summary_path(snakemake.params.sidecar))
