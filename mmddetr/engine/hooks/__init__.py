from .checkpoint_weights_hook import CheckpointWeightsHook
from .nonfinite_loss_hook import NonFiniteLossHook
from .rng_state_hook import RNGStateHook
from .time_budget_hook import TimeBudgetHook

__all__ = ['CheckpointWeightsHook', 'NonFiniteLossHook', 'RNGStateHook', 'TimeBudgetHook']
