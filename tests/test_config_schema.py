"""config.yaml must validate against schemas/config.schema.yaml, and bad configs must be rejected."""

import copy

import jsonschema

from workflow_lib.settings import source_config
import pytest
import yaml


@pytest.fixture(scope="module")
def schema(repo):
    return yaml.safe_load((repo / "schemas" / "config.schema.yaml").read_text())


def test_default_config_is_valid(schema, default_config):
    jsonschema.validate(default_config, schema)
    assert default_config["source"] == "demo"


def test_every_download_has_url_file_and_checksum_key(default_config):
    from workflow_lib.download import entry_urls

    for name, d in default_config["downloads"].items():
        assert all(u.startswith(("https://", "http://", "file://")) for u in entry_urls(d)), name
        assert "md5" in d or "sha256" in d, f"{name}: no checksum key"
    geo = [d for n, d in default_config["downloads"].items() if n.startswith("snare_") and n != "snare_metadata"]
    assert len(geo) == 6 and all(d["md5"] for d in geo)


def test_checksum_url_accepted(schema, default_config):
    cfg = copy.deepcopy(default_config)
    for u in ("https://example.org/pub/MD5SUMS", "http://example.org/md5sum.txt", "file:///data/SHA256SUMS"):
        cfg["downloads"]["snare_metadata"]["checksum_url"] = u
        jsonschema.validate(cfg, schema)


def _mutations():
    yield "unknown source", lambda c: c.update(source="internet")
    yield "negative seed", lambda c: c.update(seeds=[0, -1])
    yield "no seeds", lambda c: c.update(seeds=[])
    yield "repeated seed", lambda c: c.update(seeds=[0, 1, 0])
    yield "seeds not a list", lambda c: c.update(seeds=0)
    yield "old seed key", lambda c: c.update(seed=0)
    yield "peak fraction > 1", lambda c: c["features"].update(peak_max_frac=1.5)
    yield "split fractions missing one", lambda c: c["splits"].update(random_fracs=[0.8, 0.2])
    yield "variants without full", lambda c: c.update(variants=["exp"])
    yield "unknown method", lambda c: c.update(methods=["polarbear", "scvi"])
    yield "bad md5", lambda c: c["downloads"]["snare_rna_genes"].update(md5="xyz")
    yield "ftp url", lambda c: c["downloads"]["gencode_gtf"].update(url="ftp://x/y.gtf.gz")
    yield "download without url", lambda c: c["downloads"]["gencode_gtf"].pop("url")
    yield "download with url and urls", lambda c: c["downloads"]["gencode_gtf"].update(urls=["https://x/y"])
    yield "download with empty urls", lambda c: c["downloads"]["snap_CEMBA180305_2B"].update(urls=[])
    yield "mirror not http", lambda c: c["downloads"]["snap_CEMBA180305_2B"].update(urls=["ftp://x/y.snap"])
    yield "unknown key in an atac set's demo overlay", lambda c: c["demo"]["single_atac_sets"]["li"].update(formt="x")
    yield "exclude_sets not a list", lambda c: c["single_atac_sets"]["li"].update(exclude_sets="fang")
    yield "unknown scenario", lambda c: c.update(scenarios=["random", "celltype"])
    yield "ftp checksum_url", lambda c: c["downloads"]["gencode_gtf"].update(checksum_url="ftp://x/MD5SUMS")
    yield "checksum_url not a string", lambda c: c["downloads"]["gencode_gtf"].update(checksum_url=None)
    yield "empty latent grid", lambda c: c["polarbear"]["grid"].update(latent=[])
    yield "negative beta", lambda c: c["polarbear"]["grid"].update(beta=[-1])
    yield "missing resources", lambda c: c.pop("resources")
    yield "unknown assembly", lambda c: c["single_atac_sets"]["li"].update(assembly="hg19")
    yield "unknown atac format", lambda c: c["single_atac_sets"]["li"].update(format="bam")
    yield "snap set without files", lambda c: c["single_atac_sets"]["fang"].pop("files")
    yield "snap matrix not PM/AM", lambda c: c["single_atac_sets"]["fang"].update(snap_matrix="GM")
    yield "typo in atac set key", lambda c: c["single_atac_sets"]["fang"].update(snap_min_fragment=5)
    # unknown or misspelled keys are refused at every level (issue 12)
    yield "unknown top-level key", lambda c: c.update(seeds_typo=[0])
    yield "typo in polarbear", lambda c: c["polarbear"].update(translatr={"batch_size": 16})
    yield "typo in polarbear.vae", lambda c: c["polarbear"]["vae"].update(dropuot=0.1)
    yield "typo in polarbear.vae.atac", lambda c: c["polarbear"]["vae"]["atac"].update(learning_rat=0.1)
    yield "download file is ..", lambda c: c["downloads"]["gencode_gtf"].update(file="..")
    yield "download file in a directory", lambda c: c["downloads"]["gencode_gtf"].update(file="../x.gtf.gz")
    yield "download file hidden", lambda c: c["downloads"]["gencode_gtf"].update(file=".x.gtf.gz")
    yield "typo in demo.polarbear.translator", lambda c: c["demo"]["polarbear"]["translator"].update(patiense=3)
    yield "old polarbear.demo overlay", lambda c: c["polarbear"].update(demo={"vae": {}})
    yield "old polarbear.demo_grid", lambda c: c["polarbear"].update(demo_grid={"latent": [25], "beta": [1]})
    yield "unknown vae option value", lambda c: c["polarbear"]["vae"].update(atac_depth="quadratic")
    yield "typo in features", lambda c: c["features"].update(peak_min_cell=5)
    yield "typo in splits", lambda c: c["splits"].update(leiden_res=1.0)
    yield "typo in demo.simulate", lambda c: c["demo"]["simulate"].update(n_cells=10)
    yield "unknown block in demo", lambda c: c["demo"].update(seeds=[1])
    yield "typo in demo.splits", lambda c: c["demo"]["splits"].update(leiden_res=1.0)
    yield "typo in demo.features", lambda c: c["demo"]["features"].update(demo_single_atac_downsample_frac=0.5)
    yield "typo in babel", lambda c: c["babel"].update(learnig_rate=0.1)
    yield "unknown babel architecture", lambda c: c["babel"].update(architecture="naive")
    yield "typo in demo.babel", lambda c: c["demo"]["babel"].update(batchsize=3)
    yield "typo in babel.compact", lambda c: c["babel"]["compact"].update(learnig_rate=0.1)
    yield "typo in demo.babel.compact", lambda c: c["demo"]["babel"]["compact"].update(max_epoch=3)
    yield "typo in babel.lr_scheduler", lambda c: c["babel"]["lr_scheduler"].update(patiense=3)
    yield "unknown babel lr_scheduler monitor", lambda c: c["babel"]["lr_scheduler"].update(monitor="loss")
    yield "babel lr_scheduler factor 1", lambda c: c["babel"]["lr_scheduler"].update(factor=1)
    yield "babel grad_clip_norm 0", lambda c: c["babel"].update(grad_clip_norm=0)
    yield "unknown babel rna_input_stats", lambda c: c["babel"].update(rna_input_stats="test")
    yield "babel's removed demo_batch_size", lambda c: c["babel"].update(demo_batch_size=32)
    yield "typo in baselines", lambda c: c["baselines"].update(knn=3)
    yield "typo in evaluate", lambda c: c["evaluate"].update(fdr=0.1)
    yield "typo in resources", lambda c: c["resources"].update(trian={"mem_mb": 1, "runtime": 1})
    yield "typo in a resource", lambda c: c["resources"]["train"].update(gpus=1)


@pytest.mark.parametrize("what,mutate", list(_mutations()), ids=[m[0] for m in _mutations()])
def test_schema_rejects_bad_config(schema, default_config, what, mutate):
    """Refused either as written or once the demo overlay is merged (the Snakefile validates both)."""
    bad = copy.deepcopy(default_config)
    mutate(bad)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
        jsonschema.validate(source_config(bad), schema)


def test_demo_overlay_is_one_deep_merge(schema, default_config):
    """source: demo merges demo: (but simulate:) over the settings; other sources ignore it."""
    demo = source_config(default_config)
    jsonschema.validate(demo, schema)
    assert demo["polarbear"]["grid"] == default_config["demo"]["polarbear"]["grid"]
    assert demo["polarbear"]["vae"]["max_epochs"] == 300 and demo["polarbear"]["vae"]["batch_size"] == 16
    assert demo["polarbear"]["vae"]["atac"] == {**default_config["polarbear"]["vae"]["atac"], "learning_rate": 0.001,
                                                "patience": 10}
    from workflow_lib.polarbear import modality_fit_params
    vae = demo["polarbear"]["vae"]
    assert modality_fit_params(vae, "atac")["patience"] == 10
    assert modality_fit_params(vae, "rna")["patience"] == default_config["polarbear"]["vae"]["patience"] == 46
    assert demo["splits"]["unseen_rule"] == "largest_test" and demo["splits"]["n_pcs"] == 50
    assert demo["single_atac_sets"]["fang"]["assembly"] == "mm9"
    assert demo["single_atac_sets"]["fang"]["snap_matrix"] == "auto"
    assert "simulate" not in demo["polarbear"] and demo["demo"] == default_config["demo"]
    public = source_config({**default_config, "source": "public"})
    assert public == {**default_config, "source": "public"}


def test_split_fractions_must_sum_to_one(default_config):
    """[0.9, 0.2, 0.2] passes the schema (each is a fraction) but is refused, not rescaled."""
    from workflow_lib.splits import check_split_fractions, random_split

    check_split_fractions(default_config)
    bad = copy.deepcopy(default_config)
    bad["splits"]["random_fracs"] = [0.9, 0.2, 0.2]
    with pytest.raises(ValueError, match="random_fracs .* must sum to 1"):
        check_split_fractions(bad)
    with pytest.raises(ValueError, match="sum to 1"):
        random_split(100, [0.9, 0.2, 0.2])
    lab = random_split(100, [0.6, 0.2, 0.2])
    assert (lab == "test").sum() == 20 and (lab == "val").sum() == 20


def test_a_modality_block_overrides_the_shared_vae_settings(schema, default_config):
    """vae.rna / vae.atac win over the shared keys (the demo's ATAC patience 10, RNA the authors'
    46); keys of one VAE only (learning_rate) are refused among the shared ones by the schema."""
    from workflow_lib.polarbear import modality_fit_params

    fp = {"batch_size": 16, "patience": 46, "rna": {"learning_rate": 0.001}, "atac": {"adam_eps": 1e-5, "patience": 10}}
    assert modality_fit_params(fp, "rna") == {"batch_size": 16, "patience": 46, "learning_rate": 0.001}
    assert modality_fit_params(fp, "atac") == {"batch_size": 16, "patience": 10, "adam_eps": 1e-5}
    cfg = copy.deepcopy(default_config)
    cfg["polarbear"]["vae"]["atac"].update(patience=10, min_steps=3000, max_epochs=300)
    jsonschema.validate(cfg, schema)
    cfg["polarbear"]["vae"]["learning_rate"] = 0.1
    with pytest.raises(jsonschema.ValidationError, match="learning_rate"):
        jsonschema.validate(cfg, schema)
    cfg = copy.deepcopy(default_config)
    cfg["polarbear"]["vae"]["rna"]["dropout"] = 0.2   # a shared-only key in a modality block
    with pytest.raises(jsonschema.ValidationError, match="dropout"):
        jsonschema.validate(cfg, schema)


def test_babel_options_accepted(schema, default_config):
    cfg = copy.deepcopy(default_config)
    b = cfg["babel"]
    b.update(architecture="compact", grad_clip_norm=None, lr_scheduler=None, rna_input_stats="all")
    cfg["demo"]["babel"] = {"batch_size": 64, "lr_scheduler": {"factor": 0.5, "monitor": "val"}, "chrom_hidden": [8, 4]}
    jsonschema.validate(source_config(cfg), schema)


def test_config_yaml_polarbear_defaults_are_the_shared_defaults(default_config):
    """config.yaml (workflow) and `polarbear train` (CLI) share one set of defaults
    (workflow_lib.settings.DEFAULTS = the authors' values + the named departures)."""
    from workflow_lib.settings import AUTHOR_DEFAULTS, DEFAULTS, DEPARTURES

    pb = default_config["polarbear"]
    for key in ("grid", "vae", "translator", "ridge_alphas"):
        assert pb[key] == DEFAULTS[key], key
    # every departure is a real change of an authors' value
    for block, values in DEPARTURES.items():
        for k, v in values.items():
            assert AUTHOR_DEFAULTS[block][k] != v and DEFAULTS[block][k] == v
