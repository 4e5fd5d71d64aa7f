"""tools/benchmark_model.py and its harness, mmddetr/benchmark.py: the toy row compares like with like (mmdet's classes,
its two-stage head widened to any embed dims by a subclass registered nowhere, on our toy config take the same weights
as ours and give the same predictions and losses), the tool's toy row runs end to end, and the runtimes' row
(--passes onnxruntime, openvino) runs each runtime on one export, after checking its predictions."""
import copy
import json
import os
import re
import subprocess
import sys

import pytest
import torch
from tool_runs import TOY, check_ok

from mmddetr.benchmark import build_detector, deformable_detr_any_dims, make_batch, measure, toy_train_size


def test_harness_imports_with_torch_alone():
    """tools/benchmark_op.py takes its peak memory from the harness: importing it loads no OpenMMLab package."""
    code = ('import sys\n'
            'import mmddetr.benchmark\n'
            'loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("mmdet", "mmengine", "mmcv", "onnx"))\n'
            'assert not loaded, loaded\n')
    subprocess.run([sys.executable, '-c', code], check=True)


def test_toy_row_builds_mmdet_and_ours_alike(no_dropout):
    from mmdet.registry import MODELS as MMDET_MODELS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    registered = dict(MMDET_MODELS.module_dict)
    theirs, ours = (no_dropout(build_detector(impl, TOY)) for impl in ('mmdet', 'ours'))
    assert type(theirs) is deformable_detr_any_dims() and type(theirs).__name__ == 'DeformableDETRAnyDims'
    assert MMDET_MODELS.module_dict == registered  # built from the class itself: mmdet's registry is as it was
    assert type(ours).__module__.startswith('mmddetr.')
    assert ours.embed_dims == theirs.embed_dims == 128
    inputs, samples = make_batch(2, 96, 128, 'cpu', num_classes=5)
    theirs.eval(), ours.eval()
    with torch.no_grad():
        # predict fills in and returns the samples it gets
        pred_t, pred_o = theirs.predict(inputs, copy.deepcopy(samples)), ours.predict(inputs, copy.deepcopy(samples))
    for t, o in zip(pred_t, pred_o):
        torch.testing.assert_close(o.pred_instances.scores, t.pred_instances.scores, atol=1e-4, rtol=1e-4)
    theirs.train(), ours.train()
    losses_t, losses_o = theirs.loss(inputs, samples), ours.loss(inputs, samples)
    assert list(losses_o) == list(losses_t)
    for key in losses_t:
        torch.testing.assert_close(losses_o[key], losses_t[key], atol=1e-4, rtol=1e-4, msg=key)


def test_dino_rows_are_mmdets_dino_and_ours():
    """mmdet's DINO on mmcv's attention against mmddetr's DINO (our layers) from the same toy config and weights."""
    from mmcv.ops import MultiScaleDeformableAttention as MmcvAttention
    from mmdet.models.detectors import DINO as MmdetDINO

    from mmddetr.models import DINO, FastMultiScaleDeformableAttention, MultiScaleDeformableAttention
    theirs, ours = (build_detector(impl, 'configs/toy/dino_r18_toy.py') for impl in ('mmdet', 'ours'))
    assert type(theirs) is MmdetDINO and type(ours) is DINO
    assert {type(m) for m in theirs.modules() if isinstance(m, (MmcvAttention, MultiScaleDeformableAttention))} == {
        MmcvAttention}
    assert {type(m) for m in ours.modules() if isinstance(m, (MmcvAttention, MultiScaleDeformableAttention))} == {
        FastMultiScaleDeformableAttention}  # the toy config's fast modules
    inputs, samples = make_batch(2, 96, 128, 'cpu', num_classes=5)
    theirs.eval(), ours.eval()
    with torch.no_grad():
        for t, o in zip(theirs.predict(inputs, samples), ours.predict(inputs, samples)):
            torch.testing.assert_close(o.pred_instances.scores, t.pred_instances.scores, atol=1e-4, rtol=1e-4)


def test_toy_row_times_the_image_size_the_toy_config_trains_at():
    from mmengine.config import Config
    cfg = Config(dict(train_dataloader=dict(dataset=dict(pipeline=[
        dict(type='LoadImageFromFile'), dict(type='Resize', scale=(320, 288), keep_ratio=True)]))))
    assert toy_train_size(cfg) == (288, 320)  # mmdet's scale is (width, height)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="impl: expected 'ours' or 'mmdet', got 'theirs'"):
        build_detector('theirs', TOY)
    with pytest.raises(ValueError, match='ours_config, mmdet_config: expected at least one config'):
        build_detector('ours', None, None)
    with pytest.raises(ValueError, match=r"variants: expected implementations among .*, got 'mmcv'"):
        measure([('mmcv', False)], (TOY, None), 'toy train step', 1, (64, 64))


def test_benchmark_model_toy_row_end_to_end(run_tool, tmp_path):
    """The tool's toy row at one round: both detectors checked equal first, the table row and the JSON agree, and
    both implementations have the same parameters (the same model twice)."""
    out = tmp_path / 'rows.json'
    stdout = check_ok(run_tool('benchmark_model.py', '--passes', 'toy train step', '--repeat', '1', '--threads', '1',
                               '--json', str(out))).stdout
    lines = stdout.splitlines()
    assert lines[:3] == [
        'deformable-detr: device cpu, fp32, 1 threads; predictions of both equal (1e-4)',
        '| pass | batch | size | ours s | mmdet s | speed-up | target | ours peak MB | mmdet peak MB | params | GFLOPs '
        '| img/s ours |', '|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|'], stdout
    row = re.fullmatch(r'\| toy train step \| 4 \| 384x384 \| ([\d.]+) \| ([\d.]+) \| ([\d.]+)x \| - \| (\d+) \| (\d+) '
                       r'\| ([\d.]+)M \| (\d+) \| ([\d.]+) \|', lines[3])
    assert row, stdout
    assert lines[4:] == [f'toy train step: {TOY} built with mmdet\'s classes and ours (5 classes, 6 boxes per image)']
    report = json.loads(out.read_text())
    assert len(report) == 1 and report[0]['mode'] == 'toy train step' and report[0]['target'] is None
    ours, theirs = report[0]['ours'], report[0]['mmdet']
    assert report[0]['speedup'] == pytest.approx(theirs['seconds'] / ours['seconds'])
    assert float(row.group(1)) == pytest.approx(ours['seconds'], abs=0.005)
    assert float(row.group(3)) == pytest.approx(report[0]['speedup'], abs=0.005)
    assert ours['params'] == theirs['params'] and float(row.group(6)) == round(ours['params'] / 1e6, 1)
    assert ours['gflops'] > 0 and theirs['gflops'] > 0 and float(row.group(7)) == round(ours['gflops'])


def test_runtime_steps_run_each_runtime_on_one_export_after_checking_it(tmp_path, perturb):
    """The runtimes' row: the first runtime's step exports our detector, the next one reads the same file; each runs
    its own runtime at the threads asked for; a file that another model's predictions do not match is refused."""
    pytest.importorskip('onnxscript')
    onnxruntime = pytest.importorskip('onnxruntime')
    openvino = pytest.importorskip('openvino')
    import openvino.properties as props

    from mmddetr.benchmark import RUNTIMES, runtime_run, runtime_step
    config = tmp_path / 'small_toy.py'
    config.write_text(f"_base_ = '{os.path.abspath(TOY)}'\n"
                      'model = dict(encoder=dict(num_layers=1), decoder=dict(num_layers=2))\n')
    model = build_detector('ours', str(config)).eval()
    inputs, samples = make_batch(1, 96, 128, 'cpu', num_classes=5)
    data = model.data_preprocessor(dict(inputs=inputs, data_samples=samples), False)
    path = str(tmp_path / 'model.onnx')
    scores = {}
    for runtime in RUNTIMES:
        scores[runtime] = torch.from_numpy(runtime_step(runtime, model, data['inputs'], data['data_samples'], 1,
                                                        path)()[0])
        if runtime == RUNTIMES[0]:
            exported = os.stat(path).st_mtime_ns
    assert os.stat(path).st_mtime_ns == exported  # the second runtime read the first one's file
    assert scores['onnxruntime'].shape == (1, 100)
    torch.testing.assert_close(scores['openvino'], scores['onnxruntime'], atol=1e-4, rtol=0)
    session = runtime_run('onnxruntime', path, 1).args[0]
    assert type(session) is onnxruntime.InferenceSession and session.get_session_options().intra_op_num_threads == 1
    compiled = runtime_run('openvino', path, 1).args[0]
    assert type(compiled) is openvino.CompiledModel and compiled.get_property(props.inference_num_threads) == 1
    perturb(model, seed=1)  # other weights than the file's
    for runtime in RUNTIMES:
        with pytest.raises(AssertionError, match='Tensor-likes are not close'):
            runtime_step(runtime, model, data['inputs'], data['data_samples'], 1, path)


@pytest.mark.parametrize('args', [('--device', 'cuda'), ('--dtype', 'bf16'), ('--model', 'dino')])
def test_runtime_passes_refuse_other_devices_dtypes_and_models(run_tool, args):
    proc = run_tool('benchmark_model.py', '--passes', 'openvino', *args)
    expected = ('--passes openvino exports our Deformable DETR: --model deformable-detr' if args[0] == '--model' else
                '--passes openvino runs on --device cpu in --dtype fp32')
    assert proc.returncode == 2 and f'error: {expected}' in proc.stderr, proc.stderr
