"""The CPU kernels' two variants, forced with MMDDETR_CPU_KERNEL in fresh processes: each against the reference (and
summing 16-bit inputs in float32), the same dropout masks from both, auto's pick and bad settings."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Forward and gradients against the reference for runtime and unrolled head dims (8, 71; 16, 32, 64), query splits
# across threads (1 image, 1200 queries), every dtype; 16-bit sums in float32 (tests/ops/float32_sums.py); then the
# status and a digest of a dropout output.
SCRIPT = r'''
import hashlib, json, sys, torch
from mmddetr.ops import extension_status, multi_scale_deformable_attn, multi_scale_deformable_attn_pytorch
sys.path.insert(0, 'tests/ops')
from float32_sums import assert_sums_in_float32

torch.set_num_threads(2)
gen = torch.Generator().manual_seed(0)
shapes = torch.tensor([[6, 4], [3, 2], [1, 1]])
starts = torch.tensor([0, 24, 30])
for dtype in (torch.float64, torch.float32, torch.bfloat16, torch.float16):
    opmath = torch.float64 if dtype == torch.float64 else torch.float32
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    # a 16-bit result is the float32 one rounded to dtype: within half a unit in the last place (eps / 2, relative)
    rtol = tol if dtype == opmath else torch.finfo(dtype).eps
    for bs, heads, dims, queries in ((2, 2, 8, 7), (2, 8, 32, 40), (1, 1, 16, 1200), (1, 2, 64, 9), (3, 1, 71, 5)):
        value = torch.randn(bs, 31, heads, dims, generator=gen, dtype=torch.float64).to(dtype)
        locations = (torch.rand(bs, queries, heads, 3, 4, 2, generator=gen, dtype=torch.float64) * 1.4 - 0.2)
        weights = torch.rand(bs, queries, heads, 3, 4, generator=gen, dtype=torch.float64)
        # representable in dtype: the op's output, hence its gradient, is in dtype
        grad_out = torch.randn(bs, queries, heads * dims, generator=gen, dtype=torch.float64).to(dtype).to(opmath)
        results = []
        for fn, v in ((multi_scale_deformable_attn, value), (multi_scale_deformable_attn_pytorch, value.to(opmath))):
            leaves = [t.to(opmath).requires_grad_() if t is not v else v.clone().requires_grad_()
                      for t in (v, locations, weights)]
            out = fn(leaves[0], shapes, starts, leaves[1], leaves[2])
            results.append([out, *torch.autograd.grad(out.to(opmath), leaves, grad_out)])
        for name, ours, ref in zip(('output', 'grad value', 'grad locations', 'grad weights'), *results):
            in_dtype = name in ('output', 'grad value')
            assert ours.dtype == (dtype if in_dtype else opmath), (name, ours.dtype)
            torch.testing.assert_close(ours.to(opmath), ref, rtol=rtol if in_dtype else tol, atol=tol,
                                       msg=lambda m: f'{name} {dtype} {(bs, heads, dims, queries)}: {m}')
for dtype in (torch.bfloat16, torch.float16):
    assert_sums_in_float32(multi_scale_deformable_attn, dtype)
x = torch.randn(3, 70001, generator=gen)
digest = hashlib.sha256(torch.ops.mmddetr.dropout(x, 0.3, 1234).numpy().tobytes()).hexdigest()
print(json.dumps({'status': extension_status(), 'dropout': digest}))
'''


def _run(kernel, code=SCRIPT):
    env = {name: value for name, value in os.environ.items() if name != 'MMDDETR_CPU_KERNEL'}
    if kernel is not None:
        env['MMDDETR_CPU_KERNEL'] = kernel
    return subprocess.run([sys.executable, '-c', code], env=env, cwd=ROOT, capture_output=True, text=True)


@pytest.fixture(scope='module')
def runs():
    """kernel setting (None: unset) -> the script's JSON, or None where this CPU lacks the avx2 variant."""
    results = {}
    for kernel in ('baseline', 'avx2', None):
        proc = _run(kernel)
        if kernel == 'avx2' and 'lacks x86-64-v3' in proc.stderr:
            results[kernel] = None
            continue
        assert proc.returncode == 0, proc.stderr[-4000:]
        results[kernel] = json.loads(proc.stdout.splitlines()[-1])
    return results


@pytest.mark.parametrize('kernel', ['baseline', 'avx2'])
def test_forced_variant_matches_reference_and_is_reported(runs, kernel):
    if runs[kernel] is None:
        pytest.skip('this CPU lacks x86-64-v3 (AVX2, FMA)')
    assert f'CPU kernel: {kernel} (MMDDETR_CPU_KERNEL={kernel})' in runs[kernel]['status']


def test_auto_takes_avx2_where_the_cpu_has_it(runs):
    expected = 'baseline' if runs['avx2'] is None else 'avx2'
    assert f'CPU kernel: {expected} (MMDDETR_CPU_KERNEL=auto)' in runs[None]['status']


def test_dropout_masks_equal_across_variants(runs):
    assert len({run['dropout'] for run in runs.values() if run is not None}) == 1


def test_bad_setting_is_a_value_error_at_the_first_call():
    code = ('import torch\n'
            'from mmddetr.ops import extension_status, multi_scale_deformable_attn\n'  # importing works
            'value, locations = torch.zeros(1, 1, 1, 1), torch.zeros(1, 1, 1, 1, 1, 2)\n'
            'for call in (lambda: multi_scale_deformable_attn(value, torch.tensor([[1, 1]]), torch.tensor([0]),\n'
            '                                                 locations, locations[..., 0]), extension_status):\n'
            '    try:\n'
            '        call()\n'
            '    except ValueError as error:\n'
            '        print(error)\n')
    proc = _run('sse4', code)
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == 2 and all("MMDDETR_CPU_KERNEL must be baseline, avx2 or auto, got 'sse4'" in line
                                   for line in lines), lines
