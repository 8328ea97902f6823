# Stage "figures": Figures 3-7 (PDF + PNG) of the paper and Table 3 as an HTML report item.
# Inputs are the evaluation tables {R}/eval/{variant}/{scenario}/{method}/*.tsv of the runs that
# method_runs() yields; a method or variant dropped from config simply disappears from the
# figure (the panel says so). All logic: workflow_lib/figures.py.

rule figure:
    input:
        figure_inputs,
    output:
        pdf=figure_report("pdf"),
        png=figure_report("png"),
    wildcard_constraints:
        fig="|".join(map(str, FIG_INPUTS)),
    params:
        comparators=FIG_COMPARATORS,
        dpi=FIG_DPI,
    log:
        log_path("figure", "fig{fig}"),
    benchmark:
        bench_path("figure", "fig{fig}")
    resources:
        **rule_resources("default"),
    conda:
        "../envs/plots.yaml"
    script:
        "../scripts/figure.py"


rule table3_report:
    input:
        f"{R}/eval/table3.tsv",
    output:
        html=report(
            REPORT_TABLES[0],
            caption="../report/table3.rst",
            category="Tables",
            labels={"table": "Table 3", "format": "HTML"},
        ),
        tsv=report(
            REPORT_TABLES[1],
            caption="../report/table3.rst",
            category="Tables",
            labels={"table": "Table 3", "format": "TSV (paper layout)"},
        ),
    log:
        log_path("table3_report", "table3_report"),
    benchmark:
        bench_path("table3_report", "table3_report")
    resources:
        **rule_resources("default"),
    conda:
        "../envs/plots.yaml"
    script:
        "../scripts/table3_report.py"
