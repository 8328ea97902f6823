"""Training-seed replicates: run names <-> (method, seed), and the 95% CI over seeds.

Config ``seeds: [s0, s1, ...]``: the trained methods (``REPLICATED_METHODS``) run once per seed.
The first seed's run keeps the bare method name (and so today's paths, e.g.
``results/models/full/random/polarbear``); every further seed ``s`` is a run of its own named
``<method>~s<s>`` (``polarbear~s1``). ``~`` is neither a regex metacharacter nor used in any
method name, so ``<method>(~s\\d+)?`` matches exactly the runs of a method. The deterministic
baselines (knn, ridge) run once.

This module is the one home of the naming; rules/common.smk wraps it for the rules.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from scipy import stats

REPLICATED_METHODS = ("polarbear", "polarbear_coassay", "babel")
SEED_TAG = "~s"
SEED_TAG_REGEX = r"(?:~s\d+)?"   # the optional seed suffix of a run name (wildcard constraints)
_RUN = re.compile(r"^(?P<method>[A-Za-z0-9_]+?)(?:~s(?P<seed>\d+))?$")


def check_seeds(seeds) -> list[int]:
    """The config's ``seeds`` as a list of ints: non-empty, non-negative, unique. Digit strings
    are accepted (``snakemake --config seeds=[0,1]`` passes the items as strings)."""
    def as_int(s):
        if isinstance(s, str) and s.isascii() and s.isdigit():
            return int(s)
        if isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 0:
            return int(s)
        return None
    out = [as_int(s) for s in seeds] if isinstance(seeds, (list, tuple)) else []
    if not out or None in out or len(set(out)) != len(out):
        raise ValueError(f"seeds must be a non-empty list of unique non-negative integers: {seeds!r}")
    return out


def run_name(method: str, seed: int, seeds) -> str:
    """Run (method directory) name of ``method`` trained with ``seed``: the bare method name for
    the first seed, ``<method>~s<seed>`` for the others."""
    seeds = check_seeds(seeds)
    if seed not in seeds:
        raise ValueError(f"seed {seed} is not in seeds {seeds}")
    if seed == seeds[0]:
        return method
    if method not in REPLICATED_METHODS:
        raise ValueError(f"{method} is deterministic and is not replicated over seeds")
    return f"{method}{SEED_TAG}{int(seed)}"


def parse_run_name(name: str, seeds=None) -> tuple[str, int | None]:
    """``'polarbear~s1'`` -> ``('polarbear', 1)``; a bare name -> ``(name, seeds[0])`` (None
    without ``seeds``)."""
    m = _RUN.match(name)
    if m is None:
        raise ValueError(f"not a run name: {name!r}")
    if m["seed"] is not None:
        if m["method"] not in REPLICATED_METHODS:
            raise ValueError(f"{name!r}: {m['method']} is not replicated over seeds")
        return m["method"], int(m["seed"])
    return m["method"], (check_seeds(seeds)[0] if seeds is not None else None)


def base_method(name: str) -> str:
    """Method of a run name (``'babel~s2'`` -> ``'babel'``)."""
    return parse_run_name(name)[0]


def is_first_seed(name: str) -> bool:
    """True for the run of the first seed (bare method name)."""
    return parse_run_name(name)[1] is None


def method_run_names(method: str, seeds) -> list[str]:
    """All runs of ``method``: one per seed for REPLICATED_METHODS, else the method itself."""
    seeds = check_seeds(seeds)
    if method not in REPLICATED_METHODS:
        return [method]
    return [run_name(method, s, seeds) for s in seeds]


def mean_ci95(values: np.ndarray, axis: int = -1) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """n, mean and the t-distribution 95% CI of the finite values along ``axis``.

    CI = mean +- t_{0.975, n-1} * sd(ddof=1) / sqrt(n); NaN where n < 2 (the mean is NaN where
    n = 0).
    """
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v)
    n = ok.sum(axis=axis)
    filled = np.where(ok, v, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = filled.sum(axis=axis) / n
        dev = np.where(ok, v - np.expand_dims(mean, axis), 0.0)
        sd = np.sqrt((dev ** 2).sum(axis=axis) / (n - 1))
        half = stats.t.ppf(0.975, np.where(n > 1, n - 1, np.nan)) * sd / np.sqrt(n)
    half = np.where(n > 1, half, np.nan)
    mean = np.where(n > 0, mean, np.nan)
    return n, mean, mean - half, mean + half


def seed_summary(per_run: pd.DataFrame, keys: list[str], value: str = "mean") -> pd.DataFrame:
    """Per ``keys`` group (which must include ``method``, the base method), the seed summary of the
    per-run column ``value``: n_seeds (finite per-seed values), seed_mean, ci95_low, ci95_high.

    ``per_run`` has one row per (keys..., run); vectorised over groups via a wide table
    (groups x runs, NaN-padded)."""
    slot = per_run.groupby(keys, sort=False).cumcount().rename("_slot")
    wide = per_run.set_index(keys + [slot])[value].unstack("_slot")
    n, mean, lo, hi = mean_ci95(wide.to_numpy(), axis=1)
    return pd.DataFrame({"n_seeds": n.astype(int), "seed_mean": mean, "ci95_low": lo, "ci95_high": hi},
                        index=wide.index).reset_index()
