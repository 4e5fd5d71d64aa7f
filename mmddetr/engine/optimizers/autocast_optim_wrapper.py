"""Mixed precision where mmengine's ``AmpOptimWrapper`` refuses to run (CPU)."""
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper

from mmddetr.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward runs under ``torch.autocast``; bfloat16 keeps float32's range, so no loss
    scaling is needed. ``tools/train.py --amp`` uses it on CPU (mmengine's ``AmpOptimWrapper`` asserts a GPU).

    Args:
        device_type (str): Autocast device type. Default: 'cpu'.
        dtype (str): Autocast dtype, 'bfloat16' or 'float16'. Default: 'bfloat16'.
        **kwargs: ``OptimWrapper``'s (``optimizer``, ``clip_grad``, ``accumulative_counts``).
    """

    def __init__(self, device_type: str = 'cpu', dtype: str = 'bfloat16', **kwargs) -> None:
        super().__init__(**kwargs)
        if dtype not in ('bfloat16', 'float16'):
            raise ValueError(f"dtype must be 'bfloat16' or 'float16', got {dtype!r}")
        self.device_type = device_type
        self.cast_dtype = getattr(torch, dtype)

    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        with super().optim_context(model), torch.autocast(device_type=self.device_type, dtype=self.cast_dtype):
            yield
