"""What the converters share: COCO's category ids, the 91-row class layout of the official and Hugging Face
checkpoints, and renaming by name prefix."""
from typing import Dict, List

# COCO 2017 category ids of mmdet's 80 CocoDataset classes, in class order.
COCO_CATEGORY_IDS = [
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32, 33, 34, 35,
    36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65,
    67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90
]
COCO_NUM_ROWS = 91  # class rows indexed by category id 0..90; id 0 and ten others name no class


def coco_class_rows(proposal_scorer: bool = False) -> List[int]:
    """The rows of a 91-row class layer that become mmdet's 80 classes, in class order.

    The two-stage proposal scorer ranks proposals by its channel 0 (the official class-agnostic objectness, the row of
    the unused id 0), so there class 0 keeps row 0; its other classes are the category rows as everywhere.
    """
    return [0] + COCO_CATEGORY_IDS[1:] if proposal_scorer else list(COCO_CATEGORY_IDS)


def other_rows(rows: List[int], num_rows: int = COCO_NUM_ROWS) -> List[int]:
    """The rows of a ``num_rows``-row layer not in ``rows``, in order."""
    kept = set(rows)
    return [row for row in range(num_rows) if row not in kept]


def rename(name: str, table: Dict[str, str]) -> str:
    """``name`` with its first matching prefix of ``table`` (whole dot-separated parts) replaced."""
    for old, new in table.items():
        if name == old or name.startswith(old + '.'):
            return new + name[len(old):]
    return name
