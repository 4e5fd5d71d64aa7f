"""Random weights away from the zero-initialised ones (``pytest.ini`` puts ``tests/`` on the import path): the one
weight perturbation of the suite (tests/conftest.py's ``perturb`` fixture, the mmdet and Hugging Face parity models)."""
import torch
from torch import nn


def perturb(model: nn.Module, seed: int = 0, scale: float = 0.02, statistics: bool = False) -> nn.Module:
    """``model`` with every parameter moved by Gaussian noise of ``scale`` (0.2 for sampling offsets), so that no
    path (offsets, box layers) hides behind a zero; with ``statistics``, BatchNorm's running mean and variance
    redrawn and buffers named ``weight`` / ``bias`` (a frozen BatchNorm's affine) moved too."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(torch.randn(p.shape, generator=gen) * (0.2 if 'sampling_offsets' in name else scale))
        for name, b in model.named_buffers() if statistics else ():
            if name.endswith('running_mean'):
                b.copy_(torch.randn(b.shape, generator=gen) * 0.1)
            elif name.endswith('running_var'):
                b.copy_(torch.rand(b.shape, generator=gen) + 0.5)
            elif name.endswith(('weight', 'bias')):
                b.add_(torch.randn(b.shape, generator=gen) * scale)
    return model
