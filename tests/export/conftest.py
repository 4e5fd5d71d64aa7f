import pytest
import torch


@pytest.fixture(scope='session')
def perturb():
    """``perturb(model, seed=0)`` → ``model`` with random weights away from the zero-initialised ones (sampling
    offsets, box layers), so that no path of the exported model hides behind a zero."""

    def apply(model, seed=0):
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.add_(torch.randn(p.shape, generator=gen) * (0.2 if 'sampling_offsets' in name else 0.02))
        return model

    return apply


@pytest.fixture(scope='session')
def padded_batch():
    """``make(sizes, seed=0)`` → normalised random images of the (h, w) ``sizes`` padded to one size, (bs, 3, H, W),
    and their valid sizes (bs, 2) int64: the exported model's inputs."""

    def make(sizes, seed=0):
        gen = torch.Generator().manual_seed(seed)
        pad_h, pad_w = max(h for h, _ in sizes), max(w for _, w in sizes)
        images = torch.zeros(len(sizes), 3, pad_h, pad_w)
        for i, (h, w) in enumerate(sizes):
            images[i, :, :h, :w] = torch.randn(3, h, w, generator=gen)
        return images, torch.tensor(sizes)

    return make
