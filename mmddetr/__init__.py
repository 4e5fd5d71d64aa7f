"""mmddetr: Deformable DETR components for MMDetection 3.x.

Importing the package registers its modules in the ``'mmddetr'`` registries (``custom_imports=['mmddetr']``) when
mmdet is installed. The op, ``mmddetr.ops``, needs torch alone, so it imports on machines without OpenMMLab packages.
"""
from importlib.util import find_spec

if find_spec('mmdet') is not None:
    from . import datasets, engine, models  # noqa: F401

__version__ = '0.1.0'
