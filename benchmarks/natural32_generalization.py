"""Does the natural32 prior generalize from its training images to the others? The diffusion loss
and one-step (Tweedie) denoising PSNR on training, validation and test patches, with the same
timesteps and noise for every split, for the shipped prior and the committed earlier snapshot,
next to TV denoising of the same noisy patches (patch content sets how hard a split is; the
gain over TV is what the prior learned).

    python -m benchmarks.natural32_generalization [--n 1000]

Writes benchmarks/results/natural32_generalization.{json,md} (part of the ``natural32_testbed``
section of docs/results.md). When more training lifts the training patches and barely moves the
others, further steps on the same images are not worth their time (or a re-shipped prior).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from benchmarks.stats import machine, paired, write_result
from equireg_lit.data.natural import SOURCES, natural32
from equireg_lit.diffusion import DiffusersUNetPrior
from equireg_lit.metrics import batch_psnr

RESULTS = Path(__file__).resolve().parent / "results"
REPO = RESULTS.parent.parent
# (label, weights, training step): the shipped EMA and the committed snapshot's EMA it grew from
PRIORS = [("shipped", "natural32", None), ("snapshot", "checkpoints/natural32/ema.safetensors", 9944)]
SIGMAS = (0.1, 0.2, 0.4)  # noise std on the [-1, 1] scale for the denoising PSNR
SPLITS = ("train", "val", "test")


def noise_levels(schedule) -> list[tuple[float, int, float]]:
    """(sigma, timestep, the timestep's own sigma): ``x_t = sqrt(abar) (x0 + sigma_t eps)`` at the
    timestep whose ``sigma_t = sqrt((1 - abar) / abar)`` is nearest each nominal sigma."""
    ratio = ((1 - schedule.alphas_cumprod) / schedule.alphas_cumprod).sqrt()
    out = []
    for sigma in SIGMAS:
        k = int((ratio - sigma).abs().argmin())
        out.append((sigma, k, float(ratio[k])))
    return out


@torch.no_grad()
def tv_denoise(y: torch.Tensor, weight: float) -> torch.Tensor:
    from deepinv.models import TVDenoiser

    return TVDenoiser(n_it_max=200)(y, ths=weight)


def tune_tv(x: torch.Tensor, y: torch.Tensor) -> tuple[float, dict[float, float]]:
    """TV weight with the best mean PSNR on these (validation) patches: quarter decades from 0.001
    to 0.56, extended past a winning edge (natural32_baselines' rule)."""
    from benchmarks.natural32_baselines import tune

    grid = [10 ** (k / 4) for k in range(-12, -1)]
    return tune(lambda w: batch_psnr(tv_denoise(y, w).clamp(-1, 1), x).tolist(), grid)


@torch.no_grad()
def measure(prior: DiffusersUNetPrior, images: torch.Tensor, eps: torch.Tensor, t: torch.Tensor,
            batch: int = 200) -> dict:
    """Epsilon MSE over uniform timesteps (the training loss) and Tweedie denoising PSNR at each sigma."""
    n, schedule = images.shape[0], prior.schedule

    def eps_hat(x_t: torch.Tensor, tt: torch.Tensor) -> torch.Tensor:
        return torch.cat([prior(x_t[i : i + batch], tt[i : i + batch]) for i in range(0, n, batch)])

    err = ((eps_hat(schedule.add_noise(images, eps, t), t) - eps) ** 2).flatten(1).mean(1)
    out = {"loss": err.mean().item(), "loss_se": (err.std() / n**0.5).item()}
    for sigma, k, _ in noise_levels(schedule):
        tt = torch.full((n,), k)
        x_t = schedule.add_noise(images, eps, tt)
        p = batch_psnr(schedule.eps_to_x0(x_t, eps_hat(x_t, tt), tt).clamp(-1, 1), images)
        out[f"psnr_sigma{sigma:g}"] = p
    return out


def gain_over(reference: torch.Tensor, psnr: torch.Tensor) -> str:
    """The paired PSNR difference to a reference on the same patches, with its 95 % interval."""
    d = paired({i: {"psnr": v} for i, v in enumerate(reference.tolist())},
               {i: {"psnr": v} for i, v in enumerate(psnr.tolist())}, "psnr")
    return f"{d['mean_diff']:+.2f} [{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}]"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1000, help="patches per split (the first n of each)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(RESULTS / "natural32_generalization"))
    args = p.parse_args()
    data = natural32()
    shipped = DiffusersUNetPrior(weights="natural32")
    arch = {k: v for k, v in shipped.architecture.items() if k != "out_channels"}  # the snapshot's too
    g = torch.Generator().manual_seed(args.seed)
    n = min(args.n, *(data[s].shape[0] for s in SPLITS))
    t = torch.randint(shipped.schedule.num_train_timesteps, (n,), generator=g)
    eps = torch.randn((n, *data["train"].shape[1:]), generator=g)
    images = {s: data[s][:n] for s in SPLITS}
    # the classical reference: TV denoising of the same noisy patches, its weight tuned on validation
    tv, tv_weights, tv_grid = {s: {} for s in SPLITS}, {}, {}
    for sigma, _, sigma_t in noise_levels(shipped.schedule):
        noisy = {s: images[s] + sigma_t * eps for s in SPLITS}
        m = max(n // 4, 1)
        tv_weights[sigma], scores = tune_tv(images["val"][:m], noisy["val"][:m])
        tv_grid[f"{sigma:g}"] = {f"{w:.4g}": v for w, v in sorted(scores.items())}
        for s in SPLITS:
            tv[s][sigma] = batch_psnr(tv_denoise(noisy[s], tv_weights[sigma]).clamp(-1, 1), images[s])
        print(f"TV at sigma {sigma:g}: weight {tv_weights[sigma]:.3g}", flush=True)
    rows = []
    for label, weights, step in PRIORS:
        if label == "shipped":
            prior, step = shipped, shipped.provenance["global_steps"]
        else:
            prior = DiffusersUNetPrior(weights=str(REPO / weights), **arch)
        prior.eval()
        for s in SPLITS:
            r = measure(prior, images[s], eps, t)
            row = {"prior": label, "weights": weights, "step": step, "split": s, "images": ", ".join(SOURCES[s]),
                   "n": n, "loss": r["loss"], "loss_se": r["loss_se"]}
            for sigma in SIGMAS:
                p, ref = r[f"psnr_sigma{sigma:g}"], tv[s][sigma]
                row[f"psnr_sigma{sigma:g}"] = p.mean().item()
                row[f"gain_over_tv_sigma{sigma:g}"] = gain_over(ref, p)
            rows.append(row)
            print(row, flush=True)
    tv_rows = [{"split": s, **{f"psnr_sigma{sigma:g}": tv[s][sigma].mean().item() for sigma in SIGMAS}} for s in SPLITS]
    out = {"rows": rows, "tv": tv_rows, "tv_weights": {f"{k:g}": v for k, v in tv_weights.items()},
           "tv_validation_psnr_by_weight": tv_grid,
           "machine": machine(), "command": "python -m benchmarks.natural32_generalization"}
    sig = " | ".join(f"denoising PSNR, sigma {s:g} (vs TV)" for s in SIGMAS)
    lines = [f"| denoiser | training step | patches | diffusion loss | {sig} |",
             "|---|---|---|---|" + "---|" * len(SIGMAS)]
    for r in rows:
        psnrs = " | ".join(f"{r[f'psnr_sigma{s:g}']:.2f} ({r[f'gain_over_tv_sigma{s:g}']})" for s in SIGMAS)
        lines.append(f"| prior, {r['prior']} EMA | {r['step']} | {r['split']} | {r['loss']:.4f} ± {r['loss_se']:.4f} "
                     f"| {psnrs} |")
    for r in tv_rows:
        psnrs = " | ".join(f"{r[f'psnr_sigma{s:g}']:.2f}" for s in SIGMAS)
        lines.append(f"| TV | — | {r['split']} | — | {psnrs} |")
    weights_text = ", ".join(f"{w:.3g} at sigma {s:g}" for s, w in tv_weights.items())
    lines += ["", f"{n} patches per split ({'; '.join(f'{s}: ' + ', '.join(SOURCES[s]) for s in SPLITS)}), the same "
              f"timesteps and noise for every split and prior (seed {args.seed}). The loss is the training objective "
              "(epsilon MSE, timesteps uniform over 1000); denoising is one Tweedie step at the timestep whose noise "
              "matches sigma on the [-1, 1] scale, next to TV denoising of the same noisy patches (weight tuned on "
              f"a quarter of the validation patches: {weights_text}); in brackets the paired difference to TV with "
              f"its 95 % interval. Machine: {out['machine']}. Command: `{out['command']}`"]
    write_result(args.out, out, lines)


if __name__ == "__main__":
    main()
