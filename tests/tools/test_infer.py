"""tools/infer.py on two images: JSON of boxes, drawn PNGs, the sampling-point view, bad input."""
import json
import os.path as osp

from conftest import TOY


def test_infer_writes_boxes_pngs_and_sampling_points(run_tool, toy_options, toy_root, tmp_path):
    work = str(tmp_path / 'train')
    proc = run_tool('train.py', TOY, '--work-dir', work, '--cfg-options', *toy_options, 'train_cfg.max_iters=2')
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / 'out'
    images = [osp.join(toy_root, 'val', '000001.png'), osp.join(toy_root, 'val', '00000[2].png')]  # file and glob
    proc = run_tool('infer.py', osp.join(work, osp.basename(TOY)), osp.join(work, 'iter_2.pth'), *images,
                    '--out-dir', str(out), '--score-thr', '0', '--show-sampling-points', '--top-k', '2')
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
    proc = run_tool('infer.py', osp.join(work, osp.basename(TOY)), osp.join(work, 'iter_2.pth'), str(folder),
                    '--out-dir', str(tmp_path / 'mixed_out'), '--score-thr', '0')
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


def test_mmdet_det_inferencer_loads_our_config_and_checkpoint(run_tool, toy_options, toy_root, tmp_path):
    work = str(tmp_path / 'train')
    proc = run_tool('train.py', TOY, '--work-dir', work, '--cfg-options', *toy_options, 'train_cfg.max_iters=2')
    assert proc.returncode == 0, proc.stderr[-3000:]
    from mmdet.apis import DetInferencer

    inferencer = DetInferencer(model=osp.join(work, osp.basename(TOY)), weights=osp.join(work, 'iter_2.pth'),
                               device='cpu', scope='mmddetr', show_progress=False)
    result = inferencer(osp.join(toy_root, 'val', '000003.png'), no_save_vis=True)
    assert len(result['predictions'][0]['bboxes']) == 100
    assert type(inferencer.model).__module__.startswith('mmddetr.')
