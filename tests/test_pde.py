import math

import pytest
import torch

from equireg_lit.pde import VorticitySolver, default_forcing, grf_spectrum, sample_grf, solve_darcy, solve_helmholtz


def node_grid(n):
    t = torch.linspace(0, 1, n, dtype=torch.float64)
    y, x = torch.meshgrid(t, t, indexing="ij")
    return x, y


def orders(errors):
    return [math.log2(errors[i] / errors[i + 1]) for i in range(len(errors) - 1)]


@pytest.mark.parametrize("k", [0.0, 1.0])
def test_poisson_helmholtz_second_order(k):
    errors = []
    for n in (17, 33, 65):
        x, y = node_grid(n)
        u = torch.sin(math.pi * x) * torch.sin(2 * math.pi * y)
        f = (k**2 - 5 * math.pi**2) * u  # lap u + k^2 u for this u
        errors.append((solve_helmholtz(f[None], k)[0] - u).abs().max().item())
    assert all(1.9 < o < 2.1 for o in orders(errors)), errors


def test_darcy_second_order_with_variable_coefficient():
    errors = []
    for n in (17, 33, 65):
        x, y = node_grid(n)
        u = torch.sin(math.pi * x) * torch.sin(math.pi * y)
        a = 2 + x * y
        p = math.pi
        f = -(y * p * torch.cos(p * x) * torch.sin(p * y) + x * p * torch.sin(p * x) * torch.cos(p * y) - 2 * a * p**2 * u)
        errors.append((solve_darcy(a[None], f[None])[0] - u).abs().max().item())
    assert all(1.9 < o < 2.1 for o in orders(errors)), errors


def test_darcy_rejects_non_positive_coefficient():
    with pytest.raises(ValueError, match="strictly positive"):
        solve_darcy(torch.zeros(1, 9, 9, dtype=torch.float64))


def test_taylor_green_decays_analytically():
    n = 32
    t = torch.arange(n, dtype=torch.float64) / n
    y, x = torch.meshgrid(t, t, indexing="ij")
    w0 = torch.sin(2 * math.pi * x) * torch.sin(2 * math.pi * y)
    w = VorticitySolver(n, nu=0.01, dt=1e-2).solve(w0[None], 1.0)[0]
    assert (w - w0 * math.exp(-8 * math.pi**2 * 0.01)).abs().max().item() < 1e-10


def test_inviscid_unforced_flow_conserves_energy_and_enstrophy():
    s = VorticitySolver(32, nu=0.0, dt=2e-3)
    w0 = torch.fft.ifft2(torch.fft.fft2(sample_grf(2, 32, generator=torch.Generator().manual_seed(0))) * s.dealias).real
    w1 = s.solve(w0, 0.5)
    assert torch.allclose(s.energy(w1), s.energy(w0), rtol=1e-6)
    assert torch.allclose(s.enstrophy(w1), s.enstrophy(w0), rtol=1e-6)
    assert not torch.allclose(w1, w0, atol=1e-3)  # the flow did evolve


def test_forcing_definition():
    f = default_forcing(8)
    assert f[0, 0].item() == pytest.approx(0.1) and f.shape == (8, 8)


def test_grf_spectrum_decays_with_stated_exponent():
    n = 64
    g = sample_grf(400, n, alpha=2.0, tau=3.0, generator=torch.Generator().manual_seed(0))
    power = (torch.fft.fft2(g).abs() ** 2).mean(0)
    lam = grf_spectrum(n)
    k = torch.fft.fftfreq(n, d=1.0 / n).abs()
    mask = (k[None, :] >= 4) & (k[None, :] <= 16) & (k[:, None] == 0)  # along one axis, away from tau
    # Empirical power is proportional to the covariance eigenvalues (tau^2 ... |k|^-4 at large |k|).
    ratio = power[mask] / lam[mask]
    assert (ratio.std() / ratio.mean()).item() < 0.15
    lk, lp = torch.log(k[4:17]), torch.log(power[0, 4:17])
    fit = ((lk - lk.mean()) * (lp - lp.mean())).sum() / ((lk - lk.mean()) ** 2).sum()
    assert -4.6 < fit.item() < -3.0  # (4 pi^2 k^2 + 9)^-2 approaches k^-4
    assert torch.equal(sample_grf(2, 16, generator=torch.Generator().manual_seed(5)),
                       sample_grf(2, 16, generator=torch.Generator().manual_seed(5)))


def test_pde_datamodule_is_deterministic_cached_and_rebuilt(tmp_path):
    from equireg_lit.datamodules import PDEDataModule

    kw = dict(problem="poisson", resolution=16, num_train=6, num_val=2, num_test=2, cache_dir=str(tmp_path))
    a = PDEDataModule(**kw)
    a.setup()
    b = PDEDataModule(**kw)
    b.setup()
    assert torch.equal(a.splits["test"].images, b.splits["test"].images)
    assert len(list(tmp_path.glob("*.safetensors"))) == 1
    c = PDEDataModule(**dict(kw, seed=1))
    c.setup()
    assert len(list(tmp_path.glob("*.safetensors"))) == 2
    assert not torch.equal(a.splits["test"].images, c.splits["test"].images)
    x = a.splits["train"].images
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(2), atol=1e-5)
    m = a.metrics(x[0], x[0])
    assert m["rel_l2_a"] == 0 and m["rel_l2_u"] == 0
    with pytest.raises(ValueError, match="unknown problem"):
        PDEDataModule(problem="burgers")


def test_darcy_samples_and_metrics():
    from equireg_lit.pde import darcy_error_rate, generate, relative_l2

    x = generate("darcy", 3, 16, torch.Generator().manual_seed(0))
    assert set(x[:, 0].unique().tolist()) <= {3.0, 12.0} and (x[:, 1] >= -1e-12).all()
    assert torch.equal(darcy_error_rate(x[:, 0], x[:, 0]), torch.zeros(3))
    assert torch.allclose(relative_l2(2 * x, x), torch.ones(3, 2, dtype=x.dtype))


@pytest.mark.parametrize("problem", ["darcy", "helmholtz"])
def test_solved_u_metric_is_zero_at_the_truth_and_follows_the_coefficient(problem):
    from equireg_lit.pde.data import field_metrics, generate

    x = generate(problem, 2, 16, torch.Generator().manual_seed(0))
    mean, std = x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3))
    norm = ((x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)).float()
    assert field_metrics(norm[0], norm[0], mean, std, problem)["rel_l2_u_solved"] < 1e-5
    # Sample 1's a solves to sample 1's u, so against sample 0 the solved-u error is sample 1's u error.
    wrong = field_metrics(norm[1], norm[0], mean, std, problem)
    assert wrong["rel_l2_u_solved"] == pytest.approx(wrong["rel_l2_u"], rel=1e-4)
    # u solved from the true a, whatever the reconstructed u: the metric sees only the coefficient.
    half = torch.stack([norm[0, 0], norm[1, 1]])
    assert field_metrics(half, norm[0], mean, std, problem)["rel_l2_u_solved"] < 1e-5


def test_sparse_points_round_trip_and_errors():
    from equireg_lit.physics import SparsePoints

    op = SparsePoints(img_size=(2, 16, 16), channel=1, fraction=0.1, seed=0)
    assert op.indices.numel() == 26
    x = torch.randn(3, 2, 16, 16)
    y = op.A(x)
    assert torch.equal(y, x[:, 1].flatten(1)[:, op.indices])
    back = op.A_adjoint(y)
    assert torch.equal(op.A(back), y) and (back[:, 0] == 0).all()
    assert torch.allclose((op.A(x) * y).sum(), (x * op.A_adjoint(y)).sum())
    with pytest.raises(ValueError, match="out of range for a 16x16 grid"):
        SparsePoints(img_size=(2, 16, 16), indices=[0, 256])
    with pytest.raises(ValueError, match="distinct channels in 0..1, got 2"):
        SparsePoints(img_size=(2, 16, 16), channel=2)


def test_vorticity_group_flips_sign_under_reflection():
    from equireg_lit.regularizer import get_group

    g = get_group("d4", input_action="pseudoscalar", feature_action="pseudoscalar")
    w = torch.randn(1, 2, 8, 8)
    for e in g.elements:
        assert torch.equal(g.act(e, w), -e.act(w) if e.flip else e.act(w))
        assert torch.equal(g.act(e.inverse(), g.act(e, w)), w)


def test_navier_stokes_commutes_with_antidiagonal_shifts_not_with_axis_shifts():
    """The forcing depends on x + y only: integrating a shifted initial vorticity along (s, -s)
    gives the shifted solution (the prior's augmentation group is a symmetry of the data), while an
    axis shift changes the solution (which is why ``shift`` is not used for Navier-Stokes)."""
    from equireg_lit.pde.data import solve_u
    from equireg_lit.regularizer import get_group

    a = sample_grf(1, 16, 2.0, 3.0, generator=torch.Generator().manual_seed(0))
    u = solve_u("navier_stokes", a)
    for e in get_group("shift_antidiagonal", shifts=[1, 3]).elements:
        assert torch.allclose(solve_u("navier_stokes", e.act(a)), e.act(u), atol=1e-10)
    axis = get_group("shift", shifts=[3]).elements[0]
    assert (solve_u("navier_stokes", axis.act(a)) - axis.act(u)).abs().max() > 1e-3


@pytest.mark.parametrize("with_residual", [False, True])
def test_tiny_pde_predict_end_to_end(tmp_path, with_residual):
    """A random tiny joint prior on 16x16 Poisson fields through `equireg predict` (optionally
    with PDE-residual guidance, whose normalization comes from the datamodule)."""
    import json

    from safetensors.torch import save_file

    from equireg_lit.cli import main
    from equireg_lit.diffusion import DiffusersUNetPrior

    arch = dict(sample_size=16, in_channels=2, block_out_channels=(8, 16), layers_per_block=1,
                down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                norm_num_groups=4)
    torch.manual_seed(0)
    save_file({k: v.contiguous() for k, v in DiffusersUNetPrior(random_init=True, **arch).net.state_dict().items()},
              str(tmp_path / "w.safetensors"))
    pa = "--model.init_args.prior.init_args."
    main(["predict", "--config", "configs/predict/darcy64_inverse_dps_equireg.yaml",
          "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar", "false",
          f"{pa}weights", str(tmp_path / "w.safetensors"), f"{pa}sample_size", "16", f"{pa}in_channels", "2",
          f"{pa}block_out_channels", "[8, 16]", f"{pa}down_block_types", "[DownBlock2D, DownBlock2D]",
          f"{pa}up_block_types", "[UpBlock2D, UpBlock2D]", f"{pa}norm_num_groups", "4",
          "--model.init_args.operator.init_args.img_size", "[2, 16, 16]",
          "--model.init_args.solver.init_args.num_steps", "3",
          "--data.init_args.problem", "poisson", "--data.init_args.resolution", "16",
          "--data.init_args.num_train", "4", "--data.init_args.num_val", "2", "--data.init_args.num_test", "3",
          "--data.init_args.cache_dir", str(tmp_path / "cache")]
         + (["--model.init_args.pde_residual",
             '{"class_path": "equireg_lit.pde.PDEResidual", "init_args": {"problem": "poisson", "weight": 0.001}}']
            if with_residual else []))
    summary = json.loads((tmp_path / "predictions" / "summary.json").read_text())
    assert summary["num_samples"] == 3 and "rel_l2_a" in summary and "rel_l2_u" in summary
    assert (tmp_path / "predictions" / "samples" / "00002_recon.png").is_file()


@pytest.mark.parametrize("problem", ["poisson", "helmholtz"])
def test_residual_vanishes_on_generated_pairs_and_not_on_perturbed(problem):
    from equireg_lit.pde import generate, residual

    f = generate(problem, 2, 17, torch.Generator().manual_seed(0))
    r = residual(problem, f[:, 0], f[:, 1])
    assert r.abs().max() < 1e-8 * f[:, 0].abs().max()
    bumped = f[:, 1].clone()
    bumped[:, 8, 8] += 1e-3
    assert residual(problem, f[:, 0], bumped).abs().max() > 1.0


def test_darcy_residual_zero_for_constant_coefficient_and_guidance_lowers_it():
    from equireg_lit.pde import PDEResidual, residual

    a = torch.full((1, 17, 17), 3.0, dtype=torch.float64)
    u = solve_darcy(a)
    assert residual("darcy", a, u).abs().max() < 1e-6
    # one gradient step on the residual term moves a perturbed u toward lower residual
    term = PDEResidual("darcy", weight=1.0, mean=[0.0, 0.0], std=[1.0, 1.0])
    x = torch.stack([a, u + 0.01 * torch.randn(u.shape, generator=torch.Generator().manual_seed(0), dtype=u.dtype)], 1).float().requires_grad_(True)
    before = term(x)
    (g,) = torch.autograd.grad(before.sum(), x)
    assert term(x.detach() - 1e-6 * g) < before


def test_residual_rejects_navier_stokes_and_unbound_normalization():
    from equireg_lit.pde import PDEResidual

    with pytest.raises(ValueError, match="Navier-Stokes relates a and u"):
        PDEResidual("navier_stokes")
    with pytest.raises(ValueError, match="normalization"):
        PDEResidual("poisson")(torch.zeros(1, 2, 8, 8))
    with pytest.raises(ValueError, match=r"\[B, 2, n, n\]"):
        PDEResidual("poisson", mean=[0, 0], std=[1, 1])(torch.zeros(1, 1, 8, 8))


def test_nested_layout_keeps_test_and_val_fixed_and_a_small_train_set_a_prefix_of_a_large_one(tmp_path):
    """Priors trained on 1,000 and 10,000 pairs meet the same test set (``layout: nested``)."""
    from equireg_lit.datamodules import PDEDataModule

    def splits(num_train, layout="nested"):
        return PDEDataModule(problem="poisson", resolution=16, num_train=num_train, num_val=2, num_test=2,
                             layout=layout, cache_dir=str(tmp_path))._generate_splits()

    small, large = splits(3), splits(60)  # the large one spans two generation chunks
    assert torch.equal(small["test"], large["test"]) and torch.equal(small["val"], large["val"])
    assert torch.equal(small["train"], large["train"][:3])
    assert not torch.equal(splits(3, "sequential")["test"], splits(60, "sequential")["test"])


def test_sparse_points_on_both_channels_weigh_each_term_and_pass_deepinv_adjointness():
    from equireg_lit.errors import ConfigError
    from equireg_lit.physics import SparsePoints

    op = SparsePoints(img_size=(2, 8, 8), channel=[0, 1], fraction=0.25, seed=3, weights=[2.0, 0.5])
    x = torch.randn(3, 2, 8, 8, generator=torch.Generator().manual_seed(0))
    y = op.A(x)
    assert y.shape == (3, 32)
    assert torch.equal(y[:, :16], x[:, 0].flatten(1)[:, op.indices_0])
    assert torch.equal(y[:, 16:], x[:, 1].flatten(1)[:, op.indices_1])
    assert not torch.equal(op.indices_0, op.indices_1)  # each channel its own point set
    assert abs(float(op.adjointness_test(img_size=op.img_size_chw, num_samples=8))) < 1e-5
    r = torch.randn(3, 32, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(op.data_norm(r), 2.0 * r[:, :16].norm(dim=1) + 0.5 * r[:, 16:].norm(dim=1))
    single = SparsePoints(img_size=(2, 8, 8), channel=1, fraction=0.25, seed=3)
    assert torch.allclose(single.data_norm(r[:, :16]), r[:, :16].norm(dim=1))
    for bad in ({"channel": [0, 0]}, {"channel": [0, 2]}, {"channel": [0, 1], "weights": [1.0]}):
        with pytest.raises(ConfigError):
            SparsePoints(img_size=(2, 8, 8), **bad)


def test_residual_starts_at_its_fraction_of_the_run():
    from equireg_lit.errors import ConfigError
    from equireg_lit.pde.residual import PDEResidual

    res = PDEResidual("poisson", weight=1.0, mean=[0.0, 0.0], std=[1.0, 1.0], start=0.8)
    x = torch.randn(2, 2, 16, 16, generator=torch.Generator().manual_seed(0))
    assert torch.equal(res(x, step=79, total_steps=100), torch.zeros(2))
    assert (res(x, step=80, total_steps=100) > 0).all()
    assert torch.equal(res(x), PDEResidual("poisson", weight=1.0, mean=[0.0, 0.0], std=[1.0, 1.0])(x))
    with pytest.raises(ConfigError):
        PDEResidual("poisson", start=1.0)
