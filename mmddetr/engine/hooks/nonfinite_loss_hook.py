"""Keep NaN and inf losses from the weights: a training step with a non-finite loss term (or matching cost) raises,
naming the iteration and the terms, or is skipped."""
import functools
import logging
import math
from typing import Callable, Dict, Optional

import torch
from mmengine.dist import all_reduce, get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from mmddetr.registry import HOOKS

_KEY = 'default_hooks.nonfinite_loss'  # where mmddetr's configs register the hook; its messages name it


class _NonFiniteLoss(FloatingPointError):
    """A NaN or inf loss term on some rank, found by every rank at once (:meth:`NonFiniteLossHook._check_losses`)."""


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stop a NaN or inf loss term (or matching cost) before it reaches the weights.

    In every training step, between the forward and the backward pass, the loss terms (as the model's
    ``parse_losses`` logs them) are checked. When one is NaN or inf, or the forward pass raised a
    ``FloatingPointError`` (e.g. ``HungarianAssigner`` on non-finite matching costs), the step ends before the
    weights or the optimizer state are touched, and

    - ``action='raise'``: a ``FloatingPointError`` names the iteration (counted as in the log) and the terms; the
      run stops, its last checkpoint from before the step;
    - ``action='skip'``: the message is logged as a warning with a count of the skipped steps (``skipped_steps``);
      the step does no backward pass and no optimizer step, returns no losses to log, and training goes on.

    Distributed runs (mmengine's DDP wrapper): the ranks agree on the check (an all-reduce of one flag per rank),
    so all of them raise, or all skip the step; a rank alone would leave the others waiting in the gradient
    all-reduce of their backward pass. A ``FloatingPointError`` inside the forward pass raises there in either
    mode: the other ranks may be inside the forward pass's own collectives (the loss normalisers' all-reduce), where
    no agreement can be reached; the launcher ends them.

    mmengine's ``train_step`` runs the forward pass, ``parse_losses`` and ``optim_wrapper.update_params`` in one
    call: an optimizer wrapper sees neither the loss terms nor a forward pass that raised, and only the caller of
    ``train_step`` can turn a step into a skipped one. So while training, the hook puts a wrapper of the runner
    model's ``train_step`` in front of it, which checks the losses in a forward hook of the model. It works with
    any model and any optimizer wrapper (``AmpOptimWrapper``, ``AutocastOptimWrapper``). mmddetr's configs register
    it as ``default_hooks.nonfinite_loss``, the key its messages name.

    Args:
        action (str): ``'raise'`` or ``'skip'``. Default: ``'raise'``.
    """

    def __init__(self, action: str = 'raise') -> None:
        if action not in ('raise', 'skip'):
            raise ValueError(f"{_KEY}.action must be 'raise' or 'skip', got {action!r}")
        self.action = action
        self.skipped_steps = 0
        self._forward_done = False
        self._shadowed: Optional[Callable] = None

    def before_train(self, runner) -> None:
        model, train_step = runner.model, runner.model.train_step
        self._shadowed = vars(model).get('train_step')  # e.g. the train_step compiled by mmengine (cfg.compile)

        def checked_train_step(data, optim_wrapper):  # a function, not a bound method: deepcopy(model) keeps it
            return self._train_step(runner, train_step, data, optim_wrapper)

        model.train_step = checked_train_step

    def after_train(self, runner) -> None:
        del runner.model.train_step
        if self._shadowed is not None:
            runner.model.train_step = self._shadowed

    def _train_step(self, runner, train_step: Callable, data, optim_wrapper) -> Dict[str, torch.Tensor]:
        """``train_step`` with the losses checked between the forward and the backward pass.

        Returns:
            dict[str, Tensor]: The loss terms to log; empty for a skipped step.
        """
        where = f'at iteration {runner.iter + 1}'  # as the log counts
        self._forward_done = False
        handle = runner.model.register_forward_hook(functools.partial(self._check_losses, where))
        try:
            return train_step(data, optim_wrapper)
        except _NonFiniteLoss as error:
            return self._raise_or_skip(str(error), cause=None, can_skip=True)
        except FloatingPointError as error:
            if self._forward_done:  # from the backward pass or the optimizer: not a step this hook can take back
                raise
            return self._raise_or_skip(f'non-finite values in the forward pass {where}: {error}', cause=error,
                                       can_skip=get_world_size() == 1)
        finally:
            handle.remove()

    def _check_losses(self, where: str, model: torch.nn.Module, args: tuple, losses: dict) -> None:
        """Forward hook of the runner's model in a training step: raise ``_NonFiniteLoss`` on every rank when a loss
        term is NaN or inf on any."""
        self._forward_done = True
        _, log_vars = (model.module if is_model_wrapper(model) else model).parse_losses(losses)
        values = torch.stack([v.detach().float() for v in log_vars.values()])
        nonfinite_ranks = values.new_zeros(get_world_size())
        nonfinite_ranks[get_rank()] = (~values.isfinite()).any().float()
        all_reduce(nonfinite_ranks)  # no-op in a single process
        ranks = [rank for rank, flag in enumerate(nonfinite_ranks.tolist()) if flag]
        if not ranks:
            return
        if len(nonfinite_ranks) > 1:
            where += f' on rank{"s" * (len(ranks) > 1)} {", ".join(map(str, ranks))}'
        bad = {name: value for name, value in zip(log_vars, values.tolist()) if not math.isfinite(value)}
        terms = {name: value for name, value in bad.items() if name != 'loss'} or bad  # the terms, not their sum
        message = f'non-finite loss {where}'
        if terms:  # none on a rank whose own losses are finite
            message += ': ' + ', '.join(f'{name}={value:g}' for name, value in terms.items())
        raise _NonFiniteLoss(message)

    def _raise_or_skip(self, message: str, cause: Optional[BaseException], can_skip: bool) -> dict:
        message += '; the weights were not updated'
        if self.action == 'skip' and can_skip:
            self.skipped_steps += 1
            print_log(f'{message}; step skipped ({self.skipped_steps} so far)', logger='current',
                      level=logging.WARNING)
            return {}
        hint = (f"{_KEY}.action='skip' skips such steps" if self.action == 'raise' else
                'a distributed run cannot skip a step whose forward pass failed')
        raise FloatingPointError(f'{message} ({hint})') from cause
