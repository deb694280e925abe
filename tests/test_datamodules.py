import numpy as np
import pytest
import torch
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


def test_image_measurements_are_read_masked_and_numbered(tmp_path):
    """A folder of PNGs is a measurement set: non-images are ignored, names that are not numbers
    are numbered in sorted order, inpainting keeps only observed pixels, a bad file is named."""
    import numpy as np
    from PIL import Image

    from equireg_lit.datamodules.folders import MeasurementDataset
    from equireg_lit.errors import DataError
    from equireg_lit.physics import MaskInpainting

    mask = np.full((8, 8), 255, np.uint8)
    mask[2:5, 2:5] = 0
    Image.fromarray(mask).save(tmp_path / "mask.png")
    photos = tmp_path / "y"
    photos.mkdir()
    for name in ("b.png", "a.jpg"):
        Image.fromarray(np.full((8, 8, 3), 255, np.uint8)).save(photos / name)
    (photos / "notes.txt").write_text("ignored")
    op = MaskInpainting(str(tmp_path / "mask.png"), img_size=(3, 8, 8))
    ds = MeasurementDataset(photos, channels=3, from_image=op.measurement_from_image)
    assert len(ds) == 2 and ds.indices == [0, 1] and ds.files[0].name == "a.jpg"
    y = ds[0]["y"]
    assert y.shape == (3, 8, 8) and y[:, 3, 3].eq(0).all() and torch.allclose(y[:, 0, 0], torch.ones(3))
    assert MeasurementDataset(photos, channels=1)[1]["y"].shape == (1, 8, 8)
    (photos / "c.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="c.png cannot be read"):
        MeasurementDataset(photos, channels=3)


def test_kernel_blur_reads_npy_and_png_and_names_bad_files(tmp_path):
    import numpy as np
    from PIL import Image

    from equireg_lit.errors import DataError
    from equireg_lit.physics import KernelBlur

    k = np.zeros((5, 5), np.float32)
    k[2, :] = 1.0
    np.save(tmp_path / "k.npy", k)
    Image.fromarray((k * 255).astype(np.uint8)).save(tmp_path / "k.png")
    a, b = KernelBlur(str(tmp_path / "k.npy"), img_size=(1, 8, 8)), KernelBlur(str(tmp_path / "k.png"), img_size=(1, 8, 8))
    assert torch.allclose(a.filter, b.filter) and abs(float(a.filter.sum()) - 1) < 1e-6
    x = torch.randn(1, 1, 8, 8)
    assert torch.allclose(a.A(x), b.A(x))
    np.save(tmp_path / "bad.npy", -k)
    with pytest.raises(DataError, match="bad.npy must hold one finite, non-negative"):
        KernelBlur(str(tmp_path / "bad.npy"), img_size=(1, 8, 8))
    with pytest.raises(DataError, match="kernel file not found"):
        KernelBlur(str(tmp_path / "nope.npy"))


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resumable_loader_continues_an_epoch_where_it_stopped(num_workers):
    """A loader restored from the state saved after 3 trained batches yields the rest of that
    epoch's shuffle, and the next epochs match the uninterrupted loader's."""
    from equireg_lit.datamodules.resumable import ResumableLoader

    data = torch.utils.data.TensorDataset(torch.arange(40))

    def loader():
        return ResumableLoader(data, batch_size=4, shuffle=True, num_workers=num_workers)

    torch.manual_seed(0)
    whole = loader()
    epochs = [[b[0].tolist() for b in whole] for _ in range(2)]
    torch.manual_seed(0)
    stopped = loader()
    it = iter(stopped)
    for _ in range(3):
        next(it)
    stopped.batches_trained = 3  # what RandomStateInCheckpoint records after the third batch
    state = stopped.state_dict()
    torch.manual_seed(123)  # whatever the resumed process's random state
    resumed = loader()
    resumed.load_state_dict(state)
    rest = [b[0].tolist() for b in resumed]
    assert rest == epochs[0][3:] and resumed.batches_trained == 3
    assert sorted(sum(epochs[0], [])) == list(range(40)) and epochs[0] != epochs[1]
