"""LightningDataModules (installed as ``equireg_lit.datamodules``)."""

from equireg_lit.datamodules.folders import ImageFolderDataModule, MeasurementDataModule
from equireg_lit.data import TensorImageDataset
from equireg_lit.data.mnist import mnist32, split_indices
from equireg_lit.datamodules.base import SplitDataModule
from equireg_lit.datamodules.mnist import MNISTDataModule, SklearnDigitsDataModule
from equireg_lit.datamodules.natural import Natural32DataModule
from equireg_lit.datamodules.pde import PDEDataModule
from equireg_lit.datamodules.probe_sets import ProbeSetsDataModule
from equireg_lit.datamodules.synthetic import GaussianDataModule

__all__ = ["PDEDataModule", "ProbeSetsDataModule", "ImageFolderDataModule", "MeasurementDataModule", "GaussianDataModule", "MNISTDataModule", "Natural32DataModule", "SklearnDigitsDataModule", "SplitDataModule", "TensorImageDataset", "mnist32", "split_indices"]
