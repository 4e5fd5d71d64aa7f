"""The detector benchmark's harness (tools/benchmark_model.py): our detector and mmdet 3.3.0's with the same random
weights, each timed in a fresh process of its own, their timed steps taking turns.

A pair of detectors is named by two configs: ``ours_config`` (None: mmdet's config built on our attention through
:func:`mmddetr.models.mmdet_attention`) and ``mmdet_config`` (None: ``ours_config`` built with mmdet's classes,
:func:`as_mmdet_config`). Nothing here registers anything or changes a default scope outside a ``with`` block, and
the module imports with torch alone (mmdet, mmengine and onnx are imported where they are used).
"""
import contextlib
import copy
import functools
import importlib
import json
import multiprocessing
import os
import tempfile
import time
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import nn

ONNX_TRACE_BATCH = ((128, 160), (100, 120))  # the export's example batch (small: tracing time grows with it)
RUNTIMES = ('onnxruntime', 'openvino')  # our detector exported to ONNX, run in these
IMPLEMENTATIONS = ('ours', 'mmdet') + RUNTIMES


@functools.lru_cache(maxsize=None)
def deformable_detr_any_dims() -> type:
    """``DeformableDETRAnyDims``: mmdet's ``DeformableDETR`` whose two-stage proposal embedding takes
    ``embed_dims // 2`` sine features per coordinate, as ours does (mmdet's assumes 128, i.e. 256 channels), for
    mmdet's classes at other embed dims. One class per process, registered nowhere: :func:`as_mmdet_config` puts the
    class itself in the config's ``type``."""
    from mmdet.models.detectors import DeformableDETR

    class DeformableDETRAnyDims(DeformableDETR):

        def get_proposal_pos_embed(self, proposals: torch.Tensor, num_pos_feats: int = 128,
                                   temperature: int = 10000) -> torch.Tensor:
            return DeformableDETR.get_proposal_pos_embed(proposals, self.embed_dims // 2, temperature)

    return DeformableDETRAnyDims


def mmdet_config_path(name: str) -> str:
    """The path of mmdet's own config ``name`` (relative to mmdet's ``.mim/configs``, e.g.
    ``'dino/dino-4scale_r50_8xb2-12e_coco.py'``)."""
    import mmdet
    return os.path.join(os.path.dirname(mmdet.__file__), '.mim', 'configs', name)


def as_mmdet_config(path: str):
    """Our detector config ``path`` with mmdet's classes: mmdet's data preprocessor and layers (mmdet's coders build
    fixed layer classes, and mmdet has none of the fast modules' types), and for a ``DeformableDETR``
    :func:`deformable_detr_any_dims` (the class object, not a registered name). Returns an mmengine Config."""
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    cfg.model.data_preprocessor.type = 'DetDataPreprocessor'
    for layer_cfg in (cfg.model.encoder.layer_cfg, cfg.model.decoder.layer_cfg):
        layer_cfg.pop('type', None)
    if cfg.model.type == 'DeformableDETR':
        cfg.model.type = deformable_detr_any_dims()
    return cfg


def as_config(config):
    """A fresh Config from a path or a copy of a Config."""
    from mmengine.config import Config
    return copy.deepcopy(config) if isinstance(config, Config) else Config.fromfile(config)


@contextlib.contextmanager
def quiet_logger() -> Iterator[None]:
    """mmengine's current logger at WARNING inside the block (no per-parameter init report), its level restored."""
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel('WARNING')
    try:
        yield
    finally:
        logger.setLevel(level)


def build_detector(impl: str, ours_config: Optional[str], mmdet_config=None, device: str = 'cpu') -> nn.Module:
    """Our or mmdet's detector of a pair with the shared random weights.

    mmdet's is built from ``mmdet_config`` (a path or Config; None: :func:`as_mmdet_config` of ``ours_config``) in
    mmdet's scope with mmcv's attention, from seed 0, its weights then perturbed (N(0, 0.02)) so that no
    initialisation pattern hides a difference. ``impl='ours'``: ours from ``ours_config`` (None: ``mmdet_config`` on
    our attention) in mmddetr's scope, with mmdet's weights loaded strictly. Backbones are not loaded from
    pretrained weights.
    """
    if impl not in ('ours', 'mmdet'):
        raise ValueError(f"impl: expected 'ours' or 'mmdet', got {impl!r}")
    if ours_config is None and mmdet_config is None:
        raise ValueError('ours_config, mmdet_config: expected at least one config, got None for both')
    from mmdet.registry import MODELS as MMDET_MODELS
    from mmdet.utils import register_all_modules
    from mmengine.registry import DefaultScope

    from mmddetr.models import mmdet_attention
    from mmddetr.registry import MODELS
    register_all_modules(init_default_scope=False)
    theirs_cfg = as_mmdet_config(ours_config) if mmdet_config is None else as_config(mmdet_config)
    theirs_cfg.model.backbone.init_cfg = None
    torch.manual_seed(0)
    with quiet_logger():
        with DefaultScope.overwrite_default_scope('mmdet'), mmdet_attention(mmddetr=False):
            model = MMDET_MODELS.build(theirs_cfg.model)
            model.init_weights()
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.02)
        if impl == 'ours':
            ours_cfg = as_config(mmdet_config if ours_config is None else ours_config)
            ours_cfg.model.backbone.init_cfg = None
            with DefaultScope.overwrite_default_scope('mmddetr'), mmdet_attention():
                ours = MODELS.build(ours_cfg.model)
            ours.load_state_dict(model.state_dict(), strict=True)
            model = ours
    return model.to(device)


def toy_train_size(cfg) -> Tuple[int, int]:
    """(height, width) of a toy config's training images: its train pipeline's Resize scale (mmdet's (width, height);
    the toy images are square)."""
    resize = next(step for step in cfg.train_dataloader.dataset.pipeline if step['type'] == 'Resize')
    width, height = resize['scale']
    return height, width


def make_batch(batch: int, h: int, w: int, device: str, num_classes: int = 80) -> Tuple[torch.Tensor, list]:
    """Random images (batch, 3, h, w) and their samples, 6 random boxes each of classes below ``num_classes``;
    seeded, so every call gives the same batch."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    gen = torch.Generator().manual_seed(1)
    inputs = torch.randn(batch, 3, h, w, generator=gen).to(device)
    samples = []
    for _ in range(batch):
        s = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), batch_input_shape=(h, w),
                                        scale_factor=(1.0, 1.0)))
        xy = torch.rand(6, 2, generator=gen) * torch.tensor([w * 0.6, h * 0.6])
        wh = (torch.rand(6, 2, generator=gen) * 0.3 + 0.05) * torch.tensor([w, h])
        s.gt_instances = InstanceData(bboxes=torch.cat([xy, xy + wh], 1).to(device),
                                      labels=torch.randint(0, num_classes, (6, ), generator=gen).to(device))
        samples.append(s)
    return inputs, samples


def _peak_rss_bytes() -> int:
    with open('/proc/self/status') as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith('VmHWM'))


def peak_memory_bytes(step: Callable[[], object], device: str) -> int:
    """Peak memory one call of ``step()`` adds: CUDA peak allocated, or CPU peak resident set size (Linux)."""
    if device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step()
        return torch.cuda.max_memory_allocated() - base
    with open('/proc/self/clear_refs', 'w') as clear_refs:
        clear_refs.write('5')  # resets the peak resident set size
    base = _peak_rss_bytes()
    step()
    return _peak_rss_bytes() - base


def flops_of(step: Callable[[], object]) -> int:
    """FLOPs of one ``step()``: torch's FlopCounterMode (a multiply-add is 2 FLOPs), our op counted by the formula
    registered with it (mmddetr/ops/flops.py; its backward is not counted)."""
    from torch.utils.flop_counter import FlopCounterMode
    importlib.import_module('mmddetr.ops')  # registers torch.ops.mmddetr and the op's FLOP formula
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return counter.get_total_flops()


def runtime_run(runtime: str, path: str, threads: int) -> Callable[[torch.Tensor, torch.Tensor], Sequence]:
    """``run(images, valid_sizes)`` → ``(scores, labels, boxes)`` of the ONNX model at ``path`` in ``runtime`` (one
    of ``RUNTIMES``) on the CPU with ``threads`` threads: an ONNX Runtime session
    (:func:`mmddetr.export.onnx.session`) or an OpenVINO compiled model
    (:func:`mmddetr.export.openvino_detector.compile_model`)."""
    if runtime == 'onnxruntime':
        from mmddetr.export.onnx import run_session, session
        return functools.partial(run_session, session(path, threads))
    from mmddetr.export.openvino_detector import compile_model, run_compiled
    return functools.partial(run_compiled, compile_model(path, threads))


def runtime_step(runtime: str, model: nn.Module, inputs: torch.Tensor, samples: list, threads: int,
                 path: str) -> Callable[[], object]:
    """Our detector exported to ``path`` (unless that file exists: a runtime before this one exported the same
    model there) and run in ``runtime`` (:func:`runtime_run`) on the batch: the step, after its scores are checked
    against eager PyTorch's (1e-4)."""
    from mmddetr.export import DetectorWithPostprocess
    from mmddetr.export.onnx import export_onnx
    wrapper = DetectorWithPostprocess(model)
    if not os.path.exists(path):
        trace = torch.randn(len(ONNX_TRACE_BATCH), 3, *ONNX_TRACE_BATCH[0], generator=torch.Generator().manual_seed(0))
        export_onnx(wrapper, trace, torch.tensor(ONNX_TRACE_BATCH), path)
    run = runtime_run(runtime, path, threads)
    valid_sizes = torch.tensor([s.img_shape for s in samples])
    with torch.no_grad():
        expected = wrapper(inputs, valid_sizes)
    got = run(inputs, valid_sizes)
    torch.testing.assert_close(torch.from_numpy(got[0]), expected[0], atol=1e-4, rtol=0)
    return lambda: run(inputs, valid_sizes)


def onnxruntime_op_share(path: str, inputs: torch.Tensor, samples: list, threads: int) -> float:
    """The fraction of ONNX Runtime's node time spent in the nodes ``mmddetr::ms_deform_attn`` became (those whose
    exporter metadata names the op), in the second of two profiled runs."""
    import onnx

    from mmddetr.export.onnx import run_session, session
    op_nodes = {node.name for node in onnx.load(path).graph.node
                if any(p.key == 'pkg.torch.onnx.fx_node' and 'mmddetr.ms_deform_attn' in p.value
                       for p in node.metadata_props)}
    sess = session(path, threads, profile=True)
    for _ in range(2):
        run_session(sess, inputs, torch.tensor([s.img_shape for s in samples]))
    with open(sess.end_profiling()) as f:
        events = json.load(f)
    last_run = max(e['ts'] for e in events if e.get('name') == 'model_run')
    nodes = {e['name'][:-len('_kernel_time')]: e['dur'] for e in events
             if e.get('cat') == 'Node' and e['ts'] >= last_run and e['name'].endswith('_kernel_time')}
    return sum(dur for name, dur in nodes.items() if name in op_nodes) / sum(nodes.values())


def eager_op_share(step: Callable[[], object]) -> float:
    """The fraction of one profiled ``step()``'s time that torch spends in the compiled ``mmddetr::ms_deform_attn``."""
    from torch.profiler import ProfilerActivity, profile
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    seconds = time.perf_counter() - start
    return sum(e.cpu_time_total for e in prof.key_averages() if e.key == 'mmddetr::ms_deform_attn') / 1e6 / seconds


def _serve(conn, impl: str, configs: Tuple[Optional[str], Optional[str]], mode: str, batch: int,
           size: Tuple[int, int], device: str, dtype_name: str, threads: int, compile_model: bool,
           onnx_path: str) -> None:
    """Worker process of one (implementation, row): builds, warms up, reports size and peak memory, then times one
    step per request (so the implementations' timed steps interleave, and machine drift hits them alike); FLOPs
    last. A runtime's worker runs our detector exported to ``onnx_path`` (:func:`runtime_step`)."""
    torch.set_num_threads(threads)
    dtype = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}[dtype_name]
    runtime = impl in RUNTIMES
    model = build_detector('ours' if runtime else impl, *configs, device=device)
    params = sum(p.numel() for p in model.parameters())
    inputs, samples = make_batch(batch, *size, device, model.bbox_head.num_classes)
    train = mode.endswith('train step')
    model.train(train)
    # the model's data preprocessor, as a runner runs it before each step (ours: the images channels-last on CPU)
    data = model.data_preprocessor(dict(inputs=inputs, data_samples=samples), train)
    inputs, samples = data['inputs'], data['data_samples']
    forward = model.loss if train else model.predict
    if compile_model:
        forward = torch.compile(forward)

    def eager_step():
        with torch.autocast(device_type=device, dtype=dtype, enabled=dtype is not None):
            if train:
                losses = forward(inputs, samples)
            else:
                with torch.no_grad():
                    forward(inputs, samples)
        if train:
            sum(losses.values()).backward()
            model.zero_grad(set_to_none=True)
        if device == 'cuda':
            torch.cuda.synchronize()

    step = runtime_step(impl, model, inputs, samples, threads, onnx_path) if runtime else eager_step
    step()  # warm-up (and compilation)
    conn.send(dict(peak_mb=peak_memory_bytes(step, device) / 2**20, params=params))
    while conn.recv():
        start = time.perf_counter()
        step()
        conn.send(time.perf_counter() - start)
    if runtime:  # OpenVINO renames the nodes it fuses and decomposes: the op's share is ONNX Runtime's only
        share = onnxruntime_op_share(onnx_path, inputs, samples, threads) if impl == 'onnxruntime' else None
        conn.send(dict(gflops=None, op_share=share))
        return
    flops = flops_of(step) if not compile_model else None
    conn.send(dict(gflops=flops / 1e9 if flops else None,
                   op_share=eager_op_share(step) if mode == 'runtime inference' else None))


def _reply(variant: Tuple[str, bool], proc, conn):
    try:
        return conn.recv()
    except EOFError:
        proc.join()
        raise RuntimeError(f'the {variant[0]}{" (compiled)" * variant[1]} worker died (exit code {proc.exitcode}); '
                           'its traceback is above') from None


def measure(variants: Sequence[Tuple[str, bool]], configs: Tuple[Optional[str], Optional[str]], mode: str, batch: int,
            size: Tuple[int, int], device: str = 'cpu', dtype: str = 'fp32', threads: int = 2,
            repeat: int = 3) -> Dict[Tuple[str, bool], dict]:
    """{variant: dict(seconds (median of ``repeat``), peak_mb, params, gflops, op_share)} for one row.

    A variant is (implementation, compiled): 'ours', 'mmdet' or one of ``RUNTIMES`` (ours exported to ONNX once, by
    the first runtime's process, into a temporary folder the others read it from), of the pair ``configs`` =
    (ours_config, mmdet_config) (:func:`build_detector`); ``mode`` is 'inference', '... train step' (forward, loss,
    backward) or 'runtime inference' (also the op's share of the time, eager's and ONNX Runtime's). Each variant runs
    in its own fresh process, started one after the other (builds and warm-ups never overlap a timing); the timed
    steps then take turns, one of each per round. CPU peak memory is the resident set's growth over one step
    (Linux)."""
    for impl, _ in variants:
        if impl not in IMPLEMENTATIONS:
            raise ValueError(f'variants: expected implementations among {IMPLEMENTATIONS}, got {impl!r}')
    if dtype not in ('fp32', 'bf16', 'fp16'):
        raise ValueError(f"dtype: expected 'fp32', 'bf16' or 'fp16', got {dtype!r}")
    ctx = multiprocessing.get_context('spawn')
    workers, results = {}, {}
    with tempfile.TemporaryDirectory() as workdir:  # the runtimes' model
        onnx_path = os.path.join(workdir, 'model.onnx')
        for variant in variants:
            conn, child = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(child, variant[0], tuple(configs), mode, batch, tuple(size), device,
                                                    dtype, threads, variant[1], onnx_path), daemon=True)
            proc.start()
            child.close()  # so that a worker's death ends a wait on it (EOFError) instead of hanging
            workers[variant] = (proc, conn)
            results[variant] = dict(_reply(variant, proc, conn), times=[])
        for _ in range(repeat):
            for variant, (proc, conn) in workers.items():
                conn.send(True)
                results[variant]['times'].append(_reply(variant, proc, conn))
        for variant, (proc, conn) in workers.items():
            conn.send(False)
            results[variant].update(_reply(variant, proc, conn))
            proc.join()
            times = sorted(results[variant].pop('times'))
            results[variant]['seconds'] = times[len(times) // 2]
    return results


def check_equal(configs: Tuple[Optional[str], Optional[str]], device: str = 'cpu') -> None:
    """Raises unless both detectors of the pair ``configs`` score one 320x480 image alike (1e-4)."""
    inputs, samples = make_batch(1, 320, 480, device)
    results = []
    for impl in ('mmdet', 'ours'):
        model = build_detector(impl, *configs, device=device).eval()
        with torch.no_grad():
            results.append(model.predict(inputs, samples)[0].pred_instances)
    torch.testing.assert_close(results[1].scores, results[0].scores, atol=1e-4, rtol=1e-4)


def rows_of(device: str, toy_config: Optional[str], passes: Sequence[str]) -> List[Tuple[str, int, Tuple[int, int]]]:
    """The rows (pass, batch, (height, width)) of ``passes``: inference at 800x1333 (batch 1; and 4 on CUDA), the
    training step at batch 2 (512x672 on CPU, 800x1333 on CUDA), and the toy training step at the toy config's own
    training batch and image size (the step its learning curve counts)."""
    rows = [('inference', 1, (800, 1333))]
    if device == 'cuda':
        rows += [('inference', 4, (800, 1333)), ('train step', 2, (800, 1333))]
    else:
        rows += [('train step', 2, (512, 672))]
    if toy_config is not None:
        from mmengine.config import Config
        toy_cfg = Config.fromfile(toy_config)
        rows += [('toy train step', toy_cfg.train_dataloader.batch_size, toy_train_size(toy_cfg))]
    return [row for row in rows if row[0] in passes]
