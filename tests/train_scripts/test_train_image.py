"""train_image.py on tiny local datasets: every data source, resume, two processes, class names, bad input."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from ddpm_hf import DDPMCFGPipeline

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "train_scripts" / "train_image.py"
sys.path.insert(0, str(SCRIPT.parent))
import train_image  # noqa: E402

TINY = [
    "--resolution", "8", "--model_preset", "tiny", "--num_train_timesteps", "20", "--train_batch_size", "4",
    "--max_train_steps", "4", "--checkpointing_steps", "2", "--checkpoints_total_limit", "3",
    "--save_images_epochs", "1000", "--lr_warmup_steps", "1", "--learning_rate", "1e-3", "--logger", "none",
]  # fmt: skip
RUN_FILES = {
    "model_index.json", "unet", "scheduler", "README.md", "loss_curve.png", "grid.png", "denoising.gif",
    "metrics.json",
}  # fmt: skip
# the pipeline's source travels with a class-conditional model; an unconditional one is diffusers' own DDPMPipeline,
# with ddpm-hf's sampler table beside it
PIPELINE_FILES = {True: {"pipeline_ddpm_cfg.py", "samplers.py"}, False: {"samplers.py"}}


def accelerate_launch(args, num_processes=1, extra_env=None):
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(num_processes),
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--cpu",
        "--num_cpu_threads_per_process", "1", str(SCRIPT), *args,
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **(extra_env or {})}
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=600)


def train(args):
    """One run inside the test process: what `accelerate launch` runs, without a second interpreter to start (the
    launcher itself is tested with two processes and through the Hub push below)."""
    train_image.main(train_image.parse_args(args))


def make_image_folder(root, classes=("cat", "dog"), per_class=6, mode="RGB", size=(10, 12)):
    rng = np.random.default_rng(0)
    for class_index, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for index in range(per_class):
            shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
            pixels = rng.integers(0, 255, shape, dtype=np.uint8) // (class_index + 1)
            Image.fromarray(pixels, mode=mode).save(root / name / f"{index}.png")
    return root


def check_run(output_dir, expected_classes):
    conditional = expected_classes is not None
    assert RUN_FILES | PIPELINE_FILES[conditional] <= set(os.listdir(output_dir))
    index = json.loads((output_dir / "model_index.json").read_text())
    assert index["_class_name"] == (["pipeline_ddpm_cfg", "DDPMCFGPipeline"] if conditional else "DDPMPipeline")
    metrics = json.loads((output_dir / "metrics.json").read_text())
    assert metrics["steps"] == 4 and np.isfinite(metrics["final_loss"]) and metrics["images_per_second"] > 0
    pipe = DDPMCFGPipeline.from_pretrained(output_dir)
    pipe.set_progress_bar_config(disable=True)
    assert metrics["unet_parameters"] == sum(parameter.numel() for parameter in pipe.unet.parameters())
    assert metrics["peak_gpu_memory_gib"] is None  # CPU runs
    assert metrics["sample_grid_seconds"] == 0  # no grid during training at --save_images_epochs 1000
    if expected_classes is None:
        assert pipe.num_classes is None
    else:
        assert list(pipe.id2label.values()) == list(expected_classes)
    with Image.open(output_dir / "denoising.gif") as gif:
        assert gif.n_frames > 5
    return metrics, pipe


def test_image_folder_rgb_with_class_names(tmp_path):
    data = make_image_folder(tmp_path / "data")
    output_dir = tmp_path / "run"
    train(["--train_data_dir", str(data), "--output_dir", str(output_dir), *TINY])
    metrics, pipe = check_run(output_dir, ["cat", "dog"])
    assert metrics["class_names"] == ["cat", "dog"]
    assert pipe.unet.config.in_channels == 3 and pipe.unet.config.num_class_embeds == 3  # 2 classes + null
    images = pipe(class_labels=["dog", "cat"], num_inference_steps=5, output_type="np").images
    assert images.shape == (2, 8, 8, 3) and 0 <= images.min() and images.max() <= 1
    assert sorted(os.listdir(output_dir / "checkpoints")) == ["checkpoint-2", "checkpoint-4"]
    # 12 images in batches of 4: 4 steps end in epoch 1, whose grid the final sampling writes
    assert os.listdir(output_dir / "samples") == ["epoch_0001.png"]
    assert (output_dir / "unet" / "diffusion_pytorch_model.safetensors").exists()


def test_epoch_grids_are_timed_apart_from_training(tmp_path):
    data = make_image_folder(tmp_path / "data", per_class=4)  # 8 images in batches of 4: 2 steps per epoch
    output_dir = tmp_path / "run"
    args = ["--train_data_dir", str(data), "--output_dir", str(output_dir), *TINY, "--save_images_epochs", "1"]
    train(args)
    # epoch 0's grid is sampled inside the training loop, epoch 1's by the final outputs
    assert sorted(os.listdir(output_dir / "samples")) == ["epoch_0000.png", "epoch_0001.png"]
    metrics = json.loads((output_dir / "metrics.json").read_text())
    assert metrics["sample_grid_seconds"] > 0
    # images/s counts the 16 training images over the training time only, which leaves the grid out; both figures
    # are rounded (seconds to 0.01, images/s to 0.1), so the bounds carry those roundings
    train_seconds = metrics["train_seconds"]
    assert 16 / (train_seconds + 0.005) - 0.05 <= metrics["images_per_second"] <= 16 / (train_seconds - 0.005) + 0.05


def test_parquet_dataset_with_cifar_style_columns(tmp_path):
    import datasets

    rng = np.random.default_rng(1)
    images = [Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8), mode="L") for _ in range(10)]
    features = datasets.Features({"img": datasets.Image(), "fine_label": datasets.ClassLabel(names=["a", "b", "c"])})
    dataset = datasets.Dataset.from_dict({"img": images, "fine_label": [i % 3 for i in range(10)]}, features=features)
    (tmp_path / "data").mkdir()
    dataset.to_parquet(str(tmp_path / "data" / "train.parquet"))
    output_dir = tmp_path / "run"
    train(["--train_data_dir", str(tmp_path / "data"), "--output_dir", str(output_dir), *TINY])
    _, pipe = check_run(output_dir, ["a", "b", "c"])
    assert pipe.unet.config.in_channels == 1, "greyscale data must stay 1 channel"


def test_digits_builtin_unconditional_when_asked(tmp_path):
    output_dir = tmp_path / "run"
    train(["--dataset_name", "digits", "--condition", "none", "--output_dir", str(output_dir), *TINY])
    _, pipe = check_run(output_dir, None)
    with pytest.raises(ValueError, match="unconditional"):
        pipe(class_labels=[1], num_inference_steps=2)
    with Image.open(output_dir / "grid.png") as grid:
        assert grid.size == (5 * 64 + 6 * 2, 5 * 64 + 6 * 2)  # 5x5 grid of 8 px images shown 8x larger, 2 px apart


def test_two_processes_make_one_run_with_one_schedule(tmp_path):
    output_dir = tmp_path / "run"
    result = accelerate_launch(
        ["--dataset_name", "digits", "--output_dir", str(output_dir), *TINY, "--lr_scheduler", "linear"],
        num_processes=2,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    check_run(output_dir, [str(d) for d in range(10)])
    logged = [json.loads(line) for line in (output_dir / "losses.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in logged] == [1, 2, 3, 4]
    # linear decay after 1 warm-up step over 4 optimizer steps, stepped once per optimizer step: 1, 2/3, 1/3, 0
    np.testing.assert_allclose([entry["lr"] for entry in logged], [1e-3, 2e-3 / 3, 1e-3 / 3, 0.0], atol=1e-9)


def test_resume_continues_the_same_trajectory(tmp_path):
    common = ["--dataset_name", "digits", *TINY, "--max_train_steps", "6", "--train_batch_size", "8"]
    straight = tmp_path / "straight"
    train_image.main(train_image.parse_args([*common, "--output_dir", str(straight)]))
    resumed = tmp_path / "resumed"
    shutil.copytree(straight, resumed)
    for name in ("checkpoint-4", "checkpoint-6"):
        shutil.rmtree(resumed / "checkpoints" / name)
    train_image.main(
        train_image.parse_args([*common, "--output_dir", str(resumed), "--resume_from_checkpoint", "latest"])
    )

    def losses(run):
        return [json.loads(line)["loss"] for line in (run / "losses.jsonl").read_text().splitlines()]

    assert len(losses(resumed)) == 6
    np.testing.assert_allclose(losses(resumed), losses(straight), rtol=1e-5)
    for weights in ("unet/diffusion_pytorch_model.safetensors", "checkpoints/checkpoint-6/model.safetensors"):
        straight_weights, resumed_weights = load_file(straight / weights), load_file(resumed / weights)
        for key, value in straight_weights.items():
            torch.testing.assert_close(resumed_weights[key], value, rtol=1e-5, atol=1e-6)


def test_config_file_sets_flags_and_the_command_line_wins(tmp_path):
    config = tmp_path / "preset.yaml"
    config.write_text("dataset_name: digits\nresolution: 16\nmodel_preset: tiny\noutput_dir: somewhere\n")
    args = train_image.parse_args(["--config", str(config), "--resolution", "8", "--output_dir", str(tmp_path / "o")])
    assert (args.dataset_name, args.resolution, args.output_dir) == ("digits", 8, str(tmp_path / "o"))


# ---------- bad input: clear errors, nothing written ----------


def expect_refusal(tmp_path, argv, message):
    output_dir = tmp_path / "run"
    with pytest.raises(ValueError, match=message):
        train_image.main(train_image.parse_args(["--output_dir", str(output_dir), *TINY, *argv]))
    assert not output_dir.exists()


def test_unreadable_image_is_named(tmp_path):
    data = make_image_folder(tmp_path / "data")
    (data / "cat" / "0.png").write_bytes(b"not a png at all")
    output_dir = tmp_path / "run"
    args = train_image.parse_args(["--train_data_dir", str(data), "--output_dir", str(output_dir), *TINY])
    with pytest.raises(ValueError, match=r"Cannot read .*0\.png"):
        train_image.main(args)


def test_negative_labels_are_refused(tmp_path):
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)) for _ in range(4)]
    np.savez(tmp_path / "data.npz", images=np.stack([np.asarray(i) for i in images]), labels=np.array([0, 1, 2, 3]))
    import datasets

    dataset = datasets.Dataset.from_dict({"image": images, "label": [0, 1, -1, 2]})
    dataset.save_to_disk(str(tmp_path / "saved"))
    expect_refusal(tmp_path, ["--dataset_name", str(tmp_path / "saved")], "class ids 0..K-1")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--dataset_name", "digits", "--resolution", "7"], "resolution 7.*multiple of 2"),
        (["--dataset_name", "digits", "--model_preset", "huge"], "huge.*tiny"),
        (["--dataset_name", "digits", "--prediction_type", "noise"], "noise.*epsilon"),
        (["--dataset_name", "digits", "--cond_drop_prob", "1.5"], "cond_drop_prob"),
        (["--dataset_name", "digits", "--train_data_dir", "x"], "exactly one"),
        (["--dataset_name", "missing.npz"], "missing.npz"),
        (["--dataset_name", "digits", "--prediction_type", "mean", "--final_sampler", "ddim"], "--final_sampler ddim"),
        (["--dataset_name", "digits", "--prediction_type", "mean", "--epoch_sampler", "dpm_solver++"], "ddpm sampler"),
    ],
)
def test_bad_flags(tmp_path, argv, message):
    expect_refusal(tmp_path, argv, message)


def test_unknown_preset_keys_are_named(tmp_path):
    config = tmp_path / "preset.yaml"
    config.write_text("dataset_name: digits\nlearning_rat: 0.1\n")
    with pytest.raises(ValueError, match=r"Unknown keys \['learning_rat'\]"):
        train_image.parse_args(["--config", str(config), "--output_dir", str(tmp_path / "run")])


def test_push_to_hub_uploads_the_run_with_its_card(tmp_path, fake_hub_server):
    output_dir = tmp_path / "run"
    hub_flags = ["--push_to_hub", "--hub_model_id", "me/digits-tiny", "--hub_private_repo", "--hub_license", "mit"]
    result = accelerate_launch(
        ["--dataset_name", "digits", "--output_dir", str(output_dir), *TINY, *hub_flags], extra_env=fake_hub_server.env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert fake_hub_server.created == [{"name": "digits-tiny", "organization": "me", "visibility": "private"}]
    (commit,) = fake_hub_server.commits
    uploaded = set(commit["files"])
    assert {"model_index.json", "pipeline_ddpm_cfg.py", "scheduler/scheduling_ddpm_ext.py", "README.md"} <= uploaded
    assert "unet/diffusion_pytorch_model.safetensors" in uploaded and "grid.png" in uploaded
    assert not any(name.startswith(("checkpoints/", "logs/", "samples/")) for name in uploaded)
    for name, data in commit["files"].items():
        assert (output_dir / name).read_bytes() == data
    card = commit["files"]["README.md"].decode()
    assert "license: mit" in card and "scikit-learn's bundled 8x8 digits" in card
    assert 'DDPMCFGPipeline.from_pretrained("me/digits-tiny")' in card and "| training steps | 4 |" in card


def test_skip_bad_images_trains_on_the_readable_ones(tmp_path):
    data = make_image_folder(tmp_path / "data")
    (data / "cat" / "3.png").write_bytes(b"not an image")
    output_dir = tmp_path / "run"
    args = train_image.parse_args(
        ["--train_data_dir", str(data), "--output_dir", str(output_dir), *TINY, "--skip_bad_images"]
    )
    train_image.main(args)  # the count and names of the skipped: tests/data/test_training_data.py
    assert json.loads((output_dir / "metrics.json").read_text())["steps"] == 4


def test_without_skipping_a_bad_image_met_in_training_is_named(tmp_path):
    data = make_image_folder(tmp_path / "data", per_class=40)
    # dog/9.png sorts last (80th): beyond the first 64 images read before training, met during the first epoch
    (data / "dog" / "9.png").write_bytes(b"not an image")
    output_dir = tmp_path / "run"
    args = train_image.parse_args(
        ["--train_data_dir", str(data), "--output_dir", str(output_dir), *TINY, "--max_train_steps", "20"]
    )
    with pytest.raises(ValueError, match=r"Cannot read image in column 'image' .*dog/9\.png"):
        train_image.main(args)
    assert (output_dir / "losses.jsonl").exists() or (output_dir / "checkpoints").exists()  # training had begun


def test_a_folder_holding_another_run_is_never_overwritten_silently(tmp_path):
    output_dir = tmp_path / "run"
    common = ["--dataset_name", "digits", *TINY, "--output_dir", str(output_dir)]
    train_image.main(train_image.parse_args(common))
    weights = (output_dir / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()
    with pytest.raises(ValueError, match="already holds files.*--overwrite_output_dir"):
        train_image.parse_args(common)
    with pytest.raises(ValueError, match=r"other settings \(--resolution: '8' there, '16' now, --model_preset"):
        train_image.parse_args([*common, "--resolution", "16", "--model_preset", "small", "--resume_from_checkpoint",
                                "latest"])  # fmt: skip
    assert (output_dir / "unet" / "diffusion_pytorch_model.safetensors").read_bytes() == weights
    train_image.main(train_image.parse_args([*common, "--overwrite_output_dir", "--max_train_steps", "2"]))
    assert json.loads((output_dir / "metrics.json").read_text())["steps"] == 2


def test_multi_label_data_trains_a_multi_label_model_and_is_refused_for_class_conditioning(tmp_path):
    from ddpm_hf.data import ICLEVR_OBJECTS, make_synthetic_iclevr

    folder = make_synthetic_iclevr(str(tmp_path / "iclevr"), num_images=8, resolution=16, num_test=3)
    expect_refusal(tmp_path, ["--train_data_dir", folder, "--condition", "class"], "--condition multi_label")
    output_dir = tmp_path / "run"
    args = train_image.parse_args(["--train_data_dir", folder, "--output_dir", str(output_dir), *TINY])
    train_image.main(args)
    pipe = DDPMCFGPipeline.from_pretrained(output_dir)
    assert pipe.is_multi_label and list(pipe.id2label.values()) == ICLEVR_OBJECTS
    assert (
        type(pipe.unet).__name__ == "MultiLabelUNet2DModel" and (output_dir / "unet" / "conditional_unet.py").exists()
    )
    metrics = json.loads((output_dir / "metrics.json").read_text())
    test_conditions = json.loads((Path(folder) / "test.json").read_text())
    assert metrics["multi_label"] is True and metrics["grid_rows"][:3] == test_conditions
    with Image.open(output_dir / "grid.png") as grid:
        assert grid.size == (5 * 64 + 6 * 2, 10 * 64 + 11 * 2)  # 10 rows of conditions x 5, 8 px upscaled 8x
    with Image.open(output_dir / "denoising_grid.png") as grid:
        assert grid.size == (10 * 64 + 11 * 2, 10 * 64 + 11 * 2)  # a row per grid row, 10 moments in time
    card = (output_dir / "README.md").read_text()
    assert "multi-label" in card and f"class_labels=[{json.dumps(ICLEVR_OBJECTS[:2])}] * 4" in card


def test_label_tokens_train_a_token_model_and_are_refused_without_multi_label_data(tmp_path):
    from ddpm_hf.data import make_synthetic_iclevr

    folder = make_synthetic_iclevr(str(tmp_path / "iclevr"), num_images=8, resolution=16, num_test=3)
    expect_refusal(
        tmp_path,
        ["--dataset_name", "digits", "--label_conditioning", "tokens"],
        "--label_conditioning tokens is for multi-label models; this run is class-conditional",
    )
    expect_refusal(
        tmp_path,
        ["--train_data_dir", folder, "--label_conditioning", "words"],
        r"argument --label_conditioning: invalid choice: 'words' \(choose from 'projection', 'tokens'\)",
    )
    output_dir = tmp_path / "run"
    common = ["--train_data_dir", folder, "--output_dir", str(output_dir), *TINY]
    train_image.main(train_image.parse_args([*common, "--label_conditioning", "tokens"]))
    pipe = DDPMCFGPipeline.from_pretrained(output_dir)
    assert type(pipe.unet).__name__ == "MultiLabelTokenUNet2DModel"
    assert (output_dir / "unet" / "label_token_unet.py").exists()
    assert json.loads((output_dir / "run_config.json").read_text())["label_conditioning"] == "tokens"
    images = pipe(class_labels=[["red cube", "blue sphere"]], num_inference_steps=2, output_type="np").images
    assert images.shape == (1, 8, 8, 3)
    with pytest.raises(ValueError, match="label_conditioning: 'tokens' there, 'projection' now"):
        train_image.parse_args([*common, "--resume_from_checkpoint", "latest"])
    # a folder written before the flag existed ran with the projection, and resumes as one
    run_config = json.loads((output_dir / "run_config.json").read_text())
    del run_config["label_conditioning"]
    (output_dir / "run_config.json").write_text(json.dumps(run_config))
    assert train_image.parse_args([*common, "--resume_from_checkpoint", "latest"]).label_conditioning == "projection"
