"""ProbeModule (learn an MPE function f) and SelectionModule (rank candidate functions)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import lightning.pytorch as pl
import torch
import yaml
from torch import Tensor, nn

from equireg_lit.probes.objectives import (
    auroc, classification_loss, contrastive_loss, equivariance_loss, reconstruction_loss, separation_loss,
)
from equireg_lit.probes.report import write_selection_report
from equireg_lit.regularizer import EquiReg
from equireg_lit.diffusion.priors import DiffusionPrior
from equireg_lit.regularizer.functions import ManifoldFunction, PriorDenoiser
from equireg_lit.regularizer.groups import get_group
from equireg_lit.models.score import check_export
from equireg_lit.rng import training_batch_generator
from equireg_lit.utils.io import run_config_text
from equireg_lit.weights import save_weights

Objective = Literal["equivariance", "classification", "contrastive", "separation", "reconstruction"]


def _run_config(trainer: pl.Trainer) -> dict | None:
    text = run_config_text(trainer.log_dir)
    return yaml.safe_load(text) if text is not None else None


class _ErrorCollector(pl.LightningModule):
    """Shared test loop: per-sample errors of named regularizers, grouped by source."""

    report_dir: str | None

    def _regs(self) -> dict[str, EquiReg]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _blocks(self) -> dict[str, dict | None]:
        return {}

    def on_test_epoch_start(self) -> None:
        self._errors: dict[str, dict[int, list[Tensor]]] = {name: {} for name in self._regs()}

    def test_step(self, batch: dict, batch_idx: int) -> None:
        for name, reg in self._regs().items():
            e = reg.mean_penalty(batch["image"]).detach().cpu()
            for s in batch["source"].unique().tolist():
                self._errors[name].setdefault(s, []).append(e[batch["source"].cpu() == s])

    def on_test_epoch_end(self) -> None:
        names = self.trainer.datamodule.source_names
        errors = {c: {names[s]: torch.cat(v) for s, v in by.items()} for c, by in self._errors.items()}
        if self.trainer.world_size > 1:  # every process saw a share of the test set: report on all of it
            parts: list = [None] * self.trainer.world_size
            torch.distributed.all_gather_object(parts, errors)
            errors = {c: {src: torch.cat([p[c][src] for p in parts if src in p[c]]) for src in names
                          if any(src in p[c] for p in parts)} for c in errors}
        out = Path(self.report_dir or Path(self.trainer.log_dir or ".") / "selection")  # log_dir: every process asks
        blocks = self._blocks()
        if not self.trainer.is_global_zero:
            return
        rows = write_selection_report(errors, out, blocks)
        for r in rows:
            for k, v in r.items():
                if k.startswith("auroc/"):
                    self.log(f"test/{r['candidate']}/{k}", v, rank_zero_only=True)
        print(f"Selection report: {out}/selection.md (winner: {rows[0]['candidate']}, AUROC {rows[0]['score']:.3f})")


class ProbeModule(_ErrorCollector):
    """Learn an MPE function f whose equivariance error is low on data and high off it.

    Args:
        f: The probe network (e.g. ``equireg_lit.probes.SmallCNN``).
        group: Group name (``hflip``, ``rot90``, ``d4``, ``shift``, ...).
        objective: ``equivariance`` (MSE of rho(g) f(x) vs f(g.x) on data, with an anti-collapse
            term), ``classification`` (predict the group element), ``contrastive`` (InfoNCE over
            group-augmented views), ``separation`` (low error on data, hinge above ``margin``
            on off-manifold samples) or ``reconstruction`` (an autoencoder f reproducing
            group-augmented data; use form ``equi_plus``).
        form: EquiReg form used for the error (``equi`` or ``equi_plus``).
        reduction: Per-sample reduction of the error.
        lr: Adam learning rate.
        margin: Hinge margin of the separation objective.
        collapse_weight: Weight of the anti-collapse term of the equivariance objective.
        temperature: InfoNCE temperature.
        report_dir: Where ``test`` writes the selection report (default: the run folder).
        export_path: Write f's weights (``.safetensors``) and provenance at the end of fit.
        allow_untrained: Export even when fit runs no training step (off: never export an untrained f).
        seed: Seed of the training draws (group elements, labels) per batch and process
            (``rng.training_batch_generator``): a fit is reproducible and resumes with the same draws.
    """

    def __init__(
        self,
        f: ManifoldFunction,
        group: str = "hflip",
        objective: Objective = "separation",
        form: Literal["equi", "equi_plus"] = "equi",
        reduction: Literal["norm", "sqnorm", "mse"] = "mse",
        lr: float = 1e-3,
        margin: float = 1.0,
        collapse_weight: float = 1.0,
        temperature: float = 0.1,
        report_dir: str | None = None,
        export_path: str | None = None,
        allow_untrained: bool = False,
        seed: int = 0,
    ):
        super().__init__()
        # report_dir is not a hyperparameter: a checkpoint's value must not override the command line.
        self.save_hyperparameters(ignore=["f", "report_dir"])
        self.f = f
        self.reg = EquiReg(f, get_group(group), form=form, alpha=1.0, reduction=reduction)
        self.report_dir = report_dir
        width = getattr(f, "out_channels", None)
        if objective in ("classification", "contrastive") and width is None:
            raise ValueError(f"objective {objective!r} needs f.out_channels to size its head")
        self.head = nn.Linear(width, len(self.reg.group.elements) + 1) if objective == "classification" else None
        self.proj = (nn.Sequential(nn.Linear(width, 128), nn.ReLU(), nn.Linear(128, 64))
                     if objective == "contrastive" else None)

    def _regs(self) -> dict[str, EquiReg]:
        return {"probe": self.reg}

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

    def objective_loss(self, batch: dict, generator: torch.Generator | None = None) -> Tensor:
        x, obj, g = batch["image"], self.hparams.objective, generator
        if obj == "separation":
            return separation_loss(self.reg, x, batch["off"], self.hparams.margin, generator=g)
        if obj == "equivariance":
            return equivariance_loss(self.reg, x, self.hparams.collapse_weight, generator=g)
        if obj == "classification":
            return classification_loss(self.f, self.head, self.reg.group, x, generator=g)
        if obj == "reconstruction":
            return reconstruction_loss(self.f, self.reg.group, x, generator=g)
        return contrastive_loss(self.f, self.proj, self.reg.group, x, self.hparams.temperature, generator=g)

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        g = training_batch_generator(self.hparams.seed, self.current_epoch, batch_idx, self.global_rank)
        loss = self.objective_loss(batch, g)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["image"].shape[0])
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val_on, self._val_off = [], []

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._val_on.append(self.reg.mean_penalty(batch["image"]).cpu())
        self._val_off.append(self.reg.mean_penalty(batch["off"]).cpu())

    def on_validation_epoch_end(self) -> None:
        on, off = torch.cat(self._val_on), torch.cat(self._val_off)
        self.log("val/auroc", auroc(on, off), prog_bar=True)
        self.log("val/on_error", on.mean())

    def _f_block(self, cfg: dict | None) -> dict | None:
        if not cfg or not self.hparams.export_path:
            return None
        return {"class_path": "equireg_lit.probes.Pretrained",
                "init_args": {"module": cfg["model"]["init_args"]["f"], "weights": str(self.hparams.export_path)}}

    def _blocks(self, cfg: dict | None = None) -> dict[str, dict | None]:
        if cfg is None and self._trainer is not None:
            cfg = _run_config(self.trainer)
        f = self._f_block(cfg)
        if f is None:
            return {}
        h = self.hparams
        return {"probe": {"class_path": "equireg_lit.regularizer.EquiReg", "init_args": {
            "f": f, "group": h.group, "form": h.form, "reduction": h.reduction, "alpha": 0.01}}}

    def on_fit_start(self) -> None:
        check_export(self.trainer, self.hparams.export_path, self.hparams.allow_untrained)

    def on_fit_end(self) -> None:
        if not self.hparams.export_path:
            return
        cfg = _run_config(self.trainer)  # a collective under DDP: every process asks
        if self.trainer.is_global_zero:
            val = self.trainer.callback_metrics.get("val/auroc")
            save_weights(self.f, self.hparams.export_path, {
                "kind": "probe", "hparams": dict(self.hparams), "epochs": self.current_epoch,
                "final_val_auroc": None if val is None else float(val),
                "f": None if cfg is None else cfg["model"]["init_args"]["f"],
                "regularizer_block": self._blocks(cfg).get("probe"),
            })
        self.trainer.strategy.barrier("probe_export")


class SelectionModule(_ErrorCollector):
    """Rank candidate regularizers by how well their error separates data from off-manifold
    samples (``equireg test``); writes the selection report and the winner's config block.

    Args:
        candidates: Named EquiReg candidates (each with its own f, group, form, reduction).
        prior: Prior bound to candidates whose f is a ``PriorDenoiser`` without its own prior.
        report_dir: Where to write the report (default: the run folder).
    """

    def __init__(self, candidates: dict[str, EquiReg], prior: DiffusionPrior | None = None, report_dir: str | None = None):
        super().__init__()
        self.candidates = nn.ModuleDict(candidates)
        self.report_dir = report_dir
        for reg in self.candidates.values():
            if isinstance(reg.f, PriorDenoiser) and reg.f.own_prior is None:
                if prior is None:
                    raise ValueError("a PriorDenoiser candidate needs `prior:` (or its own prior)")
                reg.f.bind(prior)
        self.requires_grad_(False)

    def _regs(self) -> dict[str, EquiReg]:
        return dict(self.candidates.items())

    def _blocks(self) -> dict[str, dict | None]:
        cfg = _run_config(self.trainer)
        if not cfg:
            return {}
        return dict(cfg["model"]["init_args"]["candidates"])
