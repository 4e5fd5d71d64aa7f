"""tools/infer.py on two images: JSON of boxes, drawn PNGs, the sampling-point view, bad input."""
import json
import os.path as osp

from conftest import TOY


def test_infer_writes_boxes_pngs_and_sampling_points(run_tool, toy_options, toy_root, tmp_path):
    work = tmp_path / 'train'
    # what a run killed before its first checkpoint leaves: its config copy and its <time>/ folder of logs and
    # config; a new run replaces the config copy only
    earlier = work / '20000101_000000'
    (earlier / 'vis_data').mkdir(parents=True)
    for path in (earlier / '20000101_000000.log', earlier / 'vis_data' / 'config.py', work / osp.basename(TOY)):
        path.write_text('# the earlier run\n')
    proc = run_tool('train.py', TOY, '--work-dir', str(work), '--cfg-options', *toy_options, 'train_cfg.max_iters=2')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert all(p.read_text() == '# the earlier run\n' for p in earlier.rglob('*') if p.is_file())
    folders = sorted(p.name for p in work.iterdir() if p.is_dir())
    assert len(folders) == 2 and folders[0] == earlier.name  # and the new run's <time>/
    assert (work / osp.basename(TOY)).read_text() == (work / folders[1] / 'vis_data' / 'config.py').read_text()
    out = tmp_path / 'out'
    images = [osp.join(toy_root, 'val', '000001.png'), osp.join(toy_root, 'val', '00000[2].png')]  # file and glob
    proc = run_tool('infer.py', str(work / osp.basename(TOY)), str(work / 'iter_2.pth'), *images, '--out-dir',
                    str(out), '--score-thr', '0', '--device', 'cpu', '--show-sampling-points', '--top-k', '2')
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = json.loads((out / 'predictions.json').read_text())
    assert [osp.basename(r['image']) for r in records] == ['000001.png', '000002.png']
    for record in records:
        assert record['width'] == record['height'] == 96
        assert len(record['detections']) == 100  # score-thr 0 keeps the max_per_img top detections
        det = record['detections'][0]
        assert len(det['bbox']) == 4 and det['class_name'] in ('circle', 'square', 'triangle', 'ring', 'cross')
        scores = [d['score'] for d in record['detections']]
        assert scores == sorted(scores, reverse=True)
        # boxes in pixels of the 96 px image, not of the 384 px one the model saw
        coordinates = [v for d in record['detections'] for v in d['bbox']]
        assert 0 <= min(coordinates) and max(coordinates) <= 96 < 4 * max(coordinates)
    for name in ('000001', '000002'):
        assert (out / f'{name}.png').stat().st_size > 0
        assert (out / f'{name}_sampling_points.png').stat().st_size > 0

    # a folder with a good image, a file that is no image and a truncated PNG: the good one is still predicted
    folder = tmp_path / 'mixed'
    folder.mkdir()
    good = (folder / 'good.png')
    good.write_bytes(open(osp.join(toy_root, 'val', '000001.png'), 'rb').read())
    (folder / 'notes.jpg').write_text('not an image')
    (folder / 'cut.png').write_bytes(good.read_bytes()[:60])
    proc = run_tool('infer.py', str(work / osp.basename(TOY)), str(work / 'iter_2.pth'), str(folder), '--out-dir',
                    str(tmp_path / 'mixed_out'), '--score-thr', '0')
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    for name in ('notes.jpg', 'cut.png'):
        assert f"error: image {folder / name}: cannot be read" in proc.stderr
    records = json.loads((tmp_path / 'mixed_out' / 'predictions.json').read_text())
    assert [osp.basename(r['image']) for r in records] == ['good.png'] and len(records[0]['detections']) == 100


def test_infer_names_missing_images(run_tool, tmp_path):
    proc = run_tool('infer.py', TOY, 'none.pth', str(tmp_path / 'nothing*.png'), '--out-dir', str(tmp_path))
    assert proc.returncode == 1 and 'IMAGES' in proc.stderr and 'Traceback' not in proc.stderr


def test_sampling_points_match_the_attention_forward():
    import torch

    from mmddetr.models import MultiScaleDeformableAttention
    from mmddetr.ops import multi_scale_deformable_attn_pytorch

    torch.manual_seed(0)
    attn = MultiScaleDeformableAttention(embed_dims=16, num_heads=2, num_levels=2, num_points=3, dropout=0.0,
                                         batch_first=True)
    shapes = torch.tensor([[4, 5], [2, 3]])
    start = torch.tensor([0, 20])
    query, value = torch.randn(1, 7, 16), torch.randn(1, 26, 16)
    ref = torch.rand(1, 7, 2, 2)
    out = attn(query, value=value, reference_points=ref, spatial_shapes=shapes, level_start_index=start)
    locations, weights = attn.sampling_points(query, ref, shapes)
    torch.testing.assert_close(weights.sum((-1, -2)), torch.ones(1, 7, 2))
    v = attn.value_proj(value).view(1, 26, 2, 8)
    expected = attn.output_proj(multi_scale_deformable_attn_pytorch(v, shapes, start, locations, weights)) + query
    torch.testing.assert_close(out, expected)


def test_sampling_view_draws_what_the_last_layer_sampled(toy_root, monkeypatch):
    """--show-sampling-points (infer's LastLayerSampling, which recomputes the points from the inputs of the last
    decoder layer's cross-attention) records the locations and weights that layer's op call received, as seen at the
    op's dispatch, for an image through infer's own pipeline and prediction."""
    import torch
    from mmcv.transforms import Compose
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from torch.utils._python_dispatch import TorchDispatchMode

    from mmddetr.registry import MODELS
    monkeypatch.syspath_prepend(osp.join(osp.dirname(__file__), '..', '..', 'tools'))
    import infer

    class OpCalls(TorchDispatchMode):

        def __init__(self):
            super().__init__()
            self.args = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.namespace == 'mmddetr' and 'ms_deform_attn' in func.name():
                self.args.append(args)
            return func(*args, **(kwargs or {}))

    cfg = Config.fromfile(TOY)
    cfg.model.encoder.num_layers = 1
    with DefaultScope.overwrite_default_scope('mmddetr'):
        model = MODELS.build(cfg.model).eval()
        pipeline = Compose([t for t in cfg.test_dataloader.dataset.pipeline if 'LoadAnnotations' not in t['type']])
        data, _ = infer.load(pipeline, osp.join(toy_root, 'val', '000004.png'))
    sampling = infer.LastLayerSampling(model)
    with OpCalls() as calls:
        infer.predict(model, data)
    assert len(calls.args) == 4  # 1 encoder and 3 decoder layers; the last is the last decoder layer's
    value, shapes, _, locations, weights = calls.args[-1][:5]
    assert locations.shape[:2] == (1, 100) and torch.equal(sampling.record['spatial_shapes'], shapes)
    torch.testing.assert_close(sampling.record['locations'], locations, atol=1e-6, rtol=0)
    torch.testing.assert_close(sampling.record['weights'], weights, atol=1e-6, rtol=0)


def test_mmdet_det_inferencer_loads_our_config_and_checkpoint(run_tool, toy_options, toy_root, tmp_path):
    work = str(tmp_path / 'train')
    proc = run_tool('train.py', TOY, '--work-dir', work, '--cfg-options', *toy_options, 'train_cfg.max_iters=2')
    assert proc.returncode == 0, proc.stderr[-3000:]
    from mmdet.apis import DetInferencer

    from mmddetr.engine import mmengine_checkpoint_loader
    with mmengine_checkpoint_loader():  # docs/tools.md: mmengine reads a training checkpoint's message hub with it
        inferencer = DetInferencer(model=osp.join(work, osp.basename(TOY)), weights=osp.join(work, 'iter_2.pth'),
                                   device='cpu', scope='mmddetr', show_progress=False)
    result = inferencer(osp.join(toy_root, 'val', '000003.png'), no_save_vis=True)
    assert len(result['predictions'][0]['bboxes']) == 100
    assert type(inferencer.model).__module__.startswith('mmddetr.')
    # robustness.md: mmdet's inferencers load images with our checked loader (mmdet's InferencerLoader builds
    # 'LoadImageFromFile' in the inferencer's scope)
    from mmddetr.datasets import LoadImageFromFile
    assert type(inferencer.pipeline.transforms[0].from_file) is LoadImageFromFile
