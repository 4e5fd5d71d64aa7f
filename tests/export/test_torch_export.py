"""torch.export of the four detector configs with dynamic batch, height and width: the exported program gives the
eager predictions at other sizes, batch sizes and paddings than it was traced with."""
import os

import pytest
import torch

from mmddetr.export import DetectorWithPostprocess, export_program

CONFIGS = ['deformable_detr_r50.py', 'deformable_detr_r50_refine.py', 'deformable_detr_r50_refine_twostage.py',
           'deformable_detr_r50_single_scale.py']


def _perturb(model, seed=0):
    """Random weights away from the zero-initialised ones (offsets, box layers), so that no path hides."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(torch.randn(p.shape, generator=gen) * (0.2 if 'sampling_offsets' in name else 0.02))
    return model


def _batch(sizes, seed=0):
    """Normalised random images padded to one size, and their valid sizes."""
    gen = torch.Generator().manual_seed(seed)
    pad_h, pad_w = max(h for h, _ in sizes), max(w for _, w in sizes)
    images = torch.zeros(len(sizes), 3, pad_h, pad_w)
    for i, (h, w) in enumerate(sizes):
        images[i, :, :h, :w] = torch.randn(3, h, w, generator=gen)
    return images, torch.tensor(sizes)


@pytest.mark.parametrize('config', CONFIGS)
def test_exported_program_gives_the_eager_predictions(config, build_detector):
    model = DetectorWithPostprocess(_perturb(build_detector(os.path.join('configs', config))))
    program = export_program(model, *_batch([(128, 160), (96, 130)]))
    targets = [node.target for node in program.graph.nodes]
    assert targets.count(torch.ops.mmddetr.ms_deform_attn.default) == 12  # one node per attention, as traced
    images = next(node for node in program.graph.nodes if node.op == 'placeholder' and node.name == 'images')
    assert all(isinstance(images.meta['val'].shape[dim], torch.SymInt) for dim in (0, 2, 3))
    exported = program.module()
    for sizes in ([(100, 140), (80, 100), (100, 70)], [(70, 90)]):
        images, valid_sizes = _batch(sizes, seed=1)
        with torch.no_grad():
            expected = model(images, valid_sizes)
            got = exported(images, valid_sizes)
        for e, g in zip(expected, got):
            torch.testing.assert_close(g, e, atol=1e-5, rtol=1e-5)
