"""The EquiReg penalty: equivariance error of a manifold-preferential function f.

Forms::

    equi       R(x) = || rho(g) f(x) - f(T_g x) ||
    equi_plus  R(x) = || x - T_g^-1 f(T_g x) ||       (f maps back into x's space)

Unlike the reference, which reduces over the whole batch, every reduction here is per sample,
so a sample's penalty does not depend on the other samples in its batch; at batch size 1 the
two agree.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from equireg_lit.errors import ConfigError, check_range
from equireg_lit.regularizer.functions import ManifoldFunction
from equireg_lit.regularizer.groups import Group, get_group

Form = Literal["equi", "equi_plus"]
Reduction = Literal["norm", "sqnorm", "mse"]
Schedule = Literal["constant", "cutoff", "late"]
GeneratorArg = torch.Generator | list[torch.Generator] | None


def reduce_per_sample(diff: Tensor, reduction: Reduction) -> Tensor:
    """Reduce ``diff`` of shape ``[B, ...]`` to ``[B]``: L2 norm, its square, or mean square."""
    flat = diff.reshape(diff.shape[0], -1)
    if reduction == "norm":
        # vector_norm has a zero (sub)gradient at 0; sqrt(sum(x^2)) would give NaN there.
        return torch.linalg.vector_norm(flat, dim=1)
    sq = flat.pow(2)
    if reduction == "sqnorm":
        return sq.sum(dim=1)
    if reduction == "mse":
        return sq.mean(dim=1)
    raise ValueError(f"unknown reduction {reduction!r}; valid: norm, sqnorm, mse")


class EquiReg(nn.Module):
    """Equivariance regularizer ``alpha_t * R(x)``, evaluated per sample.

    Args:
        f: The manifold-preferential function ``[B, C, H, W] -> [B, ...]`` (a ``ManifoldFunction``;
            in Python any module or callable).
        group: A :class:`Group` or a group name for :func:`get_group`.
        form: ``equi`` (needs a spatial f output) or ``equi_plus`` (f output shaped like x).
        alpha: Weight multiplied into the returned penalty (0.01 for pixel-space DPS).
        freq: Fraction of steps on which the penalty fires: every ``int(1/freq)`` steps.
        schedule: ``constant``, ``cutoff`` (also off when ``step > total_steps - cutoff_steps``, the
            reference's) or ``late`` (on only then: the less noisy final steps; not in the reference).
        reduction: ``norm`` (L2 norm), ``sqnorm`` (squared norm) or ``mse`` (mean of squares).
        cutoff_steps: Length of the final window: ``cutoff`` switches the penalty off there,
            ``late`` on only there.
        seed: Seed of the internal generator that draws group elements (None: nondeterministic).
    """

    def __init__(
        self,
        f: ManifoldFunction,
        group: Group | str,
        form: Form = "equi",
        alpha: float = 0.01,
        freq: float = 1.0,
        schedule: Schedule = "constant",
        reduction: Reduction = "norm",
        cutoff_steps: int = 100,
        seed: int | None = None,
    ):
        super().__init__()
        if form not in ("equi", "equi_plus"):
            raise ConfigError(f"unknown form {form!r}; valid: equi, equi_plus")
        if schedule not in ("constant", "cutoff", "late"):
            raise ConfigError(f"unknown schedule {schedule!r}; valid: constant, cutoff, late")
        if reduction not in ("norm", "sqnorm", "mse"):
            raise ConfigError(f"unknown reduction {reduction!r}; valid: norm, sqnorm, mse")
        check_range("alpha", alpha, 0.0)
        check_range("freq", freq, 0.0, 1.0, low_open=True)
        if cutoff_steps < 0:
            raise ConfigError(f"cutoff_steps must be >= 0, got {cutoff_steps}")
        self.f = f
        self.group = get_group(group) if isinstance(group, str) else group
        self.form = form
        self.alpha = float(alpha)
        self.freq = float(freq)
        self.schedule = schedule
        self.reduction = reduction
        self.cutoff_steps = int(cutoff_steps)
        self.period = int(1.0 / self.freq)
        self.seed = seed
        self._generator = torch.Generator()
        if seed is not None:
            self._generator.manual_seed(seed)
        else:
            self._generator.seed()
        self._checked = False
        # Evaluations of f per sample since construction (``nfe`` counts them with the prior's).
        self.f_evaluations = 0

    def extra_repr(self) -> str:
        return (
            f"group={self.group.name}, form={self.form}, alpha={self.alpha}, freq={self.freq}, "
            f"schedule={self.schedule}, reduction={self.reduction}"
        )

    def is_active(self, step: int, total_steps: int | None = None) -> bool:
        """Whether the penalty fires at ``step`` (counted from 0 at the noisiest step)."""
        if step % self.period != 0:
            return False
        if self.schedule in ("cutoff", "late"):
            if total_steps is None:
                raise ValueError(f"schedule={self.schedule!r} needs total_steps to know where the run ends")
            in_window = step > total_steps - self.cutoff_steps
            if in_window == (self.schedule == "cutoff"):
                return False
        return True

    def _draw(self, batch: int, generator: GeneratorArg) -> list:
        if isinstance(generator, (list, tuple)):
            if len(generator) != batch:
                raise ValueError(f"got {len(generator)} generators for a batch of {batch}")
            return [self.group.sample(g) for g in generator]
        g = self.group.sample(generator if generator is not None else self._generator)
        return [g] * batch

    @staticmethod
    def _per_sample(fn, elements: list, x: Tensor) -> Tensor:
        if all(e is elements[0] for e in elements):
            return fn(elements[0], x)
        return torch.stack([fn(e, xi) for e, xi in zip(elements, x, strict=True)])

    def _check_output(self, x: Tensor, fx: Tensor) -> None:
        if self.form == "equi_plus":
            if fx.shape != x.shape:
                raise ValueError(
                    f"form 'equi_plus' needs f to map back into x's space, but f maps {tuple(x.shape)} "
                    f"to {tuple(fx.shape)}. Use form='equi' for feature-valued f."
                )
        elif self.group.feature_action != "trivial":
            self.group.check_acts_on(fx.shape, what="output of f")
        self._checked = True

    def penalty(self, x: Tensor, generator: GeneratorArg = None) -> Tensor:
        """Unweighted equivariance error ``R(x)`` of shape ``[B]`` (always evaluates f)."""
        self.group.check_acts_on(x.shape, what="input")
        return self.penalty_at(x, self._draw(x.shape[0], generator))

    def penalty_at(self, x: Tensor, elements: list) -> Tensor:
        """``R(x)`` for given group elements, one per sample."""
        gx = self._per_sample(self.group.act, elements, x)
        self.f_evaluations += 1 if self.form == "equi_plus" else 2
        if self.form == "equi_plus":
            f_gx = self.f(gx)
            if not self._checked:
                self._check_output(x, f_gx)
            inv = [e.inverse() for e in elements]
            diff = x - self._per_sample(self.group.act, inv, f_gx)
        else:
            # One batched call on [x; g.x]: f runs in eval mode, so samples stay independent.
            out = self.f(torch.cat([x, gx], dim=0))
            fx, f_gx = out[: x.shape[0]], out[x.shape[0] :]
            if not self._checked:
                self._check_output(x, fx)
            diff = self._per_sample(self.group.act_features, elements, fx) - f_gx
        return reduce_per_sample(diff, self.reduction)

    def mean_penalty(self, x: Tensor) -> Tensor:
        """``R(x)`` averaged over every element of the group: a deterministic, low-variance statistic."""
        self.group.check_acts_on(x.shape, what="input")
        return torch.stack([self.penalty_at(x, [g] * x.shape[0]) for g in self.group.elements]).mean(0)

    def forward(
        self, x: Tensor, step: int = 0, total_steps: int | None = None, generator: GeneratorArg = None
    ) -> Tensor:
        """Scheduled, weighted penalty ``alpha * R(x)`` of shape ``[B]``.

        Args:
            x: Batch ``[B, C, H, W]`` (the clean estimate during sampling).
            step: Step counter, 0 at the first (noisiest) step.
            total_steps: Number of steps in the run (required by ``cutoff`` and ``late``).
            generator: One generator (one group element for the batch, as the reference) or one
                per sample (independent draws, so results do not depend on the batch).

        Returns:
            Per-sample penalty; exact zeros, without evaluating f, on steps where it is off.
        """
        if not self.is_active(step, total_steps):
            return torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        return self.alpha * self.penalty(x, generator)


def equi_phase(
    reg: EquiReg,
    x: Tensor,
    num_steps: int = 5,
    lr: float = 1e-2,
    step: int = 0,
    total_steps: int | None = None,
    generator: GeneratorArg = None,
) -> Tensor:
    """SITCOM-style second phase: a few Adam steps minimizing ``sum_i reg(x_i)`` over ``x``.

    Args:
        reg: The regularizer (its ``alpha`` and schedule apply; an off step returns ``x``).
        x: Starting point ``[B, C, H, W]`` (not modified).
        num_steps: Optimizer steps.
        lr: Adam learning rate.
        step: Sampler step counter passed to the schedule.
        total_steps: Total sampler steps (for ``cutoff`` and ``late``).
        generator: Generator(s) for the group draws.

    Returns:
        The optimized tensor, detached.
    """
    if num_steps <= 0 or not reg.is_active(step, total_steps):
        return x.detach()
    z = x.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    with torch.enable_grad():
        for _ in range(num_steps):
            opt.zero_grad(set_to_none=True)
            reg(z, step=step, total_steps=total_steps, generator=generator).sum().backward()
            opt.step()
    return z.detach()
