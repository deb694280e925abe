"""A small digit classifier used as a feature extractor for sample-quality metrics.

Inception weights for FID cannot be downloaded here, and MNIST digits are far from ImageNet
anyway; the usual substitute in the diffusion literature is a classifier trained on the digits
themselves. Its penultimate features define a Fréchet distance, its softmax a confidence.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn


class DigitCNN(nn.Module):
    """Three conv blocks and global pooling: 128-d features, 10 logits. Input [B, 1, 32, 32] in [-1, 1]."""

    def __init__(self, num_classes: int = 10, width: int = 32):
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2),
            )

        self.body = nn.Sequential(block(1, width), block(width, 2 * width), block(2 * width, 4 * width))
        self.head = nn.Linear(4 * width, num_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x).mean(dim=(-2, -1))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def load_digit_classifier(weights: str = "digit_classifier") -> DigitCNN:
    """The shipped classifier (short name) or a state dict file, in eval mode."""
    from equireg_lit.weights import load_checked, load_state_dict_file, resolve_weights

    path, _ = resolve_weights(weights)
    net = DigitCNN()
    load_checked(net, load_state_dict_file(path), path)
    return net.eval()


@torch.no_grad()
def classifier_outputs(net: DigitCNN, x: Tensor, batch_size: int = 250) -> tuple[Tensor, Tensor]:
    """Features [N, 128] and softmax probabilities [N, 10]."""
    feats, probs = [], []
    for i in range(0, x.shape[0], batch_size):
        f = net.features(x[i : i + batch_size].clamp(-1, 1))
        feats.append(f)
        probs.append(net.head(f).softmax(-1))
    return torch.cat(feats), torch.cat(probs)


def frechet_distance(a: Tensor, b: Tensor) -> float:
    """Fréchet distance between Gaussians fitted to feature sets ``a`` [N, D] and ``b`` [M, D]."""
    from scipy import linalg

    a64, b64 = a.double().numpy(), b.double().numpy()
    mu1, mu2 = a64.mean(0), b64.mean(0)
    s1, s2 = np.cov(a64, rowvar=False), np.cov(b64, rowvar=False)
    covmean, _ = linalg.sqrtm(s1 @ s2, disp=False)
    if not np.isfinite(covmean).all():
        eps = np.eye(s1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((s1 + eps) @ (s2 + eps))
    covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))
