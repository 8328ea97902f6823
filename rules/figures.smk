# Stage "figures": Figures 3-7 (PDF + PNG) of the paper and Table 3 as an HTML report item.
# Inputs are the evaluation tables {R}/eval/{variant}/{scenario}/{method}/*.tsv of the runs that
# method_runs() yields; a method or variant dropped from config simply disappears from the
# figure (the panel says so). All logic: workflow_lib/plots.py.

FIG_REFERENCE = "polarbear"
FIG_COMPARATORS = ["babel", "polarbear_coassay"]
FIG_DPI = 200
REPORT_TABLES = [f"{R}/figures/table3.html", f"{R}/figures/table3.tsv"]


FIG_METHODS = [FIG_REFERENCE] + FIG_COMPARATORS
# Evaluation tables read by each figure (only runs that method_runs() yields; with several
# `seeds` also the runs of the further seeds, e.g. eval/full/random/polarbear~s1/, whose per-seed
# means give the figures' seed mean and 95% CI).
FIG_INPUTS = {
    3: [f"{R}/eval/{v}/{s}/{m}/{t}.tsv" for v, s, m in method_runs()
        if v == "full" and s == "random" and run_method(m) in FIG_METHODS for t in ("genes", "peaks")],
    4: [f"{R}/eval/{v}/{s}/{m}/markers.tsv" for v, s, m in method_runs()
        if v == "full" and s == "random" and run_method(m) in FIG_METHODS],
    5: [f"{R}/eval/{v}/{s}/{m}/{t}.tsv" for v, s, m in method_runs()
        if v == "full" and s == "unseen" for t in ("genes", "peaks", "de")
        if t == "de" or run_method(m) in FIG_METHODS],
    6: [f"{R}/eval/{v}/{s}/{m}/cells.tsv" for v, s, m in method_runs() if v == "full"],
    7: [f"{R}/eval/{v}/{s}/{m}/cells.tsv" for v, s, m in method_runs()
        if run_method(m) == "polarbear_coassay"],
}


rule fig3:
    input:
        FIG_INPUTS[3],
    output:
        pdf=report(
            f"{R}/figures/fig3.pdf",
            caption="../report/fig3.rst",
            category="Figures",
            subcategory="Fig. 3",
            labels={"figure": "Fig. 3", "format": "PDF"},
        ),
        png=report(
            f"{R}/figures/fig3.png",
            caption="../report/fig3.rst",
            category="Figures",
            subcategory="Fig. 3",
            labels={"figure": "Fig. 3", "format": "PNG"},
        ),
    params:
        comparators=FIG_COMPARATORS,
        dpi=FIG_DPI,
    log:
        f"{R}/logs/fig3/fig3.log",
    benchmark:
        f"{R}/benchmarks/fig3/fig3.tsv"
    threads: 1
    resources:
        mem_mb=RES["default"]["mem_mb"],
        runtime=RES["default"]["runtime"],
    conda:
        "../envs/plots.yaml"
    script:
        "../scripts/fig3.py"


rule fig4:
    input:
        FIG_INPUTS[4],
    output:
        pdf=report(
            f"{R}/figures/fig4.pdf",
            caption="../report/fig4.rst",
            category="Figures",
            subcategory="Fig. 4",
            labels={"figure": "Fig. 4", "format": "PDF"},
        ),
        png=report(
            f"{R}/figures/fig4.png",
            caption="../report/fig4.rst",
            category="Figures",
            subcategory="Fig. 4",
            labels={"figure": "Fig. 4", "format": "PNG"},
        ),
    params:
        comparators=FIG_COMPARATORS,
        dpi=FIG_DPI,
    log:
        f"{R}/logs/fig4/fig4.log",
    benchmark:
        f"{R}/benchmarks/fig4/fig4.tsv"
    threads: 1
    resources:
        mem_mb=RES["default"]["mem_mb"],
        runtime=RES["default"]["runtime"],
    conda:
        "../envs/plots.yaml"
    script:
        "../scripts/fig4.py"


rule fig5:
    input:
        FIG_INPUTS[5],
    output:
        pdf=report(
            f"{R}/figures/fig5.pdf",
            caption="../report/fig5.rst",
            category="Figures",
            subcategory="Fig. 5",
            labels={"figure": "Fig. 5", "format": "PDF"},
        ),
        png=report(
            f"{R}/figures/fig5.png",
            caption="../report/fig5.rst",
            category="Figures",
            subcategory="Fig. 5",
            labels={"figure": "Fig. 5", "format": "PNG"},
        ),
    params:
        comparators=FIG_COMPARATORS,
        dpi=FIG_DPI,
    log:
        f"{R}/logs/fig5/fig5.log",
    benchmark:
        f"{R}/benchmarks/fig5/fig5.tsv"
    threads: 1
    resources:
        mem_mb=RES["default"]["mem_mb"],
        runtime=RES["default"]["runtime"],
    conda:
        "../envs/plots.yaml"
    script:
        "../scripts/fig5.py"


rule fig6:
    input:
        FIG_INPUTS[6],
    output:
        pdf=report(
            f"{R}/figures/fig6.pdf",
            caption="../report/fig6.rst",
            category="Figures",
            subcategory="Fig. 6",
            labels={"figure": "Fig. 6", "format": "PDF"},
        ),
        png=report(
            f"{R}/figures/fig6.png",
            caption="../report/fig6.rst",
            category="Figures",
            subcategory="Fig. 6",
            labels={"figure": "Fig. 6", "format": "PNG"},
        ),
    params:
        comparators=FIG_COMPARATORS,
        dpi=FIG_DPI,
    log:
        f"{R}/logs/fig6/fig6.log",
    benchmark:
        f"{R}/benchmarks/fig6/fig6.tsv"
    threads: 1
    resources:
        mem_mb=RES["default"]["mem_mb"],
        runtime=RES["default"]["runtime"],
    conda:
        "../envs/plots.yaml"
    script:
        "../scripts/fig6.py"


rule fig7:
    input:
        FIG_INPUTS[7],
    output:
        pdf=report(
            f"{R}/figures/fig7.pdf",
            caption="../report/fig7.rst",
            category="Figures",
            subcategory="Fig. 7",
            labels={"figure": "Fig. 7", "format": "PDF"},
        ),
        png=report(
            f"{R}/figures/fig7.png",
            caption="../report/fig7.rst",
            category="Figures",
            subcategory="Fig. 7",
            labels={"figure": "Fig. 7", "format": "PNG"},
        ),
    params:
        comparators=FIG_COMPARATORS,
        dpi=FIG_DPI,
    log:
        f"{R}/logs/fig7/fig7.log",
    benchmark:
        f"{R}/benchmarks/fig7/fig7.tsv"
    threads: 1
    resources:
        mem_mb=RES["default"]["mem_mb"],
        runtime=RES["default"]["runtime"],
    conda:
        "../envs/plots.yaml"
    script:
        "../scripts/fig7.py"


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
        f"{R}/logs/table3_report/table3_report.log",
    benchmark:
        f"{R}/benchmarks/table3_report/table3_report.tsv"
    threads: 1
    resources:
        mem_mb=RES["default"]["mem_mb"],
        runtime=RES["default"]["runtime"],
    conda:
        "../envs/plots.yaml"
    script:
        "../scripts/table3_report.py"
