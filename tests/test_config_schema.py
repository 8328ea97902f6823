"""config.yaml must validate against schemas/config.schema.yaml, and bad configs must be rejected."""

import copy

import jsonschema
import pytest
import yaml


@pytest.fixture(scope="module")
def schema(repo):
    return yaml.safe_load((repo / "schemas" / "config.schema.yaml").read_text())


def test_default_config_is_valid(schema, default_config):
    jsonschema.validate(default_config, schema)
    assert default_config["source"] == "demo"


def test_every_download_has_url_file_and_checksum_key(default_config):
    for name, d in default_config["downloads"].items():
        assert d["url"].startswith(("https://", "http://", "file://")), name
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
    yield "negative seed", lambda c: c.update(seed=-1)
    yield "peak fraction > 1", lambda c: c["features"].update(peak_max_frac=1.5)
    yield "split fractions missing one", lambda c: c["splits"].update(random_fracs=[0.8, 0.2])
    yield "variants without full", lambda c: c.update(variants=["exp"])
    yield "unknown method", lambda c: c.update(methods=["polarbear", "scvi"])
    yield "bad md5", lambda c: c["downloads"]["snare_rna_genes"].update(md5="xyz")
    yield "ftp url", lambda c: c["downloads"]["gencode_gtf"].update(url="ftp://x/y.gtf.gz")
    yield "download without url", lambda c: c["downloads"]["gencode_gtf"].pop("url")
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


@pytest.mark.parametrize("what,mutate", list(_mutations()), ids=[m[0] for m in _mutations()])
def test_schema_rejects_bad_config(schema, default_config, what, mutate):
    bad = copy.deepcopy(default_config)
    mutate(bad)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
