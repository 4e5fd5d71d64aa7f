"""The toy configs the tests build, named once (``pytest.ini`` puts ``tests/`` on the import path)."""
MAIN_TOY = 'configs/toy/deformable_detr_r18_toy_refine_twostage.py'  # the main job's: refine + two-stage
PLAIN_TOY = 'configs/toy/deformable_detr_r18_toy.py'  # the multi-scale detector without refinement or two-stage
MMDET_DETR_TOY = 'configs/toy/detr_r18_toy.py'  # mmdet's own DETR at the toy size: none of our modules
