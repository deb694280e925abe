"""The ``equireg`` command: LightningCLI with subclass mode for models and datamodules."""

from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.cli import LightningCLI


class EquiRegCLI(LightningCLI):
    """``equireg fit|validate|test|predict`` with stacked ``--config`` files."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument(
            "--overwrite",
            type=bool,
            default=False,
            help="predict: redo samples whose outputs already exist (default: skip them and resume)",
        )


def main(args: list[str] | None = None) -> None:
    """Entry point of the ``equireg`` console script (``args`` for in-process tests)."""
    EquiRegCLI(
        pl.LightningModule,
        pl.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={"inference_mode": False},  # guidance needs gradients during predict
        args=args,
    )


if __name__ == "__main__":
    main()
