"""The trained Polarbear model as one object (workflow_lib.models.polarbear): encode -> translate ->
decode -> depth on small untrained networks, the depth regressor, a workflow grid point and the
model directory round trip."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import workflow_lib.models.polarbear as pbm
from workflow_lib.models.polarbear import PolarbearModel, latent_pairs, load_checked_vae, other
from workflow_lib.models.translator import LatentTranslator
from workflow_lib.models.vae import ATACVAE, RNAVAE, features_digest, save_module

GENES = [f"Gene{i}" for i in range(12)]
PEAKS = [f"chr1:{1000 + 500 * i}-{1300 + 500 * i}" for i in range(7)] + \
        [f"chr2:{1000 + 500 * i}-{1300 + 500 * i}" for i in range(5)]
CATS = {"rna": ["snare", "zeisel"], "atac": ["snare", "li"]}


def _modules(seed=0):
    torch.manual_seed(seed)
    rna = RNAVAE(len(GENES), 2, 4, hidden=8, batch_categories=CATS["rna"], features_sha1=features_digest(GENES))
    atac = ATACVAE(len(PEAKS), 2, 3, [7, 5], depth_ref=5.0, batch_categories=CATS["atac"],
                   features_sha1=features_digest(PEAKS))
    for m in (rna, atac):          # non-trivial outputs from an untrained decoder
        with torch.no_grad():
            for p in m.parameters():
                p.add_(0.3 * torch.randn_like(p))
    return rna, atac, LatentTranslator(4, 3), LatentTranslator(3, 4)


def _data(n=20, seed=0):
    rng = np.random.default_rng(seed)
    X = sp.csr_matrix(rng.poisson(2.0, (n, len(GENES))).astype(np.float32))
    Y = sp.csr_matrix((rng.random((n, len(PEAKS))) < rng.uniform(0.1, 0.6, (n, 1))).astype(np.float32))
    onehot = np.eye(2, dtype=np.float32)[np.arange(n) % 2]
    return X, Y, onehot


@pytest.fixture()
def model():
    return PolarbearModel(*_modules(), device="cpu")


def test_modalities_and_translator_sizes_are_checked():
    assert other("rna") == "atac" and other("atac") == "rna"
    with pytest.raises(ValueError, match="unknown modality 'protein'"):
        other("protein")
    rna, atac, t_xy, _ = _modules()
    with pytest.raises(ValueError, match="translator sizes do not match"):
        PolarbearModel(rna, atac, t_xy, LatentTranslator(3, 5), device="cpu")


@torch.no_grad()
def test_inference_is_encode_translate_decode_in_blocks(model, monkeypatch):
    X, Y, oh = _data()
    mu_x, mu_y = model.encode("rna", X, oh), model.encode("atac", Y, oh)
    assert mu_x.shape == (20, 4) and mu_y.shape == (20, 3) and model.latent == {"rna": 4, "atac": 3}
    ref, _ = model.vae("rna").encode(torch.from_numpy(X.toarray()), torch.from_numpy(oh))
    np.testing.assert_allclose(mu_x, ref.numpy(), rtol=1e-5, atol=1e-6)
    # ATAC input is binarised on the fly; encoding in blocks of 7 cells gives the same codes
    np.testing.assert_array_equal(model.encode("atac", Y * 3, oh), mu_y)
    monkeypatch.setattr(pbm, "INFER_BATCH", 7)
    np.testing.assert_allclose(model.encode("rna", X, oh), mu_x, rtol=1e-5, atol=1e-6)
    z = model.translate("rna", mu_x)
    tr = model.modules["translator_rna_to_atac"]
    np.testing.assert_allclose(z, tr(torch.from_numpy(mu_x)).numpy(), rtol=1e-6)
    freq = model.predict_rna(Y, oh, oh)
    np.testing.assert_allclose(freq, model.decode("rna", model.translate("atac", mu_y), oh), rtol=1e-6)
    np.testing.assert_allclose(freq.sum(1), 1.0, rtol=1e-5)
    pairs = model.align(X, oh, Y, oh)
    assert list(pairs) == ["rna_query", "atac_reference", "atac_query", "rna_reference"]
    for k, v in latent_pairs(model, mu_x, mu_y).items():
        np.testing.assert_allclose(pairs[k], v, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pairs["rna_reference"], mu_x, rtol=1e-5, atol=1e-6)
    assert model.translate("rna", np.zeros((0, 4))).shape == (0, 3)


@torch.no_grad()
def test_depth_regressor_scales_the_atac_prediction(model):
    X, Y, oh = _data(40)
    with pytest.raises(ValueError, match="no depth regressor"):
        model.predict_atac(X, oh, oh)
    fit = model.fit_depth_regressor(X, oh, Y, np.arange(30), [0.1, 1.0, 10.0])
    assert fit["alpha"] in (0.1, 1.0, 10.0) and fit["train_r2"] <= 1.0
    raw, norm, d = model.predict_atac(X, oh, oh)
    assert raw.shape == norm.shape == (40, len(PEAKS)) and d.shape == (40,) and (d > 0).all()
    np.testing.assert_allclose(d, model.atac_depth(X, model.encode("rna", X, oh)), rtol=1e-6)
    expected = model.vae("atac").depth_prob(torch.from_numpy(norm), torch.from_numpy(d).reshape(-1, 1)).numpy()
    np.testing.assert_allclose(raw, expected, rtol=1e-6)
    assert ((raw >= 0) & (raw <= 1)).all() and not np.allclose(raw, norm)


def test_model_directory_round_trip(model, tmp_path):
    X, Y, oh = _data(40)
    with pytest.raises(ValueError, match="fit the depth regressor"):
        model.save(tmp_path / "early", rna_features=GENES, atac_features=PEAKS, card={})
    model.fit_depth_regressor(X, oh, Y, np.arange(40), [1.0])
    model.save(tmp_path / "model", rna_features=GENES, atac_features=PEAKS,
               card={"point": "latent4_beta1", "default_batch": {"rna": "snare", "atac": "snare"}})
    back = PolarbearModel.load(tmp_path / "model", device="cpu")
    assert back.point == "latent4_beta1" and back.path == tmp_path / "model"
    assert back.features("rna") == GENES and back.features("atac") == PEAKS
    assert back.batch_categories("atac") == CATS["atac"]
    for a, b in zip(model.predict_atac(X, oh, oh), back.predict_atac(X, oh, oh)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(model.predict_rna(Y, oh, oh), back.predict_rna(Y, oh, oh), rtol=1e-5, atol=1e-7)


def test_a_workflow_grid_point_is_checked_against_the_data(tmp_path):
    """from_grid_point / load_checked_vae refuse VAEs trained on other features or batches."""
    g = tmp_path / "grid" / "latent4_beta1"
    rna, atac, t_xy, t_yx = _modules()
    for name, m in (("vae_rna", rna), ("vae_atac", atac), ("translator_rna_to_atac", t_xy),
                    ("translator_atac_to_rna", t_yx)):
        save_module(m, m.config(), g / f"{name}.pt")
    model = PolarbearModel.from_grid_point(g, GENES, PEAKS, CATS["rna"], CATS["atac"], device="cpu")
    assert model.point == "latent4_beta1" and model.features("atac") == PEAKS
    X, _, oh = _data()
    np.testing.assert_allclose(model.encode("rna", X, oh), PolarbearModel(rna, atac, t_xy, t_yx, device="cpu")
                               .encode("rna", X, oh), rtol=1e-6)
    assert load_checked_vae(g / "vae_rna.pt", "rna", GENES, CATS["rna"]).latent == 4
    with pytest.raises(ValueError, match="trained on other features"):
        load_checked_vae(g / "vae_rna.pt", "rna", GENES[::-1], CATS["rna"])
    with pytest.raises(ValueError, match=r"batch categories \['li', 'snare'\] differ"):
        PolarbearModel.from_grid_point(g, GENES, PEAKS, CATS["rna"], ["li", "snare"], device="cpu")
