"""Lightning callbacks (installed as ``equireg_lit.callbacks``)."""

from equireg_lit.callbacks.prediction_writer import PredictionWriter, image_metrics

__all__ = ["PredictionWriter", "image_metrics"]
