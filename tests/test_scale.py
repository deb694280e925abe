"""Runs that survive scale: several processes (DDP on CPU with gloo), signals and kills.

These start real ``equireg`` processes (Lightning's DDP launcher re-executes the command), so each
costs a few seconds of imports; the long kill series is marked slow.
"""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from equireg_lit.cli import main
from tests.conftest import REPO

EQUIREG = str(Path(sys.executable).parent / "equireg")
DEMO = f"{REPO}/configs/predict/demo_gaussian.yaml"
MNIST = f"{REPO}/configs/predict/demo_mnist32.yaml"
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
# The same thread count as this process: results are bit-identical only at equal thread counts.
ENV = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads()), "PYTHONWARNINGS": "ignore"}


def run(args: list[str], timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([EQUIREG, *args], capture_output=True, text=True, timeout=timeout, env=env or ENV, cwd=REPO)


def tensors(root: Path) -> dict[int, torch.Tensor]:
    samples = root / "predictions" / "samples"
    return {int(p.stem): load_file(str(p))["reconstruction"] for p in sorted(samples.glob("*.safetensors"))}


def metric_rows(root: Path) -> list[dict]:
    with open(root / "predictions" / "metrics.csv") as fh:
        return [{k: v for k, v in r.items() if k not in ("seconds", "network_seconds")} for r in csv.DictReader(fh)]


def ddp(strategy: str) -> list[str]:
    return ["--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", strategy]


@pytest.mark.parametrize("strategy", ["ddp", pytest.param("ddp_spawn", marks=pytest.mark.slow)])
def test_two_process_predict_equals_one_process(tmp_path, strategy):
    one, two = tmp_path / "one", tmp_path / "two"
    main(["predict", "--config", DEMO, "--trainer.default_root_dir", str(one), *QUIET])
    done = run(["predict", "--config", DEMO, "--trainer.default_root_dir", str(two), *QUIET, *ddp(strategy)])
    assert done.returncode == 0, done.stderr[-3000:]
    a, b = tensors(one), tensors(two)
    assert sorted(b) == list(range(16))  # every sample written once
    assert all(torch.equal(a[i], b[i]) for i in a)  # fixed batches: bit-identical across process counts
    assert metric_rows(one) == metric_rows(two)
    s1, s2 = (json.loads((r / "predictions" / "summary.json").read_text()) for r in (one, two))
    assert s2["complete"] and s2["num_samples"] == 16 and s2["psnr"] == s1["psnr"]
    assert not (two / "predictions" / ".lock").exists()
    # Resume with one batch left: one process gets no batch and must still join the summary.
    (two / "predictions" / "samples" / "00012.json").unlink()
    done = run(["predict", "--config", DEMO, "--trainer.default_root_dir", str(two), *QUIET, *ddp(strategy)])
    assert done.returncode == 0, done.stderr[-3000:]
    assert torch.equal(tensors(two)[12], a[12]) and len(metric_rows(two)) == 16


@pytest.mark.slow
def test_two_process_predict_on_mnist_equals_one_process(tmp_path):
    args = ["predict", "--config", MNIST, *QUIET, "--data.init_args.predict_limit", "6",
            "--data.init_args.batch_size", "2", "--model.init_args.solver.init_args.num_steps", "10"]
    main([*args, "--trainer.default_root_dir", str(tmp_path / "one")])
    done = run([*args, "--trainer.default_root_dir", str(tmp_path / "two"), *ddp("ddp")])
    assert done.returncode == 0, done.stderr[-3000:]
    a, b = tensors(tmp_path / "one"), tensors(tmp_path / "two")
    assert sorted(b) == list(range(6)) and all(torch.equal(a[i], b[i]) for i in a)
    assert metric_rows(tmp_path / "one") == metric_rows(tmp_path / "two")


def test_two_process_fit_exports_once_and_resumes_bit_identically(tmp_path):
    """DDP (2 gloo processes, 2 batches per process and epoch): one export with the one-process
    schedule. A fit killed after its first epoch, and one stopped by a real SIGTERM to both
    processes after step 3 (inside the second epoch: Lightning's in-handler broadcast used to
    crash this), rerun with --ckpt_path last, end with the weights of the run never stopped:
    samplers reshuffle by epoch, the random states and each process's position in its shuffled
    epoch travel in the checkpoint."""
    import shutil

    cfg = f"{REPO}/tests/configs/fit_tiny.yaml"
    common = ["--trainer.max_steps", "6", "--data.init_args.batch_size", "4", "--model.init_args.sample_every_n_epochs", "0"]
    main(["fit", "--config", cfg, "--trainer.default_root_dir", str(tmp_path / "one"),
          "--model.init_args.export_path", str(tmp_path / "one" / "w.safetensors"), *common])

    def fit(root: Path, *extra: str) -> subprocess.CompletedProcess:
        return run(["fit", "--config", cfg, "--trainer.default_root_dir", str(root), *ddp("ddp"),
                    "--model.init_args.export_path", str(root / "w.safetensors"), *common, *extra],
                   env={**ENV, "PYTHONPATH": REPO})  # the test's callback: tests.test_cli

    def weights(root: Path) -> dict:
        return load_file(str(root / "w.safetensors"))

    done = fit(tmp_path / "whole", "--trainer.callbacks+=ModelCheckpoint", "--trainer.callbacks.save_top_k=-1")
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = (json.loads((tmp_path / n / "w.json").read_text()) for n in ("one", "whole"))
    # Same schedule and architecture; the weights differ because each process sees half the data.
    assert two["global_steps"] == one["global_steps"] == 6 and two["architecture"] == one["architecture"]
    assert two["final_val_loss_ema"] > 0 and "ScoreModule" in two["config_yaml"]
    whole = weights(tmp_path / "whole")
    assert all(torch.isfinite(v).all() for v in whole.values())

    killed = tmp_path / "killed" / "lightning_logs" / "version_0" / "checkpoints"
    killed.mkdir(parents=True)
    shutil.copy(tmp_path / "whole" / "lightning_logs" / "version_0" / "checkpoints" / "epoch=0-step=2.ckpt", killed)
    assert (done := fit(tmp_path / "killed", "--ckpt_path", "last")).returncode == 0, done.stderr[-3000:]
    resumed = weights(tmp_path / "killed")
    assert whole.keys() == resumed.keys() and all(torch.equal(whole[k], resumed[k]) for k in whole)

    stopped = fit(tmp_path / "stopped", "--trainer.callbacks+=tests.test_cli.SigtermAtStep", "--trainer.callbacks.step=3")
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-3000:]
    ckpt = tmp_path / "stopped" / "lightning_logs" / "version_0" / "checkpoints" / "interrupted.ckpt"
    state = torch.load(ckpt, weights_only=True)
    assert (state["global_step"], state["epoch"]) == (3, 1)
    assert (done := fit(tmp_path / "stopped", "--ckpt_path", "last")).returncode == 0, done.stderr[-3000:]
    resumed = weights(tmp_path / "stopped")
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)


def start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([EQUIREG, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            cwd=REPO)


def wait_for_samples(root: Path, n: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.time()
    while len(list((root / "predictions" / "samples").glob("*.json"))) < n:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.time() - t0 < timeout
        time.sleep(0.05)


MNIST_8 = ["predict", "--config", MNIST, *QUIET, "--data.init_args.predict_limit", "8",
           "--data.init_args.batch_size", "4", "--model.init_args.solver.init_args.num_steps", "30"]


def test_sigterm_stops_predict_within_seconds_and_summarizes_finished_samples(tmp_path):
    proc = start([*MNIST_8, "--trainer.default_root_dir", str(tmp_path)])
    wait_for_samples(tmp_path, 1, proc)
    t0 = time.time()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert time.time() - t0 < 10
    summary = json.loads((tmp_path / "predictions" / "summary.json").read_text())
    finished = sorted(int(p.stem) for p in (tmp_path / "predictions" / "samples").glob("*.json"))
    assert summary["complete"] is False and summary["stopped_by"] == "SIGTERM"
    assert summary["num_samples"] == len(finished) == 4 and len(metric_rows(tmp_path)) == 4
    assert not (tmp_path / "predictions" / ".lock").exists()


def kill_and_resume(reference: dict[int, torch.Tensor], root: Path, delay: float) -> int:
    """SIGKILL a run ``delay`` seconds after its first finished sample (``delay < 0``: ``7 + delay``
    seconds after its start, i.e. during start-up or the first batch), rerun it, compare with
    ``reference``; return how many samples were finished when it was killed."""
    proc = start([*MNIST_8, "--trainer.default_root_dir", str(root)])
    if delay >= 0:
        wait_for_samples(root, 1, proc)
    time.sleep(delay if delay >= 0 else 7 + delay)
    proc.kill()
    proc.communicate()
    finished_at_kill = len(list((root / "predictions" / "samples").glob("*.json")))
    main([*MNIST_8, "--trainer.default_root_dir", str(root)])  # resumes: takes over the stale lock
    got = tensors(root)
    assert sorted(got) == sorted(reference)
    assert all(torch.equal(got[i], reference[i]) for i in reference)
    return finished_at_kill


@pytest.fixture(scope="module")
def mnist_reference(tmp_path_factory) -> dict[int, torch.Tensor]:
    root = tmp_path_factory.mktemp("reference")
    main([*MNIST_8, "--trainer.default_root_dir", str(root)])
    return tensors(root)


def test_sigkill_inside_a_batch_resumes_bit_identically(tmp_path, mnist_reference):
    kill_and_resume(mnist_reference, tmp_path, delay=0.3)  # samples 0-3 written, 4-7 mid-batch


@pytest.mark.slow
def test_five_kills_at_random_moments_resume_bit_identically(tmp_path, mnist_reference):
    rng = random.Random(0)
    finished = [kill_and_resume(mnist_reference, tmp_path / f"kill{k}", delay=rng.uniform(-4.0, 2.5)) for k in range(5)]
    print(f"samples finished when killed: {finished}")


@pytest.mark.slow
def test_sigterm_stops_fit_with_a_checkpoint(tmp_path):
    proc = start(["fit", "--config", f"{REPO}/tests/configs/fit_tiny.yaml", "--trainer.default_root_dir", str(tmp_path),
                  "--trainer.max_steps", "100000", "--model.init_args.sample_every_n_epochs", "0"])
    t0 = time.time()
    while not list(tmp_path.glob("lightning_logs/version_0/events*")):
        assert proc.poll() is None and time.time() - t0 < 120
        time.sleep(0.1)
    time.sleep(2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    ckpt = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "interrupted.ckpt"
    assert ckpt.is_file() and torch.load(ckpt, weights_only=True)["global_step"] > 0
