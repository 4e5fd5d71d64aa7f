"""Detect objects in images with a config and checkpoint; write a JSON of boxes and PNGs with boxes and names.

    python tools/infer.py CONFIG CHECKPOINT IMAGES... --out-dir DIR [--score-thr 0.3] [--device cpu]
                          [--show-sampling-points] [--top-k 3]
    python tools/infer.py CONFIG MODEL.onnx IMAGES... --out-dir DIR --backend onnxruntime [--score-thr 0.3]

IMAGES are files, folders (their .jpg/.jpeg/.png/.bmp files) or globs. ``DIR/predictions.json`` holds, per image,
the boxes (x1, y1, x2, y2 in pixels of the original image), scores and class names above ``--score-thr``;
``DIR/<image>.png`` draws them. ``--show-sampling-points`` also writes ``DIR/<image>_sampling_points.png``: for the
``--top-k`` detections, the points the last decoder layer's deformable cross-attention sampled, one panel per
feature level, coloured by attention weight.

``--backend onnxruntime`` runs a model written by ``tools/export_onnx.py`` in ONNX Runtime on the CPU instead: the
same test pipeline and data preprocessing (from CONFIG), the same outputs (class names from the model's metadata).
"""
import argparse
import glob
import json
import os
import os.path as osp
import sys
from typing import Dict, List

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import mmcv  # noqa: E402
import torch  # noqa: E402
from mmcv.transforms import Compose  # noqa: E402
from mmdet.apis import init_detector  # noqa: E402
from mmdet.visualization import DetLocalVisualizer  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.dataset import pseudo_collate  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmengine.structures import InstanceData  # noqa: E402

from mmddetr.engine import CheckpointError, check_checkpoint_weights, read_checkpoint  # noqa: E402
from mmddetr.models import DeformableDETRHead  # noqa: E402
from mmddetr.models.detectors.utils import data_preprocessor_cfg  # noqa: E402
from mmddetr.registry import MODELS  # noqa: E402

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


class LastLayerSampling:
    """Records the sampling locations and weights of the last decoder layer's cross-attention."""

    def __init__(self, model: torch.nn.Module) -> None:
        attn = model.decoder.layers[-1].cross_attn
        if not hasattr(attn, 'sampling_points'):
            raise TypeError(f'--show-sampling-points needs mmddetr.MultiScaleDeformableAttention as the decoder '
                            f'cross-attention, got {type(attn).__name__}')
        self.attn, self.record = attn, {}
        self.handle = attn.register_forward_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs, output) -> None:
        query = kwargs['query'] + kwargs['query_pos']
        locations, weights = module.sampling_points(query, kwargs['reference_points'], kwargs['spatial_shapes'])
        # on the CPU, where matplotlib draws them, whatever device the model runs on
        self.record = dict(locations=locations.detach().cpu(), weights=weights.detach().cpu(),
                           spatial_shapes=kwargs['spatial_shapes'].cpu())


def load(pipeline: Compose, path: str):
    """The test pipeline's output and the RGB image of one file; ``ValueError`` naming the file if it cannot be
    decoded (not an image, truncated)."""
    try:
        data = pipeline(dict(img_path=path, img_id=0))
        image = mmcv.imread(path, channel_order='rgb')
    except Exception as e:  # decoders raise OSError, cv2.error, ValueError... on damaged files
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f'image {path}: cannot be read ({reason})') from e
    if data is None or image is None:
        raise ValueError(f'image {path}: cannot be read (not a decodable image)')
    return data, image


def predict(model, data: dict):
    """Predictions of one image (the pipeline's output), and the query index of each (for the sampling-point view)."""
    data = model.data_preprocessor(pseudo_collate([data]), False)
    inputs, samples = data['inputs'], data['data_samples']
    with torch.no_grad():
        head_inputs = model.forward_transformer(model.extract_feat(inputs), samples)
        results = model.bbox_head.predict(**head_inputs, batch_data_samples=samples, rescale=True)[0]
        logits, _ = model.bbox_head.forward_last_layer(head_inputs['hidden_states'], head_inputs['references'])
    num_classes = logits.shape[-1]
    order = logits[0].sigmoid().flatten().topk(len(results))[1]  # the head's own top-k over queries x classes
    return results, order // num_classes, samples[0]


class OnnxRuntimeModel:
    """An ONNX model of ``tools/export_onnx.py`` in ONNX Runtime, with the config's data preprocessor (built in the
    default scope)."""

    def __init__(self, cfg: Config, path: str) -> None:
        from mmddetr.export.onnx import dataset_meta_of, session
        try:
            self.session = session(path)
            self.dataset_meta = dataset_meta_of(path)
        except KeyError:
            raise ValueError(f'model {path}: no dataset_meta in its metadata; export it with '
                             'tools/export_onnx.py') from None
        except Exception as e:  # ONNX Runtime and onnx raise their own errors for files they cannot read
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(f'model {path}: cannot be loaded by ONNX Runtime ({reason})') from e
        self.data_preprocessor = MODELS.build(data_preprocessor_cfg(cfg.model.data_preprocessor))

    def predict(self, data: dict):
        """Predictions of one image (the pipeline's output), boxes in the original image, as :func:`predict`."""
        from mmddetr.export.onnx import run_session
        data = self.data_preprocessor(pseudo_collate([data]), False)
        inputs, sample = data['inputs'], data['data_samples'][0]
        valid_sizes = torch.tensor([sample.img_shape[:2]])
        scores, labels, boxes = (torch.from_numpy(a[0]) for a in run_session(self.session, inputs, valid_sizes))
        return InstanceData(scores=scores, labels=labels,
                            bboxes=DeformableDETRHead.boxes_to_original(boxes, sample.scale_factor)), sample


def draw_sampling_points(image, sample, results, queries, record, classes, top_k: int, out_file: str) -> None:
    """One panel per level: the top detections' boxes and their sampled points, coloured by attention weight."""
    shapes = record['spatial_shapes'].tolist()
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
            q = int(queries[det])
            loc = record['locations'][0, q, :, lvl].reshape(-1, 2)  # (heads * points, 2) normalised
            w = record['weights'][0, q, :, lvl].reshape(-1)  # (heads * points,)
            xs = loc[:, 0] * pad_w / scale_w
            ys = loc[:, 1] * pad_h / scale_h
            points = ax.scatter(xs, ys, c=w, cmap='plasma', vmin=0, vmax=float(record['weights'][0, q].max()),
                                s=14, edgecolors='black', linewidths=0.3)
        ax.set_xlim(0, image.shape[1])
        ax.set_ylim(image.shape[0], 0)
    if len(results):
        fig.colorbar(points, ax=axes[0].tolist(), fraction=0.02, label='attention weight (per head, sums to 1)')
    fig.savefig(out_file, dpi=100, bbox_inches='tight')
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('checkpoint', help='checkpoint, or with --backend onnxruntime the .onnx model')
    parser.add_argument('images', nargs='+', help='image files, folders or globs')
    parser.add_argument('--out-dir', required=True, help='folder for predictions.json and the PNGs')
    parser.add_argument('--score-thr', type=float, default=0.3, help='minimum score of a kept detection')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--backend', choices=['pytorch', 'onnxruntime'], default='pytorch',
                        help='onnxruntime: run a model of tools/export_onnx.py (CPU)')
    parser.add_argument('--show-sampling-points', action='store_true')
    parser.add_argument('--top-k', type=int, default=3, help='detections shown with --show-sampling-points')
    args = parser.parse_args(argv)
    onnx_backend = args.backend == 'onnxruntime'
    if onnx_backend and args.show_sampling_points:
        sys.exit('error: --show-sampling-points needs --backend pytorch (the ONNX model returns detections only)')
    if onnx_backend and args.device != 'cpu':
        sys.exit(f'error: --device: --backend onnxruntime runs on cpu, got {args.device}')
    try:
        images = collect_images(args.images)
    except FileNotFoundError as e:
        sys.exit(f'error: {e}')
    cfg = Config.fromfile(args.config)
    init_default_scope(cfg.get('default_scope', 'mmddetr'))  # the pipeline's and preprocessor's registry scope
    if onnx_backend:
        if not osp.isfile(args.checkpoint):
            sys.exit(f'error: model {args.checkpoint}: no such file')
        try:
            model = OnnxRuntimeModel(cfg, args.checkpoint)
        except ImportError as e:
            sys.exit(f'error: --backend onnxruntime needs onnx and onnxruntime ({e}); install them with '
                     '`pip install -e ".[export]"` or `bash tools/install.sh`')
        except ValueError as e:
            sys.exit(f'error: {e}')
    else:
        try:
            checkpoint = read_checkpoint(args.checkpoint)
            model = init_detector(cfg, args.checkpoint, device=args.device)
            check_checkpoint_weights(model, checkpoint, args.checkpoint)
        except CheckpointError as e:
            sys.exit(f'error: {e}')
    classes = model.dataset_meta['classes']
    steps = [t for t in cfg.test_dataloader.dataset.pipeline if 'LoadAnnotations' not in t['type']]
    pipeline = Compose(steps)
    visualizer = DetLocalVisualizer()
    visualizer.dataset_meta = model.dataset_meta
    sampling = LastLayerSampling(model) if args.show_sampling_points else None
    os.makedirs(args.out_dir, exist_ok=True)
    records: List[Dict] = []
    failed = []
    for path in images:
        try:
            data, image = load(pipeline, path)
        except ValueError as e:
            failed.append(path)
            print(f'error: {e}', file=sys.stderr)
            continue
        if onnx_backend:
            results, sample = model.predict(data)
        else:
            results, queries, sample = predict(model, data)
        keep = results.scores >= args.score_thr
        kept = results[keep]
        name = osp.splitext(osp.basename(path))[0]
        records.append(dict(image=path, height=int(sample.ori_shape[0]), width=int(sample.ori_shape[1]), detections=[
            dict(bbox=[round(v, 2) for v in box.tolist()], score=round(float(s), 4), label=int(label),
                 class_name=classes[int(label)]) for box, s, label in zip(kept.bboxes, kept.scores, kept.labels)
        ]))
        sample.pred_instances = kept
        visualizer.add_datasample(name, image, sample, draw_gt=False, pred_score_thr=args.score_thr,
                                  out_file=osp.join(args.out_dir, f'{name}.png'))
        if sampling is not None:
            draw_sampling_points(image, sample, kept, queries[keep], sampling.record, classes, args.top_k,
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
