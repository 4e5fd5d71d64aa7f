from .checkpoint_globals import allow_mmengine_checkpoint_globals
from .checkpoint_io import AtomicLocalBackend, latest_checkpoint
from .hooks import RNGStateHook, TimeBudgetHook
from .launch import add_tensorboard, build_runner, check_data_exists, load_config, setup_amp, setup_launcher
from .optimizers import AutocastOptimWrapper

__all__ = [
    'AtomicLocalBackend', 'AutocastOptimWrapper', 'RNGStateHook', 'TimeBudgetHook', 'add_tensorboard',
    'allow_mmengine_checkpoint_globals', 'build_runner', 'check_data_exists', 'latest_checkpoint', 'load_config',
    'setup_amp', 'setup_launcher'
]

# mmengine's resume and mmdet's init_detector / DetInferencer load checkpoints with torch.load's weights-only
# default (torch >= 2.6): importing mmddetr (custom_imports=['mmddetr']) lets them read mmengine's checkpoints.
allow_mmengine_checkpoint_globals()
