"""ChromSplitLinear equals a dense block-diagonal layer; block-size helpers."""

import numpy as np
import pytest
import torch

from workflow_lib.models.chromsplit import BlockLayerNorm, ChromSplitLinear, chrom_block_sizes, proportional_sizes


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
    for w, i, o in zip(layer.blocks(), ins, outs):
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
    layer = ChromSplitLinear(ins, outs, bias=False, fused=False)
    n_params = sum(p.numel() for p in layer.parameters())
    assert n_params == sum(i * o for i, o in zip(ins, outs)) == 19 * 1000 * 10
    assert n_params < sum(ins) * sum(outs) / 10


def _pair(ins, outs, seed=0):
    """The same layer (same initial weights) stored padded/fused and per block."""
    torch.manual_seed(seed)
    fused = ChromSplitLinear(ins, outs, fused=True)
    torch.manual_seed(seed)
    loop = ChromSplitLinear(ins, outs, fused=False)
    return fused, loop


@pytest.mark.parametrize("ins,outs", [([5, 3, 7], [2, 4, 1]), ([4, 4], [3, 3]), ([9], [2])])
def test_fused_equals_per_block_values_and_gradients(ins, outs):
    fused, loop = _pair(ins, outs)
    for a, b in zip(fused.blocks(), loop.blocks()):  # same initialisation, block by block
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    x = torch.randn(2, 6, sum(ins), requires_grad=True)   # extra leading dimension
    x2 = x.detach().clone().requires_grad_(True)
    g = torch.randn(2, 6, sum(outs))
    yf, yl = fused(x), loop(x2)
    assert yf.shape == (2, 6, sum(outs))
    torch.testing.assert_close(yf, yl, rtol=1e-6, atol=1e-6)
    (yf * g).sum().backward()
    (yl * g).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(fused.bias.grad, loop.bias.grad, rtol=1e-6, atol=1e-6)
    grads = [fused.weight.grad[b, :o, :i] for b, (i, o) in enumerate(zip(ins, outs))]
    for a, b in zip(grads, loop.weights):
        torch.testing.assert_close(a, b.grad, rtol=1e-6, atol=1e-6)
    # padding entries get exactly zero gradient, so an optimiser keeps them at zero
    pad = torch.ones_like(fused.weight, dtype=torch.bool)
    for b, (i, o) in enumerate(zip(ins, outs)):
        pad[b, :o, :i] = False
    assert float(fused.weight.grad[pad].abs().sum()) == 0.0 and float(fused.weight.detach()[pad].abs().sum()) == 0.0


def test_state_dict_is_per_block_whatever_the_storage():
    ins, outs = [5, 3, 7], [2, 4, 1]
    fused, loop = _pair(ins, outs, seed=3)
    sd_f, sd_l = fused.state_dict(), loop.state_dict()
    assert sorted(sd_f) == sorted(sd_l) == ["bias", "weights.0", "weights.1", "weights.2"]
    for k in sd_l:
        torch.testing.assert_close(sd_f[k], sd_l[k], rtol=0, atol=0)
    # a checkpoint of one storage loads into the other (strict), values block by block
    other_f, other_l = ChromSplitLinear(ins, outs, fused=True), ChromSplitLinear(ins, outs, fused=False)
    other_f.load_state_dict(sd_l)
    other_l.load_state_dict(sd_f)
    x = torch.randn(4, sum(ins))
    torch.testing.assert_close(other_f(x), loop(x), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(other_l(x), fused(x), rtol=1e-6, atol=1e-6)
    # wrong block shapes and missing blocks are refused as for any module
    bad = dict(sd_l, **{"weights.1": torch.zeros(3, 3)})
    with pytest.raises(RuntimeError, match="weights.1"):
        ChromSplitLinear(ins, outs, fused=True).load_state_dict(bad)
    with pytest.raises(RuntimeError, match="weight"):
        ChromSplitLinear(ins, outs, fused=True).load_state_dict({"bias": sd_l["bias"], "weights.0": sd_l["weights.0"]})


def test_fusing_rule_keeps_large_uneven_layers_per_block():
    from workflow_lib.models.chromsplit import fuse_blocks
    assert fuse_blocks([200] * 19, [35] * 19)                 # demo-sized: fused
    assert fuse_blocks([330] * 19, [330] * 19)                # full-scale hidden-to-hidden: fused
    uneven = [17000, 6000] + [11000] * 17                     # 220k peaks, blocks ~3x apart
    assert not fuse_blocks(uneven, [300] * 19)                # full-scale input layer: per block
    assert fuse_blocks([11000] * 19, [300] * 19)              # even blocks waste nothing


@pytest.mark.parametrize("sizes", [[4, 4, 4], [5, 7, 3, 1]])
def test_block_layer_norm_normalises_each_block_alone(sizes):
    torch.manual_seed(2)
    ln = BlockLayerNorm(sizes)
    with torch.no_grad():
        ln.weight.uniform_(0.5, 1.5)
        ln.bias.uniform_(-1, 1)
    x = torch.randn(6, sum(sizes)) * 4 + 2
    ref = torch.cat([torch.nn.functional.layer_norm(p, (p.shape[-1],)) for p in torch.split(x, sizes, -1)], -1)
    torch.testing.assert_close(ln(x), ref * ln.weight + ln.bias)
    # a shift of one block's inputs changes nothing (each block is centred on its own)
    x2 = x.clone()
    x2[:, :sizes[0]] += 10.0
    torch.testing.assert_close(ln(x2), ln(x), atol=1e-4, rtol=1e-4)
