"""GPU readiness without a GPU: training and prediction run on the ``meta`` device.

A tensor created on the CPU inside a forward or backward (a factory call without ``device=``)
would meet the model's meta tensors and fail, exactly as it would meet CUDA tensors on a GPU.
Every tensor factory call made while the model runs is also recorded: none may create a
non-scalar CPU tensor.
"""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from workflow_lib.data import SparseCellLoader
from workflow_lib.models.translator import LatentTranslator, TranslationModel, translation_loss
from workflow_lib.models.vae import ATACVAE, RNAVAE
from workflow_lib.polarbear import vae_loss_fn, vae_recon_loss

META = torch.device("meta")
FACTORIES = ("tensor", "zeros", "ones", "empty", "full", "arange", "randn", "rand", "randint", "eye",
             "linspace", "zeros_like", "ones_like", "empty_like", "full_like", "randn_like", "rand_like")


@pytest.fixture
def cpu_factory_calls(monkeypatch):
    """Record factory calls that create a CPU tensor with more than one element."""
    calls = []
    for name in FACTORIES:
        orig = getattr(torch, name)

        def wrapped(*a, _orig=orig, _name=name, **kw):
            out = _orig(*a, **kw)
            if isinstance(out, torch.Tensor) and out.device.type == "cpu" and out.numel() > 1:
                calls.append(_name)
            return out
        monkeypatch.setattr(torch, name, wrapped)
    return calls


def _data(n, m, counts, seed=0):
    X = sp.random(n, m, 0.2, format="csr", dtype=np.float32, random_state=seed)
    X.data[:] = np.ceil(X.data * 5) if counts else 1.0
    b = np.eye(2, dtype=np.float32)[np.random.default_rng(seed).integers(0, 2, n)]
    return X, b


def _models():
    torch.manual_seed(0)
    yield "rna", RNAVAE(40, 2, 3, input_transform="log1p"), True
    yield "rna_counts", RNAVAE(40, 2, 3, input_transform="counts"), True
    for depth in ("linear", "complement"):
        for inp in ("binary", "idf"):
            yield f"atac_{depth}_{inp}", ATACVAE(50, 2, 3, [20, 18, 12], depth_model=depth, input_transform=inp,
                                                 depth_ref=5.0), False


@pytest.mark.parametrize("name,model,counts", list(_models()), ids=lambda v: v if isinstance(v, str) else "")
def test_training_and_prediction_follow_the_model_device(name, model, counts, cpu_factory_calls):
    X, b = _data(16, model.n_genes if counts else model.n_peaks, counts)
    cov = {"b": b, "size": model.size_covariate(X)}
    model.to(META)
    tr = LatentTranslator(4, model.latent).to(META)
    cpu_factory_calls.clear()  # from here on: training and prediction
    loader = SparseCellLoader(X, np.arange(16), 8, True, 0, cov, device=META)
    model.train()
    for batch in loader:
        assert all(v.device == META for v in batch.values())
        loss = vae_loss_fn(1.0, 2)(model, batch, 1)
        assert loss.device == META
        loss.backward()
    assert all(p.grad is not None and p.grad.device == META for p in model.parameters())
    model.eval()
    with torch.no_grad():
        assert vae_recon_loss(model, batch).device == META
        mu, logvar = model.encode(batch["x"], batch["b"])
        norm = model.normalized(mu, batch["b"])
        assert {mu.device, logvar.device, norm.device} == {META}
        if not counts:
            assert model.depth_prob(norm, batch["size"].reshape(-1, 1)).device == META
    # translator onto this VAE (frozen target): gradients reach the translator only
    tm = TranslationModel(tr, model)
    rng = np.random.default_rng(1)
    cov_t = cov | {"z": rng.normal(size=(16, 4)).astype(np.float32),
                   "z_logvar": rng.normal(size=(16, 4)).astype(np.float32)}
    tm.train()
    for batch in SparseCellLoader(X, np.arange(16), 8, True, 0, cov_t, device=META):
        translation_loss(tm, batch).backward()
    assert all(p.grad.device == META for p in tr.parameters())
    assert cpu_factory_calls == []


def test_loader_pins_memory_only_with_cuda(monkeypatch):
    X, b = _data(6, 10, False)
    assert not SparseCellLoader(X, np.arange(6), 4, False, 0, {"b": b}).pin
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert SparseCellLoader(X, np.arange(6), 4, False, 0, {"b": b}, device="cuda").pin
    assert not SparseCellLoader(X, np.arange(6), 4, False, 0, {"b": b}, device="cpu").pin
