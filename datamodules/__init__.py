"""LightningDataModules (installed as ``equireg_lit.datamodules``)."""

from equireg_lit.datamodules.mnist import MNISTDataModule, SklearnDigitsDataModule, TensorImageDataset, mnist32, split_indices

__all__ = ["MNISTDataModule", "SklearnDigitsDataModule", "TensorImageDataset", "mnist32", "split_indices"]
