"""Diagnostic (run by hand on a finished run): is a translated query set shifted as a whole from
its reference set, or is its within-set structure lost?

For every Polarbear grid point of a scenario this prints, on the train / validation / test cells,
the latent FOSCTTM (Table 3's definition: RNA query t_xy(mu_x) against mu_y in the ATAC latent,
ATAC query t_yx(mu_y) against mu_x in the RNA latent), the same FOSCTTM after centring the query
and the reference set of those cells separately, and the norm of the offset between the two set
means next to the norm of the reference set's per-dimension SD.

Centring uses the test cells' own means, so it is NOT a method (it would need the ATAC profiles of
the cells one translates); it separates the two ways FOSCTTM can fail on an unseen cell type: a
translator that puts the new type's cells at the wrong place as a group (offset large, centred
FOSCTTM low) or one that loses their within-type structure (centred FOSCTTM high too).

    python3 benchmarks/diag_unseen_offset.py results [--scenario unseen] [--method polarbear]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from workflow_lib.data import batch_onehot
from workflow_lib.metrics import foscttm
from workflow_lib.polarbear import load_grid_point, read_coassay


def offset_rows(query: np.ndarray, reference: np.ndarray) -> dict:
    """FOSCTTM as is and centred, and the set-mean offset against the reference spread."""
    qc, rc = query - query.mean(0), reference - reference.mean(0)
    return {"foscttm": float(foscttm(query, reference).mean()), "centred": float(foscttm(qc, rc).mean()),
            "offset": float(np.linalg.norm(query.mean(0) - reference.mean(0))),
            "spread": float(np.linalg.norm(reference.std(0)))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path)
    ap.add_argument("--variant", default="full")
    ap.add_argument("--scenario", default="unseen")
    ap.add_argument("--method", default="polarbear")
    args = ap.parse_args(argv)
    proc = args.results / "processed" / args.variant
    data = read_coassay(proc / "coassay_rna.h5ad", proc / "coassay_atac.h5ad", args.scenario)
    b_rna, b_atac = batch_onehot(data.rna.obs["batch"]), batch_onehot(data.atac.obs["batch"])
    print("| grid point | cells | query | FOSCTTM | centred FOSCTTM | offset of set means | reference SD norm |")
    print("|---|---|---|---|---|---|---|")
    grid = args.results / "models" / args.variant / args.scenario / args.method / "grid"
    for gdir in sorted(p for p in grid.iterdir() if (p / "scores.json").exists()):
        lat = load_grid_point(gdir, data, "cpu").align(data.rna.X, b_rna, data.atac.X, b_atac)
        for cells, rows in (("train", data.train), ("validation", data.val), ("test", data.test)):
            if len(rows) < 2:
                continue
            for query, q, ref in (("RNA", "rna_query", "atac_reference"), ("ATAC", "atac_query", "rna_reference")):
                r = offset_rows(lat[q][rows], lat[ref][rows])
                print(f"| {gdir.name} | {cells} | {query} | {r['foscttm']:.3f} | {r['centred']:.3f} | "
                      f"{r['offset']:.2f} | {r['spread']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
