"""Is natural32 symmetric under the groups EquiReg uses? A small CNN is trained to tell transformed
from untransformed training patches; on validation patches (other source images) its AUROC is
0.5 when the data carry no trace of the transformation.

    python -m benchmarks.natural32_symmetry [--epochs 3]

Writes benchmarks/results/natural32_symmetry.{json,md} (the ``natural32_symmetry`` section of
docs/results.md). Every transformed patch is paired with the untransformed one it came from
(balanced classes, the same content), so only the transformation can be learned.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from benchmarks.stats import machine, write_result
from equireg_lit.datamodules import Natural32DataModule
from equireg_lit.probes.objectives import auroc

RESULTS = Path(__file__).resolve().parent / "results"
TRANSFORMS = {
    "hflip": lambda x: x.flip(-1),
    "vflip": lambda x: x.flip(-2),
    "rot90": lambda x: x.rot90(1, dims=(-2, -1)),
    "rot180": lambda x: x.rot90(2, dims=(-2, -1)),
}


def classifier() -> nn.Module:
    def block(i: int, o: int) -> list[nn.Module]:
        return [nn.Conv2d(i, o, 3, padding=1), nn.SiLU(), nn.Conv2d(o, o, 3, padding=1), nn.SiLU(), nn.MaxPool2d(2)]

    return nn.Sequential(*block(1, 32), *block(32, 64), *block(64, 64), nn.Flatten(), nn.Linear(64 * 16, 128),
                         nn.SiLU(), nn.Linear(128, 1))


def check(name: str, train: torch.Tensor, val: torch.Tensor, epochs: int, seed: int) -> dict:
    """Train on (patch, 0) / (transformed patch, 1); AUROC of the transformed-ness score on val."""
    torch.manual_seed(seed)
    net, transform = classifier(), TRANSFORMS[name]
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(train.shape[0], generator=g).split(128):
            x = train[idx]
            flip = torch.rand(x.shape[0], generator=g) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), transform(x), x)
            loss = nn.functional.binary_cross_entropy_with_logits(net(x).squeeze(1), flip.float())
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        s0, s1 = net(val).squeeze(1), net(transform(val)).squeeze(1)
        s0_train, s1_train = net(train[:2000]).squeeze(1), net(transform(train[:2000])).squeeze(1)
    return {"transform": name, "val_auroc": auroc(s0, s1), "train_auroc": auroc(s0_train, s1_train),
            "val_patches": int(val.shape[0]), "train_patches": int(train.shape[0]), "epochs": epochs}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(RESULTS / "natural32_symmetry"))
    args = p.parse_args()
    dm = Natural32DataModule()
    dm.setup()
    train, val = dm.splits["train"].images, dm.splits["val"].images
    rows = [check(name, train, val, args.epochs, args.seed) for name in TRANSFORMS]
    out = {"rows": rows, "machine": machine(), "command": "python -m benchmarks.natural32_symmetry"}
    lines = ["| transform | AUROC on validation patches (other images) | AUROC on training patches |", "|---|---|---|"]
    lines += [f"| {r['transform']} | {r['val_auroc']:.3f} | {r['train_auroc']:.3f} |" for r in rows]
    lines += ["", f"A CNN trained {args.epochs} epochs on {rows[0]['train_patches']} training patches to tell a transformed "
              f"patch from its original; {rows[0]['val_patches']} validation patches. 0.5 = the transformation leaves no "
              f"trace. Machine: {out['machine']}. Command: `{out['command']}`"]
    write_result(args.out, out, lines)


if __name__ == "__main__":
    main()
