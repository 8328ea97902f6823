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


# Blocks are multiplied in one batched product (zero-padded to the largest block) when the padded
# weight has at most this many elements, or wastes at most FUSE_MAX_WASTE of them; otherwise in a
# loop over blocks. The demo's layers and the full-scale hidden-to-hidden layers are fused (one
# kernel instead of one per chromosome); the full-scale 220k-peak input/output layers, whose
# blocks differ ~3x in size, keep exact per-block storage.
FUSE_MAX_ELEMENTS = 4_000_000
FUSE_MAX_WASTE = 1.25


def fuse_blocks(in_sizes: Sequence[int], out_sizes: Sequence[int]) -> bool:
    """Whether a block-diagonal layer with these blocks is stored padded and run as one batched product."""
    padded = len(in_sizes) * max(in_sizes) * max(out_sizes)
    return padded <= FUSE_MAX_ELEMENTS or padded <= FUSE_MAX_WASTE * sum(i * o for i, o in zip(in_sizes, out_sizes))


class ChromSplitLinear(nn.Module):
    """Linear layer whose input block i connects only to output block i (one weight per block).

    Storage is either one zero-padded ``(blocks, max out, max in)`` parameter multiplied with one
    batched product (``fused``, see :func:`fuse_blocks`) or one parameter per block. Padding
    entries get zero gradients and stay zero. Either way the state dict holds one
    ``weights.<k>`` matrix of shape ``(out_k, in_k)`` per block, so checkpoints do not depend on
    the storage; :meth:`blocks` gives the per-block weights (views of the padded parameter).
    """

    def __init__(self, in_sizes: Sequence[int], out_sizes: Sequence[int], bias: bool = True,
                 fused: bool | None = None):
        super().__init__()
        if len(in_sizes) != len(out_sizes):
            raise ValueError("in_sizes and out_sizes must have the same number of blocks")
        if min(list(in_sizes) + list(out_sizes), default=1) < 1:
            raise ValueError("every block needs at least one input and one output unit")
        self.in_sizes = [int(s) for s in in_sizes]
        self.out_sizes = [int(s) for s in out_sizes]
        self.in_features = sum(self.in_sizes)
        self.out_features = sum(self.out_sizes)
        self.fused = fuse_blocks(self.in_sizes, self.out_sizes) if fused is None else bool(fused)
        if self.fused:
            k, i_max, o_max = len(self.in_sizes), max(self.in_sizes), max(self.out_sizes)
            self.weight = nn.Parameter(torch.zeros(k, o_max, i_max))
            # input gather (blocks, max in) into [x, 0]: padding reads the appended zero column;
            # output gather: position of every real output unit in the flattened (blocks * max out)
            in_index = np.full((k, i_max), self.in_features, dtype=np.int64)
            out_index = np.empty(self.out_features, dtype=np.int64)
            i0 = o0 = 0
            for b, (i, o) in enumerate(zip(self.in_sizes, self.out_sizes)):
                in_index[b, :i] = np.arange(i0, i0 + i)
                out_index[o0:o0 + o] = b * o_max + np.arange(o)
                i0, o0 = i0 + i, o0 + o
            self.register_buffer("_in_index", torch.from_numpy(in_index), persistent=False)
            self.register_buffer("_out_index", torch.from_numpy(out_index), persistent=False)
        else:
            self.weights = nn.ParameterList(
                [nn.Parameter(torch.empty(o, i)) for i, o in zip(self.in_sizes, self.out_sizes)]
            )
        self.bias = nn.Parameter(torch.empty(self.out_features)) if bias else None
        self.reset_parameters()

    def blocks(self) -> list[torch.Tensor]:
        """The ``(out_k, in_k)`` weight of every block (views of the padded weight when fused)."""
        if self.fused:
            return [self.weight[b, :o, :i] for b, (i, o) in enumerate(zip(self.in_sizes, self.out_sizes))]
        return list(self.weights)

    def reset_parameters(self) -> None:
        # same scheme as nn.Linear, with the fan-in of each block
        offs = np.r_[0, np.cumsum(self.out_sizes)]
        with torch.no_grad():
            for k, w in enumerate(self.blocks()):
                nn.init.kaiming_uniform_(w, a=math.sqrt(5))
                if self.bias is not None:
                    bound = 1.0 / math.sqrt(w.shape[1])
                    self.bias[offs[k]:offs[k + 1]].uniform_(-bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused:
            lead = x.shape[:-1]
            x2 = torch.nn.functional.pad(x.reshape(-1, self.in_features), (0, 1))
            n = x2.shape[0]
            # index_select (its backward is one index_add) rather than advanced indexing
            xb = x2.index_select(1, self._in_index.reshape(-1)).reshape(n, *self._in_index.shape)
            out = torch.bmm(xb.transpose(0, 1), self.weight.transpose(1, 2))   # (blocks, cells, max out)
            out = out.transpose(0, 1).reshape(n, -1).index_select(1, self._out_index).reshape(*lead, -1)
        else:
            parts = torch.split(x, self.in_sizes, dim=-1)
            out = torch.cat([p @ w.t() for p, w in zip(parts, self.weights)], dim=-1)
        if self.bias is not None:
            out = out + self.bias
        return out

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if self.fused:  # one (out_k, in_k) matrix per block, as unfused storage writes them
            padded = destination.pop(prefix + "weight")
            for b, (i, o) in enumerate(zip(self.in_sizes, self.out_sizes)):
                w = padded[b, :o, :i]
                destination[f"{prefix}weights.{b}"] = w if keep_vars else w.clone()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        if self.fused:
            keys = [f"{prefix}weights.{b}" for b in range(len(self.in_sizes))]
            if all(k in state_dict for k in keys):
                padded = torch.zeros_like(self.weight)
                for b, (key, i, o) in enumerate(zip(keys, self.in_sizes, self.out_sizes)):
                    w = state_dict.pop(key)
                    if tuple(w.shape) != (o, i):
                        error_msgs.append(f"size mismatch for {key}: copying a param with shape "
                                          f"{tuple(w.shape)}, the current model has {(o, i)}")
                        continue
                    padded[b, :o, :i] = w
                state_dict[prefix + "weight"] = padded
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def to_dense_weight(self) -> torch.Tensor:
        """The equivalent dense (out_features, in_features) block-diagonal weight (for tests/inspection)."""
        return torch.block_diag(*self.blocks())

    def extra_repr(self) -> str:
        return (f"blocks={len(self.in_sizes)}, in_features={self.in_features}, "
                f"out_features={self.out_features}, fused={self.fused}")


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
            d = x2 - mean.index_select(1, self._block)   # index_select: backward is one index_add
            var = seg.index_add(1, self._block, d * d) / self._count
            h = (d * torch.rsqrt(var + self.eps).index_select(1, self._block)).reshape(x.shape)
        return h * self.weight + self.bias

    def extra_repr(self) -> str:
        return f"blocks={len(self.sizes)}, features={sum(self.sizes)}"
