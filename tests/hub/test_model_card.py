"""The model card: Hub metadata that parses, the run's settings and figures, and usage snippets that really run."""

import os
import re
import subprocess
import sys

import numpy as np
import torch
from huggingface_hub import ModelCard

from ddpm_hf import DDPMCFGPipeline, ExtendedDDPMScheduler, make_unet
from ddpm_hf.hub import make_model_card

T = 40  # the card suggests 20 DPM-Solver steps


def saved_pipeline(folder, num_classes=3, prediction_type="epsilon", as_ddpm_pipeline=False):
    torch.manual_seed(0)
    unet = make_unet("tiny", 8, 3, num_classes)
    scheduler = ExtendedDDPMScheduler(num_train_timesteps=T, beta_schedule="quad", prediction_type=prediction_type)
    names = {0: "cat", 1: "dog", 2: "wild"} if num_classes else None
    pipe = DDPMCFGPipeline(unet=unet, scheduler=scheduler, id2label=names)
    pipe.save_pretrained(folder, as_ddpm_pipeline=as_ddpm_pipeline)
    return folder


def python_blocks(text):
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_metadata_settings_and_metrics_of_a_conditional_model(tmp_path):
    folder = saved_pipeline(tmp_path / "run")
    (folder / "grid.png").write_bytes(b"")
    card = make_model_card(
        str(folder),
        repo_id="me/ddpm-afhq",
        dataset="`huggan/AFHQv2`",
        training={"training steps": 1234, "guidance scale": 2.0},
        metrics={"FID": 12.5},
        license="mit",
        hub_dataset_id="huggan/AFHQv2",
    )
    card.save(folder / "README.md")
    loaded = ModelCard.load(folder / "README.md")
    assert loaded.data.library_name == "diffusers" and loaded.data.license == "mit"
    assert loaded.data.pipeline_tag == "unconditional-image-generation"
    assert loaded.data.datasets == ["huggan/AFHQv2"]
    assert {"ddpm", "class-conditional", "classifier-free-guidance"} <= set(loaded.data.tags)
    text = loaded.text
    assert "3 classes (cat, dog, wild)" in text and "8x8 RGB" in text
    for row in ("| num_train_timesteps | 40 |", "| beta_schedule | scaled_linear |", "| prediction_type | epsilon |",
                "| training steps | 1234 |", "| FID | 12.5 |"):  # fmt: skip
        assert row in text
    assert "![Samples](grid.png)" in text
    assert "omega is s - 1" in text
    assert 'class_labels=["cat"] * 4, guidance_scale=2.0' in text
    assert all('from_pretrained("me/ddpm-afhq"' in block for block in python_blocks(text)[:2])


def test_unconditional_mean_model_card_says_what_applies(tmp_path):
    folder = saved_pipeline(tmp_path / "run", num_classes=None, prediction_type="mean")
    card = make_model_card(str(folder), repo_id="me/x", dataset="digits", training={})
    assert "unconditional" in card.data.tags and card.data.datasets is None
    assert "class_labels" not in card.text and "batch_size=4" in card.text
    assert "omega" not in card.text and "Samples" not in card.text
    assert "only its own ExtendedDDPMScheduler can step" in card.text


def test_usage_snippets_run_as_written_on_both_routes(tmp_path):
    folder = saved_pipeline(tmp_path / "run")
    card = make_model_card(str(folder), repo_id="me/ddpm-afhq", dataset="x", training={"guidance scale": 3.0})
    with_ddpm_hf, plain_diffusers, faster = (block.replace("me/ddpm-afhq", str(folder)) for block in python_blocks(
        card.text))  # fmt: skip
    check = "\nassert len(images) == 4 and images[0].size == (8, 8)\n"
    blocked = 'import sys\nsys.modules["ddpm_hf"] = None\nsys.modules["pipelines"] = None\n'
    scripts = [with_ddpm_hf + check, blocked + plain_diffusers + check + faster + check]
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules")}
    for script in scripts:
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300
        )
        assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "sample.png").exists()  # the first snippet saves one


def test_a_run_card_names_a_hub_base_model_and_never_a_local_one(tmp_path):
    from ddpm_hf.hub import make_run_card

    folder = saved_pipeline(tmp_path / "run")
    run = {
        "dataset_name": "cifar10", "train_data_dir": None, "resolution": 8, "model_preset": None,
        "cond_drop_prob": 0.1, "guidance_scale": 3.0, "train_batch_size": 4, "gradient_accumulation_steps": 2,
        "learning_rate": 1e-4, "use_ema": True, "seed": 0, "hub_model_id": "me/c10", "hub_license": "mit",
        "output_dir": str(folder),
    }  # fmt: skip
    metrics = {"final_loss": 0.05, "steps": 10, "train_seconds": None, "mixed_precision": "bf16", "num_classes": 3}
    card = make_run_card(str(folder), {**run, "pretrained_model_name_or_path": "google/ddpm-cifar10-32"}, metrics)
    assert card.data.base_model == "google/ddpm-cifar10-32" and card.data.datasets == ["cifar10"]
    assert "| started from | google/ddpm-cifar10-32 |" in card.text and "| batch size | 8 |" in card.text
    assert "| training time | not recorded |" in card.text and 'from_pretrained("me/c10")' in card.text
    local = make_run_card(str(folder), {**run, "pretrained_model_name_or_path": str(tmp_path)}, metrics)
    assert local.data.base_model is None and f"| started from | {tmp_path} |" in local.text


def test_a_ddpm_pipeline_folders_card_loads_it_with_diffusers_own_class_and_the_same_images(tmp_path):
    folder = saved_pipeline(tmp_path / "run", num_classes=None, as_ddpm_pipeline=True)
    card = make_model_card(str(folder), repo_id="me/plain", dataset="x", training={})
    assert "trust_remote_code" not in card.text and "with no code in it" in card.text
    with_ddpm_hf, plain_diffusers, faster = (block.replace("me/plain", str(folder)) for block in python_blocks(
        card.text))  # fmt: skip
    assert "DDPMPipeline.from_pretrained" in plain_diffusers and f"num_inference_steps={T}" in plain_diffusers
    keep = "\nimport numpy as np\nnp.save({!r}, np.stack([np.asarray(image) for image in images]))\n"
    blocked = 'import sys\nsys.modules["ddpm_hf"] = None\n'
    scripts = [
        with_ddpm_hf + keep.format(str(tmp_path / "ours.npy")),
        blocked + plain_diffusers + keep.format(str(tmp_path / "plain.npy")) + faster,
    ]
    for script in scripts:
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                                timeout=300)  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
    ours, plain = np.load(tmp_path / "ours.npy"), np.load(tmp_path / "plain.npy")
    assert ours.shape == (4, 8, 8, 3) and np.array_equal(ours, plain)
