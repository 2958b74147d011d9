"""Attribution methods through captum (docs/methods.md#attribution-methods), shared by BAM (Yang & Kim 2019) and Adebayo et
al. 2022: a registry of saliency methods with the papers' settings (`methods`), the two named
normalisers (`normalise`), region means of normalised maps (`regions`), and TCAV with a CAV cache
keyed by the model's hash and random-concept t-tests (`tcav`)."""

from .methods import METHODS, AttributionModel, AttributionSettings, attribute, attribute_batched
from .normalise import NORMALISERS, normalise
from .regions import region_means

__all__ = [
    "METHODS",
    "NORMALISERS",
    "AttributionModel",
    "AttributionSettings",
    "attribute",
    "attribute_batched",
    "normalise",
    "region_means",
]
