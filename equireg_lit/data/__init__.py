"""Framework-free data pieces: what ``predict`` consumes and the predictions folder it fills."""

from equireg_lit.data.folder import PredictionFolder
from equireg_lit.data.prediction import PredictionSet, read_measurement

__all__ = ["PredictionSet", "PredictionFolder", "read_measurement"]
