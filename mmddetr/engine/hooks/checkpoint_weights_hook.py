"""``load_from`` (and ``--resume``) refuse a checkpoint that misses weights of the model, unless asked to load it
partially."""
import logging

from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmddetr.registry import HOOKS

from ..checkpoint_check import CheckpointError, check_checkpoint_weights

_KEY = 'default_hooks.checkpoint_weights'  # where mmddetr's configs register the hook; its messages name it


@HOOKS.register_module()
class CheckpointWeightsHook(Hook):
    """Stop before training (or testing) from a checkpoint that lacks weights of the model.

    mmengine's Runner loads ``load_from`` non-strictly and only logs the missing keys, so a checkpoint of another
    model trains, or is evaluated, from a half random initialisation. Right after the runner reads the checkpoint
    (and before it loads it into the model), :func:`check_checkpoint_weights` raises a ``CheckpointError`` naming the
    file, how many weights are missing, the first names and the run that saved it. Weights whose shapes differ (a
    classification head for another class count when fine-tuning) are present and pass; mmengine skips and logs them.

    Args:
        allow_missing (bool): Load such a checkpoint partially instead, with the message as a warning (the missing
            weights keep their initialisation). Default: False.
    """

    priority = 'VERY_HIGH'

    def __init__(self, allow_missing: bool = False) -> None:
        self.allow_missing = allow_missing

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        path = runner._load_from or f'the latest checkpoint in {runner.work_dir}'  # the file load_or_resume read
        hint = (f'Loading it partially ({_KEY}.allow_missing=True): the missing weights keep their initialisation.'
                if self.allow_missing else f'To load it partially: --cfg-options {_KEY}.allow_missing=True')
        try:
            check_checkpoint_weights(runner.model, checkpoint, path, hint=hint, allow_reshaped=True)
        except CheckpointError as e:
            if not self.allow_missing:
                raise
            print_log(str(e), logger='current', level=logging.WARNING)
