"""Start training from a saved pipeline: diffusers' `DDPMPipeline` layout (UNet2DModel + DDPMScheduler, as
`google/ddpm-cifar10-32` is published) or a ddpm-hf pipeline folder, from a local folder or the Hub."""

import inspect
import json
import os

import torch
from diffusers import UNet2DModel

from ..hub.sources import looks_local
from ..pipelines.class_conditions import check_id2label
from ..pipelines.input_checks import image_size
from ..schedulers import ExtendedDDPMScheduler
from .conditional_unet import MultiLabelUNet2DModel
from .label_token_unet import MultiLabelTokenUNet2DModel

UNET_CLASSES = {cls.__name__: cls for cls in (UNet2DModel, MultiLabelUNet2DModel, MultiLabelTokenUNet2DModel)}
# Configs and safetensors weights only: never pickled weights, never code.
PRETRAINED_PATTERNS = ["model_index.json", "unet/*.json", "unet/*.safetensors", "scheduler/*.json"]
# Scheduler settings that train_image.py takes as flags (a fine-tune reads them from the pretrained scheduler); every
# other setting ExtendedDDPMScheduler has is carried over from the pretrained scheduler as it is.
SCHEDULER_FLAG_SETTINGS = ("num_train_timesteps", "beta_schedule", "beta_start", "beta_end", "prediction_type")
KEPT_SCHEDULER_SETTINGS = tuple(
    name
    for name in inspect.signature(ExtendedDDPMScheduler.__init__).parameters
    if name != "self" and name not in SCHEDULER_FLAG_SETTINGS
)
LEARNED_VARIANCE_TYPES = ("learned", "learned_range")


def pretrained_folder(name_or_path: str, cache_dir: str | None = None) -> str:
    """
    A local folder holding the pipeline `name_or_path` names: the folder itself, or a download of the Hub repository
    (configs and safetensors weights only). A path that exists or looks local (`ddpm_hf.hub.looks_local`: it starts
    with `.`, `/` or `~`, its parent folder exists, ...) never reaches the Hub, nor does a name not of the form
    owner/name.
    """
    path = os.path.expanduser(name_or_path)
    if os.path.isdir(path):
        folder = path
    elif os.path.exists(path) or looks_local(name_or_path) or name_or_path.count("/") != 1:
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
            id2label = json.load(f).get("id2label") or {}
    check_pretrained_unet(unet_config)
    try:
        id2label = check_id2label(id2label, pretrained_num_classes(unet_config), "num_labels" in unet_config) or {}
    except ValueError as error:
        raise ValueError(f"The pretrained model's {error}") from None
    pretrained_scheduler_settings(scheduler_config)  # refuses settings a fine-tune could not keep
    return unet_config, scheduler_config, id2label


def check_pretrained_unet(unet_config: dict) -> None:
    """Refuse a saved U-Net that ddpm-hf cannot fine-tune, naming the setting: another class, a class embedding other
    than diffusers' class-id table (`class_embed_type`), a learned variance (out_channels = 2 * in_channels) or
    non-square images."""
    class_name = unet_config.get("_class_name")
    if class_name not in UNET_CLASSES:
        raise ValueError(f"The pretrained U-Net is a {class_name!r}; ddpm-hf fine-tunes {list(UNET_CLASSES)}.")
    if class_name == "UNet2DModel" and unet_config.get("class_embed_type") is not None:
        raise ValueError(
            f"The pretrained U-Net has class_embed_type={unet_config['class_embed_type']!r}; ddpm-hf fine-tunes "
            "UNet2DModels without one (unconditional, or class ids through num_class_embeds with class_embed_type "
            "None)."
        )
    if unet_config.get("out_channels") != unet_config.get("in_channels"):
        raise ValueError(
            f"The pretrained U-Net has out_channels={unet_config.get('out_channels')} for in_channels="
            f"{unet_config.get('in_channels')}; ddpm-hf trains U-Nets whose out_channels equal their in_channels (one "
            "prediction per channel; a learned variance, out_channels = 2 * in_channels, is not trained here)."
        )
    pretrained_resolution(unet_config)


def pretrained_resolution(unet_config: dict) -> int:
    """The training resolution of a saved U-Net: its `sample_size`, one side or a square [n, n]; other shapes are
    refused, since training crops square images."""
    try:
        height, width = image_size(unet_config.get("sample_size"))
    except ValueError as error:
        raise ValueError(f"The pretrained model: {error}") from None
    if height != width:
        raise ValueError(
            f"The pretrained U-Net's sample_size is {unet_config['sample_size']} (height x width); ddpm-hf trains on "
            "square images, so it fine-tunes U-Nets whose sample_size is one side or [n, n]."
        )
    return height


def pretrained_scheduler_settings(scheduler_config: dict) -> dict:
    """
    The settings of a pretrained scheduler that a fine-tune keeps beyond those train_image.py takes as flags
    (`SCHEDULER_FLAG_SETTINGS`): `trained_betas`, `variance_type`, clipping and thresholding, timestep spacing and
    offset, zero-SNR rescaling (`KEPT_SCHEDULER_SETTINGS`), as the config holds them. A setting ExtendedDDPMScheduler
    has no place for (e.g. DDIMScheduler's `set_alpha_to_one`), a learned variance, or `trained_betas` that do not
    make a schedule of num_train_timesteps betas in (0, 1) are refused by name.
    """
    settings = {name: value for name, value in scheduler_config.items() if not name.startswith("_")}
    class_name = scheduler_config.get("_class_name", "scheduler")
    known = SCHEDULER_FLAG_SETTINGS + KEPT_SCHEDULER_SETTINGS
    unknown = {name: value for name, value in settings.items() if name not in known}
    if unknown:
        listed = ", ".join(f"{name}={value!r}"[:80] for name, value in unknown.items())
        raise ValueError(
            f"The pretrained scheduler ({class_name}) has settings that a fine-tune's DDPM scheduler cannot keep: "
            f"{listed}. Fine-tune from a folder whose scheduler is a DDPMScheduler (or remove them from "
            "scheduler/scheduler_config.json if they do not matter to you)."
        )
    if settings.get("variance_type") in LEARNED_VARIANCE_TYPES:
        raise ValueError(
            f"The pretrained scheduler has variance_type={settings['variance_type']!r} (a U-Net that also predicts "
            "its variance); ddpm-hf trains fixed-variance models (fixed_small, fixed_small_log, fixed_large, "
            "fixed_large_log)."
        )
    trained_betas = settings.get("trained_betas")
    if trained_betas is not None:
        num_train_timesteps = settings.get("num_train_timesteps", 1000)
        betas = torch.as_tensor(trained_betas, dtype=torch.float64)
        if betas.ndim != 1 or len(betas) != num_train_timesteps or not ((betas > 0) & (betas < 1)).all():
            raise ValueError(
                f"The pretrained scheduler's trained_betas hold {betas.numel()} value(s) in "
                f"[{betas.min().item():g}, {betas.max().item():g}]; they must be num_train_timesteps = "
                f"{num_train_timesteps} betas, each in (0, 1)."
            )
    try:
        ExtendedDDPMScheduler(**settings)
    except (ValueError, NotImplementedError) as error:
        raise ValueError(f"The pretrained scheduler config cannot be used: {error}") from None
    return {name: settings[name] for name in KEPT_SCHEDULER_SETTINGS if name in settings}


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
