import os
import subprocess
import sys
import textwrap

import pytest
import torch

SCRIPT = textwrap.dedent('''
    import atexit
    import torch.distributed as dist
    from mmengine.config import Config
    from mmddetr.engine import setup_launcher

    atexit.register(lambda: print('initialised at exit:', dist.is_initialized()))  # runs after setup_launcher's
    cfg = Config(dict(env_cfg=dict()))
    setup_launcher(cfg, 'pytorch')
    print('initialised:', dist.is_initialized(), cfg.env_cfg['dist_cfg']['backend'],
          cfg['model_wrapper_cfg']['device_ids'])
''')


def test_cpu_launcher_initialises_gloo_and_destroys_the_group_at_exit():
    """A process group left to the interpreter's teardown can abort the process while gloo's threads still run.
    (MASTER_PORT 0: rank 0 of a world of one binds a free port itself, so no port is picked and released first.)"""
    env = dict(os.environ, RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1', MASTER_PORT='0',
               CUDA_VISIBLE_DEVICES='')
    proc = subprocess.run([sys.executable, '-c', SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-2:] == ['initialised: True gloo None', 'initialised at exit: False']


@pytest.mark.skipif(torch.cuda.is_available(), reason='with CUDA the launchers are left to mmengine')
@pytest.mark.parametrize('launcher', ['slurm', 'mpi'])
def test_other_launchers_on_cpu_get_gloo_and_ddp_without_device_ids(launcher):
    """The config part of ``--launcher slurm|mpi`` on CPU: gloo instead of the runtime's nccl, and DDP without
    ``device_ids``, the config's own wrapper options kept; the process group is left to mmengine."""
    import torch.distributed as dist
    from mmengine.config import Config

    from mmddetr.engine import setup_launcher
    cfg = Config(dict(env_cfg=dict(dist_cfg=dict(backend='nccl')),
                      model_wrapper_cfg=dict(find_unused_parameters=True, device_ids=[0])))
    setup_launcher(cfg, launcher)
    assert cfg.launcher == launcher and cfg.env_cfg.dist_cfg == dict(backend='gloo')
    assert cfg.model_wrapper_cfg == dict(type='MMDistributedDataParallel', broadcast_buffers=False,
                                         find_unused_parameters=True, device_ids=None)
    assert not dist.is_initialized()
