"""Detect objects in images with a config and checkpoint; write a JSON of boxes and PNGs with boxes and names.

    python tools/infer.py CONFIG CHECKPOINT IMAGES... --out-dir DIR [--score-thr 0.3] [--device cpu]
                          [--show-sampling-points] [--top-k 3]
    python tools/infer.py CONFIG MODEL.onnx IMAGES... --out-dir DIR --backend onnxruntime|openvino [--score-thr 0.3]

IMAGES are files, folders (their .jpg/.jpeg/.png/.bmp files) or globs. ``DIR/predictions.json`` holds, per image,
the boxes (x1, y1, x2, y2 in pixels of the original image), scores and class names above ``--score-thr``;
``DIR/<image>.png`` draws them. ``--show-sampling-points`` also writes ``DIR/<image>_sampling_points.png``: for the
``--top-k`` detections, the points the last decoder layer's deformable cross-attention sampled, one panel per
feature level, coloured by attention weight.

``--backend onnxruntime`` (``openvino``) runs a model written by ``tools/export_onnx.py`` in ONNX Runtime (OpenVINO) on
the CPU instead: the same test pipeline and data preprocessing (from CONFIG), the same outputs (class names from the
model's metadata).
"""
import argparse
import glob
import json
import os
import os.path as osp
import sys
from contextlib import nullcontext
from typing import Dict, List

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import mmcv  # noqa: E402
import torch  # noqa: E402
from mmcv.transforms import Compose  # noqa: E402
from mmdet.visualization import DetLocalVisualizer  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.dataset import pseudo_collate  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

from mmddetr.engine import CheckpointError, first_line, load_detector  # noqa: E402
from mmddetr.export.runtime_detector import RUNTIME_DETECTORS, build_runtime_detector  # noqa: E402
from mmddetr.models.layers import SamplingPointRecorder  # noqa: E402

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp')


def collect_images(specs: List[str]) -> List[str]:
    """Files, folders and globs → sorted image paths; a spec that names nothing is an error."""
    paths = []
    for spec in specs:
        if osp.isdir(spec):
            found = [osp.join(spec, f) for f in sorted(os.listdir(spec)) if f.lower().endswith(IMAGE_EXTENSIONS)]
        elif osp.isfile(spec):
            found = [spec]
        else:
            found = sorted(p for p in glob.glob(spec) if p.lower().endswith(IMAGE_EXTENSIONS))
        if not found:
            raise FileNotFoundError(f'IMAGES: {spec!r} is no image file, folder with images, or glob matching any')
        paths += found
    return paths


def load(pipeline: Compose, path: str):
    """The test pipeline's output and the RGB image of one file; ``ValueError`` naming the file if it cannot be
    decoded (not an image, truncated)."""
    try:
        data = pipeline(dict(img_path=path, img_id=0))
        image = mmcv.imread(path, channel_order='rgb')
    except Exception as e:  # decoders raise OSError, cv2.error, ValueError... on damaged files
        raise ValueError(f'image {path}: cannot be read ({first_line(e)})') from e
    if data is None or image is None:
        raise ValueError(f'image {path}: cannot be read (not a decodable image)')
    return data, image


def predict(model, data: dict):
    """The PyTorch detector on one image (the pipeline's output): its predictions, boxes in the original image, with
    the ``queries`` they come from, and its data sample."""
    with torch.no_grad():
        sample = model.test_step(pseudo_collate([data]))[0]
    return sample.pred_instances, sample


def draw_sampling_points(image, sample, results, points, classes, top_k: int, out_file: str) -> None:
    """One panel per level: the top detections' boxes and the points their queries sampled (``points``, of
    :class:`SamplingPointRecorder`), coloured by attention weight."""
    shapes = points.spatial_shapes.tolist()
    pad_h, pad_w = sample.batch_input_shape
    scale_w, scale_h = sample.scale_factor
    fig, axes = plt.subplots(1, len(shapes), figsize=(4.2 * len(shapes), 4.4), squeeze=False)
    for lvl, ax in enumerate(axes[0]):
        ax.imshow(image)
        ax.set_title(f'level {lvl} ({shapes[lvl][0]}x{shapes[lvl][1]})')
        ax.axis('off')
        for det in range(min(top_k, len(results))):
            x1, y1, x2, y2 = results.bboxes[det].tolist()
            ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color='white', lw=1.5))
            ax.text(x1, y1, f'{classes[int(results.labels[det])]} {float(results.scores[det]):.2f}', color='white',
                    fontsize=7, va='bottom')
            q = int(results.queries[det])
            loc = points.locations[0, q, :, lvl].reshape(-1, 2)  # (heads * points, 2) normalised
            w = points.weights[0, q, :, lvl].reshape(-1)  # (heads * points,)
            xs = loc[:, 0] * pad_w / scale_w
            ys = loc[:, 1] * pad_h / scale_h
            dots = ax.scatter(xs, ys, c=w, cmap='plasma', vmin=0, vmax=float(points.weights[0, q].max()), s=14,
                              edgecolors='black', linewidths=0.3)
        ax.set_xlim(0, image.shape[1])
        ax.set_ylim(image.shape[0], 0)
    if len(results):
        fig.colorbar(dots, ax=axes[0].tolist(), fraction=0.02, label='attention weight (per head, sums to 1)')
    fig.savefig(out_file, dpi=100, bbox_inches='tight')
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('checkpoint', help='checkpoint, or with --backend onnxruntime or openvino the .onnx model')
    parser.add_argument('images', nargs='+', help='image files, folders or globs')
    parser.add_argument('--out-dir', required=True, help='folder for predictions.json and the PNGs')
    parser.add_argument('--score-thr', type=float, default=0.3, help='minimum score of a kept detection')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--backend', choices=['pytorch', *RUNTIME_DETECTORS], default='pytorch',
                        help='onnxruntime, openvino: run a model of tools/export_onnx.py in that runtime (CPU)')
    parser.add_argument('--show-sampling-points', action='store_true')
    parser.add_argument('--top-k', type=int, default=3, help='detections shown with --show-sampling-points')
    args = parser.parse_args(argv)
    onnx_backend = args.backend != 'pytorch'
    if onnx_backend and args.show_sampling_points:
        sys.exit('error: --show-sampling-points needs --backend pytorch (the ONNX model returns detections only)')
    if onnx_backend and args.device != 'cpu':
        sys.exit(f'error: --device: --backend {args.backend} runs on cpu, got {args.device}')
    try:
        images = collect_images(args.images)
    except FileNotFoundError as e:
        sys.exit(f'error: {e}')
    cfg = Config.fromfile(args.config)
    init_default_scope(cfg.get('default_scope', 'mmddetr'))  # the pipeline's and preprocessor's registry scope
    if onnx_backend:
        try:
            model = build_runtime_detector(args.backend, cfg, args.checkpoint)
        except ImportError as e:
            sys.exit(f'error: --backend {e}')
        except ValueError as e:
            sys.exit(f'error: {e}')
    else:
        try:
            model = load_detector(cfg, args.checkpoint, device=args.device)
        except CheckpointError as e:
            sys.exit(f'error: {e}')
    recorder = nullcontext()
    if args.show_sampling_points:
        try:
            recorder = SamplingPointRecorder(model.decoder)
        except TypeError as e:
            sys.exit(f'error: --show-sampling-points: {e}')
    classes = model.dataset_meta['classes']
    steps = [t for t in cfg.test_dataloader.dataset.pipeline if 'LoadAnnotations' not in t['type']]
    pipeline = Compose(steps)
    visualizer = DetLocalVisualizer()
    visualizer.dataset_meta = model.dataset_meta
    os.makedirs(args.out_dir, exist_ok=True)
    records: List[Dict] = []
    failed = []
    with recorder:
        for path in images:
            try:
                data, image = load(pipeline, path)
            except ValueError as e:
                failed.append(path)
                print(f'error: {e}', file=sys.stderr)
                continue
            results, sample = model.predict(data) if onnx_backend else predict(model, data)
            kept = results[results.scores >= args.score_thr]
            detections = [dict(bbox=[round(v, 2) for v in box.tolist()], score=round(float(s), 4), label=int(label),
                               class_name=classes[int(label)])
                          for box, s, label in zip(kept.bboxes, kept.scores, kept.labels)]
            records.append(dict(image=path, height=int(sample.ori_shape[0]), width=int(sample.ori_shape[1]),
                                detections=detections))
            name = osp.splitext(osp.basename(path))[0]
            sample.pred_instances = kept
            visualizer.add_datasample(name, image, sample, draw_gt=False, pred_score_thr=args.score_thr,
                                      out_file=osp.join(args.out_dir, f'{name}.png'))
            if args.show_sampling_points:
                if 'queries' not in kept:
                    sys.exit(f'error: --show-sampling-points: {type(model.bbox_head).__name__} does not give the '
                             'query of each detection (mmddetr.DeformableDETRHead does)')
                draw_sampling_points(image, sample, kept, recorder.points, classes, args.top_k,
                                     osp.join(args.out_dir, f'{name}_sampling_points.png'))
    with open(osp.join(args.out_dir, 'predictions.json'), 'w') as f:
        json.dump(records, f, indent=1)
    print(f'{len(records)} images, {sum(len(r["detections"]) for r in records)} detections: '
          f'{osp.join(args.out_dir, "predictions.json")}')
    if failed:
        sys.exit(f'error: {len(failed)} of {len(images)} images could not be read (listed above); the others were '
                 'predicted')


if __name__ == '__main__':
    main()
