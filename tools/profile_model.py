"""Where a training step's time goes: a per-component profile table (forward and backward together).

    python tools/profile_model.py [CONFIG] [--iters 5] [--threads 2] [--cfg-options k=v ...]

Runs real training iterations of CONFIG (default: the README's toy refine + two-stage config, data made on first use)
with its own dataloader and optimizer under torch's profiler, and attributes every operator's own time to a
component: forward operators by the module they ran in, backward operators by the forward operator that recorded
them (autograd sequence numbers), so a component's row holds its forward and its backward. Prints milliseconds per
iteration and shares; ``other`` is the wall time the profiler saw no operator in (Python, waiting).
"""
import argparse
import collections
import tempfile
import time

import torch
from mmengine.config import DictAction
from torch.profiler import ProfilerActivity, profile, record_function

from mmddetr.engine import build_runner, load_config

TOY = 'configs/toy/deformable_detr_r18_toy_refine_twostage.py'
OP = 'mmddetr::ms_deform_attn'
BACKWARD_ROOT = 'autograd::engine::evaluate_function: '


def scope_modules(model, scopes):
    """Open a profiler scope named ``scopes[attr]`` around each listed sub-module's forward."""
    for attr, name in scopes.items():
        module = model
        for part in attr.split('.'):
            module = getattr(module, part, None)
        if module is None:
            continue
        stack = []
        module.register_forward_pre_hook(lambda *_, n=name, s=stack: s.append(record_function(n).__enter__()))
        module.register_forward_hook(lambda *_, s=stack: s.pop().__exit__(None, None, None))


def scope_method(obj, method, name):
    original = getattr(obj, method)

    def wrapped(*args, **kwargs):
        with record_function(name):
            return original(*args, **kwargs)

    setattr(obj, method, wrapped)


SCOPES = {
    'backbone': 'backbone', 'neck': 'neck (input projections)', 'encoder': 'encoder projections, FFN, norms',
    'decoder': 'decoder (all but its attention op)', 'proposal_head': 'two-stage proposal head',
    'bbox_head': 'detection head', 'positional_encoding': 'positional encoding'
}
COMPONENTS = set(SCOPES.values()) | {'matching', 'losses', 'data pipeline', 'optimizer step', 'detector glue'}


def component_of(event, encoder_events):
    """The component of a forward event: the attention op by where it ran, else the innermost named scope."""
    if event.name == OP:
        return 'encoder attention op' if event.id in encoder_events else 'decoder attention op'
    parent = event
    while parent is not None:
        if parent.name == OP:
            return component_of(parent, encoder_events)
        if parent.name in COMPONENTS:
            return parent.name
        parent = parent.cpu_parent
    return None


def attribute(events):
    """Own time (us) per component; backward time goes to the component of the forward op that recorded it."""
    encoder_events = set()
    for event in events:
        if event.name == SCOPES['encoder']:
            stack = list(event.cpu_children)
            while stack:
                child = stack.pop()
                encoder_events.add(child.id)
                stack.extend(child.cpu_children)
    by_sequence, totals = {}, collections.Counter()
    for event in events:
        if event.name.startswith(BACKWARD_ROOT) or event.sequence_nr < 0:
            continue
        component = component_of(event, encoder_events)
        if component is not None:
            by_sequence.setdefault(event.sequence_nr, component)
    for event in events:
        root = event
        while root.cpu_parent is not None:
            root = root.cpu_parent
        if root.name.startswith(BACKWARD_ROOT):
            name = by_sequence.get(root.sequence_nr, 'backward, unattributed (grad accumulation)')
            if 'ms_deform_attn' in root.name:  # the op's node takes the sequence number after its forward's scope
                name = 'encoder attention op' if name.startswith('encoder') else 'decoder attention op'
        else:
            name = component_of(event, encoder_events) or 'detector glue'
        totals[name] += event.self_cpu_time_total
    return totals


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', nargs='?', default=TOY)
    parser.add_argument('--iters', type=int, default=5, help='profiled iterations (after 2 warm-up ones)')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config, args.cfg_options, work_dir=tempfile.mkdtemp(prefix='mmddetr_profile_'))
    cfg.default_hooks.logger.interval = 10**9
    runner = build_runner(cfg)
    model, optim_wrapper = runner.model, runner.build_optim_wrapper(cfg.optim_wrapper)
    runner.optim_wrapper = optim_wrapper
    model.train()
    scope_modules(model, SCOPES)
    scope_method(model.bbox_head.assigner, 'assign', 'matching')
    scope_method(model.bbox_head, 'loss_by_feat', 'losses')
    loader = iter(runner.build_dataloader(cfg.train_dataloader))

    def step():
        with record_function('data pipeline'):
            data = model.data_preprocessor(next(loader), True)
        losses = model(**data, mode='loss')
        loss, _ = model.parse_losses(losses)
        loss.backward()
        with record_function('optimizer step'):
            optim_wrapper.step()
            optim_wrapper.zero_grad()

    for _ in range(2):
        step()
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.iters):
            step()
    wall_ms = (time.perf_counter() - start) * 1e3 / args.iters
    totals = attribute(prof.events())
    print(f'{args.config}: {wall_ms:.0f} ms per training iteration under the profiler, {args.threads} threads, '
          f'{args.iters} iterations')
    print('| component (forward + backward) | ms / iter | share |')
    print('|---|---:|---:|')
    rows = sorted(((us / 1e3 / args.iters, name) for name, us in totals.items()), reverse=True)
    rows.append((wall_ms - sum(ms for ms, _ in rows), 'other (Python, waiting)'))
    for ms, name in rows:
        print(f'| {name} | {ms:.0f} | {100 * ms / wall_ms:.1f}% |')


if __name__ == '__main__':
    main()
