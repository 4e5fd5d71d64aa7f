"""Compiles the CUDA sources with nvcc for sm_80 and sm_90, so a CUDA error in either architecture's code (the
backward's scalar grad_value atomics, or its float4 ones on sm_90) cannot land unseen on a machine with no GPU.

Device code only (``-fatbin``: nvcc's front end still checks the host code, which gcc then need not compile): one nvcc
call builds both architectures, cheaper than a full ``-c`` for one (2026-12-07, 2-core VM, nvcc 13.0: 25 s of CPU
time, against 34 s for ``-c`` sm_80 and 47 s for ``-c`` both).
"""
import glob
import os
import shutil
import subprocess
import sysconfig

import pytest
import torch.utils.cpp_extension as cpp_extension

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NVCC = shutil.which('nvcc') or (cpp_extension.CUDA_HOME and os.path.join(cpp_extension.CUDA_HOME, 'bin', 'nvcc'))
SOURCES = sorted(glob.glob(os.path.join(ROOT, 'ops', 'cuda', '*.cu')))
ARCHS = ('80', '90')

pytestmark = pytest.mark.skipif(not NVCC or not os.path.exists(NVCC), reason='nvcc not found')


@pytest.fixture(scope='module')
def device_code(tmp_path_factory):
    """Compiles every source for both archs; returns {source: (nvcc's result, folder of its kept intermediates)}."""
    tmp_path = tmp_path_factory.mktemp('nvcc')
    # A CPU build of torch ships the CUDA headers but not this generated one; an empty stand-in suffices to compile.
    shim = tmp_path / 'include' / 'c10' / 'cuda' / 'impl'
    shim.mkdir(parents=True)
    (shim / 'cuda_cmake_macros.h').write_text('#pragma once\n')
    includes = cpp_extension.include_paths() + [str(tmp_path / 'include'), sysconfig.get_paths()['include']]
    compiled = {}
    for source in SOURCES:
        keep = tmp_path / os.path.basename(source)
        keep.mkdir()
        command = [NVCC, '-fatbin', source, '-o', str(keep / 'out.fatbin'), '-keep', '-keep-dir', str(keep),
                   '--threads', str(len(ARCHS)), '-std=c++20', '--expt-relaxed-constexpr',
                   '-D__CUDA_NO_HALF_OPERATORS__', '-D__CUDA_NO_HALF_CONVERSIONS__',
                   '-D__CUDA_NO_BFLOAT16_CONVERSIONS__', '-D__CUDA_NO_HALF2_OPERATORS__', '-diag-suppress=3306',
                   '-Xcompiler', '-Wno-c++20-extensions'] + [f'-gencode=arch=compute_{arch},code=sm_{arch}'
                                                             for arch in ARCHS] + [f'-I{path}' for path in includes]
        compiled[source] = (subprocess.run(command, capture_output=True, text=True), keep)
    return compiled


@pytest.mark.parametrize('source', SOURCES, ids=os.path.basename)
def test_cuda_source_compiles_for_sm80_and_sm90(device_code, source):
    result, keep = device_code[source]
    assert result.returncode == 0, result.stderr[-4000:]
    stem = os.path.splitext(os.path.basename(source))[0]
    for arch in ARCHS:
        assert (keep / f'{stem}.compute_{arch}.cubin').stat().st_size > 0, f'no sm_{arch} code'


def test_sm90_build_takes_the_float4_grad_value_atomics(device_code):
    """The backward's 16-byte atomics are compiled (PTX ``atom.global.add.v4.f32``) for sm_90 and for sm_90 only."""
    source = os.path.join(ROOT, 'ops', 'cuda', 'ms_deform_attn_cuda.cu')
    result, keep = device_code[source]
    assert result.returncode == 0, result.stderr[-4000:]
    ptx = {arch: (keep / f'ms_deform_attn_cuda.compute_{arch}.ptx').read_text() for arch in ARCHS}
    assert 'atom.global.add.v4.f32' in ptx['90'] and 'atom.global.add.v4.f32' not in ptx['80']
    assert 'atom.global.add.f32' in ptx['80']
