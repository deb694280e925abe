"""Writes posterior samples, measurements and metrics, one file set per dataset index."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

from equireg_lit.data import PredictionFolder
from equireg_lit.errors import DataError, RunInterrupted, SamplingError
from equireg_lit.utils.figures import comparison_strip, save_contact_sheet
from equireg_lit.utils.io import atomic_write, atomic_write_json, atomic_write_text, read_safetensors, run_config_text

TIMING_KEYS = ("seconds", "network_seconds", "nfe")


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


def sample_metrics(recon: Tensor, truth: Tensor, fields: dict[str, Tensor]) -> dict[str, float]:
    """Image metrics, or for PDE fields (batches carrying ``field_*`` statistics) the relative L2
    errors in physical units."""
    if "field_mean" in fields:
        from equireg_lit.pde.data import PARAMS, field_metrics

        problem = list(PARAMS)[int(fields["field_problem"])]
        return field_metrics(recon, truth, fields["field_mean"], fields["field_std"], problem)
    return image_metrics(recon, truth)


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


def summarize(records: list[dict]) -> tuple[str, dict]:
    """``metrics.csv`` text and the per-metric mean / standard error / n of ``records``."""
    keys = sorted({k for r in records for k in r} - {"index", "label", *TIMING_KEYS})
    fields = ["index"] + [k for k in ("label", *keys, *TIMING_KEYS) if any(k in r for r in records)]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(records)
    stats: dict = {}
    for key in [f for f in fields if f not in ("index", "label", "nfe")]:
        vals = [r[key] for r in records if key in r]
        if vals:
            mean = sum(vals) / len(vals)
            var = sum((v - mean) ** 2 for v in vals) / max(len(vals) - 1, 1)
            stats[key] = {"mean": mean, "stderr": math.sqrt(var / len(vals)), "n": len(vals)}
    if "seconds" in stats and "network_seconds" in stats:
        stats["other_seconds_mean"] = stats["seconds"]["mean"] - stats["network_seconds"]["mean"]
    return buf.getvalue(), stats


class PredictionWriter(BasePredictionWriter):
    """Writes every sample into ``<default_root_dir>/predictions`` (layout:
    :class:`equireg_lit.data.PredictionFolder`): per sample ``NNNNN_{recon,measurement,truth}.png``,
    a labelled side-by-side ``NNNNN_compare.png`` (truth | measurement | reconstruction | the
    base run's reconstruction with ``compare_with``), ``NNNNN.safetensors`` and ``NNNNN.json``
    (written last: it marks the sample finished); at the end ``metrics.csv``, ``summary.json``,
    ``contact_sheet.png`` (the first 16 strips) and TensorBoard grids over every finished sample.

    Every process writes the samples it computed; after a barrier, process 0 writes the
    summaries from all of them. Before any sampling, process 0 takes the folder's lock and checks
    that its samples were made with the same settings (``fingerprint``, set by the CLI); a
    stopped run (SIGTERM, SIGINT, an error) writes the summaries of its finished samples, marked
    incomplete.

    Args:
        overwrite: Remove every earlier sample and summary of the folder and redo all samples.
        log_images: Samples shown in the TensorBoard grids.
        lpips: Add LPIPS (AlexNet, torchmetrics) to the metrics. Its backbone must be in the torch
            hub cache (``<hub dir>/checkpoints/alexnet-owt-7be5be79.pth``; nothing is downloaded);
            without it one line says where to put it and LPIPS is skipped.
        compare_with: Another run's predictions folder (e.g. the base sampler's); its
            reconstruction of the same sample joins each strip as ``base``.
    """

    def __init__(self, overwrite: bool = False, log_images: int = 16, lpips: bool = False,
                 compare_with: str | None = None):
        super().__init__(write_interval="batch")
        from equireg_lit.metrics.lpips import load_lpips

        self.lpips = load_lpips() if lpips else None  # decided here, before sampling
        self.overwrite = overwrite
        self.log_images = log_images
        self.compare_with: PredictionFolder | None = None
        if compare_with:
            self.set_compare_with(compare_with)
        self.fingerprint: dict | None = None  # the settings that determine a sample's result
        self.folder: PredictionFolder | None = None
        self._kept: set[int] = set()
        self._failures: dict[int, int] = {}
        self._log_dir: str | None = None
        self._started = False

    def set_compare_with(self, folder: str) -> None:
        """Show another run's reconstructions (its ``predictions`` folder) in the strips."""
        compare = PredictionFolder(folder)
        if not compare.samples.is_dir():
            raise DataError(f"compare_with: no predictions in {folder} (no samples/ folder); "
                            "point it at another run's <default_root_dir>/predictions")
        self.compare_with = compare

    @property
    def dir(self) -> Path | None:
        return None if self.folder is None else self.folder.root

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "predict":
            return
        self.folder = PredictionFolder.of_run(trainer.default_root_dir)
        self._failures = {}
        self._log_dir = trainer.log_dir  # a collective under DDP: asked here, on every process
        error = None
        if trainer.is_global_zero:
            try:
                self.folder.check_writable()
                self.folder.acquire_lock()
                self.folder.claim(self.fingerprint, self.overwrite)
            except (ValueError, OSError) as err:
                self.folder.release_lock()
                error = err
        # Every process stops with process 0's error (none waits at a barrier for a dead peer).
        error = trainer.strategy.broadcast(error, src=0)
        if error is not None:
            raise error
        self._kept = self.folder.finished()
        self._started = False

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._started = True  # from here on, a stopped run leaves summaries of what it finished

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0):
        if prediction is None:
            return
        d = self.folder.samples
        n = len(prediction["index"])
        per_sample_seconds = prediction["total_seconds"] / n
        per_sample_network = prediction["network_seconds"] / n
        fields = prediction.get("fields") or {}
        for j, index in enumerate(prediction["index"]):
            if j in prediction["failed"]:
                self._failures[index] = prediction["failed"][j]
                continue
            if index in self._kept:  # finished earlier; its batch was recomputed whole for the others
                continue
            stem = f"{index:05d}"
            recon, y = prediction["reconstruction"][j], prediction["measurement"][j]
            truth = None if prediction["truth"] is None else prediction["truth"][j]
            record: dict = {"index": index, "seconds": per_sample_seconds, "network_seconds": per_sample_network,
                            "nfe": prediction["nfe"]}
            if prediction.get("data_residual") is not None:
                record["data_residual"] = float(prediction["data_residual"][j])
            if prediction.get("label") is not None:
                record["label"] = int(prediction["label"][j])
            if truth is not None:
                record.update(sample_metrics(recon, truth, {k: v[j] for k, v in fields.items()}))
                if self.lpips is not None and recon.shape[0] in (1, 3):
                    record["lpips"] = float(self.lpips(recon[None], truth[None])[0])
            if recon.ndim == 3:
                _save_png(d / f"{stem}_recon.png", _picture(recon))
            if (shown := _display(y)) is not None:
                _save_png(d / f"{stem}_measurement.png", shown)
            if truth is not None and truth.ndim == 3:
                _save_png(d / f"{stem}_truth.png", _picture(truth))
            if recon.ndim == 3:
                self._save_strip(d / f"{stem}_compare.png", index, recon, shown, truth, record)
            tensors = {"reconstruction": recon.contiguous(), "measurement": y.contiguous()}
            if truth is not None:
                tensors["truth"] = truth.contiguous()
            from safetensors.torch import save_file

            atomic_write(self.folder.tensors(index), lambda p: save_file(tensors, str(p)))
            atomic_write_json(self.folder.marker(index), record)  # last: marks the sample finished

    def _save_strip(self, path: Path, index: int, recon: Tensor, shown: Tensor | None, truth: Tensor | None,
                    record: dict) -> None:
        def label(name: str, rec: dict) -> str:
            return f"{name} {rec['psnr']:.2f} dB" if "psnr" in rec else name

        panels = [] if truth is None or truth.ndim != 3 else [("truth", _picture(truth))]
        panels += [] if shown is None else [("measurement", shown)]
        panels.append((label("reconstruction", record), _picture(recon)))
        if self.compare_with is not None and self.compare_with.tensors(index).is_file():
            base = read_safetensors(self.compare_with.tensors(index), "compare_with sample")["reconstruction"]
            base_rec = image_metrics(base, truth) if truth is not None and truth.shape == base.shape else {}
            panels.append((label("base", base_rec), _picture(base)))
        atomic_write(path, lambda p: comparison_strip(panels).save(p, format="png"))

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # Not on_predict_end: Lightning skips that hook on a process that got no batch (a resumed
        # run with little left), and the collectives below need every process.
        if stage != "predict" or self.folder is None:
            return
        failures = self._gather_failures(trainer)
        if trainer.is_global_zero:
            self.write_summary(pl_module, failures, stopped_by=None)
        trainer.strategy.barrier("prediction_writer_end")
        if trainer.is_global_zero:
            self.folder.release_lock()
        if failures:
            detail = ", ".join(f"sample {k} at step {v}" for k, v in sorted(failures.items()))
            written = len(self.folder.finished())
            raise SamplingError(
                f"{len(failures)} sample(s) diverged (NaN, inf or beyond the solver's divergence_threshold): "
                f"{detail}. {written} finished samples are in {self.folder.root}; lower zeta or the "
                "regularizer weight and rerun (finished samples are kept)."
            )

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if self.folder is not None and trainer.is_global_zero and self.folder.holds_lock:
            stopped = exception.signum if isinstance(exception, RunInterrupted) else type(exception).__name__
            try:
                if self._started:
                    self.write_summary(pl_module, self._failures, stopped_by=stopped)
            finally:
                self.folder.release_lock()

    def _gather_failures(self, trainer: pl.Trainer) -> dict[int, int]:
        failures = dict(self._failures)
        if trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list = [None] * trainer.world_size
            torch.distributed.all_gather_object(gathered, failures)
            failures = {k: v for part in gathered for k, v in part.items()}
        return failures

    def write_summary(self, pl_module: pl.LightningModule, failures: dict[int, int], stopped_by) -> None:
        """``metrics.csv``, ``summary.json`` (and ``failures.json``) over every finished sample."""
        records_by_index, _ = self.folder.scan()  # problems were named when the data was selected
        records = [records_by_index[k] for k in sorted(records_by_index)]
        csv_text, stats = summarize(records)
        atomic_write_text(self.folder.root / "metrics.csv", csv_text)
        import signal

        summary: dict = {"num_samples": len(records), "complete": stopped_by is None and not failures, **stats}
        if stopped_by is not None:
            summary["stopped_by"] = signal.Signals(stopped_by).name if isinstance(stopped_by, int) else stopped_by
        summary["steps"] = getattr(getattr(pl_module, "solver", None), "num_steps", None)
        summary["network_evaluations_per_sample"] = records[0]["nfe"] if records else None
        summary["failed"] = {str(k): v for k, v in sorted(failures.items())}
        summary["config"] = run_config_text(self._log_dir)
        atomic_write_json(self.folder.root / "summary.json", summary)
        if failures:
            atomic_write_json(self.folder.root / "failures.json", summary["failed"])
        else:
            (self.folder.root / "failures.json").unlink(missing_ok=True)
        strips = [self.folder.samples / f"{r['index']:05d}_compare.png" for r in records]
        save_contact_sheet([s for s in strips if s.is_file()], self.folder.root / "contact_sheet.png")
        self._log_tensorboard(pl_module, records, summary)
        rank_zero_info(
            f"Wrote {len(records)} samples to {self.folder.root} (metrics.csv, summary.json)"
            + ("" if stopped_by is None else f"; stopped by {summary['stopped_by']}, rerun the command to finish")
            + (f"; TensorBoard: tensorboard --logdir {self._log_dir}" if self._log_dir else "")
        )

    def _log_tensorboard(self, pl_module: pl.LightningModule, records: list[dict], summary: dict) -> None:
        trainer = pl_module._trainer
        exp = getattr(trainer.logger, "experiment", None) if trainer is not None and trainer.logger else None
        if exp is None or not hasattr(exp, "add_image"):
            return
        from torchvision.utils import make_grid

        grids: dict[str, list[Tensor]] = {}
        for rec in records[: self.log_images]:  # from the files: every process's samples
            t = read_safetensors(self.folder.tensors(rec["index"]), "sample file")
            recon = t["reconstruction"]
            if recon.ndim != 3 or recon.shape[0] not in (1, 3):
                continue
            grids.setdefault("reconstruction", []).append(to_unit(recon))
            if "truth" in t:
                grids.setdefault("truth", []).append(to_unit(t["truth"]))
            shown = _display(t["measurement"])
            if shown is not None and shown.shape == recon.shape:
                grids.setdefault("measurement", []).append(shown)
        for name, imgs in grids.items():
            exp.add_image(f"predict/{name}", make_grid(torch.stack(imgs), nrow=int(math.sqrt(len(imgs))) or 1), 0)
        for key in ("psnr", "ssim", "lpips"):
            if key in summary:
                exp.add_scalar(f"predict/{key}", summary[key]["mean"], 0)
        exp.flush()
