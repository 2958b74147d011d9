"""Models: local architectures registered in timm, the `Classifier` wrapper, save/load."""

from . import cbr, resnet_small  # noqa: F401  (register the local architectures with timm)
from .factory import Classifier, build_classifier, create_model, load_model, save_model

__all__ = ["Classifier", "build_classifier", "create_model", "load_model", "save_model"]
