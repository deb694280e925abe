import pytest
import torch
from torch import nn

from equireg_lit.regularizer import EquiReg, FixedConv, equi_phase, get_group, reduce_per_sample


class Counting(nn.Module):
    def __init__(self, f):
        super().__init__()
        self.f, self.calls = f, 0

    def forward(self, x):
        self.calls += 1
        return self.f(x)


# equi_plus measures ||x - g^-1 f(g x)||: zero only when f is also the identity on x.
@pytest.mark.parametrize("form,f", [("equi", nn.Identity()), ("equi", nn.Tanh()), ("equi_plus", nn.Identity())])
@pytest.mark.parametrize("group", ["hflip", "vflip", "rot90", "rot180", "d4", "shift"])
def test_zero_for_equivariant_f(form, group, f):
    reg = EquiReg(f, group, form=form, seed=0)
    x = torch.randn(3, 2, 16, 16)
    for step in range(5):
        assert torch.equal(reg(x, step=step), torch.zeros(3))


@pytest.mark.parametrize("group", ["hflip", "vflip", "rot90", "d4"])
def test_positive_for_asymmetric_conv(group):
    reg = EquiReg(FixedConv(1), group, seed=0)
    assert (reg(torch.randn(4, 1, 8, 8)) > 0).all()


def test_alpha_multiplies_and_reductions():
    x = torch.randn(2, 1, 8, 8)
    base = EquiReg(FixedConv(1), "hflip", alpha=1.0, seed=0)
    scaled = EquiReg(FixedConv(1), "hflip", alpha=0.25, seed=0)
    assert torch.allclose(scaled(x), 0.25 * base(x))
    d = torch.randn(2, 3, 4, 4)
    assert torch.allclose(reduce_per_sample(d, "sqnorm"), reduce_per_sample(d, "norm") ** 2)
    assert torch.allclose(reduce_per_sample(d, "mse"), reduce_per_sample(d, "sqnorm") / 48)


@pytest.mark.parametrize("reduction", ["norm", "sqnorm", "mse"])
@pytest.mark.parametrize("form", ["equi", "equi_plus"])
def test_per_sample_independent_of_batch(reduction, form):
    x = torch.randn(5, 1, 8, 8)
    reg = EquiReg(FixedConv(1), "d4", form=form, reduction=reduction)
    gens = lambda idx: [torch.Generator().manual_seed(100 + i) for i in idx]  # noqa: E731
    full = reg(x, generator=gens(range(5)))
    for i in range(5):
        assert torch.allclose(reg(x[i : i + 1], generator=gens([i])), full[i : i + 1], atol=1e-6)
    # With one shared generator, sample 2's value does not depend on the others either.
    a = EquiReg(FixedConv(1), "d4", form=form, reduction=reduction, seed=3)(x)
    b = EquiReg(FixedConv(1), "d4", form=form, reduction=reduction, seed=3)(x[[2, 0]])
    assert torch.allclose(a[2], b[0], atol=1e-6)


def test_batch_one_equals_whole_batch_reference():
    x = torch.randn(1, 1, 8, 8)
    f = FixedConv(1)
    reg = EquiReg(f, "hflip", alpha=1.0)
    ref = torch.linalg.vector_norm(f(x).flip(-1) - f(x.flip(-1)))  # reference: one norm over the batch
    assert torch.allclose(reg(x), ref.view(1))


@pytest.mark.parametrize("freq,period", [(1.0, 1), (0.6, 1), (0.5, 2), (0.25, 4), (0.1, 10)])
def test_constant_schedule_cadence(freq, period):
    f = Counting(FixedConv(1))
    reg = EquiReg(f, "hflip", freq=freq, seed=0)
    x = torch.randn(2, 1, 8, 8)
    fired = [step for step in range(40) if (reg(x, step=step) != 0).any()]
    assert fired == list(range(0, 40, period))
    assert f.calls == len(fired)  # f is never evaluated on off steps


def test_off_steps_are_exact_zeros_without_calling_f():
    f = Counting(FixedConv(1))
    reg = EquiReg(f, "hflip", freq=0.5)
    out = reg(torch.randn(3, 1, 8, 8), step=1)
    assert torch.equal(out, torch.zeros(3)) and f.calls == 0


def test_late_window_is_the_complement_of_cutoff():
    cutoff = EquiReg(FixedConv(1), "hflip", schedule="cutoff", cutoff_steps=50)
    late = EquiReg(FixedConv(1), "hflip", schedule="late", cutoff_steps=50)
    on_cutoff = [s for s in range(100) if cutoff.is_active(s, 100)]
    on_late = [s for s in range(100) if late.is_active(s, 100)]
    assert on_late == list(range(51, 100)) and sorted(on_cutoff + on_late) == list(range(100))


def test_cutoff_window():
    reg = EquiReg(FixedConv(1), "hflip", schedule="cutoff", cutoff_steps=100)
    active = [s for s in range(1000) if reg.is_active(s, total_steps=1000)]
    assert active == list(range(0, 901))  # off when step > total_steps - cutoff_steps
    reg10 = EquiReg(FixedConv(1), "hflip", schedule="cutoff", cutoff_steps=10, freq=0.5)
    assert [s for s in range(50) if reg10.is_active(s, 50)] == list(range(0, 41, 2))
    with pytest.raises(ValueError, match="total_steps"):
        reg(torch.randn(1, 1, 8, 8), step=0)


def test_unknown_and_invalid_settings_rejected():
    with pytest.raises(TypeError, match="unexpected keyword"):
        EquiReg(nn.Identity(), "hflip", lamda=0.1)
    with pytest.raises(TypeError):
        EquiReg(nn.Identity(), "hflip")(torch.randn(1, 1, 4, 4), stepp=0)
    for kwargs, msg in [({"form": "equi2"}, "form"), ({"reduction": "l1"}, "reduction"),
                        ({"schedule": "cosine"}, "schedule"), ({"freq": 0.0}, "freq")]:
        with pytest.raises(ValueError, match=msg):
            EquiReg(nn.Identity(), "hflip", **kwargs)


def test_vector_valued_f_needs_trivial_action():
    pooled = nn.Sequential(nn.Flatten(), nn.Linear(64, 5))
    with pytest.raises(ValueError, match="no spatial axes.*trivial"):
        EquiReg(pooled, "hflip")(torch.randn(2, 1, 8, 8))
    inv = EquiReg(pooled, get_group("hflip", feature_action="trivial"), seed=0)
    assert inv(torch.randn(2, 1, 8, 8)).shape == (2,)
    with pytest.raises(ValueError, match="equi_plus"):
        EquiReg(pooled, "hflip", form="equi_plus")(torch.randn(2, 1, 8, 8))
    with pytest.raises(ValueError, match="square"):
        EquiReg(nn.Identity(), "rot90")(torch.randn(2, 1, 8, 6))


def test_gradient_is_finite_at_zero_penalty():
    x = torch.randn(2, 1, 8, 8, requires_grad=True)
    EquiReg(nn.Identity(), "hflip")(x).sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


def test_equi_phase_lowers_penalty():
    reg = EquiReg(FixedConv(1), "hflip", alpha=1.0, seed=0)
    x = torch.randn(2, 1, 8, 8)
    before = reg.penalty(x, generator=torch.Generator().manual_seed(0))
    z = equi_phase(reg, x, num_steps=30, lr=0.05)
    after = reg.penalty(z, generator=torch.Generator().manual_seed(0))
    assert (after < before).all() and not z.requires_grad
    off = EquiReg(FixedConv(1), "hflip", freq=0.5)
    assert torch.equal(equi_phase(off, x, step=1), x)


def test_the_equi_phase_ignores_the_weight_so_its_step_count_sets_the_strength():
    """Adam is blind to a constant factor on its objective: alpha 0.01 and 100 land on the same
    point (the SITCOM studies tune the phase's step count instead), while more steps go further."""
    x = torch.randn(2, 1, 8, 8)
    phase = lambda alpha, steps: equi_phase(EquiReg(FixedConv(1), "hflip", alpha=alpha, seed=0),  # noqa: E731
                                            x, num_steps=steps, lr=0.05, generator=torch.Generator().manual_seed(0))
    small, large = phase(0.01, 10), phase(100.0, 10)
    assert (small - x).abs().max() > 0.2  # the phase moved x by steps of about lr ...
    torch.testing.assert_close(small, large, atol=1e-3, rtol=0)  # ... the same way (Adam's eps aside)
    reg = EquiReg(FixedConv(1), "hflip", alpha=1.0, seed=0)
    penalty = lambda z: reg.penalty(z, generator=torch.Generator().manual_seed(0))  # noqa: E731
    assert (penalty(phase(1.0, 30)) < penalty(phase(1.0, 3))).all()
