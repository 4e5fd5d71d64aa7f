"""tools/test.py and tools/infer.py refuse checkpoints that lack the model's weights or cannot be read: one line
naming the file, a non-zero exit code, and no evaluation of a randomly initialised model."""
import torch
from conftest import TOY


def test_tools_reject_checkpoints_without_the_models_weights(run_tool, toy_options, toy_root, tmp_path):
    empty = tmp_path / 'hello.pth'
    torch.save({'hello': 1}, str(empty))
    cut = tmp_path / 'cut.pth'
    torch.save({'state_dict': {'w': torch.zeros(1000)}}, str(cut))
    cut.write_bytes(cut.read_bytes()[:200])
    for checkpoint, expected in ((empty, 'weights are missing'), (cut, 'cannot be read')):
        proc = run_tool('test.py', TOY, str(checkpoint), '--work-dir', str(tmp_path / 'work'), '--cfg-options',
                        *toy_options)
        assert proc.returncode != 0 and f'error: checkpoint {checkpoint}: ' in proc.stderr, proc.stderr[-3000:]
        assert expected in proc.stderr and 'coco/bbox_mAP' not in proc.stdout + proc.stderr
        assert 'Traceback' not in proc.stderr
        proc = run_tool('infer.py', TOY, str(checkpoint), f'{toy_root}val', '--out-dir', str(tmp_path / 'pred'))
        assert proc.returncode != 0 and f'error: checkpoint {checkpoint}: ' in proc.stderr, proc.stderr[-3000:]
        assert expected in proc.stderr and 'Traceback' not in proc.stderr
