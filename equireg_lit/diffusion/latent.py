"""Latent diffusion priors: an autoencoder, a latent epsilon network and its schedule.

The diffusion runs on latents ``z`` (``channels`` and ``image_size`` are the latent map's); a
sampler that measures in pixel space goes through the differentiable :meth:`decode` (and
:meth:`encode` for hard data consistency). The components are diffusers models, loaded from a
local diffusers directory with the layout ``save_pretrained`` writes for latent diffusion
pipelines (CompVis ``ldm-celebahq-256`` saved locally, or a pair trained here):

    <dir>/vqvae/ (VQModel) or <dir>/vae/ (AutoencoderKL)   <dir>/unet/ (UNet2DModel)   <dir>/scheduler/
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor, nn

from equireg_lit.diffusion.priors import DiffusionPrior
from equireg_lit.diffusion.schedule import NoiseSchedule
from equireg_lit.errors import DataError

LATENT_HELP = ("a latent diffusion directory holds vqvae/ (VQModel) or vae/ (AutoencoderKL), unet/ "
               "(UNet2DModel) and scheduler/ (scheduler_config.json), as diffusers' save_pretrained writes them")


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise DataError(f"{path.parent} has no {path.name} ({what}); {LATENT_HELP}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"{path} is not valid JSON ({err.msg}, line {err.lineno}); re-save the {what}") from None


def is_latent_weights(weights: str) -> bool:
    """Whether ``weights`` names a latent diffusion directory (shipped or a local path) rather
    than a pixel prior's weights."""
    from equireg_lit.weights import SHIPPED_DIR

    root = SHIPPED_DIR / weights if "/" not in weights and "." not in weights else Path(weights).expanduser()
    return (root / "unet").is_dir()


def shipped_latent_dir(name: str) -> Path:
    """The shipped latent diffusion directory ``equireg_lit/weights/<name>`` (a one-name error
    listing the shipped ones otherwise)."""
    from equireg_lit.weights import SHIPPED_DIR

    root = SHIPPED_DIR / name
    if not (root / "unet").is_dir():
        shipped = sorted(p.name for p in SHIPPED_DIR.iterdir() if (p / "unet").is_dir())
        raise DataError(f"no shipped latent diffusion weights named {name!r}; shipped: {shipped or 'none'}. "
                        f"Pass a path to a local diffusers directory instead ({LATENT_HELP})")
    return root


def load_autoencoder(path: str | Path) -> nn.Module:
    """A diffusers ``VQModel`` or ``AutoencoderKL`` from a local folder (as ``save_pretrained``
    writes it), in eval mode; a missing or foreign config is one named error."""
    from diffusers import AutoencoderKL, VQModel

    ae_dir = Path(path).expanduser()
    ae_class = _read_json(ae_dir / "config.json", "autoencoder config").get("_class_name")
    if ae_class not in ("VQModel", "AutoencoderKL"):
        raise DataError(f"{ae_dir}/config.json names {ae_class!r}; expected VQModel or AutoencoderKL")
    kind = VQModel if ae_class == "VQModel" else AutoencoderKL
    return kind.from_pretrained(str(ae_dir), local_files_only=True, low_cpu_mem_usage=False).eval()


def scaling_factor(autoencoder: nn.Module) -> float:
    """The factor the latents are multiplied by for the diffusion model (1 when not configured)."""
    return float(getattr(autoencoder.config, "scaling_factor", 1.0) or 1.0)


def encode_scaled(autoencoder: nn.Module, x: Tensor, scale: float) -> Tensor:
    """Images in [-1, 1] to latents times ``scale``: a KL autoencoder's posterior mean, a VQ
    model's pre-quantization latent (as the diffusers pipelines encode)."""
    if type(autoencoder).__name__ == "VQModel":
        return autoencoder.encode(x).latents * scale
    return autoencoder.encode(x).latent_dist.mode() * scale


def decode_scaled(autoencoder: nn.Module, z: Tensor, scale: float, quantize: bool = True) -> Tensor:
    """Latents times ``scale`` back to images; a VQ model quantizes them first unless
    ``quantize`` is False (straight-through gradients either way)."""
    if type(autoencoder).__name__ == "VQModel":
        return autoencoder.decode(z / scale, force_not_quantize=not quantize).sample
    return autoencoder.decode(z / scale).sample


class LatentDiffusionPrior(DiffusionPrior):
    """Autoencoder (diffusers ``VQModel`` or ``AutoencoderKL``) + latent ``UNet2DModel`` + schedule.

    Images are in [-1, 1]; latents are the autoencoder's scaled by its ``scaling_factor`` (as the
    diffusers pipelines scale them), so the UNet sees the distribution it was trained on.

    Args:
        weights: A shipped name (``mnist32_latent``) or a local diffusers latent-diffusion directory
            (see the module docstring); nothing is downloaded.
        quantize: VQ models only: quantize latents in ``decode`` (straight-through gradients), as
            the pipelines do; False decodes the continuous latents.
    """

    def __init__(self, weights: str, quantize: bool = True):
        from diffusers import UNet2DModel

        root = shipped_latent_dir(weights) if "/" not in weights and "." not in weights else Path(weights).expanduser()
        if not root.is_dir():
            raise DataError(f"latent diffusion directory not found: {root}; {LATENT_HELP}")
        ae_dir = next((root / d for d in ("vqvae", "vae") if (root / d).is_dir()), None)
        if ae_dir is None:
            raise DataError(f"{root} has no autoencoder (vqvae/ or vae/); {LATENT_HELP}")
        _read_json(root / "unet" / "config.json", "latent UNet config")
        sched = _read_json(root / "scheduler" / "scheduler_config.json", "scheduler config")
        if sched.get("prediction_type", "epsilon") != "epsilon":
            raise DataError(f"{root}/scheduler predicts {sched['prediction_type']!r}; only epsilon networks are supported")
        name = sched.get("beta_schedule", "linear")
        if name not in ("linear", "scaled_linear"):
            raise DataError(f"{root}/scheduler: beta_schedule {name!r} is not supported (linear, scaled_linear)")
        autoencoder = load_autoencoder(ae_dir)
        unet = UNet2DModel.from_pretrained(str(root / "unet"), local_files_only=True, low_cpu_mem_usage=False)
        super().__init__(unet.config.in_channels, unet.config.sample_size, "linear", 1000)
        self.schedule = NoiseSchedule(name, int(sched.get("num_train_timesteps", 1000)),
                                      float(sched.get("beta_start", 1e-4)), float(sched.get("beta_end", 0.02)))
        self.autoencoder, self.unet = autoencoder, unet.eval()
        self.quantize = quantize
        self.scaling_factor = scaling_factor(autoencoder)
        self.image_channels = int(autoencoder.config.in_channels)
        self.downsampling = 2 ** (len(autoencoder.config.block_out_channels) - 1)
        self.pixel_size = None if unet.config.sample_size is None else unet.config.sample_size * self.downsampling
        self.source = str(root)
        prov = root / "provenance.json"  # written by LatentScoreModule's export
        self.provenance = _read_json(prov, "provenance") if prov.is_file() else None

    def forward(self, z_t: Tensor, t: Tensor) -> Tensor:
        """Epsilon prediction on latents."""
        return self.unet(z_t, t).sample

    def encode(self, x: Tensor) -> Tensor:
        """Images ``[B, C, H, W]`` in [-1, 1] to scaled latents; differentiable."""
        return encode_scaled(self.autoencoder, x, self.scaling_factor)

    def decode(self, z: Tensor) -> Tensor:
        """Scaled latents to images in (about) [-1, 1]; differentiable."""
        return decode_scaled(self.autoencoder, z, self.scaling_factor, self.quantize)

    def check_input(self, shape: tuple[int, ...] | torch.Size, what: str = "data") -> None:
        """Raise a clear error when images of ``shape`` (what a user gives: the sampler works on
        their latents) do not match the autoencoder."""
        if len(shape) != 4 or shape[1] != self.image_channels or (
                self.pixel_size is not None and tuple(shape[-2:]) != (self.pixel_size, self.pixel_size)):
            size = "" if self.pixel_size is None else f"x{self.pixel_size}x{self.pixel_size}"
            raise ValueError(f"the latent prior's autoencoder takes [B, {self.image_channels}{size}] images; the "
                             f"{what} has shape {tuple(shape)}")


def save_latent_pipeline(path: str | Path, autoencoder: nn.Module, unet: nn.Module, scheduler) -> Path:
    """Write the three components in the layout :class:`LatentDiffusionPrior` loads."""
    path = Path(path)
    ae_dir = "vqvae" if type(autoencoder).__name__ == "VQModel" else "vae"
    autoencoder.save_pretrained(str(path / ae_dir))
    unet.save_pretrained(str(path / "unet"))
    scheduler.save_pretrained(str(path / "scheduler"))
    return path
