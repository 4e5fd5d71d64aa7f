from .checkpoint_check import (CheckpointError, check_checkpoint_weights, load_detector, mmengine_checkpoint_loader,
                               read_checkpoint)
from .checkpoint_globals import mmengine_checkpoint_globals
from .checkpoint_io import AtomicLocalBackend, latest_checkpoint
from .errors import first_line
from .hooks import CheckpointWeightsHook, NonFiniteLossHook, RNGStateHook, TimeBudgetHook
from .launch import (ConfigError, UnknownTypeError, build_runner, check_cfg_options, check_data_exists,
                     config_errors_explained, configure_tensorboard, errors_in_one_line, explain_unknown_argument,
                     explain_unknown_type, load_config, setup_amp, setup_launcher)
from .optimizers import AutocastOptimWrapper
from .run_length import set_training_images, stretch_lr_drops
from .scalars import read_scalars, training_seconds, work_dir_scalars

__all__ = [
    'AtomicLocalBackend', 'AutocastOptimWrapper', 'CheckpointError', 'CheckpointWeightsHook', 'ConfigError',
    'NonFiniteLossHook', 'RNGStateHook', 'TimeBudgetHook', 'UnknownTypeError', 'build_runner', 'check_cfg_options',
    'check_checkpoint_weights', 'check_data_exists', 'config_errors_explained', 'configure_tensorboard',
    'errors_in_one_line', 'explain_unknown_argument', 'explain_unknown_type', 'first_line', 'latest_checkpoint',
    'load_config', 'load_detector', 'mmengine_checkpoint_globals', 'mmengine_checkpoint_loader', 'read_checkpoint',
    'read_scalars', 'set_training_images', 'setup_amp', 'setup_launcher', 'stretch_lr_drops', 'training_seconds',
    'work_dir_scalars'
]
