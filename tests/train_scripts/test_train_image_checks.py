"""train_image.py against what users bring: fine-tuning bases found in the wild (the settings of the base scheduler are
kept, trained_betas included; a square list sample_size trains; bases a fine-tune cannot keep are refused by name when
the flags are read), and class names that could not each be picked, refused before anything is written."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from diffusers import DDPMScheduler

from ddpm_hf import DDPMCFGPipeline

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "train_scripts"))
import train_image  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from diffusers_folders import save_diffusers_ddpm_folder  # noqa: E402

BETAS = np.linspace(2e-4, 0.05, 20)  # not one of the named schedules: the run must train on these


def flags(base, output_dir):
    return [
        "--dataset_name", "digits", "--pretrained_model_name_or_path", base, "--output_dir", str(output_dir),
        "--max_train_steps", "2", "--train_batch_size", "4", "--logger", "none", "--save_images_epochs", "1000",
        "--num_inference_steps", "2",
    ]  # fmt: skip


def test_a_fine_tune_keeps_every_setting_of_its_base_scheduler_and_a_square_list_size(tmp_path):
    scheduler = DDPMScheduler(num_train_timesteps=20, trained_betas=BETAS, variance_type="fixed_large",
                              clip_sample=False, timestep_spacing="trailing", steps_offset=1)  # fmt: skip
    base, _ = save_diffusers_ddpm_folder(tmp_path / "base", scheduler, sample_size=[8, 8])
    args = train_image.parse_args(flags(base, tmp_path / "run"))
    assert args.resolution == 8
    train_image.main(args)
    saved = json.loads((tmp_path / "run" / "scheduler" / "scheduler_config.json").read_text())
    assert saved["trained_betas"] == pytest.approx(BETAS.tolist(), rel=1e-6)
    assert (saved["variance_type"], saved["clip_sample"], saved["timestep_spacing"], saved["steps_offset"]) == (
        "fixed_large", False, "trailing", 1,
    )  # fmt: skip
    pipe = DDPMCFGPipeline.from_pretrained(tmp_path / "run")
    pipe.set_progress_bar_config(disable=True)
    # the schedule the run trained on and saved: the base's betas, not linear 1e-4..0.02
    np.testing.assert_allclose(pipe.scheduler.alphas_cumprod.double().numpy(), np.cumprod(1 - BETAS), rtol=1e-6)
    assert pipe.unet.config.sample_size == [8, 8]
    assert pipe(class_labels=["3", "7"], num_inference_steps=2, output_type="np").images.shape == (2, 8, 8, 1)
    card = (tmp_path / "run" / "README.md").read_text()
    assert "| beta_schedule | trained_betas |" in card and "| betas | 0.0002..0.05 (given one by one) |" in card
    assert "8x8 greyscale images of 10 classes" in card


@pytest.mark.parametrize(
    "scheduler, unet_changes, message",
    [
        (None, {"out_channels": 2}, r"out_channels=2 for in_channels=1; ddpm-hf trains U-Nets whose out_channels"),
        (None, {"class_embed_type": "timestep"}, r"class_embed_type='timestep'; ddpm-hf fine-tunes UNet2DModels"),
        (None, {"sample_size": [8, 16]}, r"sample_size is \[8, 16\] \(height x width\); ddpm-hf trains on square"),
        (
            DDPMScheduler(num_train_timesteps=20, variance_type="learned_range"),
            {"out_channels": 1},
            r"variance_type='learned_range'",
        ),
        (
            DDPMScheduler(num_train_timesteps=20, trained_betas=BETAS[:10]),
            {},
            r"trained_betas hold 10 value\(s\).*num_train_timesteps = 20",
        ),
    ],
)
def test_bases_a_fine_tune_cannot_keep_are_refused_when_the_flags_are_read(tmp_path, scheduler, unet_changes, message):
    base, _ = save_diffusers_ddpm_folder(tmp_path / "base", scheduler, **unet_changes)
    with pytest.raises(ValueError, match=message):
        train_image.parse_args(flags(base, tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_class_names_that_cannot_be_picked_are_refused_before_anything_is_written(tmp_path):
    images = np.zeros((8, 8, 8), dtype=np.uint8)
    names = np.array(["", "a", "b"])  # an empty name would read as no class, i.e. the null class, in the demo
    np.savez(tmp_path / "data.npz", images=images, labels=np.arange(8) % 3, label_names=names)
    argv = ["--dataset_name", str(tmp_path / "data.npz"), "--output_dir", str(tmp_path / "run"), "--resolution", "8",
            "--model_preset", "tiny", "--max_train_steps", "1", "--logger", "none"]  # fmt: skip
    with pytest.raises(ValueError, match=r"data.npz: 'label_names': the name of class 0 is ''"):
        train_image.main(train_image.parse_args(argv))
    assert not (tmp_path / "run").exists()
