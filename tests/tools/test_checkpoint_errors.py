"""tools/test.py, tools/infer.py and tools/export_onnx.py refuse checkpoints that lack the model's weights, hold some
of another shape, or cannot be read: one line naming the file (the count, the first names and the run that saved
it), exit code 1, and no evaluation or export of a randomly initialised model."""
import re

import torch
from mmengine.runner import save_checkpoint

from tool_runs import TOY

RUN = 'deformable_detr_r18_toy_refine_twostage_20260101_000000'  # the run that saved the checkpoint (its meta)


def test_tools_reject_checkpoints_without_the_models_weights(run_tool, toy_options, toy_root, build_detector,
                                                             tmp_path):
    state = build_detector(TOY).state_dict()  # the config's model, as test.py (below) and infer.py build it
    missing = [name for name in state if name.startswith('decoder.')]
    no_decoder = tmp_path / 'no_decoder.pth'
    save_checkpoint(dict(state_dict={k: v for k, v in state.items() if k not in missing},
                         meta=dict(experiment_name=RUN)), str(no_decoder))
    cut = tmp_path / 'cut.pth'
    torch.save({'state_dict': {'w': torch.zeros(1000)}}, str(cut))
    cut.write_bytes(cut.read_bytes()[:200])
    data_options = [option for option in toy_options if not option.startswith('model.')]
    for checkpoint, expected in (
            (no_decoder, re.escape(f"{len(missing)} of the model's {len(state)} weights are missing (first: "
                                   f"{', '.join(missing[:5])}); it was saved by the run '{RUN}'. Is it a checkpoint "
                                   'of this config?')),
            (cut, r'cannot be read \(.+\)')):
        line = re.escape(f'error: checkpoint {checkpoint}: ') + expected
        proc = run_tool('test.py', TOY, str(checkpoint), '--work-dir', str(tmp_path / 'work'), '--cfg-options',
                        *data_options)
        assert proc.returncode == 1 and re.fullmatch(line, proc.stderr.splitlines()[-1]), proc.stderr[-3000:]
        assert 'coco/bbox_mAP' not in proc.stdout + proc.stderr and 'Traceback' not in proc.stderr
        proc = run_tool('infer.py', TOY, str(checkpoint), f'{toy_root}val', '--out-dir', str(tmp_path / 'pred'))
        assert proc.returncode == 1 and re.fullmatch(line, proc.stderr.splitlines()[-1]), proc.stderr[-3000:]
        assert 'Traceback' not in proc.stderr and not (tmp_path / 'pred').exists()


def test_export_rejects_weights_of_another_shape(run_tool, build_detector, tmp_path):
    state = build_detector(TOY).state_dict()
    other = build_detector(TOY, cfg_options={'model.bbox_head.num_classes': 3}).state_dict()
    reshaped = [f'{name} {tuple(weight.shape)} for {tuple(state[name].shape)}' for name, weight in other.items()
                if weight.shape != state[name].shape]
    assert len(reshaped) == 8  # the class layers of the three decoder layers and of the two-stage proposals
    checkpoint = tmp_path / 'three_classes.pth'
    save_checkpoint(dict(state_dict=other), str(checkpoint))
    proc = run_tool('export_onnx.py', TOY, str(checkpoint), '--out', str(tmp_path / 'model.onnx'), '--size', '96',
                    '128')
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.splitlines()[-1] == (
        f"error: checkpoint {checkpoint}: 8 of the model's {len(state)} weights have another shape (first: "
        f"{', '.join(reshaped[:5])}). Is it a checkpoint of this config?")
    assert sorted(p.name for p in tmp_path.iterdir()) == ['three_classes.pth']  # no model, no partial file
