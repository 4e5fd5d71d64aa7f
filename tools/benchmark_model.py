"""End-to-end benchmark: our two-stage R50 Deformable DETR (or our DINO, or mmdet's DDQ-DETR on our attention) against
mmdet 3.3.0's, same weights, same run.

``--model deformable-detr`` (default): both detectors are built from their own configs (ours:
configs/deformable_detr_r50_refine_twostage.py; mmdet's: its deformable-detr-refine-twostage_r50_16xb2-50e_coco.py, with
mmcv's attention). ``--model dino``: ours is configs/dino/dino_4scale_r50_12e.py (mmddetr's DINO: mmdet's DINO on our
layers), mmdet's its dino-4scale_r50_8xb2-12e_coco.py with mmcv's attention; ``--model ddq-detr``: mmdet's
ddq-detr-4scale_r50_8xb2-12e_coco.py built with mmcv's attention and with ours (mmddetr.mmdet_ops). mmdet's random
weights are loaded strictly into ours and the predictions are checked equal first. Each row then runs in a fresh process
per implementation, their timed steps taking turns (one of each per round, so machine drift hits both alike): median
time over ``--repeat`` rounds after a warm-up, peak memory (CPU: peak resident set size above the built model; CUDA:
peak allocated), parameters and FLOPs (torch's FlopCounterMode, with a formula for our op).

    python tools/benchmark_model.py [--device cpu|cuda] [--dtype fp32|bf16|fp16] [--threads 2] [--repeat 3]
                                    [--compile] [--passes inference 'train step' 'toy train step' onnxruntime]
                                    [--json FILE] [--model deformable-detr|dino|ddq-detr]

Rows: inference at 800x1333 (batch 1; and batch 4 on CUDA) and one training step (forward, loss, backward) at
512x672 on CPU, 800x1333 on CUDA (batch 2, as the configs' per-GPU batch); and the toy training step (the README's
main: configs/toy/deformable_detr_r18_toy_refine_twostage.py at its training batch and image size) with each one's
classes, the step the toy learning target compares; for DINO, configs/toy/dino_r18_toy.py as mmdet's DINO (mmcv's
attention) and as ours.

``--passes onnxruntime`` (CPU, fp32, --model deformable-detr): our detector exported to ONNX (tools/export_onnx.py's
path, traced on a small batch) in ONNX Runtime against our eager PyTorch, inference at 800x1333, batch 1, the same
threads, the two taking turns as above; ONNX Runtime's predictions are checked against eager first. It also reports what
the deformable attention costs in each: its share of a profiled run (ONNX Runtime: the nodes our op became; torch: the
compiled op) times the median time.
"""
import argparse
import json
import multiprocessing
import os
import tempfile
import time

from benchmark_op import peak_memory_bytes  # tools/ is on the path when run as a script

# --model: (our config, or None for mmdet's own config on our attention; mmdet's config under its .mim/configs; our
# toy config, or None for no toy row)
DETECTORS = {
    'deformable-detr': ('configs/deformable_detr_r50_refine_twostage.py',
                        'deformable_detr/deformable-detr-refine-twostage_r50_16xb2-50e_coco.py',
                        'configs/toy/deformable_detr_r18_toy_refine_twostage.py'),
    'dino': ('configs/dino/dino_4scale_r50_12e.py', 'dino/dino-4scale_r50_8xb2-12e_coco.py',
             'configs/toy/dino_r18_toy.py'),
    'ddq-detr': (None, 'ddq/ddq-detr-4scale_r50_8xb2-12e_coco.py', None),
}
TOY_CLASSES = 5
TARGETS = {('deformable-detr', 'cpu', 'inference'): 2.5, ('deformable-detr', 'cpu', 'train step'): 2.0,
           ('deformable-detr', 'cuda', 'inference'): 1.5, ('deformable-detr', 'cuda', 'train step'): 1.5,
           ('dino', 'cpu', 'inference'): 2.5, ('dino', 'cpu', 'train step'): 2.0}
ONNXRUNTIME_TARGET = 1.5  # ONNX Runtime's time at most this many times our eager time
ONNX_TRACE_BATCH = ((128, 160), (100, 120))  # the export's example batch (small: tracing time grows with it)
PAPER_V100_FPS = 19.4  # paper: two-stage R50 at batch 4 on a V100 (15.0 at batch 1)


def _register_mmdet_any_dims():
    """mmdet's two-stage proposal embedding assumes 256 channels (128 sine features per coordinate): for the toy row
    (128 channels) a subclass takes them from embed_dims, as ours does."""
    from mmdet.models.detectors import DeformableDETR as MmdetDeformableDETR
    from mmdet.registry import MODELS

    class DeformableDETRAnyDims(MmdetDeformableDETR):

        def get_proposal_pos_embed(self, proposals, num_pos_feats=128, temperature=10000):
            return MmdetDeformableDETR.get_proposal_pos_embed(proposals, self.embed_dims // 2, temperature)

    MODELS.register_module(module=DeformableDETRAnyDims, force=True)
    return 'DeformableDETRAnyDims'


def build(impl, device, toy=False, model_name='deformable-detr'):
    """Our or mmdet's detector with the shared random weights (seeded, mmdet-built with mmcv's attention, loaded
    strictly into ours): the R50 model from each one's own config, or (``toy``) the toy config built with each one's
    classes."""
    import mmdet
    import torch
    from mmdet.registry import MODELS as MMDET_MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from mmddetr.models import mmdet_attention
    from mmddetr.registry import MODELS
    from mmengine.logging import MMLogger
    register_all_modules(init_default_scope=False)
    MMLogger.get_current_instance().setLevel('WARNING')  # no per-parameter init report
    ours_path, mmdet_path, toy_path = DETECTORS[model_name]
    mmdet_path = os.path.join(os.path.dirname(mmdet.__file__), '.mim', 'configs', mmdet_path)
    torch.manual_seed(0)
    if toy:
        theirs_cfg = Config.fromfile(toy_path)  # built in mmdet's scope: mmdet's detector (DINO: mmdet's DINO)
        # mmdet's coders build fixed layer classes, and mmdet has not our data preprocessor (fast_modules.py's types)
        theirs_cfg.model.data_preprocessor.type = 'DetDataPreprocessor'
        for layer_cfg in (theirs_cfg.model.encoder.layer_cfg, theirs_cfg.model.decoder.layer_cfg):
            layer_cfg.pop('type')
        if model_name == 'deformable-detr':
            theirs_cfg.model.type = _register_mmdet_any_dims()
    else:
        theirs_cfg = Config.fromfile(mmdet_path)
    theirs_cfg.model.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope('mmdet'), mmdet_attention(mmddetr=False):
        model = MMDET_MODELS.build(theirs_cfg.model)
        model.init_weights()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    if impl == 'ours':
        ours_cfg = Config.fromfile(toy_path if toy else ours_path or mmdet_path)
        ours_cfg.model.backbone.init_cfg = None
        with DefaultScope.overwrite_default_scope('mmddetr'), mmdet_attention():
            ours = MODELS.build(ours_cfg.model)
        ours.load_state_dict(model.state_dict(), strict=True)
        model = ours
    return model.to(device)


def toy_train_size(cfg) -> tuple:
    """(height, width) of a toy config's training images: its train pipeline's Resize scale (mmdet's (width, height);
    the toy images are square)."""
    resize = next(step for step in cfg.train_dataloader.dataset.pipeline if step['type'] == 'Resize')
    width, height = resize['scale']
    return height, width


def make_batch(batch, h, w, device, num_classes=80):
    import torch
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


def flops_of(model, step):
    import torch
    from torch.utils.flop_counter import FlopCounterMode, register_flop_formula

    import mmddetr.ops  # noqa: F401

    @register_flop_formula(torch.ops.mmddetr.ms_deform_attn, get_raw=True)
    def _msda_flops(value, spatial_shapes, level_start_index, locations, weights, *args, out_val=None, **kwargs):
        bs, nq, heads, levels, points, _ = locations.shape
        return bs * nq * heads * levels * points * value.shape[-1] * 2 * 4  # 4 corners, multiply-add

    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return counter.get_total_flops()


def onnxruntime_step(model, inputs, samples, threads, path):
    """Our detector exported to ``path`` and run in ONNX Runtime (CPU, ``threads`` intra-op threads) on the batch:
    the step, after its predictions are checked against eager PyTorch's."""
    import torch

    from mmddetr.export import DetectorWithPostprocess
    from mmddetr.export.onnx import export_onnx, run_session, session
    wrapper = DetectorWithPostprocess(model)
    trace = torch.randn(len(ONNX_TRACE_BATCH), 3, *ONNX_TRACE_BATCH[0], generator=torch.Generator().manual_seed(0))
    export_onnx(wrapper, trace, torch.tensor(ONNX_TRACE_BATCH), path)
    sess = session(path, threads)
    valid_sizes = torch.tensor([s.img_shape for s in samples])
    with torch.no_grad():
        expected = wrapper(inputs, valid_sizes)
    got = run_session(sess, inputs, valid_sizes)
    torch.testing.assert_close(torch.from_numpy(got[0]), expected[0], atol=1e-4, rtol=0)
    return lambda: run_session(sess, inputs, valid_sizes)


def onnxruntime_op_share(path, inputs, samples, threads):
    """The fraction of ONNX Runtime's node time spent in the nodes ``mmddetr::ms_deform_attn`` became (those whose
    exporter metadata names the op), in the second of two profiled runs."""
    import onnx
    import torch

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


def eager_op_share(step):
    """The fraction of one profiled ``step()``'s time that torch spends in the compiled ``mmddetr::ms_deform_attn``."""
    from torch.profiler import ProfilerActivity, profile
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    seconds = time.perf_counter() - start
    return sum(e.cpu_time_total for e in prof.key_averages() if e.key == 'mmddetr::ms_deform_attn') / 1e6 / seconds


def _serve(conn, impl, model_name, mode, batch, size, device, dtype_name, threads, compile_model):
    """Worker process of one (implementation, row): builds, warms up, reports size and peak memory, then times one
    step per request (so the implementations' timed steps interleave, and machine drift hits them alike); FLOPs
    last."""
    import torch
    torch.set_num_threads(threads)
    dtype = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}[dtype_name]
    toy = mode.startswith('toy')
    onnxruntime = impl == 'onnxruntime'
    model = build('ours' if onnxruntime else impl, device, toy, model_name)
    params = sum(p.numel() for p in model.parameters())
    inputs, samples = make_batch(batch, *size, device, TOY_CLASSES if toy else 80)
    train = mode.endswith('train step')
    model.train(train)
    # the model's data preprocessor, as a runner runs it before each step (ours: the images channels-last on CPU)
    data = model.data_preprocessor(dict(inputs=inputs, data_samples=samples), train)
    inputs, samples = data['inputs'], data['data_samples']
    forward = torch.compile(model.loss if train else model.predict) if compile_model else (
        model.loss if train else model.predict)

    def step():
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

    if onnxruntime:
        workdir = tempfile.TemporaryDirectory()
        onnx_path = os.path.join(workdir.name, 'model.onnx')
        step = onnxruntime_step(model, inputs, samples, threads, onnx_path)
    step()  # warm-up (and compilation)
    conn.send(dict(peak_mb=peak_memory_bytes(step, device) / 2**20, params=params))
    while conn.recv():
        start = time.perf_counter()
        step()
        conn.send(time.perf_counter() - start)
    if onnxruntime:
        conn.send(dict(gflops=None, op_share=onnxruntime_op_share(onnx_path, inputs, samples, threads)))
        workdir.cleanup()
        return
    flops = flops_of(model, step) if not compile_model else None
    conn.send(dict(gflops=flops / 1e9 if flops else None,
                   op_share=eager_op_share(step) if mode == 'onnxruntime inference' else None))


def _reply(variant, proc, conn):
    try:
        return conn.recv()
    except EOFError:
        proc.join()
        raise RuntimeError(f'the {variant[0]}{" (compiled)" * variant[1]} worker died (exit code {proc.exitcode}); '
                           'its traceback is above') from None


def measure(variants, common, repeat):
    """{variant: dict(seconds (median), peak_mb, params, gflops, op_share)}; a variant is (implementation,
    compiled), the implementation 'ours', 'mmdet' or 'onnxruntime' (ours exported). Each
    runs in its own fresh process, started one after the other (builds and warm-ups never overlap a timing); the
    timed steps then take turns, one of each per round."""
    ctx = multiprocessing.get_context('spawn')
    workers, results = {}, {}
    for variant in variants:
        conn, child = ctx.Pipe()
        proc = ctx.Process(target=_serve, args=(child, variant[0], *common, variant[1]), daemon=True)
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


def check_equal(device, model_name):
    """Predictions of both on one image must match before anything is timed."""
    import torch
    inputs, samples = make_batch(1, 320, 480, device)
    results = []
    for impl in ('mmdet', 'ours'):
        model = build(impl, device, model_name=model_name).eval()
        with torch.no_grad():
            results.append(model.predict(inputs, samples)[0].pred_instances)
    torch.testing.assert_close(results[1].scores, results[0].scores, atol=1e-4, rtol=1e-4)


def _verdict(speedup, target):
    if target is None:
        return '-'
    return f'{target}x {"met" if speedup >= target else "NOT met"}'


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument('--dtype', choices=['fp32', 'bf16', 'fp16'], default='fp32')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--compile', action='store_true', help='also time our detector under torch.compile')
    passes = ['inference', 'train step', 'toy train step']
    parser.add_argument('--passes', nargs='+', choices=passes + ['onnxruntime'], default=passes,
                        help='which rows to run (onnxruntime: ours in ONNX Runtime against eager, CPU fp32)')
    parser.add_argument('--json', help='write the rows to this file')
    parser.add_argument('--model', choices=list(DETECTORS), default='deformable-detr',
                        help='the detector: our Deformable DETR, or mmdet\'s DINO / DDQ-DETR on our attention')
    args = parser.parse_args()
    if 'onnxruntime' in args.passes and (args.device, args.dtype) != ('cpu', 'fp32'):
        parser.error('--passes onnxruntime runs on --device cpu in --dtype fp32')
    if 'onnxruntime' in args.passes and args.model != 'deformable-detr':
        parser.error('--passes onnxruntime exports our Deformable DETR: --model deformable-detr')
    rows = [('inference', 1, (800, 1333))]
    if args.device == 'cuda':
        rows += [('inference', 4, (800, 1333)), ('train step', 2, (800, 1333))]
    else:
        rows += [('train step', 2, (512, 672))]
    toy_config = DETECTORS[args.model][2]
    if toy_config is not None:  # at the toy config's own training batch, the step its learning curve counts
        from mmengine.config import Config
        toy_cfg = Config.fromfile(toy_config)
        rows += [('toy train step', toy_cfg.train_dataloader.batch_size, toy_train_size(toy_cfg))]
    rows = [row for row in rows if row[0] in args.passes]
    report = []
    if rows:
        check_equal(args.device, args.model)
        print(f'{args.model}: device {args.device}, {args.dtype}, {args.threads} threads; predictions of both equal '
              '(1e-4)')
        print('| pass | batch | size | ours s | mmdet s | speed-up | target | ours peak MB | mmdet peak MB | '
              'params | GFLOPs | img/s ours |')
        print('|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
    for mode, batch, size in rows:
        common = (args.model, mode, batch, size, args.device, args.dtype, args.threads)
        variants = [('ours', False), ('mmdet', False)] + [('ours', True)] * args.compile
        results = measure(variants, common, args.repeat)
        ours, theirs = results[('ours', False)], results[('mmdet', False)]
        speedup = theirs['seconds'] / ours['seconds']
        target = TARGETS.get((args.model, args.device, mode))
        row = dict(model=args.model, mode=mode, batch=batch, size=size, ours=ours, mmdet=theirs, speedup=speedup,
                   target=target)
        if args.compile:
            row['ours_compiled'] = results[('ours', True)]
        report.append(row)
        gflops = f'{ours["gflops"]:.0f}' if ours['gflops'] else '-'
        print(f'| {mode} | {batch} | {size[0]}x{size[1]} | {ours["seconds"]:.2f} | {theirs["seconds"]:.2f} | '
              f'{speedup:.2f}x | {_verdict(speedup, target)} | {ours["peak_mb"]:.0f} | '
              f'{theirs["peak_mb"]:.0f} | {ours["params"] / 1e6:.1f}M | {gflops} | '
              f'{batch / ours["seconds"]:.2f} |')
        if args.compile:
            c = row['ours_compiled']
            print(f'| {mode} (ours, torch.compile) | {batch} | {size[0]}x{size[1]} | {c["seconds"]:.2f} | | '
                  f'{theirs["seconds"] / c["seconds"]:.2f}x | | {c["peak_mb"]:.0f} | | | | |')
    if 'onnxruntime' in args.passes:
        mode, batch, size = 'onnxruntime inference', 1, (800, 1333)
        common = (args.model, mode, batch, size, 'cpu', 'fp32', args.threads)
        results = measure([('ours', False), ('onnxruntime', False)], common, args.repeat)
        eager, onnx = results[('ours', False)], results[('onnxruntime', False)]
        ratio = onnx['seconds'] / eager['seconds']
        report.append(dict(mode=mode, batch=batch, size=size, ours=eager, onnxruntime=onnx, ratio=ratio,
                           target=ONNXRUNTIME_TARGET))
        print(f'\ncpu, fp32, {args.threads} threads; ONNX Runtime\'s predictions equal eager\'s (1e-4)')
        print('| pass | batch | size | eager s | ONNX Runtime s | ONNX Runtime / eager | target | '
              'deformable attention s (share), eager / ONNX Runtime |')
        print('|---|---:|---|---:|---:|---:|---:|---:|')
        verdict = f'at most {ONNXRUNTIME_TARGET}x {"met" if ratio <= ONNXRUNTIME_TARGET else "NOT met"}'
        print(f'| {mode} | {batch} | {size[0]}x{size[1]} | {eager["seconds"]:.2f} | {onnx["seconds"]:.2f} | '
              f'{ratio:.2f}x | {verdict} | {eager["op_share"] * eager["seconds"]:.2f} ({eager["op_share"]:.0%}) / '
              f'{onnx["op_share"] * onnx["seconds"]:.2f} ({onnx["op_share"]:.0%}) |')
    if any(mode.startswith('toy') for mode, _, _ in rows):
        built = "mmdet's classes and ours" if args.model == 'deformable-detr' else "mmcv's attention and ours"
        print(f'toy train step: {DETECTORS[args.model][2]} built with {built} ({TOY_CLASSES} classes, 6 boxes per '
              'image)')
    if args.device == 'cuda':
        print(f'paper, V100: 15.0 FPS at batch 1, {PAPER_V100_FPS:.1f} at batch 4 (two-stage, R50)')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=1)


if __name__ == '__main__':
    main()
