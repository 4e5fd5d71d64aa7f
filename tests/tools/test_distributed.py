"""`--launcher pytorch` on CPU: two torchrun processes with gloo train a toy config in lockstep, then test it with
every val image gathered."""
import json
import os
import pickle
import socket
import sys

from conftest import TOY

HOOK = '''
import json, os
import torch
import torch.distributed as dist
from mmengine.hooks import Hook
from mmddetr.registry import HOOKS


@HOOKS.register_module()
class ParamDigestHook(Hook):
    """Writes, per rank, a digest of the parameters after training and the number of images validated."""

    def after_train(self, runner):
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        digest = sum(float(p.double().sum()) * (i + 1) for i, p in enumerate(model.parameters()))
        with open(os.path.join(runner.work_dir, f'digest_{dist.get_rank()}.json'), 'w') as f:
            json.dump(dict(digest=digest, world_size=dist.get_world_size(),
                           wrapper=type(runner.model).__name__), f)
'''


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_two_cpu_processes_train_in_lockstep(run_tool, toy_options, toy_root, tmp_path):
    (tmp_path / 'param_digest_hook.py').write_text(HOOK)
    config = tmp_path / 'dist_toy.py'
    config.write_text(f"_base_ = '{os.path.abspath(TOY)}'\n"
                      "custom_imports = dict(imports=['mmddetr', 'param_digest_hook'], allow_failed_imports=False)\n"
                      "custom_hooks = [dict(type='RNGStateHook'), dict(type='ParamDigestHook')]\n")
    work = tmp_path / 'work'
    launcher = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2', f'--master_port={free_port()}']
    os.environ['PYTHONPATH'] = f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    try:
        proc = run_tool('train.py', str(config), '--launcher', 'pytorch', '--work-dir', str(work), '--cfg-options',
                        *toy_options, 'train_cfg.max_iters=2', launcher=launcher)
    finally:
        os.environ['PYTHONPATH'] = os.environ['PYTHONPATH'].split(os.pathsep, 1)[1]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    digests = [json.loads((work / f'digest_{rank}.json').read_text()) for rank in (0, 1)]
    assert digests[0] == digests[1]  # same parameters on both ranks after the steps
    assert digests[0]['world_size'] == 2 and digests[0]['wrapper'] == 'MMDistributedDataParallel'
    log = proc.stdout + proc.stderr
    assert 'coco/bbox_mAP' in log and (work / 'iter_2.pth').exists()

    # the distributed test gathers the predictions of both ranks: one result per val image, each image once
    out = tmp_path / 'results.pkl'
    launcher[-1] = f'--master_port={free_port()}'
    proc = run_tool('test.py', str(TOY), str(work / 'iter_2.pth'), '--launcher', 'pytorch', '--work-dir',
                    str(tmp_path / 'test'), '--out', str(out), '--cfg-options', *toy_options, launcher=launcher)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(out, 'rb') as f:
        results = pickle.load(f)
    with open(os.path.join(toy_root, 'annotations/instances_val.json')) as f:
        val_ids = sorted(image['id'] for image in json.load(f)['images'])
    assert sorted(r['img_id'] for r in results) == val_ids and len(val_ids) > 2
    assert 'coco/bbox_mAP' in proc.stdout + proc.stderr
