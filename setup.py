"""Builds mmddetr and its extension ``mmddetr._C`` from ``ops/``.

The C++ CPU kernels are always built. The CUDA kernels are added when a CUDA build of torch and a CUDA toolkit are
present, or when ``FORCE_CUDA=1`` (e.g. on a build machine without a GPU); ``TORCH_CUDA_ARCH_LIST`` picks the
architectures as for any torch extension.
"""
import glob
import os

import torch
from setuptools import find_packages, setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension


class BuildExtensionInBuildDir(BuildExtension):
    """Compiles into ``build/temp`` whoever calls it: pip's editable install would use a fresh temporary directory,
    so ``tools/install.sh``'s later ``setup.py build_ext --inplace`` found no objects and recompiled everything; with
    one directory, ninja recompiles only the sources that changed."""

    def finalize_options(self):
        super().finalize_options()
        self.build_temp = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'build', 'temp')


def extension():
    sources = sorted(glob.glob('ops/*.cpp') + glob.glob('ops/cpu/*.cpp'))
    # -fopenmp: at::parallel_for is inlined into our kernels and uses OpenMP only when they are compiled with it.
    # -fno-trapping-math: we never rely on floating-point traps, and without it GCC keeps the conditional selects of
    # the sampling geometry as branches (float-to-int conversions may trap), so that loop does not vectorise.
    cxx = ['-O3', '-fopenmp', '-fno-trapping-math']
    with_cuda = os.getenv('FORCE_CUDA', '0') == '1' or (torch.version.cuda is not None and CUDA_HOME is not None)
    if not with_cuda:
        return CppExtension('mmddetr._C', sources, extra_compile_args={'cxx': cxx}, extra_link_args=['-fopenmp'])
    nvcc = ['-O3', '--expt-relaxed-constexpr', '-D__CUDA_NO_HALF_OPERATORS__', '-D__CUDA_NO_HALF_CONVERSIONS__',
            '-D__CUDA_NO_BFLOAT16_CONVERSIONS__', '-D__CUDA_NO_HALF2_OPERATORS__']
    return CUDAExtension('mmddetr._C', sources + sorted(glob.glob('ops/cuda/*.cu')),
                         extra_compile_args={'cxx': cxx, 'nvcc': nvcc}, extra_link_args=['-fopenmp'])


setup(
    name='mmddetr',
    version='0.1.0',
    description='Deformable DETR for MMDetection 3.x with a fast multi-scale deformable attention op',
    packages=find_packages(include=['mmddetr', 'mmddetr.*']),
    python_requires='>=3.8',
    install_requires=['torch', 'mmengine>=0.10.0', 'mmcv>=2.0.0,<2.2.0', 'mmdet>=3.3.0', 'pycocotools', 'scipy'],
    # ONNX export (tools/export_onnx.py), ONNX Runtime and OpenVINO inference (tools/infer.py --backend ...);
    # Hugging Face checkpoints (tools/convert_checkpoint.py --from hf / --to hf)
    extras_require={'export': ['onnx>=1.16', 'onnxscript>=0.5', 'onnxruntime>=1.20', 'openvino>=2024.0'],
                    'hf': ['transformers>=5.0']},
    ext_modules=[extension()],
    cmdclass={'build_ext': BuildExtensionInBuildDir},
    zip_safe=False,
)
