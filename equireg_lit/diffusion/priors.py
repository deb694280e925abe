"""Diffusion priors: epsilon-prediction networks ``eps(x_t, t)`` with their noise schedule.

Every prior is an ``nn.Module`` whose ``forward(x_t, t)`` returns the predicted noise for
integer timesteps ``t`` of shape ``[B]``, and which carries the :class:`NoiseSchedule` it was
trained with. Solvers and the score-training module only use this protocol.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from equireg_lit.diffusion.schedule import NoiseSchedule, ScheduleName
from equireg_lit.weights import load_checked, load_state_dict_file, resolve_weights
from equireg_lit.errors import DataError

class DiffusionPrior(nn.Module):
    """Base class: an epsilon-prediction network plus the schedule it was trained with.

    Args:
        channels: Image channels the network takes.
        image_size: Side length the network was trained for (None: any size).
        noise_schedule: ``linear`` or ``cosine``.
        num_train_timesteps: Number of discrete timesteps T.
    """

    def __init__(
        self,
        channels: int,
        image_size: int | None,
        noise_schedule: ScheduleName = "linear",
        num_train_timesteps: int = 1000,
    ):
        super().__init__()
        self.channels = channels
        self.image_size = image_size
        self.schedule = NoiseSchedule(noise_schedule, num_train_timesteps)

    def forward(self, x_t: Tensor, t: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def x0(self, x_t: Tensor, t: Tensor) -> Tensor:
        """Tweedie clean estimate at timestep ``t``."""
        return self.schedule.eps_to_x0(x_t, self(x_t, t), t)

    def check_input(self, shape: tuple[int, ...] | torch.Size, what: str = "data") -> None:
        """Raise a clear error when tensors of ``shape`` cannot go through the network."""
        if len(shape) != 4:
            raise ValueError(f"the prior takes [B, C, H, W] images; the {what} has shape {tuple(shape)}")
        if shape[1] != self.channels:
            raise ValueError(
                f"the prior takes {self.channels}-channel images but the {what} has {shape[1]} channels "
                f"(shape {tuple(shape)}); convert the data (e.g. the datamodule's 'channels' setting) "
                "or use a prior trained on this channel count"
            )
        if self.image_size is not None and tuple(shape[-2:]) != (self.image_size, self.image_size):
            raise ValueError(
                f"the prior was trained on {self.image_size}x{self.image_size} images but the {what} is "
                f"{shape[-2]}x{shape[-1]}; resize or crop the data to {self.image_size}x{self.image_size}"
            )


class GaussianPrior(DiffusionPrior):
    """Analytic prior ``x_0 ~ N(mean, std^2 I)`` with the exact (closed-form) noise predictor.

    ``E[eps | x_t] = sqrt(1 - abar) (x_t - sqrt(abar) mean) / (abar std^2 + 1 - abar)``.
    For tests and sanity checks: every posterior under a linear-Gaussian model is known.

    Args:
        mean: Prior mean of every pixel.
        std: Prior standard deviation of every pixel.
        channels: Image channels.
        image_size: Side length (None: any size).
        noise_schedule: ``linear`` or ``cosine``.
        num_train_timesteps: Number of discrete timesteps T.
    """

    def __init__(
        self,
        mean: float = 0.0,
        std: float = 0.5,
        channels: int = 1,
        image_size: int | None = None,
        noise_schedule: ScheduleName = "linear",
        num_train_timesteps: int = 1000,
    ):
        super().__init__(channels, image_size, noise_schedule, num_train_timesteps)
        if std <= 0:
            raise ValueError(f"std must be positive, got {std}")
        self.mean = float(mean)
        self.std = float(std)

    def forward(self, x_t: Tensor, t: Tensor) -> Tensor:
        a = self.schedule.abar(t, x_t)
        return (1 - a).sqrt() * (x_t - a.sqrt() * self.mean) / (a * self.std**2 + 1 - a)

    def sample(self, shape: tuple[int, ...], generator: torch.Generator | None = None) -> Tensor:
        """Exact draws from the prior (for reference statistics)."""
        return self.mean + self.std * torch.randn(shape, generator=generator)


class DiffusersUNetPrior(DiffusionPrior):
    """A ``diffusers.UNet2DModel`` epsilon network: built from the sizes below, or loaded.

    Args:
        weights: Shipped short name (e.g. ``mnist32``; its stored architecture is used), a
            ``.safetensors``/``.pt`` state dict for the architecture below, or a local diffusers
            directory (``from_pretrained``). None needs ``random_init=True``.
        random_init: Allow random weights (training from scratch, tests). Never implied.
        sample_size: Image side length.
        in_channels: Image channels.
        block_out_channels: Channels per resolution level.
        layers_per_block: ResNet layers per level.
        down_block_types: diffusers down-block names, one per level.
        up_block_types: diffusers up-block names, one per level.
        norm_num_groups: GroupNorm groups.
        noise_schedule: ``linear`` or ``cosine`` (the schedule the weights were trained with).
        num_train_timesteps: Number of discrete timesteps T.
    """

    def __init__(
        self,
        weights: str | None = None,
        random_init: bool = False,
        sample_size: int = 32,
        in_channels: int = 1,
        block_out_channels: tuple[int, ...] = (32, 64, 64),
        layers_per_block: int = 1,
        down_block_types: tuple[str, ...] = ("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        up_block_types: tuple[str, ...] = ("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        norm_num_groups: int = 8,
        noise_schedule: ScheduleName = "linear",
        num_train_timesteps: int = 1000,
    ):
        from diffusers import UNet2DModel

        arch = dict(
            sample_size=sample_size,
            in_channels=in_channels,
            out_channels=in_channels,
            block_out_channels=tuple(block_out_channels),
            layers_per_block=layers_per_block,
            down_block_types=tuple(down_block_types),
            up_block_types=tuple(up_block_types),
            norm_num_groups=norm_num_groups,
        )
        self.provenance: dict | None = None
        state = source = None
        net = None
        if weights is None:
            if not random_init:
                raise ValueError(
                    "DiffusersUNetPrior got no weights. Pass weights: <shipped name | file | diffusers dir> "
                    "(e.g. 'mnist32'), or random_init: true to train from scratch."
                )
        else:
            path, self.provenance = resolve_weights(weights)
            if self.provenance is not None:
                arch.update(self.provenance["architecture"])
                noise_schedule = self.provenance.get("noise_schedule", noise_schedule)
                num_train_timesteps = self.provenance.get("num_train_timesteps", num_train_timesteps)
            if path.is_dir():
                if not (path / "config.json").is_file():
                    raise DataError(f"{path} is not a diffusers model directory (no config.json)")
                net = UNet2DModel.from_pretrained(str(path), local_files_only=True)
            else:
                state, source = load_state_dict_file(path), path
        if net is None:
            net = UNet2DModel(**arch)
            if state is not None:
                load_checked(net, state, source)
        cfg = net.config
        if cfg.out_channels != cfg.in_channels:
            raise ValueError(
                f"expected an epsilon network with out_channels == in_channels, got {cfg.in_channels} -> {cfg.out_channels}"
            )
        super().__init__(cfg.in_channels, cfg.sample_size, noise_schedule, num_train_timesteps)
        self.net = net
        self.architecture = {k: (list(v) if isinstance(v, tuple) else v) for k, v in arch.items()}

    def forward(self, x_t: Tensor, t: Tensor) -> Tensor:
        return self.net(x_t, t).sample


GUIDED_DIFFUSION_HELP = (
    "ffhq_10m.pt and imagenet256.pt (the DPS repository's checkpoints; imagenet256.pt is OpenAI's "
    "256x256_diffusion_uncond.pt) are never downloaded: fetch the file (sources in docs/priors.md), "
    "put it under weights/ or pass its path as weights"
)


class GuidedDiffusionPrior(DiffusionPrior):
    """The guided-diffusion UNet of the DPS / DDRM checkpoints, via ``deepinv.models.DiffUNet``.

    Calls the network on ``(x_t, t)`` and keeps the epsilon half of the learned-variance output
    (the variance channels are dropped; samplers use the fixed DDPM posterior variance).

    Args:
        weights: Local path to ``ffhq_10m.pt`` (``large_model=False``), ``imagenet256.pt`` or
            ``256x256_diffusion_uncond.pt`` (``large_model=True``).
        large_model: ImageNet-size architecture (True) or FFHQ-size (False).
        channels: Image channels (3 for the standard checkpoints).
        image_size: Side length (256 for the standard checkpoints).
        random_init: Build with random weights instead (tests only; never implied).
    """

    def __init__(
        self,
        weights: str | None = None,
        large_model: bool = False,
        channels: int = 3,
        image_size: int = 256,
        random_init: bool = False,
    ):
        from deepinv.models import DiffUNet

        super().__init__(channels, image_size, "linear", 1000)
        net = DiffUNet(in_channels=channels, out_channels=2 * channels, large_model=large_model, pretrained=None)
        if weights is None:
            if not random_init:
                raise ValueError("GuidedDiffusionPrior needs weights: <local path>. " + GUIDED_DIFFUSION_HELP)
        else:
            path = Path(weights).expanduser()
            if not path.is_file():
                raise DataError(f"guided-diffusion checkpoint not found: {path}. " + GUIDED_DIFFUSION_HELP)
            load_checked(net, load_state_dict_file(path), path)
        self.net = net.eval()

    def forward(self, x_t: Tensor, t: Tensor) -> Tensor:
        return self.net.forward_diffusion(x_t, t.long())[:, : self.channels]
