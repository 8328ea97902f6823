"""What a workflow run spent its time on, from Snakemake's benchmark files (run by hand).

    python3 benchmarks/demo_summary.py [results]      # default: results

Reads every ``<results>/benchmarks/<rule>/**.tsv`` (Snakemake's ``benchmark:`` files: wall ``s``,
``cpu_time``, ``max_rss``) and prints a Markdown table per rule -- jobs, summed wall seconds, summed
CPU seconds, share of all CPU time, largest peak RSS -- sorted by CPU time, then the totals. Wall
seconds of parallel jobs overlap, so their sum exceeds the run's elapsed time; CPU seconds add up.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd


def summarise(results) -> pd.DataFrame:
    root = Path(results) / "benchmarks"
    rows = []
    for f in sorted(root.rglob("*.tsv")):
        t = pd.read_csv(f, sep="\t")
        rows.append({"rule": f.relative_to(root).parts[0], "wall_s": float(t["s"].iloc[0]),
                     "cpu_s": float(t["cpu_time"].iloc[0]), "max_rss_mb": float(t["max_rss"].iloc[0])})
    if not rows:
        raise SystemExit(f"no benchmark files under {root}")
    df = pd.DataFrame(rows)
    out = df.groupby("rule").agg(jobs=("wall_s", "size"), wall_s=("wall_s", "sum"), cpu_s=("cpu_s", "sum"),
                                 max_rss_mb=("max_rss_mb", "max"))
    out["cpu_share"] = out["cpu_s"] / out["cpu_s"].sum()
    return out.sort_values("cpu_s", ascending=False)


def main(argv=None) -> None:
    results = (argv or sys.argv[1:] or ["results"])[0]
    s = summarise(results)
    print("| rule | jobs | wall s (sum) | CPU s | share of CPU | max RSS MB |")
    print("|---|---|---|---|---|---|")
    for rule, r in s.iterrows():
        print(f"| {rule} | {int(r.jobs)} | {r.wall_s:.0f} | {r.cpu_s:.0f} | {100 * r.cpu_share:.0f}% | {r.max_rss_mb:.0f} |")
    print(f"| **all** | {int(s.jobs.sum())} | {s.wall_s.sum():.0f} | {s.cpu_s.sum():.0f} | 100% | "
          f"{s.max_rss_mb.max():.0f} |")


if __name__ == "__main__":
    main()
