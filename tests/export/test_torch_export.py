"""torch.export of the four detector configs with dynamic batch, height and width: the exported program gives the
eager predictions at other sizes, batch sizes and paddings than it was traced with."""
import os

import pytest
import torch

from mmddetr.export import DetectorWithPostprocess, export_program

CONFIGS = ['deformable_detr_r50.py', 'deformable_detr_r50_refine.py', 'deformable_detr_r50_refine_twostage.py',
           'deformable_detr_r50_single_scale.py']


@pytest.mark.parametrize('config', CONFIGS)
def test_exported_program_gives_the_eager_predictions(config, build_detector, perturb, padded_batch):
    model = DetectorWithPostprocess(perturb(build_detector(os.path.join('configs', config))))
    program = export_program(model, *padded_batch([(128, 160), (96, 130)]))
    targets = [node.target for node in program.graph.nodes]
    assert targets.count(torch.ops.mmddetr.ms_deform_attn.default) == 12  # one node per attention, as traced
    images = next(node for node in program.graph.nodes if node.op == 'placeholder' and node.name == 'images')
    assert all(isinstance(images.meta['val'].shape[dim], torch.SymInt) for dim in (0, 2, 3))
    exported = program.module()
    for sizes in ([(100, 140), (80, 100), (100, 70)], [(70, 90)]):
        images, valid_sizes = padded_batch(sizes, seed=1)
        with torch.no_grad():
            expected = model(images, valid_sizes)
            got = exported(images, valid_sizes)
        for e, g in zip(expected, got):
            torch.testing.assert_close(g, e, atol=1e-5, rtol=1e-5)
