import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from mmddetr.models.fast import FastDropout
from mmddetr.ops import dropout, extension_status


@pytest.fixture(autouse=True)
def compiled_cpu_kernel():
    """Every test here is about the compiled kernel: without it dropout() runs torch's own."""
    assert torch._C._dispatch_has_kernel_for_dispatch_key('mmddetr::dropout', 'CPU'), extension_status()


@pytest.mark.parametrize('p', [0.1, 0.5, 0.9])
def test_keeps_each_element_with_probability_1_minus_p_and_scales_kept_ones(p):
    torch.manual_seed(0)
    x = torch.rand(2, 500_000) + 1
    y = dropout(x, p)
    kept = y != 0
    n = x.numel()
    assert abs(kept.float().mean().item() - (1 - p)) < 5 * (p * (1 - p) / n)**0.5
    torch.testing.assert_close(y[kept], x[kept] / (1 - p))
    # neighbours and elements a hash block (65536) apart are independent
    flat = kept.flatten().float()
    for lag in (1, 2, 65536):
        both = (flat[lag:] * flat[:-lag]).mean().item()
        assert abs(both - (1 - p)**2) < 5 * ((1 - p)**2 * (1 - (1 - p)**2) / n)**0.5


def test_mask_is_reproducible_from_the_seed_and_independent_of_threads():
    x = torch.randn(300_000, generator=torch.Generator().manual_seed(0))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        torch.manual_seed(3)
        one = dropout(x, 0.3)
        torch.set_num_threads(2)
        torch.manual_seed(3)
        two = dropout(x, 0.3)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, two)
    assert not torch.equal(dropout(x, 0.3), dropout(x, 0.3))  # a new seed per call


def test_backward_goes_through_the_same_mask():
    x = torch.randn(7, 33, dtype=torch.float64, generator=torch.Generator().manual_seed(0), requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: torch.ops.mmddetr.dropout(t, 0.4, 12345), (x, ))
    torch.manual_seed(1)
    y = dropout(x, 0.4)
    g = torch.randn_like(y)
    y.backward(g)
    torch.testing.assert_close(x.grad, g * (y / x.detach()))


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_dtypes_and_non_contiguous_inputs(dtype):
    x = torch.randn(64, 48, generator=torch.Generator().manual_seed(0)).to(dtype).t()  # non-contiguous
    y = torch.ops.mmddetr.dropout(x, 0.25, 7)
    assert y.dtype == dtype and y.shape == x.shape
    kept = y != 0
    torch.testing.assert_close(y[kept], (x[kept].double() / 0.75).to(dtype))
    assert torch.equal(y, torch.ops.mmddetr.dropout(x.contiguous(), 0.25, 7))


def test_edge_probabilities_nan_and_errors():
    x = torch.tensor([1.0, float('nan'), float('inf'), -2.0] * 1000)
    assert dropout(x, 0.0) is x and dropout(x, 0.5, training=False) is x
    zeros = dropout(x, 1.0)
    assert torch.equal(zeros[::4], torch.zeros(1000)) and zeros[1::4].isnan().all() and zeros[2::4].isnan().all()
    assert dropout(x, 0.5)[1::4].isnan().all()  # NaN is never hidden, dropped or kept, as in torch
    for p in (-0.1, 1.5):
        with pytest.raises(ValueError, match='p: expected a dropout probability'):
            dropout(x, p)
    with pytest.raises(ValueError, match='p: expected a dropout probability'):
        torch.ops.mmddetr.dropout(x, 2.0, 0)
    with pytest.raises(ValueError, match='input: expected a floating dtype'):
        torch.ops.mmddetr.dropout(torch.ones(3, dtype=torch.int64), 0.5, 0)
    assert dropout(torch.empty(0, 5), 0.5).shape == (0, 5)


def test_fast_dropout_module():
    torch.manual_seed(0)  # x and the training-mode mask
    x = torch.randn(4, 16)
    drop = FastDropout(0.5)
    assert torch.equal(drop.eval()(x), x)
    assert not torch.equal(drop.train()(x), F.dropout(x, 0.0))


class _Calls(TorchDispatchMode):
    """Records the names of the ops that run."""

    def __init__(self):
        super().__init__()
        self.names = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(str(func))
        return func(*args, **(kwargs or {}))


def test_kernel_on_cpu_torchs_dropout_elsewhere_and_in_compiled_code():
    for device, ours in (('cpu', True), ('meta', False)):
        x = torch.ones(8, 8, device=device)
        with _Calls() as calls:
            dropout(x, 0.5)
        assert ('mmddetr.dropout.default' in calls.names) == ours, (device, calls.names)
    graphs = []

    def backend(graph_module, example_inputs):
        graphs.append(str(graph_module.graph))
        return graph_module.forward

    torch._dynamo.reset()
    torch.compile(lambda t: dropout(t, 0.5), fullgraph=True, backend=backend)(torch.ones(8, 8))
    assert len(graphs) == 1 and 'torch.nn.functional.dropout' in graphs[0] and 'mmddetr' not in graphs[0], graphs
