"""mmddetr: Deformable DETR components for MMDetection 3.x.

Importing the package registers its modules in the ``'mmddetr'`` registries (``custom_imports=['mmddetr']``).
"""
from . import datasets, engine, models  # noqa: F401

__version__ = '0.1.0'
