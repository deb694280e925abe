"""The ``equireg`` command: LightningCLI with subclass mode for models and datamodules."""

from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.cli import LightningCLI


class EquiRegCLI(LightningCLI):
    """``equireg fit|validate|test|predict`` with stacked ``--config`` files."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument(
            "--overwrite",
            type=bool,
            default=False,
            help="predict: redo samples whose outputs already exist (default: keep them and resume)",
        )

    def before_predict(self) -> None:
        from equireg_lit.callbacks import PredictionWriter

        # Predictions go to files through the writer, never accumulated in memory.
        if self.config_init["predict"].get("return_predictions") is None:
            self.config_init["predict"]["return_predictions"] = False

        writers = [cb for cb in self.trainer.callbacks if isinstance(cb, BasePredictionWriter)]
        if not writers:
            writer = PredictionWriter()
            self.trainer.callbacks.append(writer)
            writers = [writer]
        if self.config["predict"].get("overwrite"):
            for cb in writers:
                if isinstance(cb, PredictionWriter):
                    cb.overwrite = True


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
