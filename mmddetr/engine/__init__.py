from .checkpoint_check import CheckpointError, check_checkpoint_weights, load_local_checkpoint, read_checkpoint
from .checkpoint_globals import mmengine_checkpoint_globals
from .checkpoint_io import AtomicLocalBackend, latest_checkpoint
from .hooks import CheckpointWeightsHook, NonFiniteLossHook, RNGStateHook, TimeBudgetHook
from .launch import (UnknownTypeError, build_runner, check_data_exists, configure_tensorboard, explain_unknown_type,
                     load_config, setup_amp, setup_launcher, unknown_types_explained)
from .optimizers import AutocastOptimWrapper

__all__ = [
    'AtomicLocalBackend', 'AutocastOptimWrapper', 'CheckpointError', 'CheckpointWeightsHook', 'NonFiniteLossHook',
    'RNGStateHook', 'TimeBudgetHook', 'UnknownTypeError', 'build_runner', 'check_checkpoint_weights',
    'check_data_exists', 'configure_tensorboard', 'explain_unknown_type', 'latest_checkpoint', 'load_config',
    'load_local_checkpoint', 'mmengine_checkpoint_globals', 'read_checkpoint', 'setup_amp', 'setup_launcher',
    'unknown_types_explained'
]
