"""equireg-lit: equivariance-regularized diffusion posterior sampling with PyTorch Lightning."""

__version__ = "0.1.0"
