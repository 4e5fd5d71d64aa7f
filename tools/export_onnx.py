"""Export a detector to ONNX, check the file and run it once in ONNX Runtime against PyTorch.

    python tools/export_onnx.py CONFIG CHECKPOINT --out FILE.onnx [--opset 18] [--size H W]

The model takes ``images`` (batch, 3, height, width): the normalised images, padded at the bottom and right to one
size, as the config's data preprocessor makes them; and ``valid_sizes`` (batch, 2) int64: each image's (h, w) before
padding, from which the padding masks are built (the predictions are eager PyTorch's on the same padded batch). It
returns the top-k (``test_cfg.max_per_img``) ``scores`` (batch, k), ``labels`` (batch, k) int64 and ``boxes``
(batch, k, 4) (x1, y1, x2, y2) in pixels of ``images``. Batch, height and width are dynamic (height and width at
least 65). The multi-scale deformable attention becomes standard ONNX operators (gathers and arithmetic). The class
names and colours are in the model's metadata (``dataset_meta``, JSON).

``--size`` is the example input traced and checked: a batch of two images, one of H x W and one padded from
3/4 of it. The file is written only after ``onnx.checker`` and the comparison pass, and never over an existing one.
Needs the ``export`` extra (onnx, onnxscript, onnxruntime; ``bash tools/install.sh`` installs it).
"""
import argparse
import os.path as osp
import sys

from mmddetr.engine import CheckpointError, load_detector
from mmddetr.export import MIN_SIZE, DetectorWithPostprocess, example_inputs


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--out', required=True, help='the .onnx file to write (never overwritten)')
    parser.add_argument('--opset', type=int, default=18, help='ONNX opset (18 to 23)')
    parser.add_argument('--size', type=int, nargs=2, default=(800, 1333), metavar=('H', 'W'),
                        help='example input size traced and checked')
    args = parser.parse_args(argv)
    try:
        from mmddetr.export.onnx import SUPPORTED_OPSETS, dataset_meta_metadata, export_checked
    except ImportError as e:
        sys.exit(f'error: ONNX export needs onnx, onnxscript and onnxruntime ({e}); install them with '
                 '`pip install -e ".[export]"` or `bash tools/install.sh`')
    if osp.exists(args.out):
        sys.exit(f'error: --out: {args.out} exists; it is never overwritten (remove it or choose another name)')
    if args.opset not in SUPPORTED_OPSETS:
        sys.exit(f'error: --opset: expected one of {", ".join(map(str, SUPPORTED_OPSETS))}, got {args.opset}')
    if min(args.size) < MIN_SIZE:
        sys.exit(f'error: --size: expected a height and width of at least {MIN_SIZE}, got {args.size[0]} '
                 f'{args.size[1]}')
    try:
        detector = load_detector(args.config, args.checkpoint)
    except CheckpointError as e:
        sys.exit(f'error: {e}')
    images, valid_sizes = example_inputs(*args.size)
    try:
        diffs = export_checked(DetectorWithPostprocess(detector), images, valid_sizes, args.out, args.opset,
                               dataset_meta_metadata(detector.dataset_meta))
    except FileExistsError as e:
        sys.exit(f'error: --out: {e}')
    except ValueError as e:
        sys.exit(f'error: {e}')
    print(f'onnx.checker: passed. ONNX Runtime against PyTorch on {images.shape[0]} images of '
          f'{args.size[0]}x{args.size[1]} (one padded from {valid_sizes[1, 0]}x{valid_sizes[1, 1]}): largest '
          f'difference of scores {diffs["score"]:.2e}, of boxes {diffs["box"]:.2e} px; labels differ at '
          f'{diffs["labels"]:.1%} of the ranks')
    print(f'wrote {args.out} (opset {args.opset}, inputs images (batch, 3, height, width) and valid_sizes (batch, 2), '
          f'outputs scores, labels, boxes)')


if __name__ == '__main__':
    main()
