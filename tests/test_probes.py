import json

import pytest
import torch
from torch import nn

from equireg_lit.probes import (
    SmallAutoencoder, SmallCNN, auroc, classification_loss, contrastive_loss, effect_size, equivariance_loss,
    separation_loss,
)
from equireg_lit.probes.report import write_selection_report
from equireg_lit.probes.sets import load_or_build_probe_sets, probe_set_provenance
from equireg_lit.regularizer import EquiReg, FixedConv, get_group


def digits_like(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.full((n, 1, 16, 16), -1.0)
    x[:, :, 4:12, 6:10] = torch.rand(n, 1, 8, 4, generator=g)
    x[:, :, 2:5, 2:5] = 1.0  # an asymmetric mark, so orientations are distinguishable
    return x


@pytest.mark.parametrize("objective", ["equivariance", "classification", "contrastive", "separation"])
def test_each_objective_decreases_on_a_tiny_batch(objective):
    torch.manual_seed(0)
    f = SmallCNN(width=16, depth=3, out_channels=8)
    group = get_group("rot90")
    reg = EquiReg(f, group, alpha=1.0, reduction="mse", seed=0)
    head = nn.Linear(8, len(group.elements) + 1)
    proj = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 16))
    params = list(f.parameters()) + list(head.parameters()) + list(proj.parameters())
    opt = torch.optim.Adam(params, lr=3e-3)
    on, off = digits_like(16), torch.randn(16, 1, 16, 16)
    if objective in ("classification", "contrastive"):  # distinct images with a clear orientation
        on = 0.5 * torch.randn(16, 1, 16, 16, generator=torch.Generator().manual_seed(3)) + digits_like(16)

    def loss_fn():
        torch.manual_seed(1)  # the same group draws every evaluation
        if objective == "equivariance":
            return equivariance_loss(reg, on)
        if objective == "classification":
            return classification_loss(f, head, group, on)
        if objective == "contrastive":
            return contrastive_loss(f, proj, group, on)
        return separation_loss(reg, on, off, margin=1.0)

    first = loss_fn().item()
    for _ in range(60):
        opt.zero_grad()
        loss_fn().backward()
        opt.step()
    assert loss_fn().item() < 0.8 * first


def test_equivariant_f_has_zero_error_and_chance_auroc():
    reg = EquiReg(nn.Tanh(), "d4", alpha=1.0)
    on, off = reg.mean_penalty(digits_like(50)), reg.mean_penalty(torch.randn(50, 1, 16, 16))
    assert torch.equal(on, torch.zeros(50)) and torch.equal(off, torch.zeros(50))
    assert auroc(on, off) == pytest.approx(0.5)


def test_autoencoder_maps_back_to_image_space():
    x = torch.randn(2, 1, 32, 32)
    assert SmallAutoencoder()(x).shape == x.shape
    EquiReg(SmallAutoencoder(), "hflip", form="equi_plus")(x)


def test_selection_ranks_a_good_candidate_above_a_bad_one(tmp_path):
    on, off = digits_like(64), torch.randn(64, 1, 16, 16)
    good = EquiReg(FixedConv(1), "hflip", alpha=1.0)  # error grows with high-frequency content
    bad = EquiReg(nn.Identity(), "hflip", alpha=1.0)  # zero error everywhere
    errors = {
        name: {"on_test": r.mean_penalty(on), "off_eval_dps_mid": r.mean_penalty(off)}
        for name, r in (("bad", bad), ("good", good))
    }
    rows = write_selection_report(errors, tmp_path, {"good": {"class_path": "x"}, "bad": None})
    assert [r["candidate"] for r in rows] == ["good", "bad"]
    assert rows[0]["score"] > 0.95 and rows[1]["score"] == pytest.approx(0.5)
    assert effect_size(errors["good"]["on_test"], errors["good"]["off_eval_dps_mid"]) > 1
    assert (tmp_path / "hist_good.png").is_file() and "good" in (tmp_path / "best_regularizer.yaml").read_text()
    assert json.loads((tmp_path / "selection.json").read_text())[0]["candidate"] == "good"


def tiny_set_provenance(tmp_path) -> dict:
    """Provenance of small probe sets (2 trajectories per part, 4 steps) from a random prior saved
    under tmp_path."""
    from safetensors.torch import save_file

    from equireg_lit.diffusion import DiffusersUNetPrior

    torch.manual_seed(0)
    net = DiffusersUNetPrior(random_init=True)
    weights = tmp_path / "prior.safetensors"
    save_file({k: v.contiguous() for k, v in net.net.state_dict().items()}, str(weights))
    return probe_set_provenance(str(weights), steps=4, zeta=1.0, num_traj_train=2, num_traj_eval=2,
                                num_on_train=8, num_prior_samples=2, seed=0)


def test_probe_sets_are_deterministic_and_rebuilt_when_provenance_changes(tmp_path):
    prov = tiny_set_provenance(tmp_path)
    a = load_or_build_probe_sets(tmp_path / "c1", prov, progress=False)
    b = load_or_build_probe_sets(tmp_path / "c2", prov, progress=False)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert a["off_train_dps_mid"].shape == (4, 1, 32, 32)  # 2 digits x 2 tasks
    assert a["on_test"].shape == (500, 1, 32, 32) and a["off_eval_noise"].shape == (500, 1, 32, 32)
    files = sorted(p.name for p in (tmp_path / "c1").iterdir())
    mtime = (tmp_path / "c1" / files[1]).stat().st_mtime_ns
    load_or_build_probe_sets(tmp_path / "c1", prov, progress=False)  # cache hit: not rewritten
    assert (tmp_path / "c1" / files[1]).stat().st_mtime_ns == mtime
    changed = dict(prov, seed=1)
    c = load_or_build_probe_sets(tmp_path / "c1", changed, progress=False)
    assert len(list((tmp_path / "c1").glob("*.safetensors"))) == 2
    assert not torch.equal(c["off_train_dps_mid"], a["off_train_dps_mid"])


def test_a_probe_set_build_killed_midway_resumes_from_its_finished_pieces(tmp_path, monkeypatch):
    from equireg_lit.probes import sets

    prov = tiny_set_provenance(tmp_path)
    whole = load_or_build_probe_sets(tmp_path / "whole", prov, progress=False)
    real, calls = sets._trajectory_estimates, []

    def killed_on_the_third(*args, **kwargs):
        calls.append(args[2])
        if len(calls) == 3:
            raise KeyboardInterrupt  # stands in for a kill: nothing after this piece is kept
        return real(*args, **kwargs)

    monkeypatch.setattr(sets, "_trajectory_estimates", killed_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        load_or_build_probe_sets(tmp_path / "c", prov, progress=False)
    assert len(list((tmp_path / "c" / "pieces").glob("*.safetensors"))) == 3  # prior samples + 2 trajectories
    calls.clear()
    resumed = load_or_build_probe_sets(tmp_path / "c", prov, progress=False)
    assert len(calls) == 2  # the two pieces left, not all four
    assert resumed.keys() == whole.keys() and all(torch.equal(resumed[k], whole[k]) for k in whole)
    assert not (tmp_path / "c" / "pieces").exists()  # pieces go once the sets are written


def test_reconstruction_objective_is_zero_for_a_perfect_autoencoder_and_trains_one():
    from equireg_lit.probes import SmallAutoencoder
    from equireg_lit.probes.objectives import reconstruction_loss
    from equireg_lit.regularizer.groups import get_group

    group = get_group("hflip")
    x = torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert reconstruction_loss(torch.nn.Identity(), group, x) == 0
    torch.manual_seed(0)
    ae = SmallAutoencoder(in_channels=1, width=8, latent_channels=4)
    opt = torch.optim.Adam(ae.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        loss = reconstruction_loss(ae, group, x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]


def test_pde_probe_sets_use_the_pde_sparse_observation_tasks():
    from equireg_lit.probes.sets import trajectory_operator, trajectory_tasks

    assert trajectory_tasks("darcy64") == ["forward", "inverse"] and trajectory_tasks("mnist32") == ["box_inpainting", "sr4"]
    fwd, inv = trajectory_operator("forward", (2, 64, 64)), trajectory_operator("inverse", (2, 64, 64))
    assert (fwd.channel, inv.channel) == (0, 1) and fwd.indices.numel() == round(0.03 * 64 * 64)


def test_sets_of_other_data_sets_select_on_validation_samples_and_cache(tmp_path, monkeypatch):
    """natural32 / PDE sets: the reference and the eval trajectories are validation samples; the
    sets round-trip through the cache (no shared storage)."""
    import equireg_lit.probes.sets as sets_mod

    g = torch.Generator().manual_seed(0)
    fake = {s: torch.rand(n, 1, 32, 32, generator=g) * 2 - 1 for s, n in (("train", 40), ("val", 20), ("test", 20))}
    monkeypatch.setattr(sets_mod, "dataset_splits", lambda dataset: fake)
    prov = probe_set_provenance("mnist32", steps=10, zeta=1.0, num_traj_train=2, num_traj_eval=3, num_on_train=8,
                                num_prior_samples=2, seed=0, dataset="natural32")
    assert prov["selection_split"] == "val"
    built = load_or_build_probe_sets(tmp_path, prov, progress=False)
    again = load_or_build_probe_sets(tmp_path, prov, progress=False)  # from the cache
    assert torch.equal(built["on_eval"], fake["val"]) and torch.equal(again["on_eval"], built["on_eval"])
    assert built["off_eval_dps_mid"].shape == (6, 1, 32, 32)  # 3 validation samples x 2 tasks
    assert built["off_eval_noise"].shape[0] == 20  # perturbations of the validation reference


@pytest.mark.parametrize("objective", ["separation", "classification"])
def test_probe_training_is_reproducible_and_its_draws_follow_the_seed(tmp_path, objective):
    """Group elements and labels come from (seed, epoch, batch, rank): two fits with one seed give
    the same probe bit for bit (before, EquiReg's own generator was seeded from the clock)."""
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader

    from equireg_lit.models import ProbeModule
    from equireg_lit.probes import SmallCNN

    g = torch.Generator().manual_seed(0)
    batches = [{"image": torch.randn(4, 1, 8, 8, generator=g), "off": torch.randn(4, 1, 8, 8, generator=g)} for _ in range(3)]

    def fit(seed):
        torch.manual_seed(0)
        module = ProbeModule(SmallCNN(in_channels=1, width=4, depth=2, out_channels=4), group="d4",
                             objective=objective, seed=seed)
        pl.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                   enable_model_summary=False, default_root_dir=tmp_path, accelerator="cpu").fit(
            module, train_dataloaders=DataLoader(batches, batch_size=None))
        return {k: v.clone() for k, v in module.state_dict().items()}

    a, b, c = fit(0), fit(0), fit(1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
