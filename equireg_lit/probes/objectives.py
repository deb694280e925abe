"""Probe training objectives and separation statistics (framework-free)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from equireg_lit.regularizer import EquiReg
from equireg_lit.regularizer.groups import Group


def collapse_penalty(features: Tensor) -> Tensor:
    """``relu(1 - std)`` of each feature channel over the batch and space: keeps an equivariance-
    trained f from collapsing to a constant (a constant map is trivially equivariant)."""
    std = features.transpose(0, 1).reshape(features.shape[1], -1).std(dim=1)
    return F.relu(1.0 - std).mean()


def equivariance_loss(reg: EquiReg, x: Tensor, collapse_weight: float = 1.0,
                      generator: torch.Generator | None = None) -> Tensor:
    """Mean equivariance error on data, plus the anti-collapse term on f's features."""
    loss = reg.penalty(x, generator=generator).mean()
    if collapse_weight:
        loss = loss + collapse_weight * collapse_penalty(reg.f(x))
    return loss


def classification_loss(f: nn.Module, head: nn.Module, group: Group, x: Tensor,
                        generator: torch.Generator | None = None) -> Tensor:
    """Predict which group element (0 = identity) transformed each input, from pooled features."""
    labels = torch.randint(len(group.elements) + 1, (x.shape[0],), generator=generator)
    gx = torch.stack([xi if k == 0 else group.act(group.elements[k - 1], xi) for xi, k in zip(x, labels.tolist(), strict=True)])
    logits = head(f(gx).flatten(2).mean(-1))
    return F.cross_entropy(logits, labels.to(x.device))


def contrastive_loss(f: nn.Module, proj: nn.Module, group: Group, x: Tensor, temperature: float = 0.1,
                     generator: torch.Generator | None = None) -> Tensor:
    """InfoNCE between pooled projections of ``x`` and a group-transformed view of it."""
    g = group.sample(generator)
    z1 = F.normalize(proj(f(x).flatten(2).mean(-1)), dim=-1)
    z2 = F.normalize(proj(f(group.act(g, x)).flatten(2).mean(-1)), dim=-1)
    logits = z1 @ z2.T / temperature
    target = torch.arange(x.shape[0], device=x.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def reconstruction_loss(f: nn.Module, group: Group, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """MSE of an autoencoder's reconstruction of group-augmented data (one element per batch):
    trained on the group's orbit of the data, it is equivariant there and nowhere it was not taught."""
    gx = group.act(group.sample(generator), x)
    return F.mse_loss(f(gx), gx)


def separation_loss(reg: EquiReg, on: Tensor, off: Tensor, margin: float = 1.0,
                    generator: torch.Generator | None = None) -> Tensor:
    """Low equivariance error on data, pushed above ``margin`` (hinge) on off-manifold samples."""
    r_on = reg.penalty(on, generator=generator)
    r_off = reg.penalty(off, generator=generator)
    return r_on.mean() + F.relu(margin - r_off).mean()


def auroc(on: Tensor, off: Tensor) -> float:
    """Probability that an off-manifold error exceeds an on-manifold one (ties count half)."""
    from torchmetrics.functional.classification import binary_auroc

    scores = torch.cat([on, off]).double()
    target = torch.cat([torch.zeros(len(on)), torch.ones(len(off))]).long()
    return float(binary_auroc(scores, target))


def effect_size(on: Tensor, off: Tensor) -> float:
    """Cohen's d of off vs on errors (pooled standard deviation)."""
    n1, n2 = len(on), len(off)
    pooled = (((n1 - 1) * on.double().var() + (n2 - 1) * off.double().var()) / max(n1 + n2 - 2, 1)).sqrt()
    return float((off.double().mean() - on.double().mean()) / pooled.clamp_min(1e-12))
