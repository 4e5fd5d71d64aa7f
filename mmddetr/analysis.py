"""Parameters and FLOPs of a detector per module group (tools/get_flops.py), counted as mmdet's get_flops.py counts.

FLOPs are those of mmengine's ``FlopAnalyzer`` (fvcore's jit-trace counter, which mmdet's
``tools/analysis_tools/get_flops.py`` runs through ``get_model_complexity_info``): one multiply-add is 1 FLOP, the
convention of the papers' GFLOPs (torch's ``FlopCounterMode`` counts 2). mmengine has no handle for
``mmddetr::ms_deform_attn``, so ``get_model_complexity_info`` counts it as 0 with an "Unsupported operator" warning;
:func:`flop_analyzer` is a ``FlopAnalyzer`` with handles for our op (``mmddetr.ops.flops.MMENGINE_FLOP_HANDLES``)
and for torch's fused attention, which mmengine does not count either, set on that analyzer only. The model runs as
mmdet's tool runs it: one random image through the config's data preprocessor, then
``forward(inputs, data_samples, mode='tensor')`` (the heads' outputs, no post-processing), random weights.

Groups: the detector's top-level parts, named by :data:`GROUPS`; ``head`` is the rest (the bbox head, the queries,
the reference points or the two-stage proposal head), and the operations the detector runs itself.
"""
import contextlib
import importlib
import math
import statistics
import time
from collections import Counter
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from mmddetr.benchmark import as_config, make_batch, mmdet_config_path, quiet_logger
from mmddetr.ops.flops import MMENGINE_FLOP_HANDLES

# group: the detector's top-level attributes in it (those a detector lacks are skipped); the rest is HEAD
GROUPS = (('backbone', ('backbone', )), ('neck', ('neck', )),
          ('encoder', ('encoder', 'positional_encoding', 'level_embed')), ('decoder', ('decoder', )))
HEAD = 'head'
OP_NAME = 'ms_deform_attn'  # mmengine's name of mmddetr::ms_deform_attn in its per-operator counts


def sdpa_jit_handle(inputs: list, outputs: list) -> int:
    """mmengine (fvcore) jit handle of ``aten::scaled_dot_product_attention``, which mmengine 0.10 does not count:
    query x key and weights x value, 1 FLOP per multiply-add, as mmengine counts the same products when an attention
    computes them with matmuls (mmcv's MultiheadAttention; ours asks torch for the fused op)."""
    query, key, value = (x.type().sizes() for x in inputs[:3])  # (..., L, E), (..., S, E), (..., S, Ev)
    return math.prod(query[:-1]) * key[-2] * (query[-1] + value[-1])


def flop_analyzer(model: nn.Module, inputs):
    """mmengine's ``FlopAnalyzer(model, inputs)`` that also counts ``mmddetr::ms_deform_attn`` (1 FLOP per
    multiply-add, like its own handles; mmddetr/ops/flops.py) and torch's fused attention (:func:`sdpa_jit_handle`).
    The handles are set on this analyzer only; mmengine's default table is left as it is."""
    importlib.import_module('mmddetr.ops')  # registers torch.ops.mmddetr: the trace records the op by its name
    from mmengine.analysis import FlopAnalyzer
    return FlopAnalyzer(model, inputs).set_op_handle(
        **MMENGINE_FLOP_HANDLES, **{'aten::scaled_dot_product_attention': sdpa_jit_handle})


def load_config(config, dc5: bool = False, cfg_options: Optional[dict] = None):
    """The mmengine Config of ``config``: a path, ``'mmdet::<path under mmdet's configs>'`` or a Config (copied);
    ``cfg_options`` merged in; ``dc5``: the backbone's last stage dilated instead of strided (strides (1, 2, 2, 1),
    dilations (1, 1, 1, 2)), DETR's DC5, which mmdet 3.3.0 does not ship."""
    if isinstance(config, str) and config.startswith('mmdet::'):
        config = mmdet_config_path(config[len('mmdet::'):])
    cfg = as_config(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if dc5:
        cfg.model.backbone.update(strides=(1, 2, 2, 1), dilations=(1, 1, 1, 2))
    return cfg


def build_model(cfg) -> nn.Module:
    """The detector of ``cfg`` in its default scope, random weights (seed 0; the backbone's ``init_cfg`` dropped: no
    pretrained download), in eval mode."""
    from mmengine.registry import MODELS, DefaultScope
    cfg.model.backbone.init_cfg = None
    torch.manual_seed(0)
    with quiet_logger(), DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmdet')):
        model = MODELS.build(cfg.model)
        model.init_weights()
    return model.eval()


def preprocessed_input(model: nn.Module, shape: Tuple[int, int]) -> Tuple[torch.Tensor, list]:
    """One random (3, height, width) image through the model's data preprocessor: (inputs, data_samples)."""
    _check_shape(shape)
    images, samples = make_batch(1, *shape, 'cpu', model.bbox_head.num_classes)
    data = model.data_preprocessor(dict(inputs=images, data_samples=samples), False)
    return data['inputs'], data['data_samples']


def _check_shape(shape) -> None:
    if len(shape) != 2 or not all(isinstance(s, int) and s > 0 for s in shape):
        raise ValueError(f'shape: expected (height, width), two positive ints, got {tuple(shape)}')


@contextlib.contextmanager
def _tensor_forward(model: nn.Module, data_samples: list):
    """``model(inputs)`` runs ``model.forward(inputs, data_samples, mode='tensor')`` inside the block (how mmdet's
    get_flops.py has the analyzer trace a detector)."""
    forward = model.forward
    model.forward = lambda inputs: forward(inputs, data_samples, mode='tensor')
    try:
        yield
    finally:
        del model.forward


def complexity(model: nn.Module, shape: Tuple[int, int]) -> dict:
    """Parameters and FLOPs (mmengine's counter with our op, 1 per multiply-add) of ``model`` on one random image of
    ``shape`` = (height, width).

    Returns:
        dict: ``input_shape`` (the batch's (height, width) after the data preprocessor), ``groups``: {group: dict(
        members (attribute names), params, flops, op_flops (our op's part))} in :data:`GROUPS` order then ``head``,
        ``total``: dict(params, flops, op_flops), ``uncounted``: Counter of the operators mmengine has no handle for.
    """
    inputs, samples = preprocessed_input(model, shape)
    with _tensor_forward(model, samples), torch.no_grad():
        analyzer = flop_analyzer(model, (inputs, )).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        flops = analyzer.by_module()
        per_operator = {name: analyzer.by_operator(name) for name in flops}
        uncounted = analyzer.unsupported_ops()
    params = Counter()
    for name, p in model.named_parameters():
        params[name.split('.')[0]] += p.numel()
    tops = [name for name, _ in model.named_children()] + [name for name, _ in model.named_parameters(recurse=False)]
    groups = {group: [m for m in members if m in tops] for group, members in GROUPS}
    grouped = {m for members in groups.values() for m in members}
    groups[HEAD] = [m for m in tops if m not in grouped and m != 'data_preprocessor']
    total = dict(params=sum(params.values()), flops=flops[''], op_flops=per_operator[''][OP_NAME])
    result = {group: dict(members=members, params=sum(params[m] for m in members),
                          flops=sum(flops.get(m, 0) for m in members),
                          op_flops=sum(per_operator[m][OP_NAME] for m in members if m in per_operator))
              for group, members in groups.items()}
    # the detector's own operations (outside every child) count in the head
    for key in ('flops', 'op_flops'):
        result[HEAD][key] += total[key] - sum(r[key] for r in result.values())
    return dict(input_shape=tuple(inputs.shape[-2:]), groups=result, total=total, uncounted=uncounted)


def format_complexity(name: str, result: dict) -> str:
    """mmdet's get_flops.py's report of :func:`complexity`'s ``result``, with a line per group."""
    split_line = '=' * 30
    total = result['total']
    lines = [split_line, f'Config: {name}', f'Input shape: {result["input_shape"]} (batch 1, random image and weights)',
             'Flops: mmengine/fvcore counting, 1 multiply-add = 1 FLOP; ms_deform_attn: our op\'s part',
             f'{"group":<10} {"params":>8} {"GFLOPs":>9} {"ms_deform_attn":>15}  modules']
    for group, r in list(result['groups'].items()) + [('total', dict(total, members=[]))]:
        lines.append(f'{group:<10} {r["params"] / 1e6:>7.2f}M {r["flops"] / 1e9:>9.2f} {r["op_flops"] / 1e9:>15.2f}  '
                     f'{", ".join(r["members"])}'.rstrip())
    lines += [f'Flops: {total["flops"] / 1e9:.2f}G (ms_deform_attn {total["op_flops"] / 1e9:.2f}G, '
              f'{100 * total["op_flops"] / total["flops"]:.1f}%)', f'Params: {total["params"] / 1e6:.2f}M']
    if result['uncounted']:
        lines.append('Not counted (no mmengine handle): '
                     + ', '.join(f'{op} x{n}' for op, n in sorted(result['uncounted'].items())))
    lines.append(split_line)
    return '\n'.join(lines)


def time_models(models: Sequence[nn.Module], shape: Tuple[int, int], rounds: int) -> List[float]:
    """Median seconds of one inference (``predict``, no autograd) of each model on one random image of ``shape``, the
    models taking turns within each of ``rounds`` rounds after one warm-up each (so that machine load hits all)."""
    steps = []
    for model in models:
        inputs, samples = preprocessed_input(model, shape)
        steps.append(lambda model=model, inputs=inputs, samples=samples: model.predict(inputs, samples))
    times: Dict[int, List[float]] = {i: [] for i in range(len(models))}
    with torch.no_grad():
        for step in steps:
            step()
        for _ in range(rounds):
            for i, step in enumerate(steps):
                start = time.perf_counter()
                step()
                times[i].append(time.perf_counter() - start)
    return [statistics.median(times[i]) for i in range(len(models))]
