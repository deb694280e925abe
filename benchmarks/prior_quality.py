"""Sample quality of the shipped MNIST prior, measured with the shipped digit classifier.

    python -m benchmarks.prior_quality [--prior mnist32] [--num-samples 500] [--steps 100] [--eta 0.0]

A latent prior (``--prior mnist32_latent``) is sampled with latent DPS and its autoencoder is
reported too (reconstruction PSNR, flip equivariance of the decoder). ``--dataset natural32``
(a natural32 latent pair) reports the autoencoder on the test patches and a grid of samples; no
classifier reads patches, so there is no Fréchet distance.

Writes benchmarks/results/prior_quality.{json,md} and a PNG grid of samples. The Fréchet
distance uses the classifier's 128-d penultimate features against the MNIST test split; the
train split gives the floor (same distribution, different images) and Gaussian noise the ceiling.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from equireg_lit.data.mnist import mnist32, split_indices
from equireg_lit.diffusion import DiffusersUNetPrior, LatentDiffusionPrior
from equireg_lit.diffusion.latent import is_latent_weights
from equireg_lit.metrics.digits import classifier_outputs, frechet_distance, load_digit_classifier
from equireg_lit.rng import draw_generators
from equireg_lit.solvers import DPS, LatentDPS

RESULTS = Path(__file__).resolve().parent / "results"


@torch.no_grad()
def autoencoder_report(prior: LatentDiffusionPrior, images: torch.Tensor, seed: int) -> dict:
    """What a latent prior's autoencoder costs and whether flips of its latent map act like flips
    of the image: reconstruction PSNR of test digits (a ceiling for every latent sampler), and
    ``||D(flip z) - flip D(z)|| / ||D(z)||`` on the digits' latents against random latents of the
    same spread (the equivariance EquiReg with the decoder as f measures)."""
    from equireg_lit.metrics import batch_psnr

    z = prior.encode(images)
    flip = lambda t: t.flip(-1)  # noqa: E731

    def decoded_and_rel_error(latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d = prior.decode(latents)
        return d, (prior.decode(flip(latents)) - flip(d)).flatten(1).norm(dim=1) / d.flatten(1).norm(dim=1)

    noise = torch.randn(z.shape, generator=torch.Generator().manual_seed(seed + 3)) * z.std()
    recon, on_data = decoded_and_rel_error(z)
    _, off_data = decoded_and_rel_error(noise)
    p = batch_psnr(recon.clamp(-1, 1), images)
    n = len(images)
    return {
        "reconstruction_psnr": {"mean": p.mean().item(), "se": (p.std() / n**0.5).item(), "n": n},
        "latent_shape": list(z.shape[1:]),
        "flip_equivariance_rel_error": {"data_latents": on_data.median().item(),
                                        "random_latents": off_data.median().item()},
    }


def autoencoder_markdown(r: dict, what: str = "digits") -> str:
    rp, fe = r["reconstruction_psnr"], r["flip_equivariance_rel_error"]
    return (f"\nAutoencoder ({'x'.join(map(str, r['latent_shape']))} latents): reconstruction PSNR "
            f"{rp['mean']:.2f} ± {rp['se']:.2f} dB on {rp['n']} test {what} (a ceiling for every latent sampler). "
            f"Flips of the latent map as flips of the image, median `||D(flip z) - flip D(z)|| / ||D(z)||`: "
            f"{fe['data_latents']:.3f} on the {what}' latents, {fe['random_latents']:.3f} on random latents of the same spread.\n")


def sample_grid(prior: LatentDiffusionPrior, args: argparse.Namespace, out: Path) -> float:
    """Unconditional latent samples (DDIM, ``--steps``) saved as an 8-wide grid; returns the seconds taken."""
    from torchvision.utils import save_image

    t0 = time.perf_counter()
    n = min(args.num_samples, 64)
    samples = LatentDPS(num_steps=args.steps, eta=args.eta).sample(prior, (n, 1, 32, 32), draw_generators(args.seed, 0, n)).x
    save_image((samples.clamp(-1, 1) + 1) / 2, str(out.parent / f"{Path(args.prior).name}_prior_samples.png"), nrow=8)
    return time.perf_counter() - t0


def natural32_report(prior, args: argparse.Namespace) -> None:
    """A natural32 latent pair: its autoencoder on the test patches and a grid of its samples."""
    from equireg_lit.data.natural import natural32

    if not isinstance(prior, LatentDiffusionPrior):
        raise SystemExit("prior_quality --dataset natural32 reports a latent pair (e.g. --prior natural32_latent)")
    test = natural32()["test"]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ae = autoencoder_report(prior, test[: args.num_samples], args.seed)
    seconds = sample_grid(prior, args, out)
    report = {"prior": args.prior, "provenance": prior.provenance, "autoencoder": ae, "sampling_seconds": round(seconds, 1),
              "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
              "command": f"python -m benchmarks.prior_quality --prior {args.prior} --dataset natural32"}
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(autoencoder_markdown(ae, "patches").lstrip()
                                      + f"\nSamples: `{Path(args.prior).name}_prior_samples.png` ({args.steps}-step DDIM).\n")
    print(json.dumps(ae, indent=2))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prior", default="mnist32")
    p.add_argument("--dataset", default="mnist32", choices=["mnist32", "natural32"])
    p.add_argument("--classifier", default="digit_classifier")
    p.add_argument("--num-samples", type=int, default=500)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--eta", type=float, default=0.0)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(RESULTS / "prior_quality"))
    args = p.parse_args()

    latent = is_latent_weights(args.prior)
    prior = (LatentDiffusionPrior(args.prior) if latent else DiffusersUNetPrior(weights=args.prior)).eval()
    if args.dataset == "natural32":
        natural32_report(prior, args)
        return
    clf = load_digit_classifier(args.classifier)
    images, labels = mnist32()
    test_x, test_y = images[split_indices("test")], labels[split_indices("test")]
    train_idx = split_indices("train")[torch.randperm(4000, generator=torch.Generator().manual_seed(1))[: args.num_samples]]
    train_x = images[train_idx]

    f_test, p_test = classifier_outputs(clf, test_x)
    accuracy = (p_test.argmax(-1) == test_y).float().mean().item()
    f_train, p_train = classifier_outputs(clf, train_x)
    noise = torch.randn(args.num_samples, 1, 32, 32, generator=torch.Generator().manual_seed(2)).clamp(-1, 1)
    f_noise, p_noise = classifier_outputs(clf, noise)

    t0 = time.perf_counter()
    chunks = []
    solver = LatentDPS(num_steps=args.steps, eta=args.eta) if latent else DPS(num_steps=args.steps, eta=args.eta)
    for start in range(0, args.num_samples, args.batch_size):
        n = min(args.batch_size, args.num_samples - start)
        gens = draw_generators(args.seed, start, n)
        chunks.append(solver.sample(prior, (n, 1, 32, 32), gens).x)
        print(f"sampled {start + n}/{args.num_samples}", flush=True)
    samples = torch.cat(chunks)
    seconds = time.perf_counter() - t0
    f_s, p_s = classifier_outputs(clf, samples)

    def conf(p: torch.Tensor) -> float:
        return p.max(-1).values.mean().item()

    counts = torch.bincount(p_s.argmax(-1), minlength=10).tolist()
    autoencoder = autoencoder_report(prior, test_x, args.seed) if latent else None
    report = {
        "prior": args.prior,
        "provenance": prior.provenance,
        "sampler": {"name": "DDIM" if args.eta == 0 else "DDPM/DDIM", "steps": args.steps, "eta": args.eta},
        "num_samples": args.num_samples,
        "classifier_test_accuracy": accuracy,
        "mean_max_softmax": {"samples": conf(p_s), "test_split": conf(p_test), "train_split": conf(p_train), "gaussian_noise": conf(p_noise)},
        "frechet_distance_vs_test": {
            "samples": frechet_distance(f_s, f_test),
            "train_split_floor": frechet_distance(f_train, f_test),
            "gaussian_noise_ceiling": frechet_distance(f_noise, f_test),
        },
        "predicted_class_counts_of_samples": counts,
        "autoencoder": autoencoder,
        "sampling_seconds": round(seconds, 1),
        "machine": f"{platform.machine()} {platform.processor() or ''}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "command": "python -m benchmarks.prior_quality " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out"),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    fd, mc = report["frechet_distance_vs_test"], report["mean_max_softmax"]
    out.with_suffix(".md").write_text(
        "| set (500 images) | Fréchet distance to test split | mean max-softmax |\n|---|---|---|\n"
        f"| train split (floor) | {fd['train_split_floor']:.2f} | {mc['train_split']:.3f} |\n"
        f"| prior samples ({args.steps}-step {report['sampler']['name']}) | {fd['samples']:.2f} | {mc['samples']:.3f} |\n"
        f"| Gaussian noise (ceiling) | {fd['gaussian_noise_ceiling']:.2f} | {mc['gaussian_noise']:.3f} |\n\n"
        f"Digit classifier test accuracy: {accuracy:.1%} (500 test digits). "
        f"Predicted classes of the samples: {counts}.\n"
        + ("" if autoencoder is None else autoencoder_markdown(autoencoder))
    )
    from torchvision.utils import save_image

    save_image((samples[:64].clamp(-1, 1) + 1) / 2, str(out.parent / f"{Path(args.prior).name}_prior_samples.png"), nrow=8)
    print(json.dumps(report["frechet_distance_vs_test"], indent=2), json.dumps(report["mean_max_softmax"], indent=2))


if __name__ == "__main__":
    main()
