from .checkpoint_globals import allow_mmengine_checkpoint_globals
from .launch import check_data_exists, setup_amp, setup_launcher

__all__ = ['allow_mmengine_checkpoint_globals', 'check_data_exists', 'setup_amp', 'setup_launcher']
