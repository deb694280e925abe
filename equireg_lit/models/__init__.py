"""LightningModules: thin wrappers over the framework-free math."""

from equireg_lit.models.classifier import DigitClassifier
from equireg_lit.models.probe import ProbeModule, SelectionModule
from equireg_lit.models.posterior import PosteriorSampler
from equireg_lit.models.score import ScoreModule

__all__ = ["ScoreModule", "PosteriorSampler", "DigitClassifier", "ProbeModule", "SelectionModule"]
