import functools
import glob
import json
import os

import pytest
import torch

from equireg_lit.cli import EquiRegCLI, build_cli, main
from equireg_lit.utils.compose import expand_config_args


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for sub in ("fit", "validate", "test", "predict"):
        assert sub in out


def test_predict_help_documents_settings(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    assert "--overwrite" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["predict", "--model.help", "equireg_lit.models.PosteriorSampler"])
    out = capsys.readouterr().out
    assert "--model.regularizer" in out and "Base seed" in out and "equireg_lit.physics.BoxInpainting" in out


# Entry configs (the parts under configs/{base,task,method,tuned} are parsed through them).
CONFIGS = sorted(c for sub in ("fit", "predict", "test")
                 for c in glob.glob(os.path.join(os.path.dirname(__file__), "..", "configs", sub, "*.yaml")))
CONFIGS += sorted(glob.glob(os.path.join(os.path.dirname(__file__), "configs", "*.yaml")))


class _ParserBuilt(Exception):
    pass


class _ParserOnly(EquiRegCLI):
    def parse_arguments(self, parser, args):
        raise _ParserBuilt(parser)


@functools.cache
def cli_parser():
    """The ``equireg`` parser, built once: building it is half the cost of parsing a config, and a
    parse through it prints what ``main`` prints (checked for every config when this was written)."""
    try:
        build_cli([], _ParserOnly)
    except _ParserBuilt as built:
        return built.args[0]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: os.path.relpath(p))
def test_every_config_parses(config, capsys):
    sub = next((s for s in ("fit", "test", "predict") if f"{os.sep}{s}{os.sep}" in config), "fit")
    with pytest.raises(SystemExit) as e:
        cli_parser().parse_args(expand_config_args([sub, "--config", config, "--print_config"]))
    assert e.value.code in (0, None)
    assert "class_path" in capsys.readouterr().out


def test_a_config_parses_the_same_through_main_and_the_shared_parser(capsys):
    config = f"{os.path.dirname(__file__)}/../configs/predict/mnist32_gaussian_blur_dps_equireg.yaml"
    printed = []
    for parse in (main, lambda argv: cli_parser().parse_args(expand_config_args(argv))):
        with pytest.raises(SystemExit):
            parse(["predict", "--config", config, "--print_config"])
        printed.append(capsys.readouterr().out)
    assert printed[0] == printed[1] and "regularizer" in printed[0]


def test_unknown_config_key_is_an_error(tmp_path, capsys, repo_root):
    with pytest.raises(SystemExit) as e:
        main(["predict", "--config", f"{repo_root}/configs/predict/demo_gaussian.yaml",
              "--model.init_args.solver.init_args.zetta", "0.3"])
    assert e.value.code != 0
    assert "zetta" in capsys.readouterr().err


def test_demo_runs_end_to_end_and_resumes(tmp_path, repo_root):
    cfg = f"{repo_root}/configs/predict/demo_gaussian.yaml"
    args = ["predict", "--config", cfg, "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar", "false"]
    main(args)
    out = tmp_path / "predictions"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_samples"] == 16 and summary["failed"] == {}
    assert "DenseGaussian" in summary["config"] and "EquiReg" in summary["config"]
    assert glob.glob(str(tmp_path / "lightning_logs" / "version_0" / "events.out.tfevents*"))
    assert (tmp_path / "lightning_logs" / "version_0" / "config.yaml").is_file()
    first = (out / "samples" / "00003.safetensors").stat().st_mtime_ns
    main(args)  # rerun: everything finished, nothing rewritten
    assert (out / "samples" / "00003.safetensors").stat().st_mtime_ns == first
    main(args + ["--overwrite", "true"])
    assert (out / "samples" / "00003.safetensors").stat().st_mtime_ns != first


def test_side_by_side_pictures_and_the_contact_sheet(tmp_path, repo_root):
    """Each sample gets a labelled strip (truth | reconstruction, and the base run's reconstruction
    with --compare_with), each run a contact sheet of its first strips."""
    from equireg_lit.utils.figures import GAP, LABEL_HEIGHT, MIN_PANEL_HEIGHT, png_array

    cfg = f"{repo_root}/configs/predict/demo_gaussian.yaml"
    base, other = tmp_path / "base", tmp_path / "other"
    common = ["predict", "--config", cfg, "--trainer.enable_progress_bar", "false", "--data.init_args.num_samples", "3"]
    main(common + ["--trainer.default_root_dir", str(base)])
    strip = png_array(base / "predictions" / "samples" / "00000_compare.png")
    # 8x8 panels enlarged to 128 px; the dense measurement vector has no picture
    assert strip.shape == (MIN_PANEL_HEIGHT + LABEL_HEIGHT, 2 * MIN_PANEL_HEIGHT + GAP, 3)
    main(common + ["--trainer.default_root_dir", str(other), "--compare_with", str(base / "predictions"),
                   "--model.init_args.regularizer.init_args.alpha", "1.0"])
    strip = png_array(other / "predictions" / "samples" / "00002_compare.png")
    assert strip.shape[1] == 3 * MIN_PANEL_HEIGHT + 2 * GAP
    sheet = png_array(other / "predictions" / "contact_sheet.png")
    assert sheet.shape[0] == 3 * strip.shape[0] + 2 * GAP
    with pytest.raises(SystemExit):
        main(common + ["--trainer.default_root_dir", str(tmp_path / "x"), "--compare_with", str(tmp_path / "nowhere")])


def test_fit_resumed_with_ckpt_path_last_from_an_epoch_checkpoint_is_bit_identical(tmp_path, repo_root, capsys):
    """A fit killed after its first epoch and rerun with ``--ckpt_path last`` (the newest checkpoint
    of any version in the run folder) ends with the weights of the run that was never stopped:
    same shuffles, timesteps, noise and augmentations (the random states travel in the checkpoint)."""
    import shutil

    from safetensors.torch import load_file

    def fit(root, *extra):
        main(["fit", "--config", f"{repo_root}/tests/configs/fit_tiny.yaml", "--trainer.default_root_dir", str(root),
              "--model.init_args.export_path", str(root / "w.safetensors"),
              "--model.init_args.sample_every_n_epochs", "0", *extra])

    fit(tmp_path / "whole", "--trainer.callbacks+=ModelCheckpoint", "--trainer.callbacks.save_top_k=-1")
    first_epoch = tmp_path / "whole" / "lightning_logs" / "version_0" / "checkpoints" / "epoch=0-step=2.ckpt"
    killed = tmp_path / "killed" / "lightning_logs" / "version_0" / "checkpoints"
    killed.mkdir(parents=True)
    shutil.copy(first_epoch, killed)  # what a SIGKILL during the second epoch leaves
    capsys.readouterr()
    fit(tmp_path / "killed", "--ckpt_path", "last")
    assert f"resuming from {killed / 'epoch=0-step=2.ckpt'}" in capsys.readouterr().err
    whole, resumed = load_file(str(tmp_path / "whole" / "w.safetensors")), load_file(str(tmp_path / "killed" / "w.safetensors"))
    assert whole.keys() == resumed.keys() and all(torch.equal(whole[k], resumed[k]) for k in whole)
    cut_run = tmp_path / "cut" / "lightning_logs" / "version_0" / "checkpoints"
    cut_run.mkdir(parents=True)
    shutil.copy(first_epoch, cut_run)
    cut = cut_run / "epoch=1-step=3.ckpt"  # newer, but cut short by a kill during its write: passed over
    cut.write_bytes(first_epoch.read_bytes()[:5000])
    capsys.readouterr()
    fit(tmp_path / "cut", "--ckpt_path", "last")
    err = capsys.readouterr().err
    assert f"{cut} is incomplete" in err and f"resuming from {cut_run / 'epoch=0-step=2.ckpt'}" in err
    resumed = load_file(str(tmp_path / "cut" / "w.safetensors"))
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
    fit(tmp_path / "fresh", "--ckpt_path", "last", "--trainer.max_steps", "1")
    assert "no checkpoint under" in capsys.readouterr().err
    with pytest.raises(SystemExit) as err:  # another learning rate: not the same run, before any work
        fit(tmp_path / "killed", "--ckpt_path", "last", "--model.init_args.lr", "0.5")
    assert err.value.code == 2 and "written with other settings (lr: 0.0002 -> 0.5)" in capsys.readouterr().err
    with pytest.raises(SystemExit) as err:  # other data: not the same run either
        fit(tmp_path / "killed", "--ckpt_path", "last", "--data.init_args.std", "0.7")
    assert err.value.code == 2 and "(data.std: 0.5 -> 0.7)" in capsys.readouterr().err
    with pytest.raises(SystemExit) as err:
        fit(tmp_path / "fresh", "--ckpt_path", str(tmp_path / "nowhere.ckpt"))
    assert err.value.code == 2 and "nowhere.ckpt: no such file (--ckpt_path last resumes" in capsys.readouterr().err


class SigtermAtStep(__import__("lightning").pytorch.callbacks.Callback):
    """Sends this process a real SIGTERM after training step ``step`` (a scheduler's TERM, on cue)."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            import signal

            os.kill(os.getpid(), signal.SIGTERM)


class SigtermAtPredictEnd(__import__("lightning").pytorch.callbacks.Callback):
    """Sends this process a real SIGTERM after the last sampling step (no check comes after it)."""

    def on_predict_end(self, trainer, pl_module) -> None:
        import signal

        os.kill(os.getpid(), signal.SIGTERM)


def test_a_signal_after_the_last_sampling_step_is_not_lost(tmp_path, repo_root, capsys):
    """A TERM that arrives while a finished run writes its summary stops the command (exit 143)
    instead of being forgotten by the next run in the same process (the benchmark runner's case)."""
    common = ["predict", "--config", f"{repo_root}/configs/predict/demo_gaussian.yaml", "--trainer.enable_progress_bar",
              "false", "--data.init_args.num_samples", "2"]
    with pytest.raises(SystemExit) as err:
        main(common + ["--trainer.default_root_dir", str(tmp_path / "a"),
                       "--trainer.callbacks+=tests.test_cli.SigtermAtPredictEnd"])
    assert err.value.code == 143
    assert "signal 15 arrived as the run finished" in capsys.readouterr().err
    summary = json.loads((tmp_path / "a" / "predictions" / "summary.json").read_text())
    assert summary["num_samples"] == 2 and summary["complete"] is True
    main(common + ["--trainer.default_root_dir", str(tmp_path / "b")])  # the next command starts afresh


def test_fit_stopped_mid_epoch_resumes_bit_identically(tmp_path, repo_root, capsys):
    """A one-process fit stops before the next batch on SIGTERM (not at the epoch's end) and,
    rerun with ``--ckpt_path last``, trains the rest of that epoch on the batches of the run never
    stopped (same shuffle, same position): the exported weights are equal bit for bit. The same
    from a step checkpoint in the middle of the first epoch."""
    import shutil

    from safetensors.torch import load_file

    def fit(root, *extra):
        main(["fit", "--config", f"{repo_root}/tests/configs/fit_tiny.yaml", "--trainer.default_root_dir", str(root),
              "--model.init_args.export_path", str(root / "w.safetensors"), "--trainer.max_steps", "10",
              "--data.init_args.batch_size", "4", "--model.init_args.sample_every_n_epochs", "0", *extra])

    def weights(root):
        return load_file(str(root / "w.safetensors"))

    fit(tmp_path / "whole", "--trainer.callbacks+=ModelCheckpoint", "--trainer.callbacks.every_n_train_steps=1",
        "--trainer.callbacks.save_top_k=-1")
    whole = weights(tmp_path / "whole")
    with pytest.raises(SystemExit) as err:  # 4 batches per epoch: step 6 is inside the second epoch
        fit(tmp_path / "stopped", "--trainer.callbacks+=tests.test_cli.SigtermAtStep", "--trainer.callbacks.step=6")
    assert err.value.code == 143
    ckpt = tmp_path / "stopped" / "lightning_logs" / "version_0" / "checkpoints" / "interrupted.ckpt"
    state = torch.load(ckpt, weights_only=True)
    assert state["global_step"] == 6 and state["epoch"] == 1  # stopped before step 7, not at the epoch's end
    capsys.readouterr()
    fit(tmp_path / "stopped", "--ckpt_path", "last")
    assert "resuming from" in capsys.readouterr().err
    resumed = weights(tmp_path / "stopped")
    assert whole.keys() == resumed.keys() and all(torch.equal(whole[k], resumed[k]) for k in whole)
    killed = tmp_path / "killed" / "lightning_logs" / "version_0" / "checkpoints"
    killed.mkdir(parents=True)
    shutil.copy(tmp_path / "whole" / "lightning_logs" / "version_0" / "checkpoints" / "epoch=0-step=2.ckpt", killed)
    fit(tmp_path / "killed", "--ckpt_path", "last")
    resumed = weights(tmp_path / "killed")
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)


def test_fit_tiny_writes_checkpoint_and_tensorboard(tmp_path, repo_root):
    main(["fit", "--config", f"{repo_root}/tests/configs/fit_tiny.yaml", "--trainer.default_root_dir", str(tmp_path),
          "--model.init_args.export_path", str(tmp_path / "tiny.safetensors")])
    run = tmp_path / "lightning_logs" / "version_0"
    assert glob.glob(str(run / "checkpoints" / "*.ckpt"))
    assert glob.glob(str(run / "events.out.tfevents*"))
    prov = json.loads((tmp_path / "tiny.json").read_text())
    assert prov["global_steps"] == 4 and prov["architecture"]["sample_size"] == 8
    assert "ScoreModule" in prov["config_yaml"]
    # The exported EMA weights load back by path into the same architecture.
    from equireg_lit.diffusion import DiffusersUNetPrior

    arch = {k: v for k, v in prov["architecture"].items() if k != "out_channels"}
    fitted = DiffusersUNetPrior(weights=str(tmp_path / "tiny.safetensors"), **arch)
    from safetensors.torch import load_file

    exported = load_file(str(tmp_path / "tiny.safetensors"))
    assert all(torch.equal(v, exported[k]) for k, v in fitted.net.state_dict().items())
    # A training snapshot of the checkpoint: its EMA file is the exported EMA, both load strictly.
    from equireg_lit.weights import export_training_snapshot

    (ckpt,) = glob.glob(str(run / "checkpoints" / "*.ckpt"))
    meta = export_training_snapshot(ckpt, tmp_path / "snap")
    assert meta["global_step"] == 4
    snap = load_file(str(tmp_path / "snap" / "ema.safetensors"))
    assert snap.keys() == exported.keys() and all(torch.equal(snap[k], exported[k]) for k in snap)
    DiffusersUNetPrior(weights=str(tmp_path / "snap" / "net.safetensors"), **arch)


def test_score_module_continues_from_network_and_ema_weight_files(tmp_path, repo_root):
    """A training snapshot (network and EMA weights as files) continues a run without its checkpoint."""
    import yaml
    from safetensors.torch import save_file

    from equireg_lit.diffusion import DiffusersUNetPrior
    from equireg_lit.models import ScoreModule

    prior_args = yaml.safe_load(open(f"{repo_root}/tests/configs/fit_tiny.yaml"))["model"]["init_args"]["prior"]["init_args"]
    torch.manual_seed(0)
    net = {k: v.contiguous() for k, v in DiffusersUNetPrior(**prior_args).net.state_dict().items()}
    save_file(net, str(tmp_path / "net.safetensors"))
    save_file({k: v + 1.0 for k, v in net.items()}, str(tmp_path / "ema.safetensors"))
    prior = DiffusersUNetPrior(**{**prior_args, "random_init": False, "weights": str(tmp_path / "net.safetensors")})
    module = ScoreModule(prior, ema_weights=str(tmp_path / "ema.safetensors"))
    assert all(torch.equal(v, net[k] + 1.0) for k, v in module.ema.net.state_dict().items())
    assert all(torch.equal(v, net[k]) for k, v in module.prior.net.state_dict().items())
