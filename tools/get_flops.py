"""Parameters and FLOPs of a detector, per module group (backbone, neck, encoder, decoder, head) and our op's part,
counted as mmdet 3.3.0's tools/analysis_tools/get_flops.py counts (mmengine's FlopAnalyzer: 1 FLOP per multiply-add)
with our op's handle added (mmddetr/analysis.py; mmdet's tool counts our op as 0).

    python tools/get_flops.py CONFIG [--shape H W] [--dc5] [--cfg-options KEY=VALUE ...]
    python tools/get_flops.py --table1 [--shape H W] [--time ROUNDS]

CONFIG: a config file, or one of mmdet's as ``mmdet::PATH`` (under mmdet's configs, e.g.
``mmdet::detr/detr_r50_8xb2-150e_coco.py``). ``--shape``: the image's (height, width) after the test pipeline's
resize (default 800 1333), one random image, random weights (no pretrained backbone). ``--dc5``: the backbone's last
stage dilated instead of strided (DETR's DC5; mmdet 3.3.0 ships no DC5 config).

``--table1``: the complexity columns of the paper's Table 1 (docs/paper.md): mmdet's DETR and DETR-DC5 and our four
R50 configs, with the paper's figures (the official repository's README table); ``--time ROUNDS``: also each one's
CPU inference time, the models taking turns in one process (median of ROUNDS after a warm-up).
"""
import argparse

from mmengine.config import DictAction

from mmddetr.analysis import build_model, complexity, format_complexity, load_config, time_models

MMDET_DETR = 'mmdet::detr/detr_r50_8xb2-150e_coco.py'
# Table 1: name, config, DC5, the paper's params (M), GFLOPs and V100 FPS at batch 1 (fundamentalvision/Deformable-DETR
# README's table, which adds the single-scale row)
TABLE1 = (('DETR (mmdet)', MMDET_DETR, False, 41, 86, 27.0),
          ('DETR-DC5 (mmdet, --dc5)', MMDET_DETR, True, 41, 187, 11.4),
          ('Deformable DETR single-scale', 'configs/deformable_detr_r50_single_scale.py', False, 34, 78, 27.0),
          ('Deformable DETR', 'configs/deformable_detr_r50.py', False, 40, 173, 15.0),
          ('+ iterative box refinement', 'configs/deformable_detr_r50_refine.py', False, 41, 173, 15.0),
          ('++ two-stage', 'configs/deformable_detr_r50_refine_twostage.py', False, 41, 173, 14.5))


def _table1(shape, rounds):
    models, rows = [], []
    for name, config, dc5, *paper in TABLE1:
        model = build_model(load_config(config, dc5))
        result = complexity(model, shape)
        total = result['total']
        rows.append((name, config + ' --dc5' * dc5, total, paper))
        models.append(model)
    seconds = time_models(models, shape, rounds) if rounds else [None] * len(models)
    print(f'input {shape[0]}x{shape[1]}, batch 1; GFLOPs: 1 multiply-add = 1 FLOP (mmengine/fvcore, as the paper)')
    print('| model | config | params | GFLOPs | ms_deform_attn GFLOPs | paper params | paper GFLOPs | GFLOPs / paper '
          '| CPU s | paper V100 FPS |')
    print('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|')
    for (name, config, total, (params, gflops, fps)), s in zip(rows, seconds):
        print(f'| {name} | {config} | {total["params"] / 1e6:.1f}M | {total["flops"] / 1e9:.1f} | '
              f'{total["op_flops"] / 1e9:.2f} | {params}M | {gflops} | {total["flops"] / 1e9 / gflops:.2f} | '
              f'{"-" if s is None else f"{s:.2f}"} | {fps} |')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', nargs='?', help='config file, or mmdet::PATH for one of mmdet\'s')
    parser.add_argument('--shape', type=int, nargs=2, default=[800, 1333], metavar=('H', 'W'),
                        help='input image height and width (default 800 1333)')
    parser.add_argument('--dc5', action='store_true', help='dilate the backbone\'s last stage (DETR\'s DC5)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings, key=value')
    parser.add_argument('--table1', action='store_true', help='the paper\'s Table 1 models instead of CONFIG')
    parser.add_argument('--time', type=int, default=0, metavar='ROUNDS',
                        help='with --table1: also time inference, ROUNDS rounds')
    args = parser.parse_args(argv)
    if (args.config is None) == (not args.table1):
        parser.error('give either CONFIG or --table1')
    if any(s <= 0 for s in args.shape):
        parser.error(f'--shape: expected a positive height and width, got {args.shape[0]} {args.shape[1]}')
    if args.time < 0:
        parser.error(f'--time: expected a positive number of rounds, got {args.time}')
    if args.time and not args.table1:
        parser.error('--time: times the --table1 models; give --table1')
    shape = tuple(args.shape)
    if args.table1:
        _table1(shape, args.time)
        return
    try:
        cfg = load_config(args.config, args.dc5, args.cfg_options)
    except FileNotFoundError as e:
        parser.error(f'config: {e.strerror}: {e.filename}')
    result = complexity(build_model(cfg), shape)
    print(format_complexity(args.config + ' --dc5' * args.dc5, result))


if __name__ == '__main__':
    main()
