from .toy_shapes import TOY_CLASSES, ToyShapesDataset, make_toy_dataset, make_toy_image

__all__ = ['ToyShapesDataset', 'make_toy_dataset', 'make_toy_image', 'TOY_CLASSES']
