"""Forward operators of the DPS tasks, in deepinv's ``Physics`` vocabulary.

Each class is a deepinv ``Physics`` subclass with a typed constructor (so configs and
``--help`` document it) and a ``noise_sigma``. The deepinv noise model is set too, so
``physics(x)`` behaves as deepinv users expect; reproducible simulation goes through
:func:`equireg_lit.physics.noise.simulate`, which draws each sample's noise from its own generator.

Default sizes are for 32x32 images, proportional to the DPS 256x256 tasks where that is
meaningful (see each class).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from deepinv.physics import Blur, Downsampling, Inpainting, Physics
from deepinv.physics.functional import gaussian_blur as _gaussian_kernel
from deepinv.physics.generator import MotionBlurGenerator
from torch import Tensor

from equireg_lit.errors import ConfigError, DataError, check_range
from equireg_lit.physics.noise import SeededGaussianNoise

ImgSize = tuple[int, int, int]


def _rebuild(cls: type, args: tuple, kwargs: dict):
    return cls(*args, **kwargs)


def _check_img(physics: Physics, shape: tuple[int, ...] | torch.Size, what: str = "data") -> None:
    expected = tuple(physics.img_size_chw)
    if len(shape) != 4 or tuple(shape[1:]) != expected:
        raise ConfigError(
            f"{type(physics).__name__} is configured for images of shape [B, {expected[0]}, {expected[1]}, "
            f"{expected[2]}] but the {what} has shape {tuple(shape)}; set the operator's img_size to "
            f"[{', '.join(str(s) for s in shape[1:])}] or resize the data"
        )


class TaskOperator(Physics):
    """Base of the operators a config can choose (``--model.operator``): a deepinv ``Physics`` with
    its image size, a per-sample seeded noise model and a shape check. Any other deepinv operator
    fits by subclassing it together with this class, as the classes below do, e.g.
    ``class MyOp(TaskOperator, deepinv.physics.Inpainting)`` calling ``self._setup_task`` first."""

    img_size_chw: ImgSize
    is_linear: bool = True

    def _setup_task(self, img_size: ImgSize, noise_sigma: float) -> None:
        if len(img_size) != 3 or any(int(s) < 1 for s in img_size):
            raise ConfigError(f"img_size must be [C, H, W] with positive sizes, got {list(img_size)}")
        check_range("noise_sigma", noise_sigma, 0.0)
        self.img_size_chw = tuple(int(s) for s in img_size)

    @property
    def noise_sigma(self) -> float:
        """Standard deviation of the measurement noise (held by the noise model, its one home)."""
        return float(self.noise_model.sigma)

    def check_input(self, shape: tuple[int, ...] | torch.Size, what: str = "data") -> None:
        _check_img(self, shape, what)

    def measurement_from_image(self, img: Tensor) -> Tensor:
        """The measurement ``y`` given as a picture (a photo with a hole, a blurred or small photo):
        as it is, except that inpainting keeps only the observed pixels (``A`` is a projection, so
        whatever fills the hole in the file does not enter the likelihood)."""
        return self.A(img) if isinstance(self, Inpainting) else img

    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls)
        obj.__dict__["_init_args"] = (args, kwargs)
        return obj

    def __reduce__(self):
        # deepinv operators hold lambdas (default forward, sensor and SVD maps) that cannot be
        # pickled (ddp_spawn, DataLoader workers); a task is rebuilt from its constructor
        # arguments instead, which determine it completely (masks and kernels are seeded).
        args, kwargs = self.__dict__["_init_args"]
        return (_rebuild, (type(self), args, kwargs))


def _box_mask(img_size: ImgSize, box_size: int) -> Tensor:
    c, h, w = img_size
    if not 0 < box_size <= min(h, w):
        raise ConfigError(f"box_size must be in (0, {min(h, w)}], got {box_size}")
    mask = torch.ones(c, h, w)
    top, left = (h - box_size) // 2, (w - box_size) // 2
    mask[:, top : top + box_size, left : left + box_size] = 0
    return mask


class BoxInpainting(TaskOperator, Inpainting):
    """A centered square box of missing pixels (DPS: 128x128 of 256x256; 16x16 of 32x32 here).

    Args:
        img_size: ``[C, H, W]``.
        box_size: Side of the missing box in pixels.
        noise_sigma: Gaussian measurement noise (0.05 on [-1, 1] images in DPS).
    """

    def __init__(self, img_size: ImgSize = (1, 32, 32), box_size: int = 16, noise_sigma: float = 0.05):
        self._setup_task(img_size, noise_sigma)
        super().__init__(img_size=self.img_size_chw, mask=_box_mask(self.img_size_chw, box_size),
                         noise_model=SeededGaussianNoise(noise_sigma))


class RandomInpainting(TaskOperator, Inpainting):
    """A fixed, seeded random set of missing pixels (the same for every channel and sample).

    Args:
        img_size: ``[C, H, W]``.
        missing_fraction: Fraction of pixels removed (0.7 in recent papers; DPS draws 0.3-0.7).
        mask_seed: Seed of the mask.
        noise_sigma: Gaussian measurement noise.
    """

    def __init__(
        self,
        img_size: ImgSize = (1, 32, 32),
        missing_fraction: float = 0.7,
        mask_seed: int = 0,
        noise_sigma: float = 0.05,
    ):
        self._setup_task(img_size, noise_sigma)
        if not 0.0 <= missing_fraction < 1.0:
            raise ConfigError(f"missing_fraction must be in [0, 1), got {missing_fraction}")
        c, h, w = self.img_size_chw
        keep = torch.rand(h, w, generator=torch.Generator().manual_seed(mask_seed)) >= missing_fraction
        super().__init__(img_size=self.img_size_chw, mask=keep.float().expand(c, h, w).clone(),
                         noise_model=SeededGaussianNoise(noise_sigma))


def _read_array_file(path_arg: str, setting: str, key: str) -> Tensor:
    """An operator's parameter file (a mask, a kernel) as a float tensor: ``.safetensors`` (tensor
    ``key``), ``.npy``, or an image read as grayscale in [0, 1]; a missing file names ``setting``."""
    from pathlib import Path

    import numpy as np

    path = Path(path_arg)
    if not path.is_file():
        raise DataError(f"{key} file not found: {path}; check {setting}")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from equireg_lit.utils.io import read_safetensors

        d = read_safetensors(path, f"{key} file")
        if key not in d:
            raise DataError(f"{key} file {path} has no tensor '{key}' (found {sorted(d)})")
        return d[key].float()
    if suffix == ".npy":
        return torch.from_numpy(np.load(path, allow_pickle=False)).float()
    from PIL import Image

    return torch.from_numpy(np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255.0)


class MaskInpainting(TaskOperator, Inpainting):
    """Inpainting with a mask read from a file (measurement mode: the mask that produced y).

    Args:
        mask_path: ``.safetensors`` with key ``mask`` ([H, W] or [C, H, W]; 1 = observed), or a
            PNG/JPEG (white = observed).
        img_size: ``[C, H, W]``.
        noise_sigma: Gaussian measurement noise.
    """

    def __init__(self, mask_path: str, img_size: ImgSize = (1, 32, 32), noise_sigma: float = 0.05):
        self._setup_task(img_size, noise_sigma)
        mask = _read_array_file(mask_path, "mask_path", "mask")
        c, h, w = self.img_size_chw
        if mask.ndim == 2:
            mask = mask.expand(c, h, w) if mask.shape == (h, w) else mask
        if tuple(mask.shape) != (c, h, w):
            raise ConfigError(f"mask {mask_path} has shape {tuple(mask.shape)} but img_size is {[c, h, w]}")
        super().__init__(img_size=self.img_size_chw, mask=(mask > 0.5).float().clone(), noise_model=SeededGaussianNoise(noise_sigma))


class SuperResolution(TaskOperator, Downsampling):
    """Anti-aliased downsampling by ``factor`` (deepinv ``Downsampling``, circular padding).

    Args:
        img_size: ``[C, H, W]``.
        factor: Downsampling factor (2 or 4).
        filter: ``bicubic`` (as DPS), ``bilinear``, ``gaussian`` or ``None`` (plain decimation).
        noise_sigma: Gaussian measurement noise.
    """

    def __init__(
        self,
        img_size: ImgSize = (1, 32, 32),
        factor: int = 4,
        filter: str | None = "bicubic",
        noise_sigma: float = 0.05,
    ):
        self._setup_task(img_size, noise_sigma)
        if self.img_size_chw[1] % factor or self.img_size_chw[2] % factor:
            raise ConfigError(f"image size {self.img_size_chw[1:]} is not divisible by factor {factor}")
        super().__init__(img_size=self.img_size_chw, factor=factor, filter=filter, padding="circular",
                         noise_model=SeededGaussianNoise(noise_sigma))


class GaussianBlur(TaskOperator, Blur):
    """Gaussian blur with reflect padding, as in DPS (kernel 61, sigma 3.0 at 256x256).

    The proportional sigma at 32x32 would be 0.375 px, almost the identity; the default here
    is sigma 1.0 (a 9x9 kernel), a blur of similar visual strength for 32x32 digits.

    Args:
        img_size: ``[C, H, W]``.
        sigma: Standard deviation of the kernel in pixels.
        kernel_size: Side of the kernel.
        noise_sigma: Gaussian measurement noise.
    """

    def __init__(
        self, img_size: ImgSize = (1, 32, 32), sigma: float = 1.0, kernel_size: int = 9, noise_sigma: float = 0.05
    ):
        self._setup_task(img_size, noise_sigma)
        kernel = _gaussian_kernel(psf_size=(kernel_size, kernel_size), sigma=(sigma, sigma))
        kernel = (kernel / kernel.sum()).reshape(1, 1, kernel_size, kernel_size)
        super().__init__(filter=kernel, padding="reflect",
                         noise_model=SeededGaussianNoise(noise_sigma))
        self.img_size = self.img_size_chw


class MotionBlur(TaskOperator, Blur):
    """Seeded random motion-blur kernel (deepinv ``MotionBlurGenerator``), reflect padding.

    DPS draws 61x61 kernels with intensity 0.5 at 256x256; here a ``kernel_size`` kernel from
    deepinv's Gaussian-process trajectory model with length scale ``length``.

    Args:
        img_size: ``[C, H, W]``.
        kernel_size: Side of the kernel.
        length: Trajectory length scale of the generator (deepinv ``l``).
        kernel_seed: Seed of the kernel.
        noise_sigma: Gaussian measurement noise.
    """

    def __init__(
        self,
        img_size: ImgSize = (1, 32, 32),
        kernel_size: int = 9,
        length: float = 0.3,
        kernel_seed: int = 0,
        noise_sigma: float = 0.05,
    ):
        self._setup_task(img_size, noise_sigma)
        gen = MotionBlurGenerator((kernel_size, kernel_size), rng=torch.Generator().manual_seed(kernel_seed), l=length)
        kernel = gen.step(1, seed=kernel_seed)["filter"]
        super().__init__(filter=kernel, padding="reflect", noise_model=SeededGaussianNoise(noise_sigma))
        self.img_size = self.img_size_chw


class KernelBlur(TaskOperator, Blur):
    """Blur with a kernel read from a file (your own blurred photos), reflect padding.

    Args:
        kernel_path: ``.npy`` array ``[k, k]``, ``.safetensors`` (tensor ``kernel``) or a grayscale
            PNG; normalized to sum 1.
        img_size: ``[C, H, W]``.
        noise_sigma: Gaussian measurement noise.
    """

    def __init__(self, kernel_path: str, img_size: ImgSize = (3, 256, 256), noise_sigma: float = 0.05):
        self._setup_task(img_size, noise_sigma)
        kernel = _read_array_file(kernel_path, "kernel_path", "kernel")
        if kernel.ndim != 2 or not torch.isfinite(kernel).all() or (kernel < 0).any() or kernel.sum() <= 0:
            raise DataError(f"kernel file {kernel_path} must hold one finite, non-negative 2-D kernel with a positive "
                            f"sum (got shape {list(kernel.shape)})")
        kernel = (kernel / kernel.sum()).reshape(1, 1, *kernel.shape)
        super().__init__(filter=kernel, padding="reflect", noise_model=SeededGaussianNoise(noise_sigma))
        self.img_size = self.img_size_chw


def fft2c(x: Tensor) -> Tensor:
    """Centered orthonormal 2-D FFT, as ``fft2_m`` in the DPS code."""
    return torch.fft.fftshift(torch.fft.fft2(torch.fft.ifftshift(x, dim=(-2, -1)), norm="ortho"), dim=(-2, -1))


class FourierPhaseRetrieval(TaskOperator, Physics):
    """``y = |F(pad x)|``: Fourier magnitude of the zero-padded image, as in DPS.

    deepinv's ``PhaseRetrieval`` measures ``|Bx|^2`` (squared, with a generic B); DPS uses the
    magnitude of the centered 2-D FFT, so this operator is written here. Padding follows the
    DPS code: ``int(oversampling / 8 * H)`` pixels on each side.

    Args:
        img_size: ``[C, H, W]``.
        oversampling: DPS oversampling factor (2.0).
        noise_sigma: Gaussian measurement noise.
    """

    is_linear = False

    def __init__(self, img_size: ImgSize = (1, 32, 32), oversampling: float = 2.0, noise_sigma: float = 0.05):
        self._setup_task(img_size, noise_sigma)
        super().__init__(noise_model=SeededGaussianNoise(noise_sigma))
        self.pad = int(oversampling / 8.0 * self.img_size_chw[1])

    def A(self, x: Tensor, **kwargs) -> Tensor:
        p = self.pad
        return fft2c(F.pad(x, (p, p, p, p))).abs()


class HighDynamicRange(TaskOperator, Physics):
    """``y = clip(gain * x, -1, 1)``: saturating exposure (gain 2 in recent papers, where it is
    called alpha; renamed here because ``alpha`` is the EquiReg weight).

    Args:
        img_size: ``[C, H, W]``.
        gain: Exposure gain.
        noise_sigma: Gaussian measurement noise.
    """

    is_linear = False

    def __init__(self, img_size: ImgSize = (1, 32, 32), gain: float = 2.0, noise_sigma: float = 0.05):
        self._setup_task(img_size, noise_sigma)
        super().__init__(noise_model=SeededGaussianNoise(noise_sigma))
        check_range("gain", gain, 0.0, low_open=True)
        self.gain = float(gain)

    def A(self, x: Tensor, **kwargs) -> Tensor:
        return (self.gain * x).clamp(-1, 1)
