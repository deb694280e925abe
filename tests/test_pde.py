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
