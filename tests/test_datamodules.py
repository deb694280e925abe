import numpy as np
import pytest
from PIL import Image

from equireg_lit.datamodules import ImageFolderDataModule, MeasurementDataModule


def test_image_folder_resizes_crops_and_scales(tmp_path):
    for i in range(5):
        arr = (np.random.default_rng(i).random((40, 60, 3)) * 255).astype("uint8")
        Image.fromarray(arr).save(tmp_path / f"img{i}.png")
    dm = ImageFolderDataModule(str(tmp_path), image_size=16, channels=3, batch_size=2, val_fraction=0.2)
    dm.setup()
    batch = next(iter(dm.predict_dataloader()))
    assert batch["image"].shape == (2, 3, 16, 16) and batch["index"].tolist() == [0, 1]
    assert -1 <= batch["image"].min() and batch["image"].max() <= 1
    assert len(dm.val_idx) == 1 and len(dm.train_idx) == 4
    gray = ImageFolderDataModule(str(tmp_path), image_size=8, channels=1)
    gray.setup()
    assert gray.dataset[0]["image"].shape == (1, 8, 8)


def test_missing_folders_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        ImageFolderDataModule(str(tmp_path / "nope")).setup()
    with pytest.raises(FileNotFoundError, match="no PNG/JPEG"):
        ImageFolderDataModule(str(tmp_path)).setup()
    with pytest.raises(FileNotFoundError, match="key 'y'"):
        MeasurementDataModule(str(tmp_path)).setup()
