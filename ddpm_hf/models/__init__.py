from .classifier import ImageClassifier
from .conditional_unet import MultiLabelUNet2DModel
from .label_token_unet import MultiLabelTokenUNet2DModel
from .mlp_2d import MLP2DModel, MLP2DOutput
from .unet_presets import LABEL_CONDITIONINGS, UNET_PRESETS, check_resolution, make_unet

__all__ = [
    "ImageClassifier",
    "LABEL_CONDITIONINGS",
    "MLP2DModel",
    "MultiLabelTokenUNet2DModel",
    "MultiLabelUNet2DModel",
    "MLP2DOutput",
    "UNET_PRESETS",
    "check_resolution",
    "make_unet",
]
