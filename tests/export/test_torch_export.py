"""torch.export of the four detector configs (with 1 encoder and 2 decoder layers) with dynamic batch, height and
width: the exported program gives the eager predictions at other sizes, batch sizes and paddings than it was traced
with (the same detections: top-k scores that tie may come out in either order)."""
import os

import pytest
import torch

from mmddetr.export import DetectorWithPostprocess, export_program

CONFIGS = ['deformable_detr_r50.py', 'deformable_detr_r50_refine.py', 'deformable_detr_r50_refine_twostage.py',
           'deformable_detr_r50_single_scale.py']


@pytest.mark.parametrize('config', CONFIGS)
def test_exported_program_gives_the_eager_predictions(config, build_detector, perturb, padded_batch, per_image,
                                                      assert_same_detections):
    # 1 encoder and 2 decoder layers: every path (refinement between decoder layers) in a third of the time; eager
    # inference runs the encoder in chunks of 100 queries, export in one chunk (a loop would fix the number of keys)
    layers = {'model.encoder.num_layers': 1, 'model.decoder.num_layers': 2,
              'model.encoder.layer_cfg.inference_chunk': 100}
    model = DetectorWithPostprocess(perturb(build_detector(os.path.join('configs', config), cfg_options=layers)))
    assert model.detector.encoder.layers[0].inference_chunk == 100
    program = export_program(model, *padded_batch([(128, 160), (96, 130)]))
    targets = [node.target for node in program.graph.nodes]
    assert targets.count(torch.ops.mmddetr.ms_deform_attn.default) == 3  # one node per attention, as traced
    images = next(node for node in program.graph.nodes if node.op == 'placeholder' and node.name == 'images')
    assert all(isinstance(images.meta['val'].shape[dim], torch.SymInt) for dim in (0, 2, 3))
    exported = program.module()
    for sizes in ([(100, 140), (80, 100), (100, 70)], [(70, 90)]):
        images, valid_sizes = padded_batch(sizes, seed=1)
        with torch.no_grad():
            expected = model(images, valid_sizes)
            got = exported(images, valid_sizes)
        assert [tuple(g.shape) for g in got] == [tuple(e.shape) for e in expected]
        for g, e in zip(per_image(*got, valid_sizes), per_image(*expected, valid_sizes)):
            # scores within 1e-5, same labels, boxes within 1e-5 of the image size
            assert_same_detections(g, e, score_atol=1e-5, box_atol=1e-5)
