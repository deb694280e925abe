import pytest
import torch

from equireg_lit.errors import DataError

from equireg_lit.datamodules import MNISTDataModule, SklearnDigitsDataModule, split_indices
from equireg_lit.diffusion import DiffusersUNetPrior, GuidedDiffusionPrior
from equireg_lit.models import ScoreModule
from equireg_lit.models.score import ema_update

TINY = dict(sample_size=8, in_channels=1, block_out_channels=(8, 16), layers_per_block=1,
            down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4)


def test_no_weights_is_an_error_not_a_random_init():
    with pytest.raises(ValueError, match="random_init"):
        DiffusersUNetPrior(**TINY)
    with pytest.raises(DataError, match="no shipped weights named 'nope'"):
        DiffusersUNetPrior(weights="nope")
    with pytest.raises(DataError, match="not found"):
        DiffusersUNetPrior(weights="/does/not/exist.safetensors", **TINY)


def test_mismatched_checkpoint_names_file_and_shapes(tmp_path):
    from safetensors.torch import save_file

    net = DiffusersUNetPrior(random_init=True, **TINY)
    state = {k: v.clone() for k, v in net.net.state_dict().items()}
    path = tmp_path / "w.safetensors"
    save_file(state, str(path))
    loaded = DiffusersUNetPrior(weights=str(path), **TINY)
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3, 500])
    assert torch.equal(loaded(x, t), net(x, t))
    wrong = dict(TINY, block_out_channels=(8, 32))
    with pytest.raises(ValueError, match=r"w.safetensors does not match UNet2DModel.*expected .*found"):
        DiffusersUNetPrior(weights=str(path), **wrong)
    state.pop(next(iter(state)))
    save_file(state, str(path))
    with pytest.raises(ValueError, match="missing keys"):
        DiffusersUNetPrior(weights=str(path), **TINY)


def test_pickled_checkpoints_are_refused(tmp_path):
    import pickle

    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"a": object()}))
    with pytest.raises(ValueError, match="weights_only"):
        DiffusersUNetPrior(weights=str(path), **TINY)


def test_input_checks():
    net = DiffusersUNetPrior(random_init=True, **TINY)
    with pytest.raises(ValueError, match="1-channel"):
        net.check_input((2, 3, 8, 8))
    with pytest.raises(ValueError, match="8x8"):
        net.check_input((2, 1, 16, 16))


def test_guided_diffusion_adapter():
    with pytest.raises(ValueError, match="ffhq_10m.pt"):
        GuidedDiffusionPrior()
    with pytest.raises(DataError, match="ffhq_10m.pt.*never downloaded"):
        GuidedDiffusionPrior(weights="/nowhere/ffhq_10m.pt")


@pytest.mark.slow
def test_guided_diffusion_random_init_takes_eps_channels():
    net = GuidedDiffusionPrior(random_init=True, image_size=64)
    out = net(torch.randn(1, 3, 64, 64), torch.tensor([10]))
    assert out.shape == (1, 3, 64, 64)


def test_ema_update_math():
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    wa, wb = a.weight.detach().clone(), b.weight.detach().clone()
    ema_update(a, b, 0.9)
    assert torch.allclose(a.weight, 0.9 * wa + 0.1 * wb)


def test_loss_decreases_on_a_fixed_batch():
    torch.manual_seed(0)
    module = ScoreModule(DiffusersUNetPrior(random_init=True, **TINY))
    x = torch.randn(8, 1, 8, 8).clamp(-1, 1)
    opt = torch.optim.Adam(module.prior.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = module.diffusion_loss(module.prior, x, generator=torch.Generator().manual_seed(0))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_mnist_split_is_fixed_and_disjoint():
    a, b = split_indices("test"), split_indices("test")
    assert torch.equal(a, b)
    parts = [set(split_indices(s).tolist()) for s in ("train", "val", "test")]
    assert [len(p) for p in parts] == [4000, 500, 500]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    from equireg_lit.physics import BoxInpainting

    dm = MNISTDataModule(predict_limit=3, predict_start=10, operator=BoxInpainting())
    dm.setup()
    item = dm.splits["test"][0]
    assert item["image"].shape == (1, 32, 32) and -1.0 <= item["image"].min() and item["image"].max() <= 1.0
    batch = next(iter(dm.predict_dataloader()))
    assert batch["index"].tolist() == [10, 11, 12]
    digits = SklearnDigitsDataModule()
    digits.setup()
    assert digits.splits["test"][0]["image"].shape == (1, 32, 32)


def test_a_running_fit_ships_its_ema_with_provenance(tmp_path):
    """``python -m equireg_lit.weights ship``: the EMA of a checkpoint, architecture from the fit config."""
    import json

    import yaml
    from safetensors.torch import load_file

    from equireg_lit.weights import ship_training_snapshot

    arch = dict(sample_size=8, in_channels=1, block_out_channels=[8, 8], layers_per_block=1,
                down_block_types=["DownBlock2D", "DownBlock2D"], up_block_types=["UpBlock2D", "UpBlock2D"],
                norm_num_groups=4)
    config = tmp_path / "fit.yaml"
    config.write_text(yaml.safe_dump({"model": {"init_args": {"prior": {"init_args": {"random_init": True, **arch}}}}}))
    net, ema = (DiffusersUNetPrior(random_init=True, **arch) for _ in range(2))
    torch.nn.init.normal_(next(ema.net.parameters()))  # the EMA differs from the network
    state = {f"prior.net.{k}": v for k, v in net.net.state_dict().items()}
    state |= {f"ema.net.{k}": v for k, v in ema.net.state_dict().items()}
    torch.save({"state_dict": state, "epoch": 2, "global_step": 40, "hyper_parameters": {"seed": 3}},
               tmp_path / "last.ckpt")
    prov = ship_training_snapshot(tmp_path / "last.ckpt", tmp_path / "prior.safetensors", config)
    shipped = load_file(str(tmp_path / "prior.safetensors"))
    assert all(torch.equal(shipped[k], v) for k, v in ema.net.state_dict().items())
    meta = json.loads((tmp_path / "prior.json").read_text())
    assert meta["status"].startswith("training snapshot") and meta["global_steps"] == 40 and meta["seed"] == 3
    assert meta["architecture"]["block_out_channels"] == [8, 8] and prov["epochs"] == 2
    reloaded = DiffusersUNetPrior(weights=str(tmp_path / "prior.safetensors"), **arch)
    assert torch.equal(next(reloaded.net.parameters()), next(ema.net.parameters()))


def test_training_noise_is_a_function_of_the_batch_and_differs_between_processes():
    """Timesteps and noise of a training batch come from (seed, epoch, batch, rank): the same batch
    redrawn (a resumed fit) gets the same noise, another DDP rank other noise."""
    from equireg_lit.rng import training_batch_generator

    torch.manual_seed(0)
    module = ScoreModule(DiffusersUNetPrior(random_init=True, **TINY), augment_group="hflip", augment_prob=0.5)
    x = torch.randn(8, 1, 8, 8).clamp(-1, 1)

    def loss(epoch, batch_idx, rank):
        g = training_batch_generator(0, epoch, batch_idx, rank)
        torch.manual_seed(123)  # the global state must not matter
        return module.diffusion_loss(module.prior, module.augment(x, g), generator=g).item()

    assert loss(1, 2, 0) == loss(1, 2, 0)
    assert len({loss(1, 2, 0), loss(1, 2, 1), loss(1, 3, 0), loss(2, 2, 0)}) == 4
