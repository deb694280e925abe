"""Lightning callbacks (installed as ``equireg_lit.callbacks``)."""

from equireg_lit.callbacks.prediction_writer import PredictionWriter, image_metrics
from equireg_lit.callbacks.stop import CheckpointOnStop, RandomStateInCheckpoint, newest_checkpoint

__all__ = ["PredictionWriter", "CheckpointOnStop", "image_metrics", "newest_checkpoint", "RandomStateInCheckpoint"]
