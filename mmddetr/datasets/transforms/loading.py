"""Image loading whose errors name the file, and which can skip unreadable images in long training runs."""
import logging
from typing import Optional

import mmcv
import numpy as np
from mmcv.transforms import LoadImageFromFile as MMCVLoadImageFromFile
from mmengine import fileio
from mmengine.logging import print_log

from mmddetr.registry import TRANSFORMS
from ..coco import DatasetError


@TRANSFORMS.register_module()
class LoadImageFromFile(MMCVLoadImageFromFile):
    """mmcv's ``LoadImageFromFile`` (same name, so configs and mmdet's inferencers use it in scope ``'mmddetr'``)
    with errors that name the image file, and ``on_error='skip'`` for training runs that must outlive a bad image.

    With the default cv2 backend and ``color_type='color'``, grayscale, RGBA (alpha dropped) and 16-bit images (top
    8 bits kept) load as 3-channel uint8 BGR, like 8-bit colour ones.

    Args:
        on_error (str): On a missing, unreadable, empty, truncated or corrupt image file: ``'raise'`` a
            ``FileNotFoundError`` / ``OSError`` naming the file, or ``'skip'``: log a warning naming the file and
            return None, so that mmengine's ``BaseDataset`` draws another image (training datasets only; a
            ``test_mode`` dataset still stops). Default: ``'raise'``.
        **kwargs: mmcv's (``to_float32``, ``color_type``, ``imdecode_backend``, ``backend_args``, ...);
            ``ignore_empty=True`` means ``on_error='skip'``.
    """

    def __init__(self, *args, on_error: str = 'raise', **kwargs) -> None:
        if on_error not in ('raise', 'skip'):
            raise DatasetError(f"LoadImageFromFile: on_error must be 'raise' or 'skip', got {on_error!r}")
        super().__init__(*args, **kwargs)
        self.on_error = 'skip' if self.ignore_empty else on_error

    def transform(self, results: dict) -> Optional[dict]:
        """Load ``results['img_path']`` into ``img``, ``img_shape`` and ``ori_shape``; None when skipped."""
        try:
            img = self._read(results['img_path'])
        except OSError as error:
            if self.on_error == 'raise':
                raise
            print_log(f'{error}; skipped (on_error=skip), another image is drawn', logger='current',
                      level=logging.WARNING)
            return None
        if self.to_float32:
            img = img.astype(np.float32)
        results.update(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2])
        return results

    def _read(self, path: str) -> np.ndarray:
        try:
            if self.file_client_args is not None:
                content = fileio.FileClient.infer_client(self.file_client_args, path).get(path)
            else:
                content = fileio.get(path, backend_args=self.backend_args)
        except FileNotFoundError as error:
            raise FileNotFoundError(f'image file not found: {path} (data_root + data_prefix.img + the file_name '
                                    'in the annotation file)') from error
        except OSError as error:
            raise OSError(f'cannot read image file {path}: {error}') from error
        try:
            img = mmcv.imfrombytes(content, flag=self.color_type, backend=self.imdecode_backend)
        except Exception as error:  # cv2.error on empty input, PIL's errors, ...
            raise _undecodable(path, content) from error
        if img is None:  # cv2 gives None for truncated, corrupt and non-image files
            raise _undecodable(path, content)
        return img


def _undecodable(path: str, content: bytes) -> OSError:
    return OSError(f'cannot decode image file {path} ({len(content)} bytes): empty, truncated, corrupt or not an '
                   'image')
