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
