"""Start training from a saved pipeline: diffusers' `DDPMPipeline` layout (UNet2DModel + DDPMScheduler, as
`google/ddpm-cifar10-32` is published) or a ddpm-hf pipeline folder, from a local folder or the Hub."""

import json
import os

import torch
from diffusers import UNet2DModel

from .conditional_unet import MultiLabelUNet2DModel
from .label_token_unet import MultiLabelTokenUNet2DModel

UNET_CLASSES = {cls.__name__: cls for cls in (UNet2DModel, MultiLabelUNet2DModel, MultiLabelTokenUNet2DModel)}
# Configs and safetensors weights only: never pickled weights, never code.
PRETRAINED_PATTERNS = ["model_index.json", "unet/*.json", "unet/*.safetensors", "scheduler/*.json"]


def pretrained_folder(name_or_path: str, cache_dir: str | None = None) -> str:
    """
    A local folder holding the pipeline `name_or_path` names: the folder itself, or a download of the Hub repository
    (configs and safetensors weights only). A path that looks local (it exists, or starts with `.`, `/` or `~`) never
    reaches the Hub.
    """
    path = os.path.expanduser(name_or_path)
    if os.path.isdir(path):
        folder = path
    elif os.path.exists(path) or name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") != 1:
        raise ValueError(
            f"--pretrained_model_name_or_path {name_or_path!r} is not a folder (nor a Hub id of the form owner/name)."
        )
    else:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(name_or_path, allow_patterns=PRETRAINED_PATTERNS, cache_dir=cache_dir)
    for required in ("unet/config.json", "scheduler/scheduler_config.json"):
        if not os.path.isfile(os.path.join(folder, required)):
            raise ValueError(
                f"{name_or_path!r} holds no {required}: give a pipeline folder with unet/ and scheduler/ (diffusers' "
                "DDPMPipeline layout, or a ddpm-hf run folder)."
            )
    return folder


def read_pretrained_configs(folder: str) -> tuple[dict, dict, dict]:
    """(unet config, scheduler config, id2label by int id; empty when the folder names no classes) of a folder."""
    with open(os.path.join(folder, "unet", "config.json")) as f:
        unet_config = json.load(f)
    with open(os.path.join(folder, "scheduler", "scheduler_config.json")) as f:
        scheduler_config = json.load(f)
    id2label = {}
    index_path = os.path.join(folder, "model_index.json")
    if os.path.isfile(index_path):
        with open(index_path) as f:
            id2label = {int(key): name for key, name in (json.load(f).get("id2label") or {}).items()}
    if unet_config.get("_class_name") not in UNET_CLASSES:
        raise ValueError(
            f"The pretrained U-Net is a {unet_config.get('_class_name')!r}; ddpm-hf fine-tunes {list(UNET_CLASSES)}."
        )
    return unet_config, scheduler_config, id2label


def pretrained_num_classes(unet_config: dict) -> int | None:
    """K of a saved U-Net: its labels (multi-label), its class embeddings minus the null class, or None."""
    if "num_labels" in unet_config:
        return unet_config["num_labels"]
    num_class_embeds = unet_config.get("num_class_embeds")
    return None if num_class_embeds is None else num_class_embeds - 1


def load_pretrained_unet(folder: str, num_classes: int | None, multi_label: bool):
    """
    The U-Net saved in `folder` (safetensors weights), ready to train on data with `num_classes` classes.

    A class-conditional run may start from an unconditional `UNet2DModel`: a class embedding of K + 1 rows (the last
    one the null class of classifier-free guidance) is added where diffusers' `num_class_embeds` puts it, initialised
    to zeros. The embedding is added to the time embedding, so at the start every class, the null class included,
    gives exactly the pretrained model's output, and fine-tuning learns how the classes differ from it. Any other
    change of conditioning (classes where the model has others, labels where it has none) is refused.

    Args:
        folder (`str`): A folder from `pretrained_folder`.
        num_classes (`int`, *optional*): K of the training data; None for an unconditional run.
        multi_label (`bool`): Whether the training data holds a list of labels per image.
    """
    unet_config, _, _ = read_pretrained_configs(folder)
    unet_class = UNET_CLASSES[unet_config["_class_name"]]
    saved_classes = pretrained_num_classes(unet_config)
    saved_multi_label = "num_labels" in unet_config
    adds_class_embedding = saved_classes is None and num_classes is not None and not multi_label
    if not adds_class_embedding and (saved_classes != num_classes or saved_multi_label != multi_label):
        saved = (
            "unconditional"
            if saved_classes is None
            else f"{saved_classes} {'labels' if saved_multi_label else 'classes'}"
        )
        wanted = "unconditional" if num_classes is None else f"{num_classes} {'labels' if multi_label else 'classes'}"
        raise ValueError(
            f"The pretrained U-Net is {saved} and the training data is {wanted}. A fine-tune keeps the model's "
            "conditioning, except that a class-conditional run may start from an unconditional UNet2DModel."
        )
    unet = unet_class.from_pretrained(folder, subfolder="unet", use_safetensors=True)
    if adds_class_embedding:
        config = {key: value for key, value in unet.config.items() if not key.startswith("_")}
        conditional = UNet2DModel.from_config({**config, "num_class_embeds": num_classes + 1})
        missing, unexpected = conditional.load_state_dict(unet.state_dict(), strict=False)
        assert missing == ["class_embedding.weight"] and not unexpected, (missing, unexpected)
        with torch.no_grad():
            conditional.class_embedding.weight.zero_()
        unet = conditional
    return unet.train()
