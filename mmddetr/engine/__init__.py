from .checkpoint_globals import allow_mmengine_checkpoint_globals
from .hooks import RNGStateHook, TimeBudgetHook
from .optimizers import AutocastOptimWrapper
from .launch import check_data_exists, setup_amp, setup_launcher

__all__ = [
    'AutocastOptimWrapper',     'RNGStateHook', 'TimeBudgetHook', 'allow_mmengine_checkpoint_globals', 'check_data_exists', 'setup_amp', 'setup_launcher']
