"""What the tools tests share beside their fixtures (tests/tools/conftest.py): the config they run, checkpoint
reading and comparison, and the check of a finished tool run. A module of its own, on the import path through
``pytest.ini``, because ``from conftest import ...`` resolves to whichever conftest.py pytest loaded last."""
import torch

from toy_configs import MAIN_TOY as TOY  # noqa: F401 (the tools tests' config)


def load_checkpoint(path):
    """An mmengine checkpoint, loaded weights-only as torch >= 2.6 does by default (our allowlist applied)."""
    import torch

    from mmddetr.engine import mmengine_checkpoint_globals
    with mmengine_checkpoint_globals():
        return torch.load(path, map_location='cpu', weights_only=True)


def assert_same_weights(a, b):
    """Checkpoints ``a`` and ``b`` hold equal weights: those saved, and those an EMAHook swapped out, if any."""
    for part in ('state_dict', 'ema_state_dict'):
        assert (part in a) == (part in b), part
        for key, value in a.get(part, {}).items():
            assert torch.equal(b[part][key], value), f'{part}: {key}'
    assert a['state_dict'].keys() == b['state_dict'].keys()


def check_ok(proc):
    """``proc`` after asserting it succeeded (its output tails otherwise)."""
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


TOY_ROOT_ARGS = ('--num-train', '16', '--num-val', '8', '--size', '96', '--seed', '0')
