"""Grid points: one naming rule for every method's hyper-parameter grid.

A grid point is named by its parameters in grid order, each as ``<name><value>`` with ``%g``
values joined by ``_``: ``latent10_beta0.5`` (Polarbear), ``latent16_weight1.33`` (BABEL).
``latent`` is an integer, every other parameter a float. Snakemake wildcard constraints come
from :func:`point_regex`.
"""

from __future__ import annotations

import itertools
import math
from typing import Iterable, Mapping, Sequence

_NUMBER = r"[0-9.]+(?:e[-+]?\d+)?"


def point_name(params: Mapping[str, float]) -> str:
    """{'latent': 10, 'beta': 0.5} -> 'latent10_beta0.5'."""
    return "_".join(f"{k}{int(v) if k == 'latent' else float(v):g}" for k, v in params.items())


def grid_points(grid: Mapping[str, Sequence[float]]) -> list[str]:
    """Every point of a grid (the product of its value lists, in key order) by name."""
    keys = list(grid)
    return [point_name(dict(zip(keys, values))) for values in itertools.product(*(grid[k] for k in keys))]


def parse_point(name: str) -> dict:
    """'latent10_beta0.5' -> {'latent': 10, 'beta': 0.5}; ValueError for a malformed name."""
    out = {}
    for part in str(name).split("_"):
        key = part.rstrip("0123456789.e-+")
        val = part[len(key):]
        if not key or not val:
            raise ValueError(f"bad grid point name {name!r}")
        try:
            out[key] = int(val) if key == "latent" else float(val)
        except ValueError:
            raise ValueError(f"bad grid point name {name!r}") from None
    return out


def point_regex(*params: str) -> str:
    """Wildcard constraint of the points of a grid with these parameters, e.g. latent\\d+_beta<number>."""
    return "_".join((rf"{p}\d+" if p == "latent" else f"{p}{_NUMBER}") for p in params)


def best_point(scores: Mapping[str, Mapping[str, float]], score: str, higher_is_better: bool = False) -> str:
    """The point with the lowest (``higher_is_better``: highest) ``scores[point][score]``; a None or
    non-finite value counts as the worst, ties go to the first point in the mapping's order (grid
    order). KeyError if a point lacks it."""
    if not scores:
        raise ValueError("no grid points to select from")
    sign = -1.0 if higher_is_better else 1.0

    def value(point: str) -> float:
        v = scores[point][score]
        return sign * float(v) if v is not None and math.isfinite(float(v)) else math.inf

    return min(scores, key=value)


def select_per_task(scores: Mapping[str, Mapping[str, float]], task_score: Mapping[str, str],
                    params: Mapping[str, Mapping] | None = None, higher_is_better: Iterable[str] = ()) -> dict:
    """Per task, the point with the best validation ``task_score[task]`` (:func:`best_point`; the
    lowest, or the highest for the scores in ``higher_is_better``):
    ``{task: {"point", "params", "score", "value"}}``."""
    higher = set(higher_is_better)
    out = {}
    for task, score in task_score.items():
        pt = best_point(scores, score, score in higher)
        out[task] = {"point": pt, "params": dict(params[pt]) if params else parse_point(pt), "score": score,
                     "value": scores[pt][score]}
    return out
