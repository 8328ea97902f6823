"""Sources: every configured URL is named by a source list in docs/sources/, which keys each
source downloads, the demo overlays and exclude_sets of the single-assay ATAC sets."""

import copy

import pytest

from workflow_lib.download import entry_urls
from workflow_lib.settings import source_config
from workflow_lib.sources import (AUTHORS_FILES, DEMO_FILES, atac_set_files, check_atac_downloads,
                                  check_scenarios, demo_file_names, demo_files, effective_atac_sets,
                                  needed_downloads)


def _all_urls(cfg):
    for key, e in cfg["downloads"].items():
        for u in entry_urls(e):
            yield key, u
        if e.get("checksum_url"):
            yield key, e["checksum_url"]


def test_every_config_url_is_named_by_a_source(repo, default_config):
    text = "\n".join(p.read_text() for p in (repo / "docs" / "sources").iterdir() if p.is_file())
    unnamed = [(k, u) for k, u in _all_urls(default_config)
               if u not in text and u.rsplit("/", 1)[0] + "/" not in text]
    assert unnamed == []


def test_no_invented_li_entries_and_no_dead_fang_tree(default_config):
    assert not [k for k in default_config["downloads"] if k.startswith("li_atac_")]
    urls = [u for _, u in _all_urls(default_config)]
    assert not [u for u in urls if "r3fang/share" in u or "li2021_snATAC" in u]


def test_li_and_fang_snap_entries(repo, default_config):
    listed = [ln.strip() for ln in (repo / "docs" / "sources" / "li2021_snap_urls_renlab.txt").read_text().splitlines()
              if ln.strip() and not ln.startswith("#")]
    sets = default_config["single_atac_sets"]
    li = sets["li"]["files"]
    assert len(li) == 90 and len(set(li)) == 90
    assert [entry_urls(default_config["downloads"][k])[0] for k in li] == listed
    for k in li:
        urls = entry_urls(default_config["downloads"][k])
        name = default_config["downloads"][k]["file"]
        assert urls[1] == f"http://catlas.org/catlas_downloads/mousebrain/snap/{name}"
        assert default_config["downloads"][k]["md5"] is None   # nobody published checksums
    fang = sets["fang"]["files"]
    assert len(fang) == 6 and set(fang) <= set(li)
    assert sets["fang"]["format"] == sets["li"]["format"] == "snap"


def test_each_sample_read_once_by_default(default_config):
    sets = effective_atac_sets(default_config)
    assert len(sets["li"]["files"]) == 84 and len(sets["fang"]["files"]) == 6
    assert not set(sets["li"]["files"]) & set(sets["fang"]["files"])
    cfg = copy.deepcopy(default_config)
    cfg["single_atac_sets"]["li"]["exclude_sets"] = []
    assert len(effective_atac_sets(cfg)["li"]["files"]) == 90
    cfg["single_atac_sets"]["li"]["exclude_sets"] = ["nope"]
    with pytest.raises(ValueError, match=r"single_atac_sets.li.exclude_sets names \['nope'\]"):
        effective_atac_sets(cfg)


def test_demo_overlay_keeps_the_demo_files(default_config):
    demo = source_config(default_config)
    sets = effective_atac_sets(demo)
    assert sets["li"]["format"] == "mtx_bed" and sets["fang"]["files"] == ["snap_CEMBA180305_2B"]
    assert sets["fang"]["assembly"] == "mm9" and sets["li"]["assembly"] == "mm10"
    files = demo_files(demo)
    assert set(DEMO_FILES) <= set(files) and "snap_CEMBA180305_2B" in files and len(files) == 14
    names = demo_file_names(demo)
    assert list(names) == files and names["snap_CEMBA180305_2B"] == "CEMBA180305_2B.snap"
    assert all(names[k] == DEMO_FILES[k] for k in DEMO_FILES if k not in demo["downloads"])
    check_atac_downloads(demo, demo=True)
    with pytest.raises(ValueError, match="li_atac_counts"):
        check_atac_downloads({**default_config, "single_atac_sets": {"li": {"assembly": "mm10"}}}, demo=False)


def test_needed_downloads_per_source(default_config):
    public = needed_downloads(default_config, "public")
    assert len(public) == 9 + 90 and "mm9_to_mm10_chain" not in public   # every set is mm10
    authors = needed_downloads(default_config, "authors")
    assert set(AUTHORS_FILES.values()) <= set(authors) and "authors_babel_test" in authors
    assert "authors_de_genes" in authors and not [k for k in authors if k.startswith("snap_")]
    assert needed_downloads(default_config, "demo") == []
    cfg = copy.deepcopy(default_config)
    cfg["single_atac_sets"]["fang"]["assembly"] = "mm9"
    assert "mm9_to_mm10_chain" in needed_downloads(cfg, "public")


def test_babel_scenario_only_with_the_authors_source(default_config):
    assert check_scenarios(["random", "unseen"], "authors", default_config) == ["random", "unseen", "babel"]
    assert check_scenarios(["random", "unseen"], "public", default_config) == ["random", "unseen"]
    with pytest.raises(ValueError, match="scenario 'babel' needs source: authors"):
        check_scenarios(["random", "babel"], "demo", default_config)
    cfg = copy.deepcopy(default_config)
    del cfg["downloads"]["authors_babel_valid"]
    assert check_scenarios(["random"], "authors", cfg) == ["random"]


# ------------------------------------------------------------------ config: files per format
def test_atac_set_files_by_format():
    assert atac_set_files("li", {"assembly": "mm10"}) == ["li_atac_counts", "li_atac_barcodes", "li_atac_peaks"]
    assert atac_set_files("fang", {"format": "snap", "files": ["a", "b"]}) == ["a", "b"]


def test_check_atac_downloads_names_missing_entries():
    cfg = {"single_atac_sets": {"li": {"assembly": "mm10"},
                                "fang": {"assembly": "mm10", "format": "snap", "files": ["fang_s1", "fang_s2"]}},
           "downloads": {"li_atac_counts": {"file": "c.mtx.gz"}, "li_atac_barcodes": {"file": "b.tsv.gz"},
                         "li_atac_peaks": {"file": "p.bed.gz"}, "fang_s1": {"file": "s1.snap"},
                         "fang_s2": {"file": "s2.h5"}}}
    with pytest.raises(ValueError, match=r"fang: snap files must be named \*\.snap: \['fang_s2'\]"):
        check_atac_downloads(cfg)
    cfg["downloads"]["fang_s2"]["file"] = "s2.snap"
    check_atac_downloads(cfg)
    del cfg["downloads"]["li_atac_peaks"]
    with pytest.raises(ValueError, match=r"single_atac_sets.li \(format mtx_bed\) needs downloads entries \['li_atac_peaks'\]"):
        check_atac_downloads(cfg)
