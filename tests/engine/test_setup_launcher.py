import os
import socket
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent('''
    import atexit
    import torch.distributed as dist
    from mmengine.config import Config
    from mmddetr.engine import setup_launcher

    atexit.register(lambda: print('initialised at exit:', dist.is_initialized()))  # runs after setup_launcher's
    cfg = Config(dict(env_cfg=dict()))
    setup_launcher(cfg, 'pytorch')
    print('initialised:', dist.is_initialized(), cfg.env_cfg['dist_cfg']['backend'], cfg['model_wrapper_cfg']['device_ids'])
''')


def test_cpu_launcher_initialises_gloo_and_destroys_the_group_at_exit():
    """A process group left to the interpreter's teardown can abort the process while gloo's threads still run."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port),
               CUDA_VISIBLE_DEVICES='')
    proc = subprocess.run([sys.executable, '-c', SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-2:] == ['initialised: True gloo None', 'initialised at exit: False']
