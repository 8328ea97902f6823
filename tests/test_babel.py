"""Tests of the BABEL baseline: both architectures (authors / compact), training stage, settings,
per-task selection and predictions."""

import json

import anndata as ad
import numpy as np
import pytest
import torch

from synthetic_coassay import make_coassay, write_coassay
from workflow_lib.predictions import PREDICTION_NAMES
from workflow_lib.babel_settings import babel_settings
from workflow_lib.babel import (TASKS, PairedLoader, predict_babel, select_babel,
                                      train_babel_point)
from workflow_lib.fileutils import InputFormatError
from workflow_lib.models.babel import BabelAuthorsModel, BabelModel, ChromPReLU, TrainedBabel, rna_input_stats
from workflow_lib.models.chromsplit import ChromSplitLinear
from workflow_lib.train import FitConfig
from workflow_lib.predictions import LATENT_KEYS

FIT = {"batch_size": 32, "learning_rate": 0.003, "max_epochs": 6, "patience": 3}
SIZES = [30, 30, 30]


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models: one thread is fastest (and avoids oversubscription on a 2-core CI runner)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


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


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("babel")
    rp, ap, truth = write_coassay(tmp, seed=4)
    grid = tmp / "grid"
    cfgs = []
    for lat, w in [(4, 1.33), (6, 0.2)]:
        pt = f"latent{lat}_weight{w:g}"
        train_babel_point(rp, ap, "random", pt, lat, w, FIT, grid / pt / "model.pt", grid / pt / "config.json",
                          seed=0)
        cfgs.append(grid / pt / "config.json")
    return tmp, rp, ap, grid, cfgs


def test_train_writes_loadable_model_and_config(trained):
    tmp, rp, ap, grid, cfgs = trained
    d = grid / "latent4_weight1.33"
    state = torch.load(d / "model.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["params"] == {"latent": 4, "weight": 1.33}
    assert {"atac_rna_nll", "rna_atac_bce", "foscttm", "joint_loss"} <= set(cfg["val_scores"])
    assert 1 <= cfg["fit"]["epochs_run"] <= FIT["max_epochs"]
    assert not (d / "checkpoint.pt").exists()
    model = TrainedBabel.load(d).module
    assert model.n_latent == 4 and not model.training


def test_trained_babel_has_the_polarbear_model_shape(trained):
    """encode / translate (identity: one shared latent) / predict_rna / predict_atac / align, and
    the depth-normalised ATAC q maps back onto p through the depth model."""
    from workflow_lib.models.distributions import depth_scaled_prob
    from workflow_lib.predictions import load_coassay

    _, rp, ap, grid, _ = trained
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


def test_training_is_deterministic(trained, tmp_path):
    _, rp, ap, grid, _ = trained
    pt = "latent4_weight1.33"
    train_babel_point(rp, ap, "random", pt, 4, 1.33, FIT, tmp_path / "model.pt", tmp_path / "config.json", seed=0)
    a = torch.load(grid / pt / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "model.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_select_picks_per_task(tmp_path):
    scores = {
        "latent10_weight1": {"atac_rna_nll": 1.0, "rna_atac_bce": 0.5, "foscttm": 0.2, "joint_loss": 3.0},
        "latent16_weight5": {"atac_rna_nll": 2.0, "rna_atac_bce": 0.3, "foscttm": 0.3, "joint_loss": 2.0},
        "latent25_weight1": {"atac_rna_nll": 3.0, "rna_atac_bce": 0.6, "foscttm": 0.1, "joint_loss": 4.0},
    }
    paths = []
    for pt, s in scores.items():
        p = tmp_path / f"{pt}.json"
        p.write_text(json.dumps({"point": pt, "params": {}, "val_scores": s}))
        paths.append(p)
    sel = select_babel(paths, tmp_path / "selected.json")
    assert sel["per_task"]["atac_to_rna"]["point"] == "latent10_weight1"
    assert sel["per_task"]["rna_to_atac"]["point"] == "latent16_weight5"
    assert sel["per_task"]["latent"]["point"] == "latent25_weight1"
    assert sel["point"] == "latent16_weight5" and set(sel["all"]) == set(scores)
    assert json.loads((tmp_path / "selected.json").read_text()) == json.loads(json.dumps(sel))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputFormatError, match="bad.json"):
        select_babel([bad], tmp_path / "x.json")


def test_predictions_follow_contract_and_are_deterministic(trained):
    tmp, rp, ap, grid, cfgs = trained
    select_babel(cfgs, tmp / "selected.json")
    sel = json.loads((tmp / "selected.json").read_text())
    runs = []
    for name in ("p1", "p2"):
        out = [tmp / name / f"{k}.h5ad" for k in PREDICTION_NAMES]
        predict_babel(rp, ap, "random", tmp / "selected.json", grid, out)
        runs.append([ad.read_h5ad(p) for p in out])
    a2r, r2a, lat, rest = runs[0]
    rna, atac = ad.read_h5ad(rp), ad.read_h5ad(ap)
    test_names = list(rna.obs_names[rna.obs["split_random"] == "test"])
    # atac_to_rna_rest: non-test cells in processed order, from the atac_to_rna point
    assert list(rest.obs_names) == list(rna.obs_names[rna.obs["split_random"] != "test"])
    assert list(rest.var_names) == list(rna.var_names)
    assert rest.X.dtype == np.float32 and rest.X.shape == (len(rest.obs_names), rna.n_vars)
    np.testing.assert_allclose(rest.X.sum(1), 1.0, atol=1e-4)
    assert rest.uns["method"] == "babel" and rest.uns["point"] == sel["per_task"]["atac_to_rna"]["point"]
    for task, a in zip(TASKS, runs[0]):
        assert list(a.obs_names) == test_names
        assert a.uns["method"] == "babel" and a.uns["point"] == sel["per_task"][task]["point"]
    assert list(a2r.var_names) == list(rna.var_names) and list(r2a.var_names) == list(atac.var_names)
    np.testing.assert_allclose(a2r.X.sum(1), 1.0, atol=1e-4)
    for m in (r2a.X, r2a.layers["norm"]):
        assert m.dtype == np.float32 and m.min() >= 0 and m.max() <= 1
    assert set(LATENT_KEYS) <= set(lat.obsm)
    np.testing.assert_array_equal(lat.obsm["rna_query"], lat.obsm["rna_reference"])
    np.testing.assert_array_equal(lat.obsm["atac_query"], lat.obsm["atac_reference"])
    for x, y in zip(runs[0], runs[1]):
        np.testing.assert_array_equal(x.X, y.X)
    np.testing.assert_array_equal(lat.obsm["rna_query"], runs[1][2].obsm["rna_query"])


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
            mats += [(w, w.shape[1], w.shape[0]) for w in mod.blocks()]   # per chromosome, as their per-chrom Linear
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


def test_paired_loader_skips_batches_too_small_for_batchnorm():
    rna, atac, _ = make_coassay(n_cells=5, n_genes=6, n_peaks=9, seed=0)
    import scipy.sparse as sp
    X, Y = sp.csr_matrix(rna.X), sp.csr_matrix(atac.X)
    sizes = [b["x"].shape[0] for b in PairedLoader(X, Y, np.arange(5), 4, shuffle=True, seed=0)]
    assert sizes == [4, 1]
    sizes = [b["x"].shape[0] for b in PairedLoader(X, Y, np.arange(5), 4, shuffle=True, seed=0, min_batch=2)]
    assert sizes == [4]


def test_architecture_option_switches_model_and_both_reload(trained, tmp_path):
    """Default (authors): BabelAuthorsModel with its RNA statistics in the state_dict; compact:
    the earlier BabelModel; a config.json from before the option (no 'architecture') is compact."""
    _, rp, ap, grid, _ = trained
    d = grid / "latent4_weight1.33"
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["architecture"] == "authors" and cfg["class"].endswith(".BabelAuthorsModel")
    assert cfg["kwargs"]["rna_hidden"] == 64 and cfg["kwargs"]["chrom_hidden"] == [32, 16]
    state = torch.load(d / "model.pt", weights_only=True)
    assert {"size_scale", "rna_mean", "rna_std", "rna_clip"} <= set(state)
    assert float(state["rna_std"].min()) > 0 and torch.isfinite(state["rna_clip"]).all()
    model = TrainedBabel.load(d).module
    assert isinstance(model, BabelAuthorsModel) and not model.training

    c = tmp_path / "compact"
    out = train_babel_point(rp, ap, "random", "latent4_weight1.33", 4, 1.33, FIT, c / "model.pt", c / "config.json",
                            seed=0, architecture="compact")
    assert out["architecture"] == "compact" and out["class"].endswith(".BabelModel")
    assert set(out["kwargs"]) == {"n_genes", "atac_chrom_sizes", "n_latent", "size_scale"}
    m2 = TrainedBabel.load(c).module
    assert type(m2) is BabelModel
    legacy = json.loads((c / "config.json").read_text())
    del legacy["architecture"]
    (c / "config.json").write_text(json.dumps(legacy))
    assert type(TrainedBabel.load(c).module) is BabelModel
    with pytest.raises(ValueError, match="architecture"):
        train_babel_point(rp, ap, "random", "p", 4, 1.33, FIT, tmp_path / "x.pt", tmp_path / "x.json",
                          architecture="naive")
    with pytest.raises(ValueError, match="rna_input_stats"):
        train_babel_point(rp, ap, "random", "p", 4, 1.33, FIT, tmp_path / "x.pt", tmp_path / "x.json",
                          model_params={"rna_input_stats": "test"})


def test_rna_input_stats_from_train_or_all_cells(trained, tmp_path):
    _, rp, ap, grid, _ = trained
    fit = dict(FIT, max_epochs=1)
    means = {}
    for cells in ("train", "all"):
        d = tmp_path / cells
        train_babel_point(rp, ap, "random", "p", 4, 1.33, fit, d / "model.pt", d / "config.json",
                          model_params={"rna_input_stats": cells})
        means[cells] = torch.load(d / "model.pt", weights_only=True)["rna_mean"]
    rna = ad.read_h5ad(rp)
    X = rna.X.toarray() if hasattr(rna.X, "toarray") else np.asarray(rna.X)
    train = np.flatnonzero(rna.obs["split_random"] == "train")
    np.testing.assert_allclose(means["train"].numpy(), rna_input_stats(X, train)["mean"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(means["all"].numpy(), rna_input_stats(X)["mean"], rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------
# settings: babel.architecture, the demo overlay and babel.compact


def test_default_config_resolves_to_the_authors_settings(default_config):
    from workflow_lib.settings import source_config

    s = babel_settings(default_config["babel"])
    assert s["architecture"] == "authors"
    f = FitConfig.from_params(s["fit"])
    assert (f.batch_size, f.learning_rate, f.max_epochs, f.patience) == (512, 0.01, 500, 25)
    assert (f.early_stopping_threshold, f.grad_clip_norm) == (1e-4, 5.0)
    assert (f.lr_plateau_factor, f.lr_plateau_patience, f.lr_plateau_min_lr, f.lr_plateau_monitor) == \
        (0.1, 10, 1e-6, "train")
    assert s["model"] == {"rna_hidden": 64, "chrom_hidden": [32, 16], "rna_input_stats": "train"}
    demo = babel_settings(source_config(default_config)["babel"])
    assert demo["grid"] == {"latent": [16], "weight": [1.33]} and demo["architecture"] == "authors"
    # the demo overlay changes only what config.yaml's comment justifies
    changed = {k: v for k, v in demo["fit"].items() if s["fit"][k] != v}
    assert changed == {"batch_size": 64, "min_steps": 200} and demo["model"] == s["model"]


def test_demo_and_compact_overlays(default_config):
    import copy

    from workflow_lib.settings import source_config

    cfg = copy.deepcopy(default_config)
    cfg["demo"]["babel"] = {"batch_size": 7, "lr_scheduler": {"patience": 3},
                            "compact": default_config["demo"]["babel"]["compact"]}
    s = babel_settings(source_config(cfg)["babel"])["fit"]
    assert s["batch_size"] == 7 and s["learning_rate"] == 0.01
    assert s["lr_scheduler"] == {"factor": 0.1, "patience": 3, "min_lr": 1e-6, "threshold": 1e-4, "monitor": "train"}
    assert babel_settings(cfg["babel"])["fit"]["batch_size"] == 512
    # compact: today's implementation with today's training settings (the demo overlay's compact:)
    cfg["babel"]["architecture"] = "compact"
    demo = FitConfig.from_params(babel_settings(source_config(cfg)["babel"])["fit"])
    assert demo == FitConfig(batch_size=32, learning_rate=0.003, max_epochs=60, patience=10)
    full = FitConfig.from_params(babel_settings(cfg["babel"])["fit"])
    assert full == FitConfig(batch_size=128, learning_rate=0.001, max_epochs=200, patience=10)
    b = copy.deepcopy(cfg["babel"])
    b["architecture"] = "naive"
    with pytest.raises(ValueError, match="architecture"):
        babel_settings(b)
    b["architecture"] = "authors"
    b["batchsize"] = 7
    with pytest.raises(ValueError, match="batchsize"):
        babel_settings(b)
