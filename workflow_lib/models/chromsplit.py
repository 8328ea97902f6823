"""Block-diagonal ("within-chromosome") linear layers for the scATAC VAE.

:class:`ChromSplitLinear` stores one weight matrix per chromosome block, so its memory is
``sum(in_i * out_i)`` instead of ``sum(in) * sum(out)`` for a dense layer with a mask.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
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


# Largest weight chunk of a block-diagonal layer, in elements (16 MB in float32). The blocks'
# matrices are stored in as few flat tensors as possible (few tensors for Adam: one per layer
# on the demo), but a chunk's gradient is a fresh allocation every step: above glibc's 32 MB
# mmap threshold every step page-faults it anew (full-scale steps at batch 16 were 2x slower
# with one 236 MB chunk for the input layer).
MAX_CHUNK_NUMEL = 4 * 2**20


def chunk_blocks(numels: Sequence[int], max_numel: int | None = None) -> list[list[int]]:
    """Consecutive blocks grouped into chunks of at most ``max_numel`` (default
    :data:`MAX_CHUNK_NUMEL`) elements (a larger block is a chunk of its own): the block sizes of
    each chunk."""
    max_numel = MAX_CHUNK_NUMEL if max_numel is None else max_numel
    chunks: list[list[int]] = []
    for n in numels:
        if chunks and sum(chunks[-1]) + n <= max_numel:
            chunks[-1].append(int(n))
        else:
            chunks.append([int(n)])
    return chunks


class _BlockDiagonalProduct(torch.autograd.Function):
    """``x @ block_diag(W_1, ..., W_n).T + bias``: one autograd node for the whole layer.

    The forward and backward loop over the blocks inside one call (3 small products per block),
    instead of a split, n products, n transposes and a concatenation recorded one by one. The
    block matrices live in flat weight chunks (``layout`` = (input sizes, output sizes, block
    sizes of each chunk); ``views`` = each block's (out, in) matrix as a view of its chunk, made
    by the layer once per storage); each chunk's gradient is written in place, block by block. The weight
    gradients of frozen chunks and the input gradient of a data input are skipped.
    """

    @staticmethod
    def forward(ctx, x, layout, views, bias, *chunks):
        in_sizes, out_sizes, _ = layout
        lead = x.shape[:-1]
        x2 = x.reshape(-1, x.shape[-1])
        # F.linear(x, w) is x @ w.T through the same product as torch.mm, without a Python-level
        # transpose per block
        out = torch.cat([F.linear(xk, wk) for xk, wk in zip(x2.split(in_sizes, 1), views)], dim=1)
        if bias is not None:
            out += bias
        ctx.layout = layout
        ctx.views = views
        ctx.has_bias = bias is not None
        # the chunks are saved for autograd's check that they were not modified before backward
        ctx.save_for_backward(x2, *chunks)
        return out.reshape(*lead, out.shape[-1])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        x2, *chunks = ctx.saved_tensors
        layout = ctx.layout
        in_sizes, out_sizes, chunk_sizes = layout
        g = grad_out.reshape(-1, grad_out.shape[-1])
        gs = g.split(out_sizes, 1)
        xs = x2.split(in_sizes, 1)
        grad_x = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.cat([torch.mm(gk, wk) for gk, wk in zip(gs, ctx.views)], dim=1)
            grad_x = grad_x.reshape(grad_out.shape[:-1] + (-1,))
        grad_chunks = []
        k = 0
        for chunk, sizes, need in zip(chunks, chunk_sizes, ctx.needs_input_grad[4:]):
            grad = None
            if need:
                grad = torch.empty_like(chunk)
                for j, dst in enumerate(grad.split(sizes)):
                    torch.mm(gs[k + j].t(), xs[k + j], out=dst.view(out_sizes[k + j], in_sizes[k + j]))
            grad_chunks.append(grad)
            k += len(sizes)
        if ctx.has_bias and ctx.needs_input_grad[3]:
            grad_b = g.sum(0)
        return (grad_x, None, None, grad_b, *grad_chunks)


def _block_views(chunks, layout) -> list[torch.Tensor]:
    """The (out, in) matrix of each block, as views of the flat chunks."""
    in_sizes, out_sizes, chunk_sizes = layout
    flat = [w for chunk, sizes in zip(chunks, chunk_sizes) for w in chunk.split(sizes)]
    return [w.view(o, i) for w, i, o in zip(flat, in_sizes, out_sizes)]


class ChromSplitLinear(nn.Module):
    """Linear layer whose input block i connects only to output block i (one weight per block).

    The block matrices live in a few flat parameters (``weight_chunk_0``, ..., see
    :data:`MAX_CHUNK_NUMEL`; one autograd node per layer, :class:`_BlockDiagonalProduct`).
    ``weights`` gives them as (out, in) views, and the state dict keeps one entry per block
    (``weights.0``, ``weights.1``, ..., ``bias``), so saved models do not depend on this storage.
    """

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
        chunks = chunk_blocks([i * o for i, o in zip(self.in_sizes, self.out_sizes)])
        self._layout = (tuple(self.in_sizes), tuple(self.out_sizes), tuple(tuple(c) for c in chunks))
        # registered on the module itself (not a ParameterList), so that the state dict below
        # holds only the per-block entries
        for k, c in enumerate(chunks):
            self.register_parameter(f"weight_chunk_{k}", nn.Parameter(torch.empty(sum(c))))
        self._views, self._views_key = None, None
        self.bias = nn.Parameter(torch.empty(self.out_features)) if bias else None
        self.reset_parameters()

    @property
    def weight_chunks(self) -> list[nn.Parameter]:
        return [getattr(self, f"weight_chunk_{k}") for k in range(len(self._layout[2]))]

    @property
    def weights(self) -> list[torch.Tensor]:
        """The (out, in) matrix of each block: views of the flat chunks (in-place init works)."""
        return _block_views(self.weight_chunks, self._layout)

    def reset_parameters(self) -> None:
        # same scheme as nn.Linear, with the fan-in of each block
        biases = self.bias.split(self.out_sizes) if self.bias is not None else [None] * len(self.out_sizes)
        for w, b in zip(self.weights, biases):
            nn.init.kaiming_uniform_(w, a=math.sqrt(5))
            if b is not None:
                with torch.no_grad():
                    b.uniform_(-1.0 / math.sqrt(w.shape[1]), 1.0 / math.sqrt(w.shape[1]))

    def _block_matrices(self, chunks) -> list[torch.Tensor]:
        """The blocks' (out, in) views of ``chunks`` (detached), made once and reused while the
        chunks keep their storage: the optimiser updates them in place, and a new storage
        (``.to()``, ``.data =``) has another address, so the views are made anew."""
        key = tuple((c.data_ptr(), c.dtype, c.device, c.shape) for c in chunks)
        if self._views_key != key:
            self._views = _block_views([c.detach() for c in chunks], self._layout)
            self._views_key = key
        return self._views

    def _apply(self, fn, *args, **kwargs):
        # drop the cached views first, so they do not keep a moved parameter's old storage alive
        self._views, self._views_key = None, None
        return super()._apply(fn, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        chunks = self.weight_chunks
        return _BlockDiagonalProduct.apply(x, self._layout, self._block_matrices(chunks), self.bias, *chunks)

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        for k, w in enumerate(self.weights):
            destination[f"{prefix}weights.{k}"] = w if keep_vars else w.detach()
        if self.bias is not None:
            destination[prefix + "bias"] = self.bias if keep_vars else self.bias.detach()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        targets = {f"{prefix}weights.{k}": w for k, w in enumerate(self.weights)}
        if self.bias is not None:
            targets[prefix + "bias"] = self.bias
        for key, dst in targets.items():
            if key not in state_dict:
                missing_keys.append(key)
                continue
            src = state_dict[key]
            if tuple(src.shape) != tuple(dst.shape):
                error_msgs.append(f"size mismatch for {key}: copying a param with shape {tuple(src.shape)}, "
                                  f"the shape in the current model is {tuple(dst.shape)}.")
                continue
            with torch.no_grad():
                dst.copy_(src)
        if strict:
            unexpected_keys.extend(k for k in state_dict if k.startswith(prefix) and k not in targets)

    def to_dense_weight(self) -> torch.Tensor:
        """The equivalent dense (out_features, in_features) block-diagonal weight (for tests/inspection)."""
        return torch.block_diag(*self.weights)

    def extra_repr(self) -> str:
        return (f"blocks={len(self.in_sizes)}, in_features={self.in_features}, out_features={self.out_features}, "
                f"weight chunks={len(self.weight_chunks)}")


class _BlockLayerNormFunction(torch.autograd.Function):
    """Per-block layer normalisation (no affine part) of the last dimension, one autograd node.

    Block statistics are segment sums over the block index ``block`` (``index_add``) and are
    spread back with ``index_select``; the backward is the closed form of layer norm's gradient,
    dx = rstd * (g - mean_block(g) - xhat * mean_block(g * xhat)).
    """

    @staticmethod
    def forward(ctx, x, block, count, eps):
        shape = x.shape
        x2 = x.reshape(-1, shape[-1])
        seg = x2.new_zeros(x2.shape[0], count.shape[0])
        mean = seg.index_add(1, block, x2).div_(count)
        xc = x2 - mean.index_select(1, block)
        var = seg.index_add_(1, block, xc * xc).div_(count)  # seg reused: mean no longer needed
        rstd = var.add_(eps).rsqrt_().index_select(1, block)
        xhat = xc.mul_(rstd)
        ctx.save_for_backward(xhat, rstd, block, count)
        return xhat.reshape(shape)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        xhat, rstd, block, count = ctx.saved_tensors
        g = grad.reshape(xhat.shape)
        seg = g.new_zeros(g.shape[0], count.shape[0])
        mean_g = seg.index_add(1, block, g).div_(count).index_select(1, block)
        mean_gx = seg.zero_().index_add_(1, block, g * xhat).div_(count).index_select(1, block)
        dx = (g - mean_g).sub_(xhat * mean_gx).mul_(rstd)
        return dx.reshape(grad.shape), None, None, None


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
        else:
            h = _BlockLayerNormFunction.apply(x, self._block, self._count.to(x.dtype), self.eps)
        return torch.addcmul(self.bias, h, self.weight)

    def extra_repr(self) -> str:
        return f"blocks={len(self.sizes)}, features={sum(self.sizes)}"
