"""Writes posterior samples, measurements and metrics, one file set per dataset index."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

from equireg_lit.solvers.dps import SamplingError
from equireg_lit.utils.io import atomic_write, atomic_write_json, atomic_write_text, run_config_text


def to_unit(x: Tensor) -> Tensor:
    """[-1, 1] images to [0, 1]."""
    return ((x.float() + 1) / 2).clamp(0, 1)


def image_metrics(recon: Tensor, truth: Tensor) -> dict[str, float]:
    """PSNR and SSIM (torchmetrics) of one ``[C, H, W]`` image pair on the [0, 1] scale."""
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    a, b = to_unit(recon)[None], to_unit(truth)[None]
    out = {"psnr": float(peak_signal_noise_ratio(a, b, data_range=1.0))}
    if min(a.shape[-2:]) >= 11:  # the 11x11 SSIM window needs at least 11 pixels a side
        out["ssim"] = float(structural_similarity_index_measure(a, b, data_range=1.0))
    return out


def _display(y: Tensor) -> Tensor | None:
    """A [C, H, W] measurement as a [0, 1] picture; None when it is not image-shaped."""
    if y.ndim != 3:
        return None
    if y.min() >= 0 and y.max() > 1.5:  # magnitudes (phase retrieval): log scale
        y = torch.log1p(y)
        return (y / y.max().clamp_min(1e-8)).clamp(0, 1)
    return to_unit(y)


def _picture(x: Tensor) -> Tensor:
    """[C, H, W] to a saveable picture: channels side by side unless 1 or 3 (e.g. PDE (a, u))."""
    if x.shape[0] in (1, 3):
        return to_unit(x)
    lo = x.flatten(1).min(1).values.view(-1, 1, 1)
    hi = x.flatten(1).max(1).values.view(-1, 1, 1)
    return ((x - lo) / (hi - lo).clamp_min(1e-8)).transpose(0, 1).reshape(1, x.shape[1], -1)


def _save_png(path: Path, img: Tensor) -> None:
    from torchvision.utils import save_image

    atomic_write(path, lambda p: save_image(img, str(p), format="png"))


class PredictionWriter(BasePredictionWriter):
    """Per sample: ``NNNNN_recon.png``, ``NNNNN_measurement.png``, ``NNNNN_truth.png``,
    ``NNNNN.safetensors`` (tensors) and ``NNNNN.json`` (metrics; written last, it marks the
    sample finished). At the end: ``metrics.csv`` and ``summary.json`` over every finished
    sample (earlier runs included) and TensorBoard grids. Files are written atomically; a
    rerun skips finished samples unless ``--overwrite true``.

    Args:
        output_dir: Folder for the outputs (default: ``<trainer.default_root_dir>/predictions``).
        overwrite: Redo samples that are already finished.
        log_images: Samples shown in the TensorBoard grids.
        lpips_weights: Local torchvision AlexNet weights; when given, LPIPS joins the metrics.
    """

    def __init__(
        self, output_dir: str | None = None, overwrite: bool = False, log_images: int = 16, lpips_weights: str | None = None
    ):
        super().__init__(write_interval="batch")
        from equireg_lit.metrics.lpips import LocalLPIPS

        self.lpips = LocalLPIPS(lpips_weights) if lpips_weights else None  # a missing file fails here, before sampling
        self.output_dir = output_dir
        self.overwrite = overwrite
        self.log_images = log_images
        self.dir: Path | None = None
        self._failures: dict[int, int] = {}
        self._grid: dict[str, list[Tensor]] = {}
        self._timing: list[dict] = []

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "predict":
            return
        self.dir = Path(self.output_dir) if self.output_dir else Path(trainer.default_root_dir) / "predictions"
        (self.dir / "samples").mkdir(parents=True, exist_ok=True)

    def finished(self) -> set[int]:
        assert self.dir is not None
        return {int(p.stem) for p in (self.dir / "samples").glob("*.json") if p.stem.isdigit()}

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._failures, self._grid, self._timing = {}, {}, []
        done = set() if self.overwrite else self.finished()
        if hasattr(pl_module, "skip_indices"):
            pl_module.skip_indices = done
        if done:
            rank_zero_info(f"Resuming: {len(done)} finished samples in {self.dir} are kept (--overwrite true redoes them)")

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0):
        if prediction is None:
            return
        d = self.dir / "samples"
        n = len(prediction["index"])
        per_sample_seconds = prediction["total_seconds"] / n
        per_sample_network = prediction["network_seconds"] / n
        for j, index in enumerate(prediction["index"]):
            if j in prediction["failed"]:
                self._failures[index] = prediction["failed"][j]
                continue
            stem = f"{index:05d}"
            recon, y = prediction["reconstruction"][j], prediction["measurement"][j]
            truth = None if prediction["truth"] is None else prediction["truth"][j]
            record: dict = {"index": index, "seconds": per_sample_seconds, "network_seconds": per_sample_network,
                            "nfe": prediction["nfe"]}
            if prediction.get("label") is not None:
                record["label"] = int(prediction["label"][j])
            if truth is not None:
                # A datamodule may define its own metrics (PDE fields: relative L2 in physical units).
                metric_fn = getattr(trainer.datamodule, "metrics", None) if trainer.datamodule is not None else None
                record.update(metric_fn(recon, truth) if callable(metric_fn) else image_metrics(recon, truth))
                if self.lpips is not None and recon.shape[0] in (1, 3):
                    record["lpips"] = float(self.lpips(recon[None], truth[None])[0])
            if recon.ndim == 3:
                _save_png(d / f"{stem}_recon.png", _picture(recon))
            if (shown := _display(y)) is not None:
                _save_png(d / f"{stem}_measurement.png", shown)
            if truth is not None and truth.ndim == 3:
                _save_png(d / f"{stem}_truth.png", _picture(truth))
            tensors = {"reconstruction": recon.contiguous(), "measurement": y.contiguous()}
            if truth is not None:
                tensors["truth"] = truth.contiguous()
            from safetensors.torch import save_file

            atomic_write(d / f"{stem}.safetensors", lambda p: save_file(tensors, str(p)))
            atomic_write_json(d / f"{stem}.json", record)  # last: marks the sample finished
            if len(self._grid.get("reconstruction", [])) < self.log_images and recon.ndim == 3:
                self._grid.setdefault("reconstruction", []).append(to_unit(recon))
                if truth is not None:
                    self._grid.setdefault("truth", []).append(to_unit(truth))
                if shown is not None and shown.shape == recon.shape:
                    self._grid.setdefault("measurement", []).append(shown)

    def on_predict_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        records = sorted(
            (json.loads(p.read_text()) for p in (self.dir / "samples").glob("*.json") if p.stem.isdigit()),
            key=lambda r: r["index"],
        )
        keys = sorted({k for r in records for k in r} - {"index", "label", "seconds", "network_seconds", "nfe"})
        fields = ["index"] + [k for k in ("label", *keys, "seconds", "network_seconds", "nfe") if any(k in r for r in records)]
        fields = list(dict.fromkeys(fields))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(records)
        atomic_write_text(self.dir / "metrics.csv", buf.getvalue())
        summary: dict = {"num_samples": len(records)}
        for key in [f for f in fields if f not in ("index", "label", "nfe")]:
            vals = [r[key] for r in records if key in r]
            if vals:
                mean = sum(vals) / len(vals)
                var = sum((v - mean) ** 2 for v in vals) / max(len(vals) - 1, 1)
                summary[key] = {"mean": mean, "stderr": math.sqrt(var / len(vals)), "n": len(vals)}
        if "seconds" in summary and "network_seconds" in summary:
            summary["other_seconds_mean"] = summary["seconds"]["mean"] - summary["network_seconds"]["mean"]
        solver = getattr(pl_module, "solver", None)
        summary["steps"] = getattr(solver, "num_steps", None)
        summary["network_evaluations_per_sample"] = records[0]["nfe"] if records else None
        summary["failed"] = {str(k): v for k, v in sorted(self._failures.items())}
        summary["config"] = run_config_text(trainer.log_dir)
        atomic_write_json(self.dir / "summary.json", summary)
        self._log_tensorboard(trainer, summary)
        rank_zero_info(
            f"Wrote {len(records)} samples to {self.dir} (metrics.csv, summary.json)"
            + (f"; TensorBoard: tensorboard --logdir {trainer.log_dir}" if trainer.logger else "")
        )
        if self._failures:
            atomic_write_json(self.dir / "failures.json", {str(k): v for k, v in self._failures.items()})
            detail = ", ".join(f"sample {k} at step {v}" for k, v in sorted(self._failures.items()))
            raise SamplingError(
                f"NaN or inf during sampling: {detail}. Every other sample was written to {self.dir}; "
                "lower zeta or the regularizer weight and rerun (finished samples are skipped)."
            )

    def _log_tensorboard(self, trainer: pl.Trainer, summary: dict) -> None:
        logger = trainer.logger
        exp = getattr(logger, "experiment", None)
        if exp is None or not hasattr(exp, "add_image"):
            return
        from torchvision.utils import make_grid

        for name, imgs in self._grid.items():
            if imgs:
                exp.add_image(f"predict/{name}", make_grid(torch.stack(imgs), nrow=int(math.sqrt(len(imgs))) or 1), 0)
        for key in ("psnr", "ssim", "lpips"):
            if key in summary:
                exp.add_scalar(f"predict/{key}", summary[key]["mean"], 0)
        exp.flush()
