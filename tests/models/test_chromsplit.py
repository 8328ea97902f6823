"""ChromSplitLinear equals a dense block-diagonal layer; block-size helpers."""

import numpy as np
import pytest
import torch

from workflow_lib.models import vae as vae_module
from workflow_lib.models import chromsplit
from workflow_lib.models.chromsplit import (BlockLayerNorm, ChromSplitLinear, _BlockDiagonalProduct, _block_views,
                                            chrom_block_sizes, proportional_sizes)


def test_chrom_block_sizes_run_lengths():
    assert chrom_block_sizes(["chr1"] * 3 + ["chr2"] * 2 + ["chr10"]) == [3, 2, 1]
    assert chrom_block_sizes([]) == []
    with pytest.raises(ValueError):
        chrom_block_sizes(["chr1", "chr2", "chr1"])


def test_proportional_sizes():
    sizes = proportional_sizes(100, [500, 300, 150, 50])
    assert sum(sizes) == 100 and sizes == sorted(sizes, reverse=True) and min(sizes) >= 1
    assert sizes[0] == pytest.approx(50, abs=1)
    tiny = proportional_sizes(3, [1000, 10, 10, 10, 10])
    assert tiny == [1, 1, 1, 1, 1]


def test_equals_block_diagonal_dense():
    torch.manual_seed(0)
    ins, outs = [5, 3, 7], [2, 4, 1]
    layer = ChromSplitLinear(ins, outs)
    x = torch.randn(6, sum(ins))
    dense = torch.nn.Linear(sum(ins), sum(outs))
    W = torch.zeros(sum(outs), sum(ins))
    r = c = 0
    for w, i, o in zip(layer.weights, ins, outs):
        W[r:r + o, c:c + i] = w.detach()
        r, c = r + o, c + i
    with torch.no_grad():
        dense.weight.copy_(W)
        dense.bias.copy_(layer.bias)
    torch.testing.assert_close(layer(x), dense(x))
    torch.testing.assert_close(layer.to_dense_weight(), W)
    # input of block 1 only influences outputs of block 1
    x2 = x.clone()
    x2[:, 5:8] += 1.0
    diff = (layer(x2) - layer(x)).abs().sum(0)
    assert diff[:2].max() == 0 and diff[6:].max() == 0 and diff[2:6].min() > 0


def test_memory_scales_with_blocks():
    ins = [1000] * 19
    outs = proportional_sizes(190, ins)
    layer = ChromSplitLinear(ins, outs, bias=False)
    n_params = sum(p.numel() for p in layer.parameters())
    assert n_params == sum(i * o for i, o in zip(ins, outs)) == 19 * 1000 * 10
    assert n_params < sum(ins) * sum(outs) / 10


def _ref_block_layer_norm(ln, x):
    """Per-block F.layer_norm and the affine part, recorded by autograd (the reference)."""
    h = torch.cat([torch.nn.functional.layer_norm(p, (p.shape[-1],), eps=ln.eps)
                   for p in torch.split(x, ln.sizes, -1)], -1)
    return h * ln.weight + ln.bias


def random_affine_layer_norm(sizes, seed):
    """A BlockLayerNorm with a non-trivial affine part (scale in [0.5, 1.5], shift in [-1, 1])."""
    torch.manual_seed(seed)
    ln = BlockLayerNorm(sizes)
    with torch.no_grad():
        ln.weight.uniform_(0.5, 1.5)
        ln.bias.uniform_(-1, 1)
    return ln


@pytest.mark.parametrize("sizes", [[4, 4, 4], [5, 7, 3, 1]])
def test_block_layer_norm_normalises_each_block_alone(sizes):
    ln = random_affine_layer_norm(sizes, seed=2)
    x = torch.randn(6, sum(sizes)) * 4 + 2
    torch.testing.assert_close(ln(x), _ref_block_layer_norm(ln, x))
    # a shift of one block's inputs changes nothing (each block is centred on its own)
    x2 = x.clone()
    x2[:, :sizes[0]] += 10.0
    torch.testing.assert_close(ln(x2), ln(x), atol=1e-4, rtol=1e-4)


# ----------------------------------------------------------------------------------------------
# The fused implementations (one autograd node per layer) against plain
# autograd references: the per-block products and per-block F.layer_norm the layers replaced.

def block_grads(layer):
    """Each block's weight gradient, as (out, in) views of the chunk gradients."""
    return chromsplit._block_views([w.grad for w in layer.weight_chunks], layer._layout)


class _RefChromSplitLinear(torch.nn.Module):
    """The earlier implementation: split -> one product per block -> cat, recorded by autograd."""

    def __init__(self, in_sizes, out_sizes):
        super().__init__()
        self.in_sizes = list(in_sizes)
        self.weights = torch.nn.ParameterList([torch.nn.Parameter(torch.randn(o, i)) for i, o in zip(in_sizes, out_sizes)])
        self.bias = torch.nn.Parameter(torch.randn(sum(out_sizes)))

    @classmethod
    def like(cls, layer: ChromSplitLinear):
        ref = cls(layer.in_sizes, layer.out_sizes)
        ref.load_state_dict(layer.state_dict())
        return ref

    def forward(self, x):
        parts = torch.split(x, self.in_sizes, dim=-1)
        return torch.cat([p @ w.t() for p, w in zip(parts, self.weights)], dim=-1) + self.bias


class _RefBlockLayerNorm(torch.nn.Module):
    def __init__(self, sizes, eps=1e-5):
        super().__init__()
        self.sizes, self.eps = list(sizes), eps
        self.weight = torch.nn.Parameter(torch.ones(sum(sizes)))
        self.bias = torch.nn.Parameter(torch.zeros(sum(sizes)))

    def forward(self, x):
        return _ref_block_layer_norm(self, x)


@pytest.mark.parametrize("lead", [(7,), (2, 5)])
def test_fused_chrom_split_linear_matches_per_block_autograd(lead):
    torch.manual_seed(3)
    ins, outs = [40, 3, 17, 1], [6, 2, 9, 1]
    layer = ChromSplitLinear(ins, outs)
    ref = _RefChromSplitLinear.like(layer)
    x = torch.randn(*lead, sum(ins), requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    y, y_ref = layer(x), ref(x_ref)
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(y)
    y.backward(g)
    y_ref.backward(g)
    torch.testing.assert_close(x.grad, x_ref.grad, atol=1e-5, rtol=1e-5)
    for g, w_ref in zip(block_grads(layer), ref.weights):
        torch.testing.assert_close(g, w_ref.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(layer.bias.grad, ref.bias.grad, atol=1e-5, rtol=1e-5)


def test_fused_layers_pass_gradcheck_in_float64():
    torch.manual_seed(4)
    layer = ChromSplitLinear([4, 2, 3], [2, 3, 1]).double()
    x = torch.randn(3, 9, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, b, *w: _BlockDiagonalProduct.apply(a, layer._layout, _block_views(w, layer._layout), b, *w),
        (x, layer.bias, *layer.weight_chunks))
    ln = random_affine_layer_norm([4, 2, 5], seed=4).double()
    x = torch.randn(3, 11, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ln, (x,))


def test_frozen_layer_and_data_input_get_no_gradient():
    layer = ChromSplitLinear([3, 2], [2, 2]).requires_grad_(False)
    x = torch.randn(4, 5, requires_grad=True)
    layer(x).sum().backward()
    assert x.grad is not None and layer.bias.grad is None and all(w.grad is None for w in layer.weight_chunks)
    layer.requires_grad_(True)
    layer(torch.randn(4, 5)).sum().backward()  # data input: only the layer's own gradients
    assert all(w.grad is not None for w in layer.weight_chunks) and layer.bias.grad is not None


@pytest.mark.parametrize("sizes", [[5, 7, 3, 1], [4, 4]])
def test_fused_block_layer_norm_matches_per_block_autograd(sizes):
    ln = random_affine_layer_norm(sizes, seed=5)
    x = (torch.randn(2, 6, sum(sizes)) * 3 + 1).requires_grad_(True)
    x_ref = x.detach().clone().requires_grad_(True)
    y = ln(x)
    y_ref = _ref_block_layer_norm(ln, x_ref)
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(y)
    (w_grad, b_grad) = torch.autograd.grad(y, (ln.weight, ln.bias), g, retain_graph=True)
    (w_grad_ref, b_grad_ref) = torch.autograd.grad(y_ref, (ln.weight, ln.bias), g, retain_graph=True)
    y.backward(g)
    y_ref.backward(g)
    torch.testing.assert_close(x.grad, x_ref.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(w_grad, w_grad_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(b_grad, b_grad_ref, atol=1e-5, rtol=1e-5)


def test_state_dict_keeps_one_entry_per_block_and_loads_strictly():
    layer = ChromSplitLinear([3, 2], [4, 1])
    sd = layer.state_dict()
    assert sorted(sd) == ["bias", "weights.0", "weights.1"]
    assert sd["weights.0"].shape == (4, 3) and sd["weights.1"].shape == (1, 2)
    other = ChromSplitLinear([3, 2], [4, 1])
    other.load_state_dict(sd)
    torch.testing.assert_close(other.to_dense_weight(), layer.to_dense_weight())
    torch.testing.assert_close(other.bias, layer.bias)
    # nested in a model, with the per-block keys a model saved by the earlier implementation has
    net = torch.nn.Sequential(torch.nn.Linear(2, 5), ChromSplitLinear([3, 2], [4, 1]))
    net.load_state_dict({"0.weight": torch.zeros(5, 2), "0.bias": torch.zeros(5),
                         **{f"1.{k}": v for k, v in sd.items()}})
    torch.testing.assert_close(net[1].weights[0], sd["weights.0"])
    with pytest.raises(RuntimeError, match="Missing key.*weights.1"):
        other.load_state_dict({"weights.0": sd["weights.0"], "bias": sd["bias"]})
    with pytest.raises(RuntimeError, match="Unexpected key.*weights.2"):
        other.load_state_dict({**sd, "weights.2": torch.zeros(1, 1)})
    with pytest.raises(RuntimeError, match="size mismatch for weights.1"):
        other.load_state_dict({**sd, "weights.1": torch.zeros(2, 2)})


@pytest.mark.parametrize("depth_model", ["linear", "complement"])
def test_atac_vae_loss_and_gradients_match_the_per_block_implementation(monkeypatch, depth_model):
    """The whole ATAC VAE (5 block-diagonal layers, 5 block LayerNorms) gives the same loss and
    gradients as the same weights in a model built from the per-block reference layers. In
    float64, so that a difference is one of the mathematics, not of float32 summation order
    (in float32 the largest gradient difference is ~3e-5 relative)."""
    chroms = [30, 7, 12, 1, 5]
    torch.manual_seed(6)
    fused = vae_module.ATACVAE(sum(chroms), 2, 4, chroms, depth_ref=8.0, depth_model=depth_model, dropout=0.0)
    with torch.no_grad():  # non-trivial LayerNorm affines
        for name, p in fused.named_parameters():
            if name.endswith("1.weight") and p.dim() == 1:
                p.uniform_(0.5, 1.5)
    monkeypatch.setattr(vae_module, "ChromSplitLinear", _RefChromSplitLinear)
    monkeypatch.setattr(vae_module, "BlockLayerNorm", _RefBlockLayerNorm)
    ref = vae_module.ATACVAE(sum(chroms), 2, 4, chroms, depth_ref=8.0, depth_model=depth_model, dropout=0.0)
    ref.load_state_dict(fused.state_dict())
    fused, ref = fused.double(), ref.double()
    y = (torch.rand(9, sum(chroms)) < 0.3).double()
    b = torch.eye(2, dtype=torch.float64)[torch.arange(9) % 2]
    size = y.sum(1) / 8.0
    losses = []
    for model in (fused, ref):
        model.eval()  # z = mean: both see the same latent
        nll, kl = model.loss_terms(y, b, size)
        loss = (nll + kl).mean()
        loss.backward()
        losses.append(loss)
    torch.testing.assert_close(losses[0], losses[1], atol=1e-10, rtol=1e-10)
    ref_grads = {k: p.grad for k, p in ref.named_parameters()}
    fused_grads = {}
    for name, m in fused.named_modules():
        prefix = name + "." if name else ""
        if isinstance(m, ChromSplitLinear):
            fused_grads.update({f"{prefix}weights.{k}": g for k, g in enumerate(block_grads(m))})
            fused_grads[prefix + "bias"] = m.bias.grad
        else:
            fused_grads.update({prefix + k: p.grad for k, p in m.named_parameters(recurse=False)})
    assert fused_grads.keys() == ref_grads.keys()
    for name, g in fused_grads.items():
        torch.testing.assert_close(g, ref_grads[name], atol=1e-10, rtol=1e-10, msg=name)


def test_chunks_group_consecutive_blocks_under_the_cap():
    assert chromsplit.chunk_blocks([3, 4, 10, 2, 2], 6) == [[3], [4], [10], [2, 2]]
    assert chromsplit.chunk_blocks([1, 2, 3], 100) == [[1, 2, 3]]


def test_layers_stored_in_several_chunks_compute_and_save_the_same(monkeypatch):
    """Weight storage (one chunk per layer on the demo, several at full scale) changes neither
    the products, the gradients nor the state dict."""
    ins, outs = [6, 3, 5, 2], [4, 2, 3, 2]
    torch.manual_seed(8)
    one = ChromSplitLinear(ins, outs)
    monkeypatch.setattr(chromsplit, "MAX_CHUNK_NUMEL", 15)
    many = ChromSplitLinear(ins, outs)
    assert len(one.weight_chunks) == 1 and [w.numel() for w in many.weight_chunks] == [24, 6, 15, 4]
    many.load_state_dict(one.state_dict())
    assert {k: v.shape for k, v in many.state_dict().items()} == {k: v.shape for k, v in one.state_dict().items()}
    x = torch.randn(5, sum(ins))
    torch.testing.assert_close(many(x), one(x), atol=0, rtol=0)
    many(x).square().sum().backward()
    one(x).square().sum().backward()
    for a, b in zip(block_grads(many), block_grads(one)):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    many.weight_chunks[1].requires_grad_(False)  # a frozen chunk gets no gradient, the others do
    many.zero_grad(set_to_none=True)
    many(x).sum().backward()
    assert [w.grad is None for w in many.weight_chunks] == [False, True, False, False]


def test_cached_block_views_follow_the_weights():
    """The block matrices are views made once per storage: updates in place (the optimiser),
    load_state_dict, a new storage (``.data =``) and ``.to()`` all reach the output."""
    torch.manual_seed(6)
    layer = ChromSplitLinear([4, 2, 3], [2, 3, 1])
    x = torch.randn(5, 9)

    def dense():
        return x @ layer.to_dense_weight().T + layer.bias

    torch.testing.assert_close(layer(x), dense())
    first = layer._block_matrices(layer.weight_chunks)
    assert layer._block_matrices(layer.weight_chunks) is first  # reused while the storage is the same
    opt = torch.optim.Adam(layer.parameters(), lr=0.1)
    layer(x).pow(2).sum().backward()
    opt.step()  # in place
    torch.testing.assert_close(layer(x), dense())
    other = ChromSplitLinear([4, 2, 3], [2, 3, 1])
    layer.load_state_dict(other.state_dict())
    torch.testing.assert_close(layer(x), other(x))
    layer.weight_chunk_0.data = torch.randn_like(layer.weight_chunk_0)  # a new storage
    torch.testing.assert_close(layer(x), dense())
    layer.double()
    assert layer._views is None  # dropped with the old storage
    torch.testing.assert_close(layer(x.double()), x.double() @ layer.to_dense_weight().T + layer.bias)
