"""The main job: train the toy detector on CPU for a number of training images, evaluate, draw, and say what next.

    python tools/toy_demo.py [--images 4800] [--minutes M] [--work-dir DIR] [--config CONFIG]

Makes the toy dataset (data/toy/, first run only), trains on ``--images`` training images (iterations = images /
batch size; the config's learning-rate drops move with the run's length, see :func:`mmddetr.engine.stretch_lr_drops`;
``--minutes`` optionally caps the training time) with a progress log and ETA, evaluates COCO mAP on the toy val set,
and writes into a new work dir: the checkpoint, ``ap_table.txt``, ``curves.png`` (loss and mAP), ``learning_curve.txt``
(val mAP against training images and minutes, and the toy learning targets: mAP >= 0.30 after 2,400 images, mAP >= 0.45
and AP50 >= 0.60 after 4,800) and ``predictions/*.png`` (ground truth left, predictions right). Ends with a one-screen
summary: the AP table, the paths it wrote and the next commands.
"""
import argparse
import os
import os.path as osp
import time

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import mmcv  # noqa: E402
import torch  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from mmddetr.engine import (TimeBudgetHook, build_runner, load_config, mmengine_checkpoint_loader,  # noqa: E402
                            read_scalars, set_training_images)

TOY = 'configs/toy/deformable_detr_r18_toy_refine_twostage.py'
# The toy learning targets: (training images seen, val mAP at least, val AP50 at least or None)
TARGETS = ((2400, 0.30, None), (4800, 0.45, 0.60))


def plot_curves(scalars_file: str, out_file: str) -> None:
    """Training loss and validation mAP against iterations, from mmengine's ``vis_data/scalars.json``."""
    records, val_records = read_scalars([scalars_file])
    train = [(record['iter'], record['loss']) for record in records if 'loss' in record]
    val = [(record['step'], record['coco/bbox_mAP'], record['coco/bbox_mAP_50']) for record in val_records
           if 'coco/bbox_mAP' in record]
    fig, (ax_loss, ax_map) = plt.subplots(1, 2, figsize=(11, 4))
    if train:
        ax_loss.plot(*zip(*train))
    ax_loss.set(xlabel='iteration', ylabel='training loss (all terms)', title='loss')
    if val:
        steps, maps, map50 = zip(*val)
        ax_map.plot(steps, maps, 'o-', label='mAP@[.5:.95]')
        ax_map.plot(steps, map50, 's--', label='mAP@.5')
        ax_map.legend()
    ax_map.set(xlabel='iteration', ylabel='COCO bbox mAP (toy val)', title='validation mAP', ylim=(0, 1))
    fig.tight_layout()
    fig.savefig(out_file, dpi=100)
    plt.close(fig)


def write_ap_table(metrics: dict, classes, out_file: str) -> str:
    """COCO summary and per-class AP as a text table."""
    rows = [('mAP@[.5:.95]', 'bbox_mAP'), ('mAP@.5', 'bbox_mAP_50'), ('mAP@.75', 'bbox_mAP_75'),
            ('mAP small', 'bbox_mAP_s'), ('mAP medium', 'bbox_mAP_m'), ('mAP large', 'bbox_mAP_l')]
    lines = [f'{"metric":<16}{"value":>8}']
    lines += [f'{name:<16}{metrics[f"coco/{key}"]:>8.3f}' for name, key in rows if f'coco/{key}' in metrics]
    lines += [f'AP {c:<13}{metrics[f"coco/{c}_precision"]:>8.3f}' for c in classes
              if f'coco/{c}_precision' in metrics]
    table = '\n'.join(lines) + '\n'
    with open(out_file, 'w') as f:
        f.write(table)
    return table


def learning_curve(history, batch_size: int, out_file: str, targets=TARGETS) -> str:
    """Val mAP and AP50 against training images and minutes, and each target judged at the last validation at or
    before its number of images (not judged when the run saw fewer images)."""
    nan = float('nan')
    rows = [(it * batch_size, it, minutes, m.get('coco/bbox_mAP', nan), m.get('coco/bbox_mAP_50', nan))
            for it, minutes, m in history]
    lines = [f'{"images":>7} {"iteration":>9} {"train min":>9} {"mAP":>6} {"AP50":>6}']
    lines += [f'{images:>7} {it:>9} {minutes:>9.1f} {m:>6.3f} {m50:>6.3f}' for images, it, minutes, m, m50 in rows]
    for images, min_map, min_map50 in targets:
        goal = f'mAP >= {min_map:.2f}' + (f', AP50 >= {min_map50:.2f}' if min_map50 is not None else '')
        seen = [row for row in rows if row[0] <= images]
        if not rows or rows[-1][0] < images or not seen:
            lines.append(f'target after {images:,} images ({goal}): not judged, trained '
                         f'{rows[-1][0] if rows else 0:,} images')
            continue
        at, _, minutes, m, m50 = seen[-1]
        met = m >= min_map and (min_map50 is None or m50 >= min_map50)
        lines.append(f'target after {images:,} images ({goal}): mAP {m:.3f}, AP50 {m50:.3f} at {at:,} images '
                     f'({minutes:.1f} min), {"met" if met else "NOT met"}')
    text = '\n'.join(lines) + '\n'
    with open(out_file, 'w') as f:
        f.write(text)
    return text


def draw_predictions(runner: Runner, out_dir: str, num_images: int = 4, score_thr: float = 0.3) -> None:
    """Ground truth (left) and predictions above ``score_thr`` (right) for the first val images."""
    os.makedirs(out_dir, exist_ok=True)
    visualizer = runner.visualizer
    visualizer.dataset_meta = runner.test_dataloader.dataset.metainfo
    runner.model.eval()
    drawn = 0
    for data in runner.test_dataloader:
        with torch.no_grad():
            samples = runner.model.test_step(data)
        for sample in samples:
            image = mmcv.imread(sample.img_path, channel_order='rgb')
            name = osp.splitext(osp.basename(sample.img_path))[0]
            visualizer.add_datasample(name, image, sample, draw_gt=True, draw_pred=True, pred_score_thr=score_thr,
                                      out_file=osp.join(out_dir, f'{name}.png'))
            drawn += 1
            if drawn == num_images:
                return


def evaluate_checkpoint(runner: Runner, checkpoint: str) -> dict:
    """COCO metrics on the test set of the checkpoint's weights, which stay in ``runner.model``: the averaged weights
    where a config has an ``EMAHook``. Loaded before ``runner.test()``, whose ``before_run`` rebuilds the hook's average
    from the model's weights of that moment."""
    with mmengine_checkpoint_loader():
        runner.load_checkpoint(checkpoint)
    return runner.test()


def parse_args(argv=None) -> argparse.Namespace:
    """The command line, with ``work_dir`` filled in (a new ``work_dirs/toy_demo_<time>`` by default)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--images', type=int, default=4800, help='training images to see (iterations = images / '
                        'batch size)')
    parser.add_argument('--minutes', type=float, help='optional cap on the training time')
    parser.add_argument('--config', default=TOY)
    parser.add_argument('--work-dir', help='new folder for the results (default: work_dirs/toy_demo_<time>)')
    args = parser.parse_args(argv)
    args.work_dir = args.work_dir or osp.join('work_dirs', time.strftime('toy_demo_%Y%m%d_%H%M%S'))
    if osp.exists(args.work_dir) and os.listdir(args.work_dir):
        parser.error(f'--work-dir {args.work_dir} is not empty; choose a new folder (nothing is overwritten)')
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    work_dir = args.work_dir
    cfg = load_config(args.config, work_dir=work_dir)
    batch_size = cfg.train_dataloader.batch_size
    set_training_images(cfg, args.images)
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [dict(type='TimeBudgetHook', minutes=args.minutes)]
    cfg.test_evaluator.classwise = True
    runner = build_runner(cfg)
    with mmengine_checkpoint_loader():  # a load_from of --config
        runner.train()
    budget = next(hook for hook in runner.hooks if isinstance(hook, TimeBudgetHook))
    curve = learning_curve(budget.history, batch_size, osp.join(work_dir, 'learning_curve.txt'))
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    metrics = evaluate_checkpoint(runner, checkpoint)
    # the paths printed below start with the work dir as given, relative or absolute
    checkpoint, logs = (osp.join(work_dir, osp.relpath(path, osp.abspath(work_dir)))
                        for path in (checkpoint, runner.log_dir))
    classes = runner.test_dataloader.dataset.metainfo['classes']
    table = write_ap_table(metrics, classes, osp.join(work_dir, 'ap_table.txt'))
    plot_curves(osp.join(runner.log_dir, 'vis_data', 'scalars.json'), osp.join(work_dir, 'curves.png'))
    draw_predictions(runner, osp.join(work_dir, 'predictions'))
    print(f'\nval mAP during training ({osp.join(work_dir, "learning_curve.txt")}):\n{curve}')
    print(f'COCO bbox AP on the toy val set after {runner.iter} iterations, {runner.iter * batch_size:,} images, '
          f'{budget.elapsed / 60:.1f} min of training:\n{table}')
    print(f'wrote:\n  checkpoint    {checkpoint}\n  AP table      {osp.join(work_dir, "ap_table.txt")}\n'
          f'  learning      {osp.join(work_dir, "learning_curve.txt")}\n'
          f'  curves        {osp.join(work_dir, "curves.png")}\n'
          f'  predictions   {osp.join(work_dir, "predictions")}/\n  logs          {logs}')
    print(f'next:\n  train longer       python tools/toy_demo.py --images {2 * args.images} --config {args.config}\n'
          f'  test a checkpoint  python tools/test.py {args.config} {checkpoint}\n'
          f'  infer on images    python tools/infer.py {args.config} {checkpoint} YOUR_IMAGES... '
          f'--out-dir {osp.join(work_dir, "infer")}')


if __name__ == '__main__':
    main()
