import pytest
import torch


def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: minutes-long test; deselect with -m "not slow"')


@pytest.fixture
def msda_inputs():
    """Factory of random op inputs: ``make(bs, shapes, heads, dims, queries, points, dtype, device, spread)``.

    Locations are uniform in [-spread, 1 + spread], so points outside the maps are common.
    """

    def make(bs=2, shapes=((6, 4), (3, 2), (1, 1)), heads=2, dims=8, queries=5, points=3, dtype=torch.float64,
             device='cpu', spread=0.2, seed=0):
        gen = torch.Generator().manual_seed(seed)
        spatial_shapes = torch.tensor(shapes, dtype=torch.int64)
        sizes = spatial_shapes.prod(1)
        level_start_index = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
        levels = len(shapes)
        value = torch.randn(bs, int(sizes.sum()), heads, dims, generator=gen, dtype=torch.float64)
        locations = torch.rand(bs, queries, heads, levels, points, 2, generator=gen, dtype=torch.float64)
        locations = locations * (1 + 2 * spread) - spread
        weights = torch.rand(bs, queries, heads, levels, points, generator=gen, dtype=torch.float64)
        cast = dict(device=device)
        return (value.to(dtype=dtype, **cast), spatial_shapes.to(**cast), level_start_index.to(**cast),
                locations.to(dtype=torch.promote_types(dtype, torch.float32), **cast),
                weights.to(dtype=torch.promote_types(dtype, torch.float32), **cast))

    return make
