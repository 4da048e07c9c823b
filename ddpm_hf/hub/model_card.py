"""The model card (README.md) of a saved DDPMCFGPipeline folder, or of an unconditional model saved as diffusers' own
DDPMPipeline: Hub metadata, training settings, metrics, samples, and how to load it with and without ddpm_hf."""

import json
import os

from huggingface_hub import ModelCard, ModelCardData

from ..pipelines.input_checks import image_size
from ..pipelines.portable_folder import source_copies

CARD_TEMPLATE = """---
{card_data}
---

# {title}

A denoising diffusion probabilistic model (DDPM) trained with ddpm-hf on {dataset}. {conditioning}

{grid}
## How it was trained

| setting | value |
| --- | --- |
{settings}

{metrics}
## Use it

With the `ddpm_hf` package installed:

```python
import torch
from ddpm_hf import DDPMCFGPipeline

pipe = DDPMCFGPipeline.from_pretrained("{repo_id}")
images = pipe({call_args}generator=torch.manual_seed(0)).images
images[0].save("sample.png")
```

{plain_usage}

{guidance_note}For faster sampling, swap the scheduler{mean_note}:

```python
from diffusers import DPMSolverMultistepScheduler

pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
images = pipe({call_args}num_inference_steps=20, generator=torch.manual_seed(0)).images
```
"""


# With plain diffusers: a folder with source copies, which diffusers runs only when asked to
PORTABLE_USAGE = """\
With plain diffusers only: the folder carries the source files of its pipeline and of its components that diffusers
lacks, which diffusers runs when you pass `trust_remote_code=True` (read {source_files} first). Same seed, same
images.

```python
import torch
from diffusers import DiffusionPipeline

pipe = DiffusionPipeline.from_pretrained("{repo_id}", trust_remote_code=True)
images = pipe({call_args}generator=torch.manual_seed(0)).images
```"""

# With plain diffusers: diffusers' own DDPMPipeline folder, no code in it (its default is 1000 steps: pass T)
DDPM_PIPELINE_USAGE = """\
With plain diffusers only: the folder is diffusers' own `DDPMPipeline` layout, with no code in it. Same seed, same
images.

```python
import torch
from diffusers import DDPMPipeline

pipe = DDPMPipeline.from_pretrained("{repo_id}")
images = pipe({call_args}num_inference_steps={num_train_timesteps}, generator=torch.manual_seed(0)).images
```"""


def _read_json(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def make_model_card(
    folder: str,
    repo_id: str,
    dataset: str,
    training: dict,
    metrics: dict | None = None,
    license: str = "apache-2.0",
    hub_dataset_id: str | None = None,
    base_model: str | None = None,
) -> ModelCard:
    """
    Builds the card of the pipeline saved in `folder` from its configs and the run's settings.

    Args:
        folder (`str`): A folder written by `DDPMCFGPipeline.save_pretrained` (either layout).
        repo_id (`str`): What the usage snippets load: the Hub id, or a local path.
        dataset (`str`): What it was trained on, in words.
        training (`dict`): Settings shown in the training table (name -> value), in order.
        metrics (`dict`, *optional*): Measured figures (name -> value), shown as a table.
        license (`str`, defaults to `"apache-2.0"`): The Hub license id.
        hub_dataset_id (`str`, *optional*): The training set's Hub id, for the card's `datasets` metadata.
        base_model (`str`, *optional*): The Hub id of the model this one was fine-tuned from (`base_model` metadata).

    Returns:
        `huggingface_hub.ModelCard`: the card; `card.save(os.path.join(folder, "README.md"))` writes it.
    """
    model_index = _read_json(os.path.join(folder, "model_index.json"))
    unet_config = _read_json(os.path.join(folder, "unet", "config.json"))
    scheduler_config = _read_json(os.path.join(folder, "scheduler", "scheduler_config.json"))
    id2label = {int(key): name for key, name in (model_index.get("id2label") or {}).items()}
    multi_label = "num_labels" in unet_config
    conditional = multi_label or unet_config.get("num_class_embeds") is not None
    tags = ["diffusers", "ddpm", "ddpm-hf", "pytorch"]
    tags += ["class-conditional", "classifier-free-guidance"] if conditional else ["unconditional"]
    tags += ["multi-label"] if multi_label else []
    card_data = ModelCardData(
        library_name="diffusers",
        license=license,
        tags=tags,
        pipeline_tag="unconditional-image-generation",
        datasets=[hub_dataset_id] if hub_dataset_id else None,
        base_model=base_model,
    )
    height, width = image_size(unet_config["sample_size"])  # one side, or [height, width]
    size = f"{width}x{height}"
    channels = "greyscale" if unet_config["in_channels"] == 1 else "RGB"
    if conditional:
        names = [id2label[key] for key in sorted(id2label)]
        conditioning = (
            f"It generates {size} {channels} images of {len(names)} classes ({', '.join(names[:20])}"
            f"{', ...' if len(names) > 20 else ''}) with classifier-free guidance."
        )
        first_class = json.dumps(names[0]) if names else "0"
        guidance = f"guidance_scale={training.get('guidance scale', 3.0)}, "
        call_args = f"class_labels=[{first_class}] * 4, {guidance}"
        if multi_label:
            conditioning = (
                f"It generates {size} {channels} images showing any set of its {len(names)} labels "
                f"({', '.join(names[:20])}{', ...' if len(names) > 20 else ''}), conditioned on a multi-hot vector, "
                "with classifier-free guidance."
            )
            condition = json.dumps(names[:2]) if len(names) >= 2 else "[0]"
            call_args = f"class_labels=[{condition}] * 4, {guidance}"
        guidance_note = (
            "`guidance_scale` s mixes the passes as eps_uncond + s * (eps_cond - eps_uncond); the course notation's "
            "omega is s - 1, and s = 1 turns guidance off. "
        )
    else:
        conditioning = f"It generates {size} {channels} images."
        call_args = "batch_size=4, "
        guidance_note = ""
    trained_betas = scheduler_config.get("trained_betas")
    schedule = {
        "num_train_timesteps": scheduler_config["num_train_timesteps"],
        # trained_betas replace the named schedule, as in diffusers
        "beta_schedule": "trained_betas" if trained_betas else scheduler_config["beta_schedule"],
        "betas": f"{min(trained_betas):.6g}..{max(trained_betas):.6g} (given one by one)"
        if trained_betas
        else f"{scheduler_config['beta_start']}..{scheduler_config['beta_end']}",
        "prediction_type": scheduler_config["prediction_type"],
    }
    rows = {**schedule, **training}
    settings = "\n".join(f"| {name} | {value} |" for name, value in rows.items())
    metrics_table = ""
    if metrics:
        lines = "\n".join(f"| {name} | {value} |" for name, value in metrics.items())
        metrics_table = f"## Measured\n\n| metric | value |\n| --- | --- |\n{lines}\n"
    grid = "![Samples](grid.png)\n" if os.path.isfile(os.path.join(folder, "grid.png")) else ""
    mean_note = (
        " (not for this model: it predicts the posterior mean, which only its own ExtendedDDPMScheduler can step)"
        if scheduler_config["prediction_type"] == "mean"
        else ""
    )
    usage = DDPM_PIPELINE_USAGE if model_index.get("_class_name") == "DDPMPipeline" else PORTABLE_USAGE
    plain_usage = usage.format(
        repo_id=repo_id,
        call_args=call_args,
        num_train_timesteps=scheduler_config["num_train_timesteps"],
        source_files=", ".join(f"`{path}`" for path in source_copies(folder)),
    )
    text = CARD_TEMPLATE.format(
        card_data=card_data.to_yaml(),
        title=f"DDPM: {os.path.basename(repo_id.rstrip('/'))}",
        dataset=dataset,
        conditioning=conditioning,
        grid=grid,
        settings=settings,
        metrics=metrics_table,
        repo_id=repo_id,
        call_args=call_args,
        guidance_note=guidance_note,
        mean_note=mean_note,
        plain_usage=plain_usage,
    )
    return ModelCard(text)


def make_run_card(folder: str, run: dict, metrics: dict, repo_id: str | None = None) -> ModelCard:
    """
    The card of an image training run's pipeline (train_image.py): its settings and measured figures.

    Args:
        folder (`str`): A folder holding the saved pipeline.
        run (`dict`): The run's settings by flag name (`vars(args)` of train_image.py).
        metrics (`dict`): The run's metrics.json (final_loss, steps, train_seconds, mixed_precision, num_classes).
        repo_id (`str`, *optional*): What the usage snippets load; defaults to `--hub_model_id`, else `--output_dir`.
    """
    source = run["dataset_name"] or run["train_data_dir"]
    is_hub_dataset = run["dataset_name"] not in (None, "digits") and not os.path.exists(run["dataset_name"])
    pretrained = run.get("pretrained_model_name_or_path")
    dataset = "scikit-learn's bundled 8x8 digits" if source == "digits" else f"`{source}`"
    training = {
        "resolution": run["resolution"],
        "model preset": run["model_preset"],
        "started from": run.get("pretrained_model_name_or_path") or "random weights",
        "condition dropped with probability": run["cond_drop_prob"] if metrics["num_classes"] else "-",
        "guidance scale": run["guidance_scale"],
        "training steps": metrics["steps"],
        "batch size": run["train_batch_size"] * run["gradient_accumulation_steps"],
        "learning rate": run["learning_rate"],
        "EMA weights": run["use_ema"],
        "mixed precision": metrics["mixed_precision"],
        "seed": run["seed"],
    }
    measured = {
        "final training loss (mean of last 100 steps)": f"{metrics['final_loss']:.4f}",
        "training time": "not recorded" if metrics["train_seconds"] is None else f"{metrics['train_seconds']} s",
    }
    heldout = metrics.get("heldout")
    if heldout and heldout["per_epoch"]:
        last = heldout["per_epoch"][-1]
        measured[f"held-out noise loss at step {last['step']} ({heldout['images']} images)"] = (
            f"{last['heldout_loss']:.4f}"
        )
    if heldout and heldout["best"]:
        best = heldout["best"]
        measured["lowest held-out noise loss (the model in best/)"] = (
            f"{best['heldout_loss']:.4f} at epoch {best['epoch']} (step {best['step']})"
        )
    return make_model_card(
        folder,
        repo_id=repo_id or run["hub_model_id"] or run["output_dir"],
        dataset=dataset,
        training=training,
        metrics=measured,
        license=run["hub_license"],
        hub_dataset_id=run["dataset_name"] if is_hub_dataset else None,
        base_model=pretrained if pretrained and not os.path.exists(pretrained) else None,
    )
