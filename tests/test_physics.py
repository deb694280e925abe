import pytest
import torch

from equireg_lit.physics import (
    BoxInpainting, DenseGaussian, FourierPhaseRetrieval, GaussianBlur, HighDynamicRange, MotionBlur,
    RandomInpainting, SparsePoints, SuperResolution, simulate,
)

LINEAR = [BoxInpainting(), RandomInpainting(), SuperResolution(factor=2), SuperResolution(factor=4),
          GaussianBlur(), MotionBlur(), DenseGaussian(img_size=(1, 32, 32), num_measurements=100),
          SparsePoints(img_size=(2, 32, 32), channel=1)]


@pytest.mark.parametrize("op", LINEAR, ids=lambda o: type(o).__name__)
def test_adjoint(op):
    """deepinv's own Monte Carlo adjointness test: ||A - B^T||_F / ||A||_F at float32 round-off."""
    torch.manual_seed(0)
    err = op.adjointness_test(img_size=op.img_size_chw, num_samples=8)
    assert float(err) < 1e-5


def test_noise_set_the_deepinv_way_is_the_noise_simulated():
    op = BoxInpainting()
    op.noise_model.sigma.fill_(0.2)  # deepinv users change the noise level on the noise model
    x = torch.zeros(64, 1, 32, 32)
    y = simulate(op, x, [torch.Generator().manual_seed(i) for i in range(64)])
    assert op.noise_sigma == pytest.approx(0.2) and y[:, :, :8].std().item() == pytest.approx(0.2, rel=0.05)


def test_shapes_and_definitions():
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    assert SuperResolution(factor=4).A(x).shape == (2, 1, 8, 8)
    box = BoxInpainting(box_size=16)
    assert (box.A(x)[..., 8:24, 8:24] == 0).all() and torch.equal(box.A(x)[..., :8, :], x[..., :8, :])
    keep = RandomInpainting(missing_fraction=0.7).mask
    assert 0.65 < 1 - keep.float().mean().item() < 0.75
    assert torch.equal(RandomInpainting(mask_seed=3).mask, RandomInpainting(mask_seed=3).mask)
    pr = FourierPhaseRetrieval(oversampling=2.0)
    y = pr.A(x)
    assert y.shape == (2, 1, 48, 48) and (y >= 0).all()
    assert torch.allclose(y.pow(2).sum((1, 2, 3)), x.pow(2).sum((1, 2, 3)), rtol=1e-4)  # Parseval
    assert torch.allclose(pr.A(-x), y, atol=1e-5)  # global sign is invisible to phase retrieval
    hdr = HighDynamicRange(gain=2.0).A(x)
    assert torch.equal(hdr, (2 * x).clamp(-1, 1))
    blur = GaussianBlur().A(torch.ones(1, 1, 32, 32))
    assert torch.allclose(blur, torch.ones_like(blur), atol=1e-5)  # normalized kernel, reflect padding


def test_simulated_noise_is_per_sample():
    op = GaussianBlur(noise_sigma=0.05)
    x = torch.zeros(3, 1, 32, 32)
    g = lambda i: torch.Generator().manual_seed(i)  # noqa: E731
    y = simulate(op, x, [g(0), g(1), g(2)])
    y1 = simulate(op, x[1:2], [g(1)])
    assert torch.equal(y[1:2], y1)
    assert y.std().item() == pytest.approx(0.05, rel=0.1)


def test_bad_configuration():
    with pytest.raises(ValueError, match="divisible"):
        SuperResolution(img_size=(1, 30, 30), factor=4)
    with pytest.raises(ValueError, match="box_size"):
        BoxInpainting(box_size=40)
    with pytest.raises(ValueError, match=r"\[B, 1, 32, 32\].*img_size"):
        BoxInpainting().check_input((2, 3, 32, 32))
