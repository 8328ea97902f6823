# Stage "download": every raw input file under {R}/raw/.
#   source=public/authors: one `download` job per config `downloads` entry the DAG needs (urllib,
#                  its urls tried in order, checksum-verified, resumed after dropped connections).
#   source=demo:   one `simulate_demo` job writing ALL raw files in the same formats.
# Exactly one of the two rules exists in a run, so each raw file has a single producer.

import re

DOWNLOAD_NAMES = list(config["downloads"])


if DEMO:

    rule simulate_demo:
        output:
            [raw(n) for n in demo_files(config)],
        params:
            demo=config["demo"]["simulate"],
            files=demo_file_names(config),
            atac_sets=ATAC_SETS,
            outdir=output_dir,
        log:
            log_path("simulate_demo", "simulate_demo"),
        benchmark:
            bench_path("simulate_demo", "simulate_demo")
        resources:
            **rule_resources("default"),
        conda:
            "../envs/data.yaml"
        script:
            "../scripts/simulate_demo.py"

else:

    rule download:
        output:
            f"{R}/raw/{{file}}",
        wildcard_constraints:
            file="|".join(re.escape(config["downloads"][n]["file"]) for n in DOWNLOAD_NAMES),
        params:
            entry=download_entry,
            sidecar=download_sidecar,
            retries=5,  # per URL: network errors (5xx, timeouts, dropped connections; resumed)
        log:
            log_path("download", "{file}"),
        benchmark:
            bench_path("download", "{file}")
        # no Snakemake retry directive: download() retries transient network errors (with backoff);
        # a checksum mismatch or a 4xx is final and must not fetch a multi-GB file three times
        resources:
            **rule_resources("default"),
        conda:
            "../envs/data.yaml"
        script:
            "../scripts/download.py"

    rule check_sources:
        """Preflight: headers of every URL this source downloads (HEAD, or a 1-byte range GET where
        HEAD is refused), in parallel; no download. Fails listing the unreachable ones (the
        table is also in the log, since Snakemake removes a failed job's outputs)."""
        output:
            tsv=f"{R}/raw/sources_check.tsv",
            summary=f"{R}/raw/sources_check.txt",
        params:
            entries={k: config["downloads"][k] for k in needed_downloads(config, SOURCE)},
            source=SOURCE,
            timeout=20,
            workers=16,
        log:
            log_path("check_sources", "check_sources"),
        benchmark:
            bench_path("check_sources", "check_sources")
        # network-bound: parallel requests in Python threads, one CPU
        resources:
            **rule_resources("default"),
        conda:
            "../envs/data.yaml"
        script:
            "../scripts/check_sources.py"
