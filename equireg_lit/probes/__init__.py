"""Equivariance probes: candidate MPE functions, their objectives and separation statistics."""

from equireg_lit.probes.networks import SmallAutoencoder, SmallCNN, TimmFeatures
from equireg_lit.probes.pretrained import Pretrained
from equireg_lit.probes.objectives import (
    auroc, classification_loss, contrastive_loss, effect_size, equivariance_loss, separation_loss,
)

__all__ = ["Pretrained", "SmallCNN", "SmallAutoencoder", "TimmFeatures", "auroc", "effect_size",
           "equivariance_loss", "classification_loss", "contrastive_loss", "separation_loss"]
