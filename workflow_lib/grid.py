"""Grid points: one naming rule for every method's hyper-parameter grid.

A grid point is named by its parameters in grid order, each as ``<name><value>`` with ``%g``
values joined by ``_``: ``latent10_beta0.5`` (Polarbear), ``latent16_weight1.33`` (BABEL).
``latent`` is an integer, every other parameter a float. Snakemake wildcard constraints come
from :func:`point_regex`.
"""

from __future__ import annotations

import itertools
from typing import Mapping, Sequence

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
