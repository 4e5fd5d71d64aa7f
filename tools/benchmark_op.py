"""Benchmark of mmddetr's multi-scale deformable attention op against mmcv's, measured in the same run.

CPU: ours vs ``mmcv.ops.multi_scale_deformable_attn_pytorch`` (what mmdet runs on CPU). CUDA: ours vs mmcv's CUDA
kernel (``MultiScaleDeformableAttnFunction``). Shapes: the 800x1333 encoder (levels 100x167, 50x84, 25x42, 13x21 =
22,223 queries and keys) and the decoder (300 queries), 8 heads x 32 channels, 4 points, sampling locations spread
around each query's reference point as a trained model's are. Every measurement runs in a fresh process, so peak
memory is that of the op alone (CPU: peak resident set size; CUDA: peak allocated memory), above its inputs.

    python tools/benchmark_op.py [--device cpu|cuda] [--dtype fp32|bf16|fp16] [--threads 2] [--repeat 5]
"""
import argparse
import concurrent.futures
import json
import multiprocessing
import time

LEVELS = ((100, 167), (50, 84), (25, 42), (13, 21))
HEADS, DIMS, POINTS = 8, 32, 4
TARGETS = {  # (device, shape, mode): minimum speed-up over mmcv, from the foundation issue
    ('cpu', 'encoder', 'forward'): 8.0, ('cpu', 'encoder', 'forward+backward'): 8.0,
    ('cpu', 'decoder', 'forward'): 3.0, ('cpu', 'decoder', 'forward+backward'): 3.0,
    ('cuda', 'encoder', 'forward'): 2.0, ('cuda', 'encoder', 'forward+backward'): 2.0,
}
CPU_MEMORY_TARGET = 0.5  # ours / mmcv peak memory of forward+backward


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
    import torch
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


def _peak_rss_bytes():
    with open('/proc/self/status') as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith('VmHWM'))


def _reset_peak_rss():
    with open('/proc/self/clear_refs', 'w') as clear_refs:
        clear_refs.write('5')


def peak_memory_bytes(step, device):
    """Peak memory one call of ``step()`` adds: CUDA peak allocated, or CPU peak resident set size."""
    import torch
    if device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step()
        return torch.cuda.max_memory_allocated() - base
    _reset_peak_rss()
    base = _peak_rss_bytes()
    step()
    return _peak_rss_bytes() - base


def measure(impl, shape, mode, device, dtype_name, threads, repeat):
    """Median time and peak memory of one (implementation, shape, mode), in this (fresh) process."""
    import torch
    torch.set_num_threads(threads)
    dtype = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}[dtype_name]
    inputs = make_inputs(shape, device, dtype)
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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument('--dtype', choices=['fp32', 'bf16', 'fp16'], default='fp32')
    parser.add_argument('--threads', type=int, default=2, help='CPU threads (torch.set_num_threads)')
    parser.add_argument('--repeat', type=int, default=5, help='timed runs per measurement (median reported)')
    parser.add_argument('--json', help='also write the results to this file')
    args = parser.parse_args()

    import torch
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA device is available')
    from mmddetr.ops import extension_status
    machine = torch.cuda.get_device_name() if args.device == 'cuda' else f'CPU, {args.threads} threads'
    print(f'mmddetr op: {extension_status()}; torch {torch.__version__}; {machine}; {args.dtype}', flush=True)

    rows = []
    context = multiprocessing.get_context('spawn')
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context, max_tasks_per_child=1) as pool:
        for shape in ('encoder', 'decoder'):
            for mode in ('forward', 'forward+backward'):
                result = {impl: pool.submit(measure, impl, shape, mode, args.device, args.dtype, args.threads,
                                            args.repeat).result() for impl in ('ours', 'mmcv')}
                rows.append(dict(shape=shape, mode=mode, **{f'{impl}_{key}': value for impl in result
                                                           for key, value in result[impl].items()}))

    header = (f"{'shape':8} {'pass':17} {'ours ms':>9} {'mmcv ms':>9} {'speed-up':>9} {'ours MB':>9} "
              f"{'mmcv MB':>9} {'mem ratio':>9}  target")
    print(header)
    print('-' * len(header))
    for row in rows:
        speedup = row['mmcv_seconds'] / row['ours_seconds']
        mem_ratio = row['ours_peak_mb'] / max(row['mmcv_peak_mb'], 1e-9)
        target = TARGETS.get((args.device, row['shape'], row['mode']))
        verdict = '' if target is None else f"speed-up >= {target:g}x: {'met' if speedup >= target else 'MISSED'}"
        if args.device == 'cpu' and row['mode'] == 'forward+backward':
            verdict += f"; memory <= {CPU_MEMORY_TARGET}x: {'met' if mem_ratio <= CPU_MEMORY_TARGET else 'MISSED'}"
        print(f"{row['shape']:8} {row['mode']:17} {row['ours_seconds'] * 1e3:9.1f} {row['mmcv_seconds'] * 1e3:9.1f} "
              f"{speedup:8.1f}x {row['ours_peak_mb']:9.1f} {row['mmcv_peak_mb']:9.1f} {mem_ratio:9.2f}  {verdict}")
        row.update(speedup=speedup, memory_ratio=mem_ratio)
    if args.json:
        with open(args.json, 'w') as file:
            json.dump(dict(machine=machine, dtype=args.dtype, rows=rows), file, indent=2)


if __name__ == '__main__':
    main()
