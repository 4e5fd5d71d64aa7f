"""The paper's training claims in miniature on the toy data: runs the runs, then writes the page (docs/paper_training.md).

    python tools/paper_tables.py [--work-dir work_dirs/paper_tables] [--out docs/paper_training.md] [--images 1200]
                                 [--detr-images N] [--val-every 1200] [--seeds 0 1] [--only MODEL ...] [--no-train]
                                 [--quick]

Table 1's convergence (mmdet's DETR against our single-scale, multi-scale, + refinement and ++ two-stage toy
Deformable DETR) and Table 2's ablations (K = 1, an FPN), every model on every seed for ``--images`` training images
(DETR for ``--detr-images``, by default 10x as many: the paper's claim), with a validation every ``--val-every``
images; the models are those of mmddetr/paper.py. Each run trains in its own work dir under ``--work-dir``
(``<model>_seed<S>_<N>img``); a finished run is never trained again, an unfinished one resumes from its newest
checkpoint. ``--only``: only these models' runs (the page shows every run already there); ``--no-train``: only write the
page. The page (``--out``, with ``<out stem>_curves.png`` beside it) holds the tables next to the paper's figures, what
agrees and what does not, the learning curves, every run with its machine and time, and the commands; it is rewritten
after every run. The tool rewrites only a page it wrote itself (its first line says so): any other file at ``--out``
or at the PNG's path stops it before it trains. ``--quick``: a tiny toy dataset made under the work dir, 1 + 1 layers,
8 images per run (12 for DETR), a validation every 4; by default in work_dirs/paper_tables_quick, with the page there.
"""
import argparse
import os.path as osp
import shlex
import sys
import time

from mmddetr.engine import first_line
from mmddetr.paper import (MODELS, QUICK_BUDGET, QUICK_DATA, Budget, Results, check_outputs, log_command,
                           planned_runs, quick_options, run_dir, train, write_page)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--work-dir', help='root of the runs\' work dirs (default: work_dirs/paper_tables, '
                        'work_dirs/paper_tables_quick with --quick)')
    parser.add_argument('--out', help='the page (default: docs/paper_training.md; with --quick, in the work dir)')
    parser.add_argument('--images', type=int, help='training images per Deformable DETR run (default 1200)')
    parser.add_argument('--detr-images', type=int, help='training images per DETR run (default 10x --images)')
    parser.add_argument('--val-every', type=int, help='training images between validations (default 1200)')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1], help='seeds of every model (default 0 1)')
    parser.add_argument('--only', nargs='+', choices=list(MODELS), metavar='MODEL',
                        help=f'train only these models\' runs: {", ".join(MODELS)}')
    parser.add_argument('--no-train', action='store_true', help='train nothing, only write the page')
    parser.add_argument('--quick', action='store_true', help='tiny data and budgets (what the tests run)')
    args = parser.parse_args(argv)
    defaults = QUICK_BUDGET if args.quick else dict(images=1200, val_every=1200)
    args.images = defaults['images'] if args.images is None else args.images
    if args.detr_images is None:
        args.detr_images = defaults.get('detr_images', 10 * args.images)
    args.val_every = defaults['val_every'] if args.val_every is None else args.val_every
    for name in ('images', 'detr_images', 'val_every'):
        if getattr(args, name) <= 0:
            parser.error(f'--{name.replace("_", "-")}: expected a positive number of images, got {getattr(args, name)}')
    if min(args.seeds) < 0 or len(set(args.seeds)) < len(args.seeds):
        parser.error(f'--seeds: expected distinct seeds >= 0, got {" ".join(map(str, args.seeds))}')
    args.work_dir = args.work_dir or ('work_dirs/paper_tables_quick' if args.quick else 'work_dirs/paper_tables')
    args.out = args.out or (osp.join(args.work_dir, 'paper_training.md') if args.quick else 'docs/paper_training.md')
    try:
        args.png = check_outputs(args.out)
    except ValueError as e:
        parser.error(str(e))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    commands = log_command(args.work_dir, shlex.join(['python', 'tools/paper_tables.py',
                                                      *(sys.argv[1:] if argv is None else argv)]))
    options = {}
    if args.quick:
        from mmddetr.datasets import make_toy_dataset
        data_root = osp.join(args.work_dir, 'quick_toy') + '/'
        make_toy_dataset(data_root, **QUICK_DATA)
        options = quick_options(data_root)
    budget = Budget(args.images, args.detr_images, args.val_every, tuple(args.seeds))
    runs = planned_runs(args.only or list(MODELS), budget)
    failed = []
    for i, (model, seed, images) in enumerate(runs, 1):
        work_dir = run_dir(args.work_dir, model.key, seed, images)
        name = f'[{i}/{len(runs)}] {osp.basename(work_dir)}'
        if osp.exists(osp.join(work_dir, 'result.json')):
            print(f'paper_tables: {name}: finished earlier, skipped', flush=True)
            continue
        if args.no_train:
            print(f'paper_tables: {name}: not finished, not trained (--no-train)', flush=True)
            continue
        print(f'paper_tables: {name}: training {images:,} images ({model.config})', flush=True)
        start = time.perf_counter()
        try:
            resumed = train(model, seed, images, args.val_every, work_dir, options)
        except Exception as e:  # one failed run stops neither the others nor the page
            failed.append(name)
            print(f'paper_tables: {name}: failed: {first_line(e)}', flush=True)
            continue
        print(f'paper_tables: {name}: finished in {(time.perf_counter() - start) / 60:.1f} min'
              + (f' (resumed from {resumed})' if resumed else ''), flush=True)
        write_page(Results(args.work_dir, budget), args.out, args.png, commands, args.quick)
    write_page(Results(args.work_dir, budget), args.out, args.png, commands, args.quick)
    print(f'paper_tables: wrote {args.out} and {args.png}')
    if failed:
        print(f'paper_tables: {len(failed)} runs failed: {", ".join(failed)}; run the same command again to resume '
              f'them', file=sys.stderr)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
