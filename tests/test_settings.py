"""Polarbear's shared defaults and the configuration overlays (workflow_lib.settings).

The default config.yaml against these defaults and the demo overlay of config.yaml are checked in
tests/test_config_schema.py; these tests pin the merge rules themselves on small dictionaries.
"""

import copy

from workflow_lib.settings import AUTHOR_DEFAULTS, DEFAULTS, DEPARTURES, deep_merge, polarbear_settings, source_config


def test_deep_merge_merges_nested_dicts_and_copies():
    base = {"vae": {"batch_size": 16, "rna": {"learning_rate": 0.001, "adam_eps": 0.01}}, "grid": {"latent": [10]}}
    overlay = {"vae": {"rna": {"learning_rate": 0.01}, "dropout": 0.2}, "grid": {"latent": [25, 50]}}
    before = copy.deepcopy((base, overlay))
    out = deep_merge(base, overlay)
    assert out == {"vae": {"batch_size": 16, "dropout": 0.2, "rna": {"learning_rate": 0.01, "adam_eps": 0.01}},
                   "grid": {"latent": [25, 50]}}
    assert (base, overlay) == before                       # neither input is modified
    out["vae"]["rna"]["adam_eps"] = 1.0
    out["grid"]["latent"].append(1)
    assert (base, overlay) == before                       # and the result shares nothing with them
    assert deep_merge(base, None) == base and deep_merge(base, None) is not base


def test_deep_merge_replaces_where_either_side_is_not_a_dict():
    assert deep_merge({"a": {"x": 1}}, {"a": 5}) == {"a": 5}
    assert deep_merge({"a": 5}, {"a": {"x": 1}}) == {"a": {"x": 1}}
    assert deep_merge({"a": {"x": 1}}, {"a": None}) == {"a": None}
    assert deep_merge({"a": [1, 2]}, {"a": [3]}) == {"a": [3]}   # lists are replaced, not extended


def test_defaults_differ_from_the_authors_values_only_by_the_named_departures():
    undone = copy.deepcopy(DEFAULTS)
    for block, values in DEPARTURES.items():
        for k in values:
            undone[block][k] = AUTHOR_DEFAULTS[block][k]
    assert undone == AUTHOR_DEFAULTS and DEFAULTS != AUTHOR_DEFAULTS


def test_polarbear_settings_takes_the_four_blocks_as_copies():
    pb = {"grid": {"latent": [10], "beta": [1]}, "vae": {"batch_size": 16}, "translator": {"batch_size": 16},
          "ridge_alphas": [1, 10], "unrelated": True}
    s = polarbear_settings(pb)
    assert set(s) == {"grid", "vae", "translator", "ridge_alphas"}
    s["grid"]["latent"].append(25)
    assert pb["grid"]["latent"] == [10]
    assert polarbear_settings({"vae": {"batch_size": 8}}) == {"vae": {"batch_size": 8}}


def test_source_config_overlays_the_demo_block_only_for_the_demo_source():
    cfg = {"source": "demo", "splits": {"leiden_resolution": 1.5, "n_pcs": 50},
           "demo": {"splits": {"leiden_resolution": 1.0}, "simulate": {"n_cells": 100}}}
    out = source_config(cfg)
    assert out["splits"] == {"leiden_resolution": 1.0, "n_pcs": 50}
    assert "simulate" not in out and out["demo"] == cfg["demo"]   # simulate: stays in the demo block
    out["demo"]["splits"]["leiden_resolution"] = 3.0
    assert cfg["demo"]["splits"]["leiden_resolution"] == 1.0
    public = dict(cfg, source="public")
    out = source_config(public)
    assert out == public and out is not public and out["splits"]["leiden_resolution"] == 1.5
