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
                                    [--compile] [--passes inference 'train step' 'toy train step' onnxruntime
                                    openvino]
                                    [--json FILE] [--model deformable-detr|dino|ddq-detr]

Rows: inference at 800x1333 (batch 1; and batch 4 on CUDA) and one training step (forward, loss, backward) at
512x672 on CPU, 800x1333 on CUDA (batch 2, as the configs' per-GPU batch); and the toy training step (the README's
main: configs/toy/deformable_detr_r18_toy_refine_twostage.py at its training batch and image size) with each one's
classes (mmdet's: a DeformableDETR subclass whose proposal embedding follows the embed dims, given to the config as a
class, registered nowhere), the step the toy learning target compares; for DINO, configs/toy/dino_r18_toy.py as mmdet's
DINO (mmcv's attention) and as ours. The builds and the timing harness: mmddetr/benchmark.py.

``--passes onnxruntime`` (CPU, fp32, --model deformable-detr): our detector exported to ONNX (tools/export_onnx.py's
path, traced on a small batch) in ONNX Runtime against our eager PyTorch, inference at 800x1333, batch 1, the same
threads, the two taking turns as above; ONNX Runtime's predictions are checked against eager first. It also reports what
the deformable attention costs in each: its share of a profiled run (ONNX Runtime: the nodes our op became; torch: the
compiled op) times the median time. ``--passes openvino``: the same row with OpenVINO beside ONNX Runtime (all three in
turns, one exported file serving both runtimes, each one's predictions checked against eager first; OpenVINO in
float32, its op share not reported: it renames the nodes it fuses and decomposes).
"""
import argparse
import json

from mmddetr.benchmark import RUNTIMES, check_equal, measure, mmdet_config_path, rows_of

# --model: our config (None: mmdet's config on our attention), mmdet's (under its .mim/configs), our toy config (None:
# no toy row), and the issues' targets: the least speed-up over mmdet per (device, pass)
DETECTORS = {
    'deformable-detr': dict(
        ours='configs/deformable_detr_r50_refine_twostage.py',
        mmdet='deformable_detr/deformable-detr-refine-twostage_r50_16xb2-50e_coco.py',
        toy='configs/toy/deformable_detr_r18_toy_refine_twostage.py',
        targets={('cpu', 'inference'): 2.5, ('cpu', 'train step'): 2.0, ('cuda', 'inference'): 1.5,
                 ('cuda', 'train step'): 1.5}),
    'dino': dict(ours='configs/dino/dino_4scale_r50_12e.py', mmdet='dino/dino-4scale_r50_8xb2-12e_coco.py',
                 toy='configs/toy/dino_r18_toy.py', targets={('cpu', 'inference'): 2.5, ('cpu', 'train step'): 2.0}),
    'ddq-detr': dict(ours=None, mmdet='ddq/ddq-detr-4scale_r50_8xb2-12e_coco.py', toy=None, targets={}),
}
ONNXRUNTIME_TARGET = 1.5  # ONNX Runtime's time at most this many times our eager time
RUNTIME_NAMES = {'onnxruntime': 'ONNX Runtime', 'openvino': 'OpenVINO'}
PAPER_V100_FPS = (15.0, 19.4)  # paper: two-stage R50 on a V100 at batch 1 and 4


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
    parser.add_argument('--passes', nargs='+', choices=passes + list(RUNTIMES), default=passes,
                        help='which rows to run (onnxruntime: ours in ONNX Runtime against eager, CPU fp32; openvino: '
                        'in ONNX Runtime and OpenVINO against eager)')
    parser.add_argument('--json', help='write the rows to this file')
    parser.add_argument('--model', choices=list(DETECTORS), default='deformable-detr',
                        help='the detector: our Deformable DETR, or mmdet\'s DINO / DDQ-DETR on our attention')
    args = parser.parse_args()
    # --passes onnxruntime: eager against ONNX Runtime; openvino: against ONNX Runtime and OpenVINO
    runtimes = [r for r in RUNTIMES if r in args.passes or 'openvino' in args.passes]
    if runtimes and (args.device, args.dtype) != ('cpu', 'fp32'):
        parser.error(f'--passes {runtimes[-1]} runs on --device cpu in --dtype fp32')
    if runtimes and args.model != 'deformable-detr':
        parser.error(f'--passes {runtimes[-1]} exports our Deformable DETR: --model deformable-detr')
    detector = DETECTORS[args.model]
    configs = (detector['ours'], mmdet_config_path(detector['mmdet']))
    rows = rows_of(args.device, detector['toy'], args.passes)
    report = []
    if rows:
        check_equal(configs, args.device)
        print(f'{args.model}: device {args.device}, {args.dtype}, {args.threads} threads; predictions of both equal '
              '(1e-4)')
        print('| pass | batch | size | ours s | mmdet s | speed-up | target | ours peak MB | mmdet peak MB | '
              'params | GFLOPs | img/s ours |')
        print('|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
    for mode, batch, size in rows:
        # the toy row: the toy config built with mmdet's classes and with ours
        pair = (detector['toy'], None) if mode == 'toy train step' else configs
        variants = [('ours', False), ('mmdet', False)] + [('ours', True)] * args.compile
        results = measure(variants, pair, mode, batch, size, args.device, args.dtype, args.threads, args.repeat)
        ours, theirs = results[('ours', False)], results[('mmdet', False)]
        speedup = theirs['seconds'] / ours['seconds']
        target = detector['targets'].get((args.device, mode))
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
    if runtimes:
        mode, batch, size = 'runtime inference', 1, (800, 1333)
        results = measure([('ours', False)] + [(r, False) for r in runtimes], configs, mode, batch, size, 'cpu',
                          'fp32', args.threads, args.repeat)
        eager, onnx = results[('ours', False)], results[('onnxruntime', False)]
        ratios = {r: results[(r, False)]['seconds'] / eager['seconds'] for r in runtimes}
        row = dict(mode=mode, batch=batch, size=size, ours=eager, onnxruntime=onnx, ratio=ratios['onnxruntime'],
                   target=ONNXRUNTIME_TARGET)
        for r in runtimes[1:]:
            row.update({r: results[(r, False)], f'{r}_ratio': ratios[r]})
        report.append(row)
        print(f'\ncpu, fp32, {args.threads} threads; {" and ".join(RUNTIME_NAMES[r] for r in runtimes)}: predictions '
              'equal eager\'s (1e-4)')
        print('| pass | batch | size | eager s | ONNX Runtime s | ONNX Runtime / eager | target | ' +
              ''.join(f'{RUNTIME_NAMES[r]} s | {RUNTIME_NAMES[r]} / eager | ' for r in runtimes[1:]) +
              'deformable attention s (share), eager / ONNX Runtime |')
        print('|---|---:|---|---:|---:|---:|---:|' + '---:|---:|' * len(runtimes[1:]) + '---:|')
        verdict = f'at most {ONNXRUNTIME_TARGET}x {"met" if row["ratio"] <= ONNXRUNTIME_TARGET else "NOT met"}'
        cells = ''.join(f'{results[(r, False)]["seconds"]:.2f} | {ratios[r]:.2f}x | ' for r in runtimes[1:])
        print(f'| {mode} | {batch} | {size[0]}x{size[1]} | {eager["seconds"]:.2f} | {onnx["seconds"]:.2f} | '
              f'{row["ratio"]:.2f}x | {verdict} | {cells}{eager["op_share"] * eager["seconds"]:.2f} '
              f'({eager["op_share"]:.0%}) / {onnx["op_share"] * onnx["seconds"]:.2f} ({onnx["op_share"]:.0%}) |')
    if any(mode == 'toy train step' for mode, _, _ in rows):
        from mmengine.config import Config
        classes = Config.fromfile(detector['toy']).model.bbox_head.num_classes
        built = "mmdet's classes and ours" if args.model == 'deformable-detr' else "mmcv's attention and ours"
        print(f'toy train step: {detector["toy"]} built with {built} ({classes} classes, 6 boxes per image)')
    if args.device == 'cuda':
        print(f'paper, V100: {PAPER_V100_FPS[0]:.1f} FPS at batch 1, {PAPER_V100_FPS[1]:.1f} at batch 4 (two-stage, '
              'R50)')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=1)


if __name__ == '__main__':
    main()
