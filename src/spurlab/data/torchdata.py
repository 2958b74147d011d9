"""Image sets as torch Datasets: images as float (3, H, W) in [0, 1] (normalisation lives in the
model wrapper, never in the data; docs/methods.md#notation)."""

from __future__ import annotations

import os
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import SpurlabError
from .imagesets import ImageSet


class ImageSetDataset(Dataset):
    """`(image, label)` pairs from an image set (packed or index).

    - `transform`: called on the float tensor (3, H, W) of each image, e.g. augmentation.
    - `label_column`: a metadata column to use as the label instead of `labels` (BAM sets carry
      both `object_label` and `scene_label`).
    - `indices`: a subset of rows, in the given order.
    """

    def __init__(
        self,
        imageset: ImageSet | str | os.PathLike,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        label_column: str | None = None,
        indices: np.ndarray | None = None,
    ):
        self.imageset = imageset if isinstance(imageset, ImageSet) else ImageSet(imageset)
        self.transform = transform
        if label_column is None:
            labels = self.imageset.labels
        else:
            if label_column not in self.imageset.meta_columns:
                raise SpurlabError(f"{self.imageset.path}: no metadata column '{label_column}' to use as label")
            labels = self.imageset.f[f"meta/{label_column}"][:]
        self.labels = torch.as_tensor(labels.astype(np.int64))
        self.indices = np.arange(len(self.imageset)) if indices is None else np.asarray(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        row = int(self.indices[i])
        img = torch.from_numpy(np.ascontiguousarray(self.imageset.images(row))).permute(2, 0, 1).float().div_(255.0)
        if self.transform is not None:
            img = self.transform(img)
        return img, self.labels[row]
