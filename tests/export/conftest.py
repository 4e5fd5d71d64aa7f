import pytest
import torch


@pytest.fixture(scope='session')
def per_image():
    """``split(scores, labels, boxes, valid_sizes)`` → one ``InstanceData`` per image of the exported model's outputs
    (tensors or arrays), boxes divided by the image's valid (w, h): tolerances relative to the image size."""
    from mmengine.structures import InstanceData

    def split(scores, labels, boxes, valid_sizes):
        wh = torch.as_tensor(valid_sizes).flip(-1).repeat(1, 2)[:, None].float()
        boxes = torch.as_tensor(boxes) / wh
        return [InstanceData(scores=torch.as_tensor(s), labels=torch.as_tensor(l), bboxes=b)
                for s, l, b in zip(scores, labels, boxes)]

    return split
