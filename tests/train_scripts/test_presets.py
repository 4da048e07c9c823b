"""Every lab preset under train_scripts/configs parses, builds the model it describes, and trains a step on tiny
local stand-in data (the real datasets are Hub downloads)."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from ddpm_hf import make_unet

CONFIGS = Path(__file__).resolve().parents[2] / "train_scripts" / "configs"
sys.path.insert(0, str(CONFIGS.parent))
import train_2d  # noqa: E402
import train_image  # noqa: E402

# preset -> (source it names, channels, classes, resolution, U-Net preset)
IMAGE_PRESETS = {
    "digits": ("digits", 1, 10, 8, "micro"),
    "mnist": ("ylecun/mnist", 1, 10, 32, "small"),
    "anime_faces_64": ("huggan/anime-faces", 3, None, 64, "base"),
    "afhq_64": ("huggan/AFHQv2", 3, 3, 64, "base"),
    "cifar10_32": ("cifar10", 3, None, 32, "ddpm_cifar10"),
}
QUICK = [
    "--max_train_steps", "1", "--train_batch_size", "2", "--num_inference_steps", "1", "--mixed_precision", "no",
    "--logger", "none", "--save_images_epochs", "1000", "--checkpointing_steps", "1000",
]  # fmt: skip


MULTI_LABEL_PRESETS = {"iclevr_64": (64, "base", "stretch"), "iclevr_synthetic_32": (32, "compact", "crop")}


def test_every_config_file_is_covered():
    assert {path.stem for path in CONFIGS.glob("*.yaml")} == set(IMAGE_PRESETS) | set(MULTI_LABEL_PRESETS) | {
        "swiss_roll"
    }


@pytest.mark.parametrize("name", IMAGE_PRESETS)
def test_image_preset_parses_and_states_its_source(name, tmp_path):
    source, channels, classes, resolution, preset = IMAGE_PRESETS[name]
    args = train_image.parse_args(["--config", str(CONFIGS / f"{name}.yaml"), "--output_dir", str(tmp_path / "o")])
    assert (args.dataset_name, args.resolution, args.model_preset) == (source, resolution, preset)
    assert args.condition == ("none" if classes is None else "class")
    text = (CONFIGS / f"{name}.yaml").read_text()
    assert "Source:" in text and "Output:" in text


def test_mnist_preset_is_lab_4():
    args = train_image.parse_args(["--config", str(CONFIGS / "mnist.yaml"), "--output_dir", "x"])
    assert (args.num_train_timesteps, args.beta_start, args.beta_end) == (400, 1e-4, 0.02)
    assert (args.cond_drop_prob, args.guidance_scale - 1) == (0.1, 2.0)


def test_digits_preset_is_the_micro_unet_with_min_snr_and_few_step_grids():
    args = train_image.parse_args(["--config", str(CONFIGS / "digits.yaml"), "--output_dir", "x"])
    unet = make_unet(args.model_preset, args.resolution, 1, 10)
    # conv_in 1->16, two levels (16, 32) with attention at 4x4, 11 class embeddings (10 + null) of width 64
    assert unet.config.block_out_channels == (16, 32) and unet.config.num_class_embeds == 11
    assert 0.17e6 <= sum(p.numel() for p in unet.parameters()) <= 0.19e6
    assert (args.num_train_timesteps, args.loss_weighting, args.max_train_steps) == (400, "min_snr", 900)
    assert (args.learning_rate, args.adam_beta2) == (3e-3, 0.99)
    assert (args.epoch_sampler, args.final_sampler) == ("dpm_solver++", "dpm_solver++")


def test_cifar10_preset_builds_the_papers_35_7m_parameter_unet():
    args = train_image.parse_args(["--config", str(CONFIGS / "cifar10_32.yaml"), "--output_dir", "x"])
    unet = make_unet(args.model_preset, args.resolution, 3, None)
    assert abs(sum(p.numel() for p in unet.parameters()) - 35.7e6) <= 0.1e6
    assert unet.config.block_out_channels == (128, 256, 256, 256) and unet.config.dropout == 0.1
    assert (args.num_train_timesteps, args.beta_schedule, args.beta_start, args.beta_end) == (
        1000,
        "linear",
        1e-4,
        0.02,
    )
    # attention at 16x16: the second level of a 32x32 input
    assert unet.config.down_block_types[1] == "AttnDownBlock2D" and unet.config.up_block_types[2] == "AttnUpBlock2D"


def stand_in_data(folder, channels, classes, count=6, size=20):
    rng = np.random.default_rng(0)
    shape = (count, size, size) if channels == 1 else (count, size, size, 3)
    arrays = {"images": rng.integers(0, 256, shape, dtype=np.uint8)}
    if classes:
        arrays["labels"] = np.arange(count) % classes
        arrays["label_names"] = np.array([f"class{index}" for index in range(classes)])
    np.savez(folder / "stand_in.npz", **arrays)
    return folder / "stand_in.npz"


@pytest.mark.parametrize("name", IMAGE_PRESETS)
def test_image_preset_trains_a_step_on_stand_in_data(name, tmp_path):
    _, channels, classes, resolution, preset = IMAGE_PRESETS[name]
    data = stand_in_data(tmp_path, channels, classes)
    output_dir = tmp_path / "run"
    args = train_image.parse_args(
        [
            "--config",
            str(CONFIGS / f"{name}.yaml"),
            "--dataset_name",
            str(data),
            "--output_dir",
            str(output_dir),
            *QUICK,
        ]  # fmt: skip
    )
    train_image.main(args)
    metrics = json.loads((output_dir / "metrics.json").read_text())
    assert metrics["steps"] == 1 and metrics["num_classes"] == classes
    unet_config = json.loads((output_dir / "unet" / "config.json").read_text())
    assert unet_config["sample_size"] == resolution and unet_config["in_channels"] == channels
    assert (output_dir / "grid.png").exists() and (output_dir / "README.md").exists()


def test_swiss_roll_preset_parses_and_trains_a_few_steps(tmp_path):
    config = str(CONFIGS / "swiss_roll.yaml")
    args = train_2d.parse_args(["--config", config, "--output_dir", str(tmp_path / "parsed")])
    assert (args.dataset, args.max_train_steps, args.hidden_dims) == ("swiss_roll", 10000, [128, 128, 128])
    assert yaml.safe_load(open(config))["output_dir"] == "outputs/swiss_roll"
    quick = ["--max_train_steps", "3", "--num_train_points", "2048", "--num_eval_points", "32",
             "--num_inference_steps", "2", "--output_dir", str(tmp_path / "run")]  # fmt: skip
    train_2d.main(train_2d.parse_args(["--config", config, *quick]))
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["chamfer_distance"] > 0


@pytest.mark.parametrize("name", MULTI_LABEL_PRESETS)
def test_multi_label_preset_parses_and_trains_a_step_on_a_synthetic_iclevr_folder(name, tmp_path):
    from ddpm_hf.data import make_synthetic_iclevr

    resolution, preset, resize_mode = MULTI_LABEL_PRESETS[name]
    config = str(CONFIGS / f"{name}.yaml")
    args = train_image.parse_args(["--config", config, "--output_dir", str(tmp_path / "o")])
    assert (args.condition, args.label_conditioning, args.resolution, args.model_preset, args.resize_mode) == (
        "multi_label",
        "tokens",
        resolution,
        preset,
        resize_mode,
    )
    assert args.train_data_dir.startswith("data/") and "Source:" in open(config).read()
    # a 4:3 stand-in, like i-CLEVR's 320x240 scenes
    folder = make_synthetic_iclevr(str(tmp_path / "iclevr"), num_images=4, resolution=16, num_test=2)
    for image in (tmp_path / "iclevr" / "images").iterdir():
        Image.open(image).resize((24, 18)).save(image)
    output_dir = tmp_path / "run"
    train_image.main(
        train_image.parse_args(
            ["--config", config, "--train_data_dir", folder, "--output_dir", str(output_dir), *QUICK]
        )
    )
    unet_config = json.loads((output_dir / "unet" / "config.json").read_text())
    assert unet_config["_class_name"] == "MultiLabelTokenUNet2DModel" and unet_config["num_labels"] == 24
    assert unet_config["sample_size"] == resolution
    assert (output_dir / "grid.png").exists() and (output_dir / "denoising_grid.png").exists()
