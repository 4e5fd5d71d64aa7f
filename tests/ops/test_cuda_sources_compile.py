"""Compiles the CUDA sources with nvcc (compile only), so a CUDA syntax error cannot land on a machine with no GPU."""
import glob
import os
import shutil
import subprocess
import sysconfig

import pytest
import torch.utils.cpp_extension as cpp_extension

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NVCC = shutil.which('nvcc') or (cpp_extension.CUDA_HOME and os.path.join(cpp_extension.CUDA_HOME, 'bin', 'nvcc'))


@pytest.mark.skipif(not NVCC or not os.path.exists(NVCC), reason='nvcc not found')
@pytest.mark.parametrize('source', sorted(glob.glob(os.path.join(ROOT, 'ops', 'cuda', '*.cu'))))
def test_cuda_source_compiles(source, tmp_path):
    # A CPU build of torch ships the CUDA headers but not this generated one; an empty stand-in suffices to compile.
    shim = tmp_path / 'include' / 'c10' / 'cuda' / 'impl'
    shim.mkdir(parents=True)
    (shim / 'cuda_cmake_macros.h').write_text('#pragma once\n')
    includes = cpp_extension.include_paths() + [str(tmp_path / 'include'), sysconfig.get_paths()['include']]
    command = [NVCC, '-c', source, '-o', str(tmp_path / 'out.o'), '-std=c++20', '-O0', '-Xcompiler', '-fPIC',
               '--expt-relaxed-constexpr', '-gencode=arch=compute_80,code=sm_80', '-D__CUDA_NO_HALF_OPERATORS__',
               '-D__CUDA_NO_HALF_CONVERSIONS__', '-D__CUDA_NO_BFLOAT16_CONVERSIONS__', '-D__CUDA_NO_HALF2_OPERATORS__',
               '-diag-suppress=3306', '-Xcompiler', '-Wno-c++20-extensions'] + [f'-I{path}' for path in includes]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-4000:]
