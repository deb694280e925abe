"""Metrics: the digit classifier's features and Fréchet distance, LPIPS, per-sample PSNR."""

from torch import Tensor


def batch_psnr(x: Tensor, ref: Tensor) -> Tensor:
    """Per-sample PSNR (dB, torchmetrics) of ``[B, C, H, W]`` images in [-1, 1], on the [0, 1]
    scale as the prediction writer computes it."""
    from torchmetrics.functional.image import peak_signal_noise_ratio

    unit = lambda t: ((t.float() + 1) / 2).clamp(0, 1)  # noqa: E731
    return peak_signal_noise_ratio(unit(x), unit(ref), data_range=1.0, reduction="none", dim=(1, 2, 3))
