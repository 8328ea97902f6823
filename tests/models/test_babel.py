"""BABEL's networks (workflow_lib.models.babel): both architectures (compact BabelModel and the
authors' BabelAuthorsModel), the authors' RNA input normalisation and TrainedBabel."""

import numpy as np
import pytest
import torch

from synthetic_coassay import make_coassay
from workflow_lib.models.babel import BabelAuthorsModel, BabelModel, ChromPReLU, TrainedBabel, rna_input_stats
from workflow_lib.models.chromsplit import ChromSplitLinear

SIZES = [30, 30, 30]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _batch(n=16, seed=0):
    rna, atac, _ = make_coassay(n_cells=n, n_genes=40, n_peaks=sum(SIZES), seed=seed)
    return torch.from_numpy(rna.X.toarray()), torch.from_numpy(atac.X.toarray())


@pytest.mark.parametrize("cls", [BabelModel, BabelAuthorsModel])
@torch.no_grad()
def test_model_shapes_and_outputs(cls):
    torch.manual_seed(0)
    m = cls(n_genes=40, atac_chrom_sizes=SIZES, n_latent=5).eval()
    x, y = _batch()
    z_r, z_a = m.encode_rna(x), m.encode_atac(y)
    assert z_r.shape == z_a.shape == (16, 5)
    f = m.rna_frequencies(z_a)
    assert f.shape == (16, 40) and torch.allclose(f.sum(1), torch.ones(16), atol=1e-5)
    p = m.atac_probs(z_r)
    assert p.shape == (16, 90) and float(p.min()) >= 0 and float(p.max()) <= 1
    losses = m.path_losses(x, y)
    assert set(losses) == {"rna_rna", "atac_rna", "atac_atac", "rna_atac"}
    assert all(v.shape == (16,) and torch.isfinite(v).all() for v in losses.values())
    # the weight only scales the ATAC terms
    l0, l1 = m.loss(x, y, 0.0), m.loss(x, y, 1.0)
    expected = (losses["atac_atac"] + losses["rna_atac"]).mean()
    assert torch.allclose(l1 - l0, expected, atol=1e-5 * max(1.0, float(l1)))  # (float32 rounding of l0, l1)


@pytest.mark.parametrize("cls", [BabelModel, BabelAuthorsModel])
def test_atac_blocks_are_per_chromosome(cls):
    torch.manual_seed(0)
    m = cls(n_genes=10, atac_chrom_sizes=SIZES, n_latent=3)
    first = m.atac_encoder[0]
    dense = first.to_dense_weight()
    # hidden units of chromosome 1 see no peak of chromosome 2/3
    assert torch.count_nonzero(dense[:32, 30:]) == 0 and torch.count_nonzero(dense[:32, :30]) > 0


@pytest.mark.parametrize("cls", [BabelModel, BabelAuthorsModel])
def test_tiny_overfit_loss_drops_strongly(cls):
    torch.manual_seed(0)
    m = cls(n_genes=40, atac_chrom_sizes=SIZES, n_latent=8)
    x, y = _batch(n=16, seed=3)
    if cls is BabelAuthorsModel:
        st = rna_input_stats(x.numpy())
        m.set_rna_stats(st["size_scale"], st["mean"], st["std"], st["clip"])
    opt = torch.optim.Adam(m.parameters(), lr=0.01)
    first = m.loss(x, y, 1.33).item()
    for _ in range(200):
        opt.zero_grad()
        loss = m.loss(x, y, 1.33)
        loss.backward()
        opt.step()
    last = m.loss(x, y, 1.33).item()
    assert last < 0.5 * first, (first, last)
    # the cross-modal RNA->ATAC path learns too (an untrained model sits at BCE ~0.69)
    with torch.no_grad():
        m.train()  # (BatchNorm: the batch statistics this was fitted with)
        assert float(m.path_losses(x, y)["rna_atac"].mean()) < 0.4


def test_trained_babel_has_the_polarbear_model_shape(babel_trained):
    """encode / translate (identity: one shared latent) / predict_rna / predict_atac / align, and
    the depth-normalised ATAC q maps back onto p through the depth model."""
    from workflow_lib.models.distributions import depth_scaled_prob
    from workflow_lib.predictions import load_coassay

    _, rp, ap, grid, _ = babel_trained
    m = TrainedBabel.load(grid / "latent4_weight1.33", device="cpu")
    data = load_coassay(rp, ap, "random")
    X, Y = data.rna_X[data.test], data.atac_X[data.test]
    z = m.encode("rna", X)
    assert z.shape == (len(data.test), 4) and np.array_equal(m.translate("rna", z), z)
    freq = m.predict_rna(Y)
    np.testing.assert_allclose(freq.sum(1), 1.0, rtol=1e-5)
    p, q, d = m.predict_atac(X)
    assert p.shape == q.shape == (len(data.test), Y.shape[1]) and d.shape == (len(data.test),)
    assert ((q >= 0) & (q <= 1)).all() and not np.array_equal(p, q)
    np.testing.assert_allclose(depth_scaled_prob(torch.from_numpy(q).double(), torch.from_numpy(d).double()[:, None]),
                               np.clip(p, 0, 1 - 1e-7), atol=2e-4)
    lat = m.align(X, None, Y, None)
    np.testing.assert_array_equal(lat["rna_query"], z)
    np.testing.assert_array_equal(lat["atac_query"], m.encode("atac", Y))


# --------------------------------------------------------------------------------------------
# the authors' architecture (babel.architecture: authors)


def _types(seq):
    return [type(m).__name__ for m in seq]


def test_authors_every_layer_is_linear_batchnorm_prelu_including_the_latent():
    """wukevin/babel Encoder/Decoder/ChromEncoder/ChromDecoder: Linear -> BatchNorm1d -> PReLU in
    every hidden layer and in the latent layer; widths 64 (RNA), 32 -> 16 per chromosome (ATAC)."""
    m = BabelAuthorsModel(n_genes=40, atac_chrom_sizes=SIZES, n_latent=5)
    block = ["Linear", "BatchNorm1d", "PReLU"]
    chrom = ["ChromSplitLinear", "BatchNorm1d", "ChromPReLU"]
    assert _types(m.rna_encoder) == block * 2
    assert (m.rna_encoder[0].out_features, m.rna_encoder[3].out_features, m.rna_encoder[4].num_features) == (64, 5, 5)
    assert _types(m.rna_decoder) == block and m.rna_decoder[0].out_features == 64
    assert m.rna_mean_head.in_features == m.rna_disp_head.in_features == 64
    assert m.rna_mean_head.out_features == m.rna_disp_head.out_features == 40
    assert _types(m.atac_encoder) == chrom * 2 + block
    assert m.atac_encoder[0].out_sizes == [32] * 3 and m.atac_encoder[3].out_sizes == [16] * 3
    assert (m.atac_encoder[6].in_features, m.atac_encoder[6].out_features) == (48, 5)
    assert _types(m.atac_decoder) == block + chrom + ["ChromSplitLinear"]
    assert m.atac_decoder[0].out_features == 48 and m.atac_decoder[3].out_sizes == [32] * 3
    assert m.atac_decoder[6].out_sizes == SIZES
    # the codes leave through a PReLU: with its slope at 0 they are all >= 0 (a linear latent is not)
    x, y = _batch(32)
    with torch.no_grad():
        m.rna_encoder[-1].weight.zero_()
        m.atac_encoder[-1].weight.zero_()
        assert (m.encode_rna(x) >= 0).all() and (m.encode_atac(y) >= 0).all()
        assert (m.encode_rna(x) == 0).any()


def test_authors_weights_are_xavier_uniform():
    torch.manual_seed(0)
    m = BabelAuthorsModel(n_genes=200, atac_chrom_sizes=[150, 90], n_latent=16)
    mats = [(mod.weight, mod.in_features, mod.out_features) for mod in m.modules() if isinstance(mod, torch.nn.Linear)]
    for mod in m.modules():
        if isinstance(mod, ChromSplitLinear):
            mats += [(w, w.shape[1], w.shape[0]) for w in mod.weights]   # per chromosome, as their per-chrom Linear
    assert len(mats) == 7 + 4 * 2   # 7 dense layers, 4 per-chromosome layers x 2 chromosomes
    for w, fan_in, fan_out in mats:
        bound = (6.0 / (fan_in + fan_out)) ** 0.5
        a = w.detach().abs()
        assert float(a.max()) <= bound + 1e-7 and float(a.max()) > 0.8 * bound, (tuple(w.shape), bound)


def test_chrom_prelu_has_one_slope_per_chromosome():
    act = ChromPReLU(3, 2)
    assert act.weight.shape == (3,) and torch.allclose(act.weight, torch.full((3,), 0.25))
    with torch.no_grad():
        act.weight.copy_(torch.tensor([0.0, 0.5, 1.0]))
    x = -torch.ones(1, 6)
    torch.testing.assert_close(act(x), torch.tensor([[0.0, 0.0, -0.5, -0.5, -1.0, -1.0]]))
    torch.testing.assert_close(act(-x), -x)


def _fixed_rna_head(m, mean, disp):
    """Make the RNA decoder output constant NB parameters (mean, dispersion) for every cell."""
    with torch.no_grad():
        m.rna_mean_head.weight.zero_()
        m.rna_mean_head.bias.copy_(torch.log(torch.tensor(mean)))
        m.rna_disp_head.weight.zero_()
        m.rna_disp_head.bias.copy_(torch.log(torch.expm1(torch.tensor(disp))))  # softplus^-1


@torch.no_grad()
def test_authors_rna_head_exp_mean_and_dispersion_per_cell_and_gene():
    torch.manual_seed(0)
    m = BabelAuthorsModel(n_genes=3, atac_chrom_sizes=[4], n_latent=2, rna_hidden=4).eval()
    z = torch.randn(5, 2)
    mean, disp = m.rna_params(z)
    assert mean.shape == disp.shape == (5, 3)            # a dispersion per cell AND gene
    assert not torch.allclose(disp, disp[:1].expand_as(disp))
    torch.testing.assert_close(mean, torch.exp(m.rna_mean_head(m.rna_decoder(z))))
    torch.testing.assert_close(disp, torch.nn.functional.softplus(m.rna_disp_head(m.rna_decoder(z))))
    f = m.rna_frequencies(z)
    torch.testing.assert_close(f, mean / mean.sum(1, keepdim=True))
    # the clamps of babel/activations.py: Exp in [1e-5, 1e6], ClippedSoftplus in [1e-4, 1e3]
    _fixed_rna_head(m, [1e-9, 1.0, 1e9], [1e-9, 1.0, 1e9])
    mean, disp = m.rna_params(z)
    torch.testing.assert_close(mean[0], torch.tensor([1e-5, 1.0, 1e6]))
    torch.testing.assert_close(disp[0], torch.tensor([1e-4, 1.0, 1e3]))


@torch.no_grad()
def test_authors_rna_loss_is_nb_nll_of_the_size_normalised_counts():
    """The NB loss of the authors' code (negative_binom_loss, DCA's form) on counts scaled to the
    median library: a cell and the same cell sequenced twice as deep have the same loss."""
    from scipy.stats import nbinom

    m = BabelAuthorsModel(n_genes=3, atac_chrom_sizes=[4], n_latent=2, rna_hidden=4).eval()
    mu, theta = [2.0, 5.0, 0.5], [1.0, 3.0, 10.0]
    _fixed_rna_head(m, mu, theta)
    m.set_rna_stats(10.0, np.zeros(3), np.ones(3), [-np.inf, np.inf])
    x = torch.tensor([[1.0, 6.0, 3.0], [2.0, 12.0, 6.0], [0.0, 0.0, 10.0]])
    z = torch.randn(3, 2)
    torch.testing.assert_close(m.rna_target(x), torch.tensor([[1.0, 6.0, 3.0], [1.0, 6.0, 3.0], [0.0, 0.0, 10.0]]))
    mu_, th_ = np.array(mu), np.array(theta)
    expected = [-np.mean(nbinom.logpmf(t, th_, th_ / (th_ + mu_))) for t in ([1, 6, 3], [1, 6, 3], [0, 0, 10])]
    np.testing.assert_allclose(m.rna_nll(x, z).numpy(), expected, rtol=1e-5)
    # the ATAC loss is the binary cross-entropy of the sigmoid output
    y = torch.tensor([[1.0, 0.0, 0.0, 1.0]]).expand(3, 4)
    p = m.atac_probs(m.encode_rna(x))
    torch.testing.assert_close(m.atac_bce(y, m.encode_rna(x)),
                               torch.nn.functional.binary_cross_entropy(p, y, reduction="none").mean(1))


def test_rna_input_stats_as_the_authors_normalisation():
    """normalize_total (median of non-zero libraries) -> log1p -> scale (unbiased SD, 1 if 0) ->
    clip to the 0.5 / 99.5 percentiles of all entries; also for a zero gene and an empty cell."""
    rng = np.random.default_rng(0)
    X = rng.poisson(rng.gamma(0.3, 2.0, (60, 25))).astype(np.float64)
    X[:, 3] = 0
    X[7] = 0
    st = rna_input_stats(X)
    lib = X.sum(1)
    med = np.median(lib[lib > 0])
    L = np.log1p(X / np.maximum(lib, 1e-12)[:, None] * med)
    sd = L.std(0, ddof=1)
    sd[sd == 0] = 1
    Z = (L - L.mean(0)) / sd
    assert st["size_scale"] == med
    np.testing.assert_allclose(st["mean"], L.mean(0), atol=1e-12)
    np.testing.assert_allclose(st["std"], sd, atol=1e-12)
    np.testing.assert_allclose(st["clip"], np.percentile(Z, [0.5, 99.5]), atol=1e-10)
    # the stats of a subset of cells, and the model applying them
    rows = np.arange(0, 60, 2)
    sub = rna_input_stats(X, rows)
    np.testing.assert_allclose(sub["mean"], rna_input_stats(X[rows])["mean"])
    m = BabelAuthorsModel(n_genes=25, atac_chrom_sizes=[4], n_latent=2)
    m.set_rna_stats(st["size_scale"], st["mean"], st["std"], st["clip"])
    got = m.rna_input(torch.tensor(X, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(got[lib > 0], np.clip(Z, *st["clip"])[lib > 0], atol=1e-4)
