"""The detector to ONNX through torch.export, and the check of an exported file in ONNX Runtime.

Imports onnx, onnxscript and onnxruntime (the ``export`` extra: ``pip install mmddetr[export]``).
"""
import json
import os
import os.path as osp
from typing import Dict, Optional, Sequence

import numpy as np
import onnx
import onnxruntime
import torch
from torch import Tensor

from .detector import DetectorWithPostprocess, dynamic_shapes
from .ms_deform_attn_onnx import ms_deform_attn_onnx

# Opsets the export is tested with (the translation uses opset 18 operators; later ones are converted to).
SUPPORTED_OPSETS = (18, 19, 20, 21, 22, 23)
INPUT_NAMES = ('images', 'valid_sizes')
OUTPUT_NAMES = ('scores', 'labels', 'boxes')


def export_onnx(model: DetectorWithPostprocess, images: Tensor, valid_sizes: Tensor, path: str, opset: int = 18,
                metadata: Dict[str, str] = None) -> None:
    """Exports ``model`` to ``path`` (one file, weights inside) with dynamic batch, height and width.

    Inputs ``images`` (batch, 3, height, width) float32 and ``valid_sizes`` (batch, 2) int64; outputs ``scores``
    (batch, k), ``labels`` (batch, k) int64 and ``boxes`` (batch, k, 4), as :class:`DetectorWithPostprocess`.
    ``mmddetr::ms_deform_attn`` becomes standard operators (:func:`ms_deform_attn_onnx`).

    Args:
        model (DetectorWithPostprocess): The detector to export.
        images (Tensor): Example (bs, 3, H, W) input to trace with; bs at least 2 and H, W at least
            ``MIN_SIZE`` (torch.export specialises sizes of 1).
        valid_sizes (Tensor): Example (bs, 2) int64 valid sizes.
        path (str): The file to write (overwritten: the caller protects existing files).
        opset (int): ONNX opset, one of ``SUPPORTED_OPSETS``. Default: 18.
        metadata (dict[str, str], optional): Written into the model's ``metadata_props``.
    """
    if opset not in SUPPORTED_OPSETS:
        raise ValueError(f'opset must be one of {", ".join(map(str, SUPPORTED_OPSETS))}, got {opset}')
    if images.shape[0] < 2:
        raise ValueError(f'images: an example batch of at least 2 images is needed for a dynamic batch size (a '
                         f'batch of 1 is traced as a constant), got {tuple(images.shape)}')
    with torch.no_grad():
        program = torch.onnx.export(
            model, (images, valid_sizes), dynamo=True, opset_version=opset, dynamic_shapes=dynamic_shapes(),
            input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
            custom_translation_table={torch.ops.mmddetr.ms_deform_attn.default: ms_deform_attn_onnx})
    proto = program.model_proto
    for key, value in (metadata or {}).items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save_model(proto, path)


def dataset_meta_metadata(dataset_meta: dict) -> Dict[str, str]:
    """The metadata entry holding the detector's ``dataset_meta`` (``classes``, which ``labels`` index, and the
    ``palette`` of the pictures), for :func:`export_onnx`."""
    kept = {key: dataset_meta[key] for key in ('classes', 'palette') if key in dataset_meta}
    return {'dataset_meta': json.dumps(kept)}


def dataset_meta_of(path: str) -> Optional[dict]:
    """The ``dataset_meta`` (``classes`` and ``palette`` as tuples) stored by :func:`dataset_meta_metadata` in the
    ONNX model at ``path``; None when there is none."""
    props = {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
    if 'dataset_meta' not in props:
        return None
    meta = json.loads(props['dataset_meta'])
    meta['classes'] = tuple(meta['classes'])
    if 'palette' in meta:
        meta['palette'] = [tuple(color) for color in meta['palette']]
    return meta


def session(path: str, threads: int = 0, profile: bool = False) -> onnxruntime.InferenceSession:
    """An ONNX Runtime CPU session of the model at ``path`` (``threads`` intra-op threads, 0: ONNX Runtime's
    default; ``profile``: its per-node profile, written beside the model by ``end_profiling()``)."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.enable_profiling = profile
    options.profile_file_prefix = f'{path}.profile'
    return onnxruntime.InferenceSession(path, options, providers=['CPUExecutionProvider'])


def run_session(sess: onnxruntime.InferenceSession, images: Tensor, valid_sizes: Tensor) -> Sequence[np.ndarray]:
    """``(scores, labels, boxes)`` of ONNX Runtime on the inputs."""
    return sess.run(list(OUTPUT_NAMES), {'images': images.numpy(), 'valid_sizes': valid_sizes.numpy()})


def compare_with_pytorch(path: str, model: DetectorWithPostprocess, images: Tensor,
                         valid_sizes: Tensor) -> Dict[str, float]:
    """Checks the ONNX file with ``onnx.checker`` and runs it in ONNX Runtime against ``model`` on the inputs.

    Returns:
        dict: the largest score and box (pixel) differences, and the fraction of detections with another label.
    """
    onnx.checker.check_model(path, full_check=True)
    scores, labels, boxes = run_session(session(path), images, valid_sizes)
    with torch.no_grad():
        ref_scores, ref_labels, ref_boxes = (t.numpy() for t in model(images, valid_sizes))
    return dict(score=float(np.abs(scores - ref_scores).max()), box=float(np.abs(boxes - ref_boxes).max()),
                labels=float((labels != ref_labels).mean()))


def export_checked(model: DetectorWithPostprocess, images: Tensor, valid_sizes: Tensor, path: str, opset: int = 18,
                   metadata: Dict[str, str] = None, score_tolerance: float = 1e-3) -> Dict[str, float]:
    """:func:`export_onnx` to ``path`` if the file passes :func:`compare_with_pytorch` on the example inputs.

    The file is written beside ``path`` (``<path>.partial-<pid>``), checked, then hard-linked to ``path``: ``path``
    appears complete and checked, or not at all, and an existing file is never overwritten. The partial file is
    removed whatever happens.

    Args:
        model, images, valid_sizes, path, opset, metadata: as :func:`export_onnx`.
        score_tolerance (float): The largest score difference between ONNX Runtime and PyTorch accepted (ranks
            compared in order; ties may swap labels and boxes, so those are reported, not checked). Default: 1e-3.

    Returns:
        dict: :func:`compare_with_pytorch`'s differences.

    Raises:
        FileExistsError: ``path`` exists, before the export or when it would be linked.
        ValueError: The scores differ by more than ``score_tolerance`` (nothing is written).
    """
    if osp.exists(path):
        raise FileExistsError(f'{path} exists; it is never overwritten')
    partial = f'{path}.partial-{os.getpid()}'
    try:
        export_onnx(model, images, valid_sizes, partial, opset, metadata)
        diffs = compare_with_pytorch(partial, model, images, valid_sizes)
        if diffs['score'] > score_tolerance:
            raise ValueError(f'ONNX Runtime\'s scores differ from PyTorch\'s by {diffs["score"]:.2e} (more than '
                             f'{score_tolerance}); nothing was written')
        try:
            os.link(partial, path)
        except FileExistsError:
            raise FileExistsError(f'{path} appeared during the export; it is never overwritten') from None
    finally:
        if osp.exists(partial):
            os.remove(partial)
    return diffs
