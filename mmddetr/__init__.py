"""mmddetr: Deformable DETR components for MMDetection 3.x.

Importing the package has no side effect, so the op (``mmddetr.ops``) imports with torch alone. Our modules register
in the ``'mmddetr'`` registries (:mod:`mmddetr.registry`) when mmengine first looks a name up in that scope: a config
with ``default_scope='mmddetr'``, or ``type='mmddetr.<Name>'`` in any other codebase's config (mmengine imports
``mmddetr.registry`` for the prefix, and each registry imports the modules that register in it).
``custom_imports=dict(imports=['mmddetr'])`` keeps working and is no longer needed.
"""
__version__ = '0.1.0'
