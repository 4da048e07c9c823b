"""Turn any checkpoint of an image training run into a pipeline folder that `from_pretrained` loads."""

import json
import os

from diffusers.training_utils import EMAModel
from safetensors.torch import load_file

from ..models.pretrained import UNET_CLASSES
from ..pipelines import DDPMCFGPipeline
from ..schedulers import ExtendedDDPMScheduler
from .checkpoints import STATES_FOLDER, resolve_checkpoint
from .output_dir import read_run_id
from .state_files import load_state_files

# Written by train_image.py when a run starts: what the pipeline of the run is made of, so that any checkpoint can
# be turned into one without the training data.
PIPELINE_CONFIG = "pipeline_config.json"


def write_pipeline_config(run_dir: str, unet, scheduler, id2label: dict | None) -> None:
    """Record the U-Net class and config, the scheduler config and the class names of a run in `run_dir`."""
    content = {
        "unet_class": type(unet).__name__,
        "unet": {key: value for key, value in unet.config.items() if not key.startswith("_")},
        "scheduler": {key: value for key, value in scheduler.config.items() if not key.startswith("_")},
        "id2label": {str(key): name for key, name in (id2label or {}).items()} or None,
    }
    with open(os.path.join(run_dir, PIPELINE_CONFIG), "w") as f:
        json.dump(content, f, indent=2)


def pipeline_from_checkpoint(
    run_dir: str, checkpoint: str = "latest", use_ema: bool = True
) -> tuple[int, DDPMCFGPipeline]:
    """
    The pipeline of run `run_dir` at one of its checkpoints, and that checkpoint's step.

    Args:
        run_dir (`str`): A train_image.py output folder (it holds pipeline_config.json and checkpoints/).
        checkpoint (`str`, defaults to `"latest"`): `"latest"`, a `checkpoint-N` name or a checkpoint folder of this
            run (a checkpoint of another run is refused, naming that run: see `check_checkpoint_of_run`).
        use_ema (`bool`, defaults to `True`): Take the EMA weights when the checkpoint has them (as the run's own
            saves do); False takes the trained weights themselves.

    Returns:
        `tuple[int, DDPMCFGPipeline]`: (step, pipeline).
    """
    config_path = os.path.join(run_dir, PIPELINE_CONFIG)
    if not os.path.isfile(config_path):
        raise ValueError(f"{run_dir} holds no {PIPELINE_CONFIG}: give the output_dir of a train_image.py run.")
    found = resolve_checkpoint(os.path.join(run_dir, "checkpoints"), checkpoint, run_id=read_run_id(run_dir))
    if found is None:
        raise ValueError(f"{run_dir} holds no checkpoint yet.")
    step, path = found  # verified by resolve_checkpoint
    with open(config_path) as f:
        config = json.load(f)
    unet = UNET_CLASSES[config["unet_class"]].from_config(config["unet"])
    unet.load_state_dict(load_file(os.path.join(path, "model.safetensors")))
    states_folder = os.path.join(path, STATES_FOLDER)
    if use_ema and os.path.isfile(os.path.join(states_folder, "ema.json")):
        ema_model = EMAModel(unet.parameters())
        ema_model.load_state_dict(load_state_files(states_folder, "ema", like=ema_model.state_dict()))
        ema_model.copy_to(unet.parameters())
    scheduler = ExtendedDDPMScheduler.from_config(config["scheduler"])
    id2label = {int(key): name for key, name in config["id2label"].items()} if config["id2label"] else None
    return step, DDPMCFGPipeline(unet=unet.eval(), scheduler=scheduler, id2label=id2label)
