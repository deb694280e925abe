"""LightningModules: thin wrappers over the framework-free math."""

from equireg_lit.models.autoencoder import AutoencoderModule
from equireg_lit.models.classifier import DigitClassifier
from equireg_lit.models.latent_score import LatentScoreModule
from equireg_lit.models.probe import ProbeModule, SelectionModule
from equireg_lit.models.posterior import PosteriorSampler
from equireg_lit.models.score import ScoreModule

__all__ = ["ScoreModule", "LatentScoreModule", "AutoencoderModule", "PosteriorSampler", "DigitClassifier", "ProbeModule", "SelectionModule"]
