"""The ``equireg`` command: LightningCLI with subclass mode for models and datamodules.

Errors a user can cause print as one line: configuration errors (exit 2) name the class and the
setting, runtime errors (exit 1) their message; ``--debug`` (or ``EQUIREG_DEBUG=1``) shows the
traceback. SIGTERM / SIGINT stop a run gracefully with exit code ``128 + signal``.
"""

from __future__ import annotations

import json
import logging
from typing import Optional
import os
import re
import sys
import warnings

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities import rank_zero_only

from equireg_lit.errors import ConfigError, DataError, RunInterrupted
from equireg_lit.utils.compose import expand_config_args

# Settings of a predict datamodule that choose or batch samples but do not change any sample's result.
NOT_FINGERPRINTED = {"batch_size", "num_workers", "predict_start", "predict_limit", "operator",
                     "measurement_seed", "predictions_dir"}


class UserError(Exception):
    """A one-line error for the user, with the exit code to leave with."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def _root_cause(err: BaseException) -> BaseException:
    seen = set()
    while err.__cause__ is not None and id(err) not in seen:
        seen.add(id(err))
        err = err.__cause__
    return err


def _raising_class(err: BaseException) -> str | None:
    """Name of the class whose ``__init__`` raised ``err`` (innermost), if any."""
    tb, name = err.__traceback__, None
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "__init__" and "self" in frame.f_locals:
            name = type(frame.f_locals["self"]).__name__
        tb = tb.tb_next
    return name


def fingerprint(config, model: pl.LightningModule) -> dict:
    """Everything that determines a predicted sample: the model settings, the data selection
    (not its batching), the precision, and a hash of the prior's weights."""
    cfg = config.as_dict()
    data = dict(cfg.get("data") or {})
    data["init_args"] = {k: v for k, v in (data.get("init_args") or {}).items() if k not in NOT_FINGERPRINTED}
    out = {"model": cfg.get("model"), "data": data, "precision": (cfg.get("trainer") or {}).get("precision")}
    prior = getattr(model, "prior", None)
    if prior is not None:
        from equireg_lit.weights import state_sha256

        out["prior_weights_sha256"] = state_sha256(prior)
    return json.loads(json.dumps(out, default=str))  # tuples as lists, as stored in run.json


_NOISE = re.compile(r"^\s*(- )?(Does not validate against|Subtypes:|Errors:|Problem with given class_path|Given value)")


def condense_parse_error(message: str) -> str:
    """jsonargparse's nested union report as one line: the dotted setting and the innermost reason."""
    keys, reason = [], None
    for line in message.splitlines():
        key = re.match(r'^\s*(?:- )?Parser key "([^"]+)":\s*(.*)$', line)
        if key:
            keys.append(key.group(1))
            if key.group(2):
                reason = key.group(2)
                break
            continue
        if line.strip() and not _NOISE.match(line):
            reason = line.strip().removeprefix("- ")
            break
    if reason is None:
        return message.strip().splitlines()[0] if message.strip() else message
    return f"{'.'.join(keys)}: {reason}" if keys else reason


class EquiRegParser(LightningArgumentParser):
    """Parse errors as one line (the setting and why) instead of the usage and a union dump."""

    def error(self, message: str, ex: Exception | None = None):
        if not self.exit_on_error:
            return super().error(message, ex)
        prog = (getattr(ex, "subcommand_parser", None) or self).prog.replace(" [options]", "")
        sys.stderr.write(f"equireg: error: {condense_parse_error(message)} (see: {prog} --help)\n")
        raise SystemExit(2)


def predictions_dir(default_root_dir: str | None) -> str:
    """The predictions folder of a run (module-level: ``ddp_spawn`` pickles it)."""
    from equireg_lit.data import PredictionFolder

    return str(PredictionFolder.of_run(default_root_dir).root)


# Settings that only decide what is logged or where the result is exported: they may change on resume.
_RESUME_MAY_CHANGE = {"sample_every_n_epochs", "num_sample_images", "sample_steps", "export_path", "allow_untrained"}
# Data settings that do not change what is trained on (where the cache lives, how it is loaded, what predict does).
_DATA_MAY_CHANGE = {"num_workers", "cache_dir", "predict_split", "predict_start", "predict_limit"}


def _check_same_training(ckpt, hparams: dict, data_hparams: dict) -> None:
    """``--ckpt_path last`` continues a run only with the training and data settings it was written with."""
    # mmap: only the settings are read here; Lightning loads the tensors when it restores
    state = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)
    changed = []
    for prefix, saved, now, may_change in (("", state.get("hyper_parameters", {}), hparams, _RESUME_MAY_CHANGE),
                                           ("data.", state.get("datamodule_hyper_parameters", {}), data_hparams,
                                            _DATA_MAY_CHANGE)):
        changed += [f"{prefix}{k}: {saved[k]!r} -> {now[k]!r}" for k in sorted(set(saved) & set(now) - may_change)
                    if not k.startswith("_") and saved[k] != now[k]]
    if changed:
        raise UserError(f"--ckpt_path last: {ckpt} was written with other settings ({'; '.join(changed)}); continue "
                        "with those, or train into another --trainer.default_root_dir", code=2)


@rank_zero_only
def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class EquiRegCLI(LightningCLI):
    """``equireg fit|validate|test|predict`` with stacked ``--config`` files."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument(
            "--overwrite",
            type=bool,
            default=False,
            help="predict: remove the samples of earlier runs in the folder and redo all (default: keep and resume)",
        )
        parser.add_argument(
            "--compare_with",
            type=Optional[str],
            default=None,
            help="predict: another run's predictions folder (e.g. the base sampler's); its reconstruction joins "
            "each sample's side-by-side picture",
        )
        # One home for each shared setting: the datamodule simulates measurements with the model's
        # operator and seed, and leaves out the samples finished in the run's predictions folder.
        parser.link_arguments("model.init_args.operator", "data.init_args.operator")
        parser.link_arguments("model.init_args.seed", "data.init_args.measurement_seed")
        parser.link_arguments("trainer.default_root_dir", "data.init_args.predictions_dir", compute_fn=predictions_dir)

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except Exception as err:  # jsonargparse wraps a class's own error in a union dump
            root = _root_cause(err)
            where = _raising_class(root)
            raise UserError(f"{where + ': ' if where else ''}{root}", code=2) from err

    def before_fit(self) -> None:
        from equireg_lit.callbacks import CheckpointOnStop, RandomStateInCheckpoint, newest_checkpoint
        from equireg_lit.models.score import check_export

        # First in line: the stop is taken and the random states put back before any other
        # callback's batch hook runs (Lightning keeps this order; it moves only checkpointing last).
        for kind in (RandomStateInCheckpoint, CheckpointOnStop):
            if not any(isinstance(cb, kind) for cb in self.trainer.callbacks):
                self.trainer.callbacks.insert(0, kind())
        # Before the datamodule's setup (probe sets run a sampler): an export that would be wasted
        # or would replace shipped weights is refused first. The modules check again at fit start.
        hparams = getattr(self.model, "hparams", {})
        for setting in ("export_dir", "export_path"):  # a latent prior's export_dir is also its export_path
            check_export(self.trainer, hparams.get(setting), bool(hparams.get("allow_untrained")), setting)
        fit = self.config_init["fit"]
        ckpt, root = fit.get("ckpt_path"), self.trainer.default_root_dir
        if ckpt == "last":  # resume a killed or stopped run, whichever version wrote it
            newest = newest_checkpoint(root)
            if newest is not None:
                _check_same_training(newest, dict(self.model.hparams), dict(getattr(self.datamodule, "hparams", {})))
            fit["ckpt_path"] = str(newest) if newest else None
            _say(f"equireg: --ckpt_path last: resuming from {newest}" if newest
                 else f"equireg: --ckpt_path last: no checkpoint under {root}; starting from scratch")
        elif ckpt is not None and ckpt not in ("hpc", "registry") and "://" not in ckpt and not os.path.isfile(ckpt):
            raise UserError(f"--ckpt_path {ckpt}: no such file (--ckpt_path last resumes from the newest "
                            f"checkpoint under {root})", code=2)

    def before_predict(self) -> None:
        from equireg_lit.callbacks import PredictionWriter

        # Predictions go to files through the writer, never accumulated in memory.
        if self.config_init["predict"].get("return_predictions") is None:
            self.config_init["predict"]["return_predictions"] = False
        writers = [cb for cb in self.trainer.callbacks if isinstance(cb, BasePredictionWriter)]
        if not writers:
            writer = PredictionWriter()
            self.trainer.callbacks.insert(0, writer)
            writers = [writer]
        for cb in writers:
            if isinstance(cb, PredictionWriter):
                cb.overwrite = cb.overwrite or bool(self.config["predict"].get("overwrite"))
                cb.fingerprint = fingerprint(self.config["predict"], self.model)
                if self.config["predict"].get("compare_with"):
                    cb.set_compare_with(self.config["predict"]["compare_with"])


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in str(record.msg)


def quiet_console() -> None:
    """No Lightning advertisements and no third-party deprecation noise."""
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DropTips())
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*is deprecated.*")
    warnings.filterwarnings("ignore", message=r".*`isinstance\(treespec, LeafSpec\)`.*")
    # Prediction batches carry their own dataset indices (PredictionSet); Lightning need not infer them.
    warnings.filterwarnings("ignore", message=r".*infer the batch indices.*")
    # Composed configs pass the expanded command line as ``args`` (utils/compose.py).
    warnings.filterwarnings("ignore", message=r".*LightningCLI's args parameter is intended.*")
    warnings.filterwarnings("ignore", message=r".*length of `DataLoader` across ranks is zero.*")  # all finished
    # ddp_spawn hands the model to its workers through shared memory; the default file-descriptor
    # strategy fails in some containers ("unable to resize file"), the file-system one does not.
    torch.multiprocessing.set_sharing_strategy("file_system")


# At import: ddp_spawn workers import this module but never run main().
quiet_console()


def version_text() -> str:
    """``equireg --version``: this package's version and the versions results depend on."""
    from importlib.metadata import version

    deps = ", ".join(f"{name} {version(name)}" for name in ("torch", "lightning", "deepinv", "diffusers"))
    return f"equireg-lit {version('equireg-lit')} ({deps})"


def build_cli(args: list[str] | None, cli_class: type[LightningCLI] = EquiRegCLI) -> LightningCLI:
    """The ``equireg`` CLI on the (composed) command line ``args`` (``None``: ``sys.argv``)."""
    return cli_class(
        pl.LightningModule,
        pl.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        parser_class=EquiRegParser,
        trainer_defaults={"inference_mode": False},  # guidance needs gradients during predict
        args=args,
    )


def main(args: list[str] | None = None) -> None:
    """Entry point of the ``equireg`` console script (``args`` for in-process tests)."""
    from equireg_lit.utils import signals

    argv = list(sys.argv[1:] if args is None else args)
    if argv[:1] in (["--version"], ["-V"]):
        print(version_text())
        raise SystemExit(0)
    debug = "--debug" in argv or os.environ.get("EQUIREG_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    if args is None and "--debug" in sys.argv:
        sys.argv.remove("--debug")  # DDP workers re-run sys.argv
    signals.install()
    try:
        composed = expand_config_args(argv)
        if composed != argv:
            args = argv = composed
        build_cli(argv if args is not None else None)
        signum = signals.requested()
        if signum is not None:  # arrived after the run's last check (its results are complete): honour it
            print(f"equireg: signal {signum} arrived as the run finished; its results are complete", file=sys.stderr)
            raise SystemExit(128 + signum)
    except SystemExit as err:
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        if isinstance(err, SIGTERMException):  # fit stopped by SIGTERM / SIGINT (checkpoint saved)
            signum = signals.requested() or 15
            print(f"equireg: stopped by signal {signum}; rerun with --ckpt_path last to continue", file=sys.stderr)
            raise SystemExit(128 + signum) from None
        raise
    except RunInterrupted as err:
        print(f"equireg: {err}; finished samples are kept, rerun the same command to finish", file=sys.stderr)
        raise SystemExit(128 + err.signum) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except Exception as err:
        if debug:
            raise
        cause = err if isinstance(err, UserError) else _root_cause(err)
        # Settings and files the user can fix: exit 2 like a parse error; anything else: exit 1.
        code = err.code if isinstance(err, UserError) else 2 if isinstance(cause, (ConfigError, DataError)) else 1
        hint = "" if isinstance(err, UserError) or code == 2 else " (rerun with --debug for the traceback)"
        print(f"equireg: error: {cause}{hint}", file=sys.stderr)
        raise SystemExit(code) from None
    finally:
        signals.uninstall()


if __name__ == "__main__":
    main()
