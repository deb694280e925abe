"""Finite transformation groups acting on image-like tensors ``[..., H, W]``.

Every element has an input action ``T_g`` and a feature action ``rho(g)`` (what ``g`` does to
the output of the function f being regularized). By default ``rho(g) = T_g``; pseudo-scalar
fields (vorticity) change sign under reflections, and invariant probes use the trivial action.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

FeatureAction = Literal["same", "pseudoscalar", "trivial"]


@dataclass(frozen=True)
class D4Element:
    """``x -> rot90^k(flip_w^flip(x))``: every element of the dihedral group of the square."""

    k: int = 0
    flip: bool = False

    def act(self, x: Tensor) -> Tensor:
        if self.flip:
            x = torch.flip(x, dims=(-1,))
        return torch.rot90(x, self.k % 4, dims=(-2, -1)) if self.k % 4 else x

    def inverse(self) -> D4Element:
        # A reflection R^k F is an involution; a rotation inverts to R^-k.
        return self if self.flip else D4Element((-self.k) % 4, False)

    def compose(self, other: D4Element) -> D4Element:
        """``self ∘ other`` (apply ``other`` first), using ``F R^k F = R^-k``."""
        k = (self.k + (-other.k if self.flip else other.k)) % 4
        return D4Element(k, self.flip != other.flip)

    @property
    def is_reflection(self) -> bool:
        return self.flip

    @property
    def needs_square(self) -> bool:
        return self.k % 2 == 1


@dataclass(frozen=True)
class ShiftElement:
    """Circular shift by ``(dh, dw)`` pixels: the translation group of a periodic field."""

    dh: int = 0
    dw: int = 0

    def act(self, x: Tensor) -> Tensor:
        return torch.roll(x, shifts=(self.dh, self.dw), dims=(-2, -1))

    def inverse(self) -> ShiftElement:
        return ShiftElement(-self.dh, -self.dw)

    def compose(self, other: ShiftElement) -> ShiftElement:
        return ShiftElement(self.dh + other.dh, self.dw + other.dw)

    is_reflection = False
    needs_square = False


Element = D4Element | ShiftElement


class Group:
    """A finite set of non-identity elements to draw from, with input and feature actions.

    Args:
        name: Name used in configs and error messages.
        elements: Elements drawn uniformly by :meth:`sample` (the identity is excluded, as in
            the reference implementation, so every draw is an informative transform).
        feature_action: How ``g`` acts on f's output: ``same`` (spatially, as on the input),
            ``pseudoscalar`` (same, times -1 for reflections) or ``trivial`` (identity;
            f is an invariant probe and may return vectors).
        input_action: ``same`` (scalar fields, images) or ``pseudoscalar`` (the input changes
            sign under reflections, e.g. 2-D vorticity).
    """

    def __init__(
        self,
        name: str,
        elements: list[Element],
        feature_action: FeatureAction = "same",
        input_action: Literal["same", "pseudoscalar"] = "same",
    ):
        if not elements:
            raise ValueError(f"group {name!r} needs at least one element")
        if feature_action not in ("same", "pseudoscalar", "trivial"):
            raise ValueError(
                f"feature_action must be 'same', 'pseudoscalar' or 'trivial', got {feature_action!r}"
            )
        if input_action not in ("same", "pseudoscalar"):
            raise ValueError(f"input_action must be 'same' or 'pseudoscalar', got {input_action!r}")
        self.name = name
        self.elements = list(elements)
        self.feature_action = feature_action
        self.input_action = input_action

    def __repr__(self) -> str:
        return f"Group({self.name!r}, {len(self.elements)} elements, feature_action={self.feature_action!r})"

    @property
    def needs_square(self) -> bool:
        return any(g.needs_square for g in self.elements)

    def sample(self, generator: torch.Generator | None = None) -> Element:
        """Draw one element uniformly, using ``generator`` for reproducibility."""
        i = int(torch.randint(len(self.elements), (1,), generator=generator).item())
        return self.elements[i]

    def act(self, g: Element, x: Tensor) -> Tensor:
        """Input action ``T_g x`` (times -1 for reflections of pseudo-scalar inputs, e.g. vorticity)."""
        out = g.act(x)
        return -out if self.input_action == "pseudoscalar" and g.is_reflection else out

    def act_features(self, g: Element, y: Tensor) -> Tensor:
        """Feature action ``rho(g) y``."""
        if self.feature_action == "trivial":
            return y
        out = g.act(y)
        if self.feature_action == "pseudoscalar" and g.is_reflection:
            out = -out
        return out

    def check_acts_on(self, shape: tuple[int, ...] | torch.Size, what: str = "input") -> None:
        """Raise a clear error when the group cannot act on tensors of ``shape``."""
        if len(shape) < 3:
            raise ValueError(
                f"group {self.name!r} acts on spatial maps [B, C, H, W] (or [B, H, W]); the {what} "
                f"has shape {tuple(shape)} with no spatial axes. For an f that returns vectors, "
                "declare the group invariant with feature_action='trivial'."
            )
        h, w = shape[-2], shape[-1]
        for g in self.elements:
            if isinstance(g, ShiftElement) and g.dh % h == 0 and g.dw % w == 0:
                raise ValueError(
                    f"shift ({g.dh}, {g.dw}) is the identity on the {h}x{w} {what}; choose shifts "
                    "that are not multiples of the field size"
                )
        if self.needs_square and h != w:
            raise ValueError(
                f"group {self.name!r} contains quarter turns, which need square maps, but the {what} "
                f"is {h}x{w}. Use 'hflip', 'vflip', 'rot180' or 'shift', or crop to a square."
            )


DEFAULT_SHIFTS = (1, 2, 4, 8)


def _shift_elements(shifts: list[int] | None) -> list[ShiftElement]:
    steps = shifts if shifts is not None else DEFAULT_SHIFTS
    out: list[ShiftElement] = []
    for s in steps:
        for dh, dw in ((s, 0), (0, s), (-s, 0), (0, -s)):
            out.append(ShiftElement(dh, dw))
    return out


def _antidiagonal_shift_elements(shifts: list[int] | None) -> list[ShiftElement]:
    return [ShiftElement(d * s, -d * s) for s in (shifts if shifts is not None else DEFAULT_SHIFTS) for d in (1, -1)]


GROUP_NAMES = ("hflip", "vflip", "rot90", "rot180", "d4", "shift", "shift_antidiagonal")


def get_group(
    name: str,
    feature_action: FeatureAction = "same",
    input_action: Literal["same", "pseudoscalar"] = "same",
    all_rotations: bool = False,
    shifts: list[int] | None = None,
) -> Group:
    """Build a group by name.

    Args:
        name: One of ``hflip``, ``vflip``, ``rot90``, ``rot180``, ``d4``, ``shift``, ``shift_antidiagonal``.
        feature_action: ``same``, ``pseudoscalar`` or ``trivial`` (see :class:`Group`).
        input_action: ``same`` or ``pseudoscalar`` (see :class:`Group`).
        all_rotations: For ``rot90``: draw from all non-identity quarter turns (k = 1, 2, 3)
            instead of the reference's k in {1, 3}.
        shifts: For ``shift``: shift magnitudes in pixels, each applied along +-H and +-W
            (default 1, 2, 4, 8); for ``shift_antidiagonal``: by ``(s, -s)`` and ``(-s, s)``, the
            shifts that keep ``x + y`` fixed on a periodic grid (the symmetry of the Navier-Stokes
            forcing ``0.1 (sin 2pi(x + y) + cos 2pi(x + y))``, which the axis shifts break).
    """
    if name == "hflip":
        elements: list[Element] = [D4Element(0, True)]
    elif name == "vflip":
        elements = [D4Element(2, True)]  # rot180 ∘ flip_w == flip_h
    elif name == "rot90":
        elements = [D4Element(k) for k in ((1, 2, 3) if all_rotations else (1, 3))]
    elif name == "rot180":
        elements = [D4Element(2)]
    elif name == "d4":
        elements = [D4Element(k, f) for f in (False, True) for k in range(4) if (k, f) != (0, False)]
    elif name == "shift":
        elements = list(_shift_elements(shifts))
    elif name == "shift_antidiagonal":
        elements = _antidiagonal_shift_elements(shifts)
    else:
        raise ValueError(f"unknown group {name!r}; valid names: {', '.join(GROUP_NAMES)}")
    return Group(name, elements, feature_action, input_action)
