import numpy as np
import pytest
from PIL import Image

from equireg_lit.datamodules import ImageFolderDataModule, MeasurementDataModule
from equireg_lit.errors import DataError
from equireg_lit.physics import BoxInpainting


def test_image_folder_resizes_crops_and_scales(tmp_path):
    for i in range(5):
        arr = (np.random.default_rng(i).random((40, 60, 3)) * 255).astype("uint8")
        Image.fromarray(arr).save(tmp_path / f"img{i}.png")
    op = BoxInpainting(img_size=(3, 16, 16), box_size=4)
    dm = ImageFolderDataModule(str(tmp_path), image_size=16, channels=3, batch_size=2, val_fraction=0.2, operator=op)
    dm.setup()
    batch = next(iter(dm.predict_dataloader()))
    assert batch["truth"].shape == (2, 3, 16, 16) and batch["index"].tolist() == [0, 1]
    assert -1 <= batch["truth"].min() and batch["truth"].max() <= 1
    assert batch["y"].shape == (2, 3, 16, 16)
    assert len(dm.val_idx) == 1 and len(dm.train_idx) == 4
    gray = ImageFolderDataModule(str(tmp_path), image_size=8, channels=1)
    gray.setup()
    assert gray.dataset[0]["image"].shape == (1, 8, 8)


def test_missing_folders_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="image folder not found"):
        ImageFolderDataModule(str(tmp_path / "nope")).setup()
    with pytest.raises(DataError, match="no PNG/JPEG"):
        ImageFolderDataModule(str(tmp_path)).setup()
    with pytest.raises(DataError, match="key 'y'"):
        MeasurementDataModule(str(tmp_path)).setup()


def test_natural32_splits_by_source_and_crops_textured_patches():
    import torch

    from equireg_lit.data.natural import MIN_STD, SOURCES, patches, source_image

    names = [n for split in SOURCES.values() for n in split]
    assert len(names) == len(set(names)) == 15  # no source image in two splits
    img = source_image("camera")
    assert img.shape == (1, 512, 512) and 0 <= img.min() and img.max() <= 1
    p = patches(img, 6, torch.Generator().manual_seed(0))
    again = patches(img, 6, torch.Generator().manual_seed(0))
    assert p.shape == (6, 1, 32, 32) and torch.equal(p, again)
    assert (p.flatten(1).std(1) >= MIN_STD).all()
