"""Framework-free data: dataset builders and caches (MNIST, natural32), in-memory splits, what
``predict`` consumes and the predictions folder it fills. Datamodules are thin wrappers."""

from equireg_lit.data.folder import PredictionFolder
from equireg_lit.data.prediction import PredictionSet, read_measurement
from equireg_lit.data.tensors import Split, TensorImageDataset

__all__ = ["PredictionSet", "PredictionFolder", "Split", "TensorImageDataset", "read_measurement"]
