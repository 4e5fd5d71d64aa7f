"""tools/dist_train.sh and tools/dist_test.sh on CPU: two torchrun processes with gloo (``--launcher pytorch``) train
a toy config in lockstep, then test its checkpoint with every val image gathered; the rendezvous takes a free port
itself. Bad arguments stop the scripts with one line."""
import json
import os
import pickle
import subprocess
import sys

import pytest

from tool_runs import TOY, check_ok

HOOK = '''
import json, os
import torch.distributed as dist
from mmengine.hooks import Hook
from mmddetr.registry import HOOKS


@HOOKS.register_module()
class ParamDigestHook(Hook):
    """Writes, per rank, a digest of the parameters after training, the world size and the model's wrapper."""

    def after_train(self, runner):
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        digest = sum(float(p.double().sum()) * (i + 1) for i, p in enumerate(model.parameters()))
        with open(os.path.join(runner.work_dir, f'digest_{dist.get_rank()}.json'), 'w') as f:
            json.dump(dict(digest=digest, world_size=dist.get_world_size(),
                           wrapper=type(runner.model).__name__), f)
'''


def test_two_cpu_processes_train_in_lockstep_then_test(run_tool, toy_options, toy_root, tmp_path):
    (tmp_path / 'param_digest_hook.py').write_text(HOOK)
    config = tmp_path / 'dist_toy.py'
    config.write_text(f"_base_ = '{os.path.abspath(TOY)}'\n"
                      "custom_imports = dict(imports=['mmddetr', 'param_digest_hook'], allow_failed_imports=False)\n"
                      "custom_hooks = [dict(type='RNGStateHook'), dict(type='ParamDigestHook')]\n")
    # PORT 0, the scripts' default: the rendezvous binds a free port itself
    env = dict(PYTHON=sys.executable, PORT='0',
               PYTHONPATH=os.pathsep.join(filter(None, [str(tmp_path), os.environ.get('PYTHONPATH')])))
    work = tmp_path / 'work'
    # two iterations, no validation (the test below evaluates the checkpoint)
    check_ok(run_tool('dist_train.sh', str(config), '2', '--work-dir', str(work), '--cfg-options', *toy_options,
                      'train_cfg.max_iters=2', 'train_cfg.val_begin=3', launcher=['bash'], env=env))
    digests = [json.loads((work / f'digest_{rank}.json').read_text()) for rank in (0, 1)]
    assert digests[0] == digests[1]  # same parameters on both ranks after the steps
    assert digests[0]['world_size'] == 2 and digests[0]['wrapper'] == 'MMDistributedDataParallel'

    # the distributed test gathers the predictions of both ranks: one result per val image, each image once
    out = tmp_path / 'results.pkl'
    proc = check_ok(run_tool('dist_test.sh', TOY, str(work / 'iter_2.pth'), '2', '--work-dir', str(tmp_path / 'test'),
                             '--out', str(out), '--cfg-options', *toy_options, launcher=['bash'], env=env))
    with open(out, 'rb') as f:
        results = pickle.load(f)
    with open(os.path.join(toy_root, 'annotations/instances_val.json')) as f:
        val_ids = sorted(image['id'] for image in json.load(f)['images'])
    assert sorted(r['img_id'] for r in results) == val_ids and len(val_ids) > 2
    assert 'coco/bbox_mAP' in proc.stdout + proc.stderr


NPROC = 'NPROC: expected a positive number of processes, got'
PORT = 'PORT: expected the rendezvous port on MASTER_ADDR with NNODES=2, got none'


@pytest.mark.parametrize('script, args, env, message', [
    ('dist_train.sh', ['a.py'], {}, 'usage: bash tools/dist_train.sh CONFIG NPROC [train.py options]'),
    ('dist_test.sh', ['a.py', '2'], {}, 'usage: bash tools/dist_test.sh CONFIG CHECKPOINT NPROC [test.py options]'),
    ('dist_train.sh', ['a.py', 'two'], {}, f"dist_train.sh: {NPROC} 'two'"),
    ('dist_test.sh', ['a.py', 'b.pth', '0'], {}, f"dist_test.sh: {NPROC} '0'"),
    ('dist_train.sh', ['a.py', '2'], {'NNODES': '2'}, f'dist_train.sh: {PORT}'),
    ('dist_test.sh', ['a.py', 'b.pth', '2'], {'NNODES': '2'}, f'dist_test.sh: {PORT}'),
])
def test_bad_arguments_stop_with_one_line(script, args, env, message):
    env = {k: v for k, v in dict(os.environ, **env).items() if k != 'PORT'}
    proc = subprocess.run(['bash', f'tools/{script}', *args], capture_output=True, text=True, timeout=60, env=env)
    assert (proc.returncode, proc.stdout, proc.stderr) == (2, '', message + '\n')
