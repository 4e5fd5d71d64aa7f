"""Benchmark of mmddetr's multi-scale deformable attention op against mmcv's, measured in the same run.

CPU: ours vs ``mmcv.ops.multi_scale_deformable_attn_pytorch`` (what mmdet runs on CPU). CUDA: ours vs mmcv's CUDA
kernel (``MultiScaleDeformableAttnFunction``). Shapes: the 800x1333 encoder (levels 100x167, 50x84, 25x42, 13x21 =
22,223 queries and keys) and the decoder (300 queries), 8 heads x 32 channels, 4 points, sampling locations spread
around each query's reference point as a trained model's are. Every measurement runs in a fresh process, so peak
memory is that of the op alone (CPU: peak resident set size; CUDA: peak allocated memory), above its inputs.

With ``--device cuda`` a second table follows: for both shapes at batch 1 and 8 and every dtype, the forward and the
backward op call (``torch.ops.mmddetr.ms_deform_attn[_backward]``; the backward includes zeroing grad_value) timed with
CUDA events (median of 30 after warm-up), the memory floor (each input read once and each output written once at the
device-to-device copy bandwidth measured in the same run), their ratio, the reference's times (mmcv's CUDA kernel where
mmcv has CUDA ops, else the PyTorch grid_sample path) and the targets' verdicts.

``--levels`` replaces the encoder's levels (e.g. ``8x12,4x6`` for a seconds-long smoke run); the targets are for the
default levels, so other levels get no verdicts.

    python tools/benchmark_op.py [--device cpu|cuda] [--dtype fp32|bf16|fp16] [--threads 2] [--repeat 5]
                                 [--levels HxW,...] [--json FILE]
"""
import argparse
import concurrent.futures
import json
import multiprocessing
import time

from mmddetr.benchmark import peak_memory_bytes

LEVELS = ((100, 167), (50, 84), (25, 42), (13, 21))
HEADS, DIMS, POINTS = 8, 32, 4
TARGETS = {  # (device, shape, mode): minimum speed-up over mmcv, from the foundation issue
    ('cpu', 'encoder', 'forward'): 8.0, ('cpu', 'encoder', 'forward+backward'): 8.0,
    ('cpu', 'decoder', 'forward'): 3.0, ('cpu', 'decoder', 'forward+backward'): 3.0,
    ('cuda', 'encoder', 'forward'): 2.0, ('cuda', 'encoder', 'forward+backward'): 2.0,
}
CPU_MEMORY_TARGET = 0.5  # ours / mmcv peak memory of forward+backward
# CUDA kernel targets in microseconds (H200, from the CUDA-op issue): (shape, batch, pass) -> (fp32, 16-bit)
CUDA_TARGETS_US = {('encoder', 1, 'forward'): (60, 40), ('encoder', 1, 'backward'): (250, 200),
                   ('decoder', 8, 'forward'): (30, 30), ('decoder', 8, 'backward'): (80, 80)}


def make_inputs(shape, device, dtype, levels=LEVELS):
    """Value, levels and locations around reference points (encoder: every pixel; decoder: 300 random points)."""
    import torch
    gen = torch.Generator().manual_seed(0)
    spatial_shapes = torch.tensor(levels)
    sizes = spatial_shapes.prod(1)
    starts = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    num_keys = int(sizes.sum())
    if shape == 'encoder':
        centres = []
        for height, width in levels:
            y, x = torch.meshgrid((torch.arange(height) + 0.5) / height, (torch.arange(width) + 0.5) / width,
                                  indexing='ij')
            centres.append(torch.stack([x.flatten(), y.flatten()], -1))
        reference = torch.cat(centres)  # (num_keys, 2)
    else:
        reference = torch.rand(300, 2, generator=gen)
    num_queries = reference.shape[0]
    # offsets of a few pixels of each level, as the initial ring pattern plus the spread training adds
    offsets = torch.randn(1, num_queries, HEADS, len(levels), POINTS, 2, generator=gen) * 2.0
    locations = reference[None, :, None, None, None, :] + offsets / spatial_shapes.flip(-1)[None, None, None, :,
                                                                                            None, :]
    weights = torch.rand(1, num_queries, HEADS, len(levels), POINTS, generator=gen).softmax(-1)
    value = torch.randn(1, num_keys, HEADS, DIMS, generator=gen)
    return [t.to(device) for t in (value.to(dtype), spatial_shapes, starts, locations, weights)]


def run_op(impl, inputs):
    if impl == 'ours':
        from mmddetr.ops import multi_scale_deformable_attn
        return multi_scale_deformable_attn(*inputs)
    value, spatial_shapes, starts, locations, weights = inputs
    if value.is_cuda:
        from mmcv.ops.multi_scale_deform_attn import MultiScaleDeformableAttnFunction
        # mmcv's kernel takes locations and weights in value's dtype
        return MultiScaleDeformableAttnFunction.apply(value, spatial_shapes, starts, locations.to(value.dtype),
                                                      weights.to(value.dtype), 64)
    from mmcv.ops.multi_scale_deform_attn import multi_scale_deformable_attn_pytorch
    return multi_scale_deformable_attn_pytorch(value, spatial_shapes, locations.to(value.dtype),
                                               weights.to(value.dtype))


def measure(impl, shape, mode, device, dtype_name, threads, repeat, levels=LEVELS):
    """Median time and peak memory of one (implementation, shape, mode), in this (fresh) process."""
    import torch
    torch.set_num_threads(threads)
    dtype = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}[dtype_name]
    inputs = make_inputs(shape, device, dtype, levels)
    backward = mode == 'forward+backward'

    def step(inputs=inputs):
        for tensor in (inputs[0], inputs[3], inputs[4]):
            tensor.grad = None
            tensor.requires_grad_(backward)
        out = run_op(impl, inputs)
        if backward:
            out.backward(torch.ones_like(out))
        if device == 'cuda':
            torch.cuda.synchronize()

    # warm-up on small maps: one-time allocations (thread pools, lazy initialisation) are not the op's, and the
    # allocator keeps no large freed blocks that would hide the op's own allocations
    step(make_inputs('decoder', device, dtype, levels=((4, 4), (2, 2), (1, 1), (1, 1))))
    peak = peak_memory_bytes(step, device)
    step()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return dict(seconds=sorted(times)[len(times) // 2], peak_mb=peak / 2**20)


def _has_mmcv_cuda():
    try:
        from mmcv.ops.multi_scale_deform_attn import MultiScaleDeformableAttnFunction  # noqa: F401
        return True
    except ImportError:
        return False


def _cuda_median_us(fn, repeat=30, warmup=5):
    import torch
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1e3)
    return sorted(times)[len(times) // 2]


def _copy_bandwidth():
    """Device-to-device copy bandwidth in bytes per second, counting bytes read plus bytes written."""
    import torch
    src = torch.empty(2**30, dtype=torch.uint8, device='cuda').random_()
    dst = torch.empty_like(src)
    return 2 * src.numel() / (_cuda_median_us(lambda: dst.copy_(src), repeat=10) * 1e-6)


def _reference_passes(inputs, grad_out):
    """Forward and backward callables of the reference: mmcv's CUDA kernel if it is there, else grid_sample."""
    import torch
    value, shapes, starts, locations, weights = [t.detach() for t in inputs]
    if _has_mmcv_cuda():
        name = 'mmcv CUDA'

        def forward(v, loc, w):
            return run_op('mmcv', [v, shapes, starts, loc, w])
    else:
        from mmddetr.ops import multi_scale_deformable_attn_pytorch
        name = 'grid_sample'

        def forward(v, loc, w):
            return multi_scale_deformable_attn_pytorch(v, shapes, starts, loc, w)
    leaves = [t.clone().requires_grad_() for t in (value, locations, weights)]
    out = forward(*leaves)
    return name, (lambda: forward(value, locations, weights)), (
        lambda: torch.autograd.grad(out, leaves, grad_out, retain_graph=True))


def cuda_kernel_table(repeat, levels=LEVELS):
    """Kernel times against the memory floor and the targets (at the default levels), for both shapes, batch 1 and 8,
    every dtype."""
    import torch
    bandwidth = _copy_bandwidth()
    print(f'\nCUDA kernels: op call times (CUDA events, median of {repeat}); '
          f'floor = bytes / {bandwidth / 1e12:.2f} TB/s (copy bandwidth measured now)')
    header = (f"{'shape':8} {'batch':>5} {'dtype':5} {'fwd us':>8} {'floor':>6} {'x':>5} {'ref fwd':>8} "
              f"{'bwd us':>8} {'floor':>6} {'x':>5} {'ref bwd':>8}  reference, targets")
    print(header)
    print('-' * len(header))
    rows = []
    for shape in ('encoder', 'decoder'):
        for batch in (1, 8):
            for dtype_name, dtype in (('fp32', torch.float32), ('bf16', torch.bfloat16), ('fp16', torch.float16)):
                one = make_inputs(shape, 'cuda', torch.float32, levels)
                value = torch.randn(batch, *one[0].shape[1:], device='cuda').to(dtype)
                shapes, starts = one[1], one[2]
                locations = one[3].repeat(batch, 1, 1, 1, 1, 1) + 0.01 * torch.randn(
                    batch, *one[3].shape[1:], device='cuda')
                weights = one[4].repeat(batch, 1, 1, 1, 1)
                out = torch.ops.mmddetr.ms_deform_attn(value, shapes, starts, locations, weights)
                grad_out = torch.randn_like(out)
                fwd = _cuda_median_us(lambda: torch.ops.mmddetr.ms_deform_attn(value, shapes, starts, locations,
                                                                                weights), repeat)
                bwd = _cuda_median_us(lambda: torch.ops.mmddetr.ms_deform_attn_backward(
                    value, shapes, starts, locations, weights, grad_out), repeat)
                nbytes = sum(t.numel() * t.element_size() for t in (value, locations, weights))
                fwd_floor = (nbytes + out.numel() * out.element_size()) / bandwidth * 1e6
                # backward: reads the inputs and grad_out, writes grad_value (opmath) and the other two gradients
                bwd_floor = (2 * nbytes + out.numel() * out.element_size() + value.numel() * 4) / bandwidth * 1e6
                ref_name, ref_fwd, ref_bwd = _reference_passes((value, shapes, starts, locations, weights), grad_out)
                ref_fwd_us, ref_bwd_us = _cuda_median_us(ref_fwd, repeat), _cuda_median_us(ref_bwd, repeat)
                verdicts = []
                for pass_name, measured in (('forward', fwd), ('backward', bwd)):
                    target = CUDA_TARGETS_US.get((shape, batch, pass_name)) if levels == LEVELS else None
                    if target is not None:
                        limit = target[0] if dtype_name == 'fp32' else target[1]
                        verdicts.append(f"{pass_name} <= {limit} us: {'met' if measured <= limit else 'MISSED'}")
                row = dict(shape=shape, batch=batch, dtype=dtype_name, forward_us=fwd, backward_us=bwd,
                           forward_floor_us=fwd_floor, backward_floor_us=bwd_floor, reference=ref_name,
                           reference_forward_us=ref_fwd_us, reference_backward_us=ref_bwd_us)
                rows.append(row)
                print(f'{shape:8} {batch:5d} {dtype_name:5} {fwd:8.1f} {fwd_floor:6.1f} {fwd / fwd_floor:5.1f} '
                      f'{ref_fwd_us:8.1f} {bwd:8.1f} {bwd_floor:6.1f} {bwd / bwd_floor:5.1f} {ref_bwd_us:8.1f}  '
                      f"{ref_name}; {'; '.join(verdicts)}", flush=True)
                del value, locations, weights, out, grad_out, ref_fwd, ref_bwd
    by_key = {(r['shape'], r['batch'], r['dtype']): r for r in rows}
    for shape in ('encoder', 'decoder'):
        for dtype_name in ('fp32', 'bf16', 'fp16'):
            one, eight = by_key[(shape, 1, dtype_name)], by_key[(shape, 8, dtype_name)]
            scaling = [f"{p} {eight[p + '_us'] / one[p + '_us']:.1f}x" for p in ('forward', 'backward')]
            verdict = 'met' if all(eight[p + '_us'] <= 8 * one[p + '_us'] for p in ('forward', 'backward')) \
                else 'MISSED'
            half = '' if dtype_name == 'fp32' else (
                f"; 16-bit backward <= fp32's ({by_key[(shape, 8, 'fp32')]['backward_us']:.0f} us at batch 8): "
                f"{'met' if eight['backward_us'] <= by_key[(shape, 8, 'fp32')]['backward_us'] else 'MISSED'}")
            judged = f' (<= 8x: {verdict}){half}' if levels == LEVELS else ''
            print(f"{shape} {dtype_name}: batch 8 / batch 1 = {', '.join(scaling)}{judged}")
    return rows


def parse_levels(text):
    """'100x167,50x84' -> ((100, 167), (50, 84))."""
    try:
        levels = tuple(tuple(int(size) for size in level.split('x')) for level in text.split(','))
    except ValueError:
        levels = ()
    if not levels or any(len(level) != 2 or min(level) < 1 for level in levels):
        raise argparse.ArgumentTypeError(f'expected levels as HxW,HxW,... of positive sizes, got {text!r}')
    return levels


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument('--dtype', choices=['fp32', 'bf16', 'fp16'], default='fp32')
    parser.add_argument('--threads', type=int, default=2, help='CPU threads (torch.set_num_threads)')
    parser.add_argument('--repeat', type=int, default=5, help='timed runs per measurement (median reported)')
    parser.add_argument('--levels', type=parse_levels, default=LEVELS,
                        help='H x W of each level, e.g. 8x12,4x6 (default: the 800x1333 encoder\'s, which the targets '
                        'are for; other levels get no verdicts)')
    parser.add_argument('--json', help='also write the results to this file')
    args = parser.parse_args()
    at_default_levels = args.levels == LEVELS

    import torch
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA device is available')
    from mmddetr.ops import extension_status
    machine = torch.cuda.get_device_name() if args.device == 'cuda' else f'CPU, {args.threads} threads'
    levels = ', '.join(f'{height}x{width}' for height, width in args.levels)
    print(f'mmddetr op: {extension_status()}; torch {torch.__version__}; {machine}; {args.dtype}; levels {levels}',
          flush=True)

    rows = []
    context = multiprocessing.get_context('spawn')
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context, max_tasks_per_child=1) as pool:
        for shape in ('encoder', 'decoder') if args.device == 'cpu' or _has_mmcv_cuda() else ():
            for mode in ('forward', 'forward+backward'):
                result = {impl: pool.submit(measure, impl, shape, mode, args.device, args.dtype, args.threads,
                                            args.repeat, args.levels).result() for impl in ('ours', 'mmcv')}
                rows.append(dict(shape=shape, mode=mode, **{f'{impl}_{key}': value for impl in result
                                                           for key, value in result[impl].items()}))

    if not rows:
        print('mmcv with CUDA ops is not installed: no ours-vs-mmcv table (the kernel table uses grid_sample)')
    header = (f"{'shape':8} {'pass':17} {'ours ms':>9} {'mmcv ms':>9} {'speed-up':>9} {'ours MB':>9} "
              f"{'mmcv MB':>9} {'mem ratio':>9}  target")
    print(header)
    print('-' * len(header))
    for row in rows:
        speedup = row['mmcv_seconds'] / row['ours_seconds']
        mem_ratio = row['ours_peak_mb'] / max(row['mmcv_peak_mb'], 1e-9)
        target = TARGETS.get((args.device, row['shape'], row['mode'])) if at_default_levels else None
        verdict = '' if target is None else f"speed-up >= {target:g}x: {'met' if speedup >= target else 'MISSED'}"
        if args.device == 'cpu' and row['mode'] == 'forward+backward' and at_default_levels:
            verdict += f"; memory <= {CPU_MEMORY_TARGET}x: {'met' if mem_ratio <= CPU_MEMORY_TARGET else 'MISSED'}"
        print(f"{row['shape']:8} {row['mode']:17} {row['ours_seconds'] * 1e3:9.1f} {row['mmcv_seconds'] * 1e3:9.1f} "
              f"{speedup:8.1f}x {row['ours_peak_mb']:9.1f} {row['mmcv_peak_mb']:9.1f} {mem_ratio:9.2f}  {verdict}")
        row.update(speedup=speedup, memory_ratio=mem_ratio)
    kernel_rows = cuda_kernel_table(30, args.levels) if args.device == 'cuda' else []
    if args.json:
        with open(args.json, 'w') as file:
            json.dump(dict(machine=machine, dtype=args.dtype, levels=args.levels, rows=rows,
                           cuda_kernel_rows=kernel_rows), file, indent=2)


if __name__ == '__main__':
    main()
