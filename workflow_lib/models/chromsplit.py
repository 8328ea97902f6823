"""Block-diagonal ("within-chromosome") linear layers for the scATAC VAE.

:class:`ChromSplitLinear` stores one weight matrix per chromosome block, so its memory is
``sum(in_i * out_i)`` instead of ``sum(in) * sum(out)`` for a dense layer with a mask.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import nn


def chrom_block_sizes(chroms: Sequence[str]) -> list[int]:
    """Run lengths of a chromosome-sorted feature list (e.g. ATAC ``var['chrom']``).

    Raises ValueError if a chromosome appears in two separate runs (features not sorted).
    """
    chroms = np.asarray(list(chroms), dtype=object)
    if chroms.size == 0:
        return []
    starts = np.flatnonzero(np.r_[True, chroms[1:] != chroms[:-1]])
    names = chroms[starts]
    if len(set(names)) != len(names):
        raise ValueError("features are not grouped by chromosome (a chromosome appears in separate runs)")
    return np.diff(np.r_[starts, chroms.size]).astype(int).tolist()


def proportional_sizes(total: int, in_sizes: Sequence[int]) -> list[int]:
    """Split ``total`` units over blocks proportionally to ``in_sizes`` (largest remainder), each >= 1.

    The result sums to ``max(total, len(in_sizes))``.
    """
    in_sizes = np.asarray(in_sizes, dtype=float)
    n = len(in_sizes)
    if n == 0:
        return []
    if total <= n:
        return [1] * n
    # one unit guaranteed per block, the rest shared proportionally
    rest = total - n
    share = rest * in_sizes / in_sizes.sum()
    base = np.floor(share).astype(int)
    left = rest - base.sum()
    order = np.argsort(-(share - base), kind="stable")
    base[order[:left]] += 1
    return (base + 1).tolist()


class ChromSplitLinear(nn.Module):
    """Linear layer whose input block i connects only to output block i (one weight per block)."""

    def __init__(self, in_sizes: Sequence[int], out_sizes: Sequence[int], bias: bool = True):
        super().__init__()
        if len(in_sizes) != len(out_sizes):
            raise ValueError("in_sizes and out_sizes must have the same number of blocks")
        if min(list(in_sizes) + list(out_sizes), default=1) < 1:
            raise ValueError("every block needs at least one input and one output unit")
        self.in_sizes = [int(s) for s in in_sizes]
        self.out_sizes = [int(s) for s in out_sizes]
        self.in_features = sum(self.in_sizes)
        self.out_features = sum(self.out_sizes)
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.empty(o, i)) for i, o in zip(self.in_sizes, self.out_sizes)]
        )
        self.bias = nn.Parameter(torch.empty(self.out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # same scheme as nn.Linear, with the fan-in of each block
        offs = np.r_[0, np.cumsum(self.out_sizes)]
        for k, w in enumerate(self.weights):
            nn.init.kaiming_uniform_(w, a=math.sqrt(5))
            if self.bias is not None:
                bound = 1.0 / math.sqrt(w.shape[1])
                with torch.no_grad():
                    self.bias[offs[k]:offs[k + 1]].uniform_(-bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(x, self.in_sizes, dim=-1)
        out = torch.cat([p @ w.t() for p, w in zip(parts, self.weights)], dim=-1)
        if self.bias is not None:
            out = out + self.bias
        return out

    def to_dense_weight(self) -> torch.Tensor:
        """The equivalent dense (out_features, in_features) block-diagonal weight (for tests/inspection)."""
        return torch.block_diag(*[w for w in self.weights])

    def extra_repr(self) -> str:
        return f"blocks={len(self.in_sizes)}, in_features={self.in_features}, out_features={self.out_features}"


class BlockLayerNorm(nn.Module):
    """Layer normalisation applied separately to each block of units (one LayerNorm per chromosome).

    The authors' ATAC VAE normalises each chromosome's hidden units on their own; a single
    LayerNorm over all blocks would mix chromosomes.
    """

    def __init__(self, sizes: Sequence[int], eps: float = 1e-5):
        super().__init__()
        self.sizes = [int(s) for s in sizes]
        n = sum(self.sizes)
        self.weight = nn.Parameter(torch.ones(n))
        self.bias = nn.Parameter(torch.zeros(n))
        self.eps = float(eps)
        self._equal = len(set(self.sizes)) == 1
        block = np.repeat(np.arange(len(self.sizes)), self.sizes)
        self.register_buffer("_block", torch.from_numpy(block), persistent=False)
        self.register_buffer("_count", torch.tensor(self.sizes, dtype=torch.float32), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._equal:  # one reshaped call when all blocks have the same width
            k = self.sizes[0]
            h = x.reshape(*x.shape[:-1], len(self.sizes), k)
            h = torch.nn.functional.layer_norm(h, (k,), eps=self.eps).reshape(x.shape)
        else:  # per-block mean and (biased) variance by segment sums: a few kernels, no loop
            x2 = x.reshape(-1, x.shape[-1])
            seg = x2.new_zeros(x2.shape[0], len(self.sizes))
            mean = seg.index_add(1, self._block, x2) / self._count
            d = x2 - mean[:, self._block]
            var = seg.index_add(1, self._block, d * d) / self._count
            h = (d * torch.rsqrt(var[:, self._block] + self.eps)).reshape(x.shape)
        return h * self.weight + self.bias

    def extra_repr(self) -> str:
        return f"blocks={len(self.sizes)}, features={sum(self.sizes)}"
