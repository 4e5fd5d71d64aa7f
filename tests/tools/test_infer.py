"""tools/infer.py on two images: JSON of boxes, drawn PNGs, the sampling-point view, bad input."""
import json
import os.path as osp

from tool_runs import TOY


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


def test_infer_runs_dino_and_names_its_head_for_the_sampling_view(run_tool, toy_root, tmp_path):
    """mmddetr's DINO (mmdet's DINOHead) predicts through the detector's own test_step; its head gives no query per
    detection, which --show-sampling-points names in one line."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from mmddetr.datasets import ToyShapesDataset
    from mmddetr.registry import MODELS
    config = 'configs/toy/dino_r18_toy.py'
    cfg = Config.fromfile(config)
    cfg.model.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope('mmddetr'):
        model = MODELS.build(cfg.model)
    checkpoint = str(tmp_path / 'dino.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict(dataset_meta=ToyShapesDataset.METAINFO)), checkpoint)
    image = osp.join(toy_root, 'val', '000001.png')
    proc = run_tool('infer.py', config, checkpoint, image, '--out-dir', str(tmp_path / 'out'), '--score-thr', '0')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(json.loads((tmp_path / 'out' / 'predictions.json').read_text())[0]['detections']) == 100
    proc = run_tool('infer.py', config, checkpoint, image, '--out-dir', str(tmp_path / 'view'),
                    '--show-sampling-points')
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    assert ('error: --show-sampling-points: DINOHead does not give the query of each detection '
            '(mmddetr.DeformableDETRHead does)') in proc.stderr
