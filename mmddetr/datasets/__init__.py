from .coco import CocoDataset, DatasetError
from .toy_shapes import TOY_CLASSES, ToyShapesDataset, make_toy_dataset, make_toy_image
from .transforms import LoadImageFromFile

__all__ = [
    'CocoDataset', 'DatasetError', 'LoadImageFromFile', 'ToyShapesDataset', 'make_toy_dataset', 'make_toy_image',
    'TOY_CLASSES'
]
