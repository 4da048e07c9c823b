"""diffusers' train_unconditional.py command lines run unchanged on train_image.py (on local data): every one of its
flags is accepted under its own name, its tests' runs train and checkpoint, and its checkpoint names resume."""

import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDPMPipeline, DiffusionPipeline, UNet2DModel
from test_train_image import accelerate_launch, make_image_folder

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "train_scripts"))
import train_image  # noqa: E402

from ddpm_hf import DDPMCFGPipeline  # noqa: E402

# Every flag of diffusers' train_unconditional.py example.
DIFFUSERS_FLAGS = """
    --dataset_name --dataset_config_name --model_config_name_or_path --train_data_dir --output_dir
    --overwrite_output_dir --cache_dir --resolution --center_crop --random_flip --train_batch_size
    --eval_batch_size --dataloader_num_workers --num_epochs --save_images_epochs --save_model_epochs
    --gradient_accumulation_steps --learning_rate --lr_scheduler --lr_warmup_steps --adam_beta1 --adam_beta2
    --adam_weight_decay --adam_epsilon --use_ema --ema_inv_gamma --ema_power --ema_max_decay --push_to_hub
    --hub_token --hub_model_id --hub_private_repo --logger --logging_dir --local_rank --mixed_precision
    --prediction_type --ddpm_num_steps --ddpm_num_inference_steps --ddpm_beta_schedule --checkpointing_steps
    --checkpoints_total_limit --resume_from_checkpoint --enable_xformers_memory_efficient_attention
""".split()
ALIASES = {
    "--ddpm_num_steps": "num_train_timesteps",
    "--ddpm_beta_schedule": "beta_schedule",
    "--ddpm_num_inference_steps": "num_inference_steps",
}


@pytest.fixture(scope="module")
def local_stand_ins(tmp_path_factory):
    """A folder of 6 images (the dummy dataset) and a small UNet2DModel config folder (diffusers/ddpm_dummy)."""
    root = tmp_path_factory.mktemp("stand_ins")
    data = make_image_folder(root / "data", per_class=3)
    config = root / "ddpm_dummy"
    UNet2DModel(
        sample_size=32, block_out_channels=(16, 32), norm_num_groups=8, layers_per_block=1,
        down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
    ).save_config(config)  # fmt: skip
    return data, config


def test_help_names_every_diffusers_flag_and_both_names_of_an_alias():
    help_text = train_image.build_parser().format_help()
    assert [flag for flag in DIFFUSERS_FLAGS if flag not in help_text] == []
    for alias, dest in ALIASES.items():
        assert re.search(rf"--{dest} \S+, {alias} \S+", help_text), alias


def test_the_aliases_set_our_flags_on_the_command_line_and_in_config_files(tmp_path):
    common = ["--dataset_name", "digits", "--output_dir", str(tmp_path / "run")]
    argv = ["--ddpm_num_steps", "50", "--ddpm_beta_schedule", "squaredcos_cap_v2", "--ddpm_num_inference_steps", "7"]
    args = train_image.parse_args([*common, *argv])
    assert (args.num_train_timesteps, args.beta_schedule, args.num_inference_steps) == (50, "squaredcos_cap_v2", 7)
    config = tmp_path / "preset.yaml"
    config.write_text("ddpm_num_steps: 40\nddpm_num_inference_steps: 3\n")
    args = train_image.parse_args([*common, "--config", str(config)])
    assert (args.num_train_timesteps, args.num_inference_steps) == (40, 3)
    config.write_text("ddpm_num_steps: 40\nnum_train_timesteps: 30\n")
    with pytest.raises(ValueError, match="num_train_timesteps is given twice"):
        train_image.parse_args([*common, "--config", str(config)])
    with pytest.raises(ValueError, match=r"argument --num_train_timesteps/--ddpm_num_steps: must be an integer"):
        train_image.parse_args([*common, "--ddpm_num_steps", "0"])


def test_diffusers_test_command_line_trains_and_saves_the_pipeline(tmp_path, local_stand_ins):
    data, config = local_stand_ins
    output_dir = tmp_path / "run"
    output_dir.mkdir()  # diffusers' tests train into an existing empty temporary folder
    result = accelerate_launch(
        f"""--train_data_dir {data} --model_config_name_or_path {config} --resolution 16 --output_dir {output_dir}
        --train_batch_size 2 --num_epochs 1 --gradient_accumulation_steps 1 --ddpm_num_inference_steps 2
        --learning_rate 1e-3 --lr_warmup_steps 5 --ddpm_num_steps 20 --enable_xformers_memory_efficient_attention
        --logger tensorboard --logging_dir tb --local_rank 0 --eval_batch_size 4""".split()
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (output_dir / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert (output_dir / "scheduler" / "scheduler_config.json").is_file()
    assert any((output_dir / "tb").iterdir())  # the TensorBoard logs in --logging_dir
    for flag in ("--enable_xformers_memory_efficient_attention", "--local_rank", "--eval_batch_size"):
        assert f"{flag} is not used here" in result.stderr
    unet = json.loads((output_dir / "unet" / "config.json").read_text())
    # the config's architecture, with the data's size, channels and classes (2 + the null class)
    assert (unet["block_out_channels"], unet["sample_size"], unet["num_class_embeds"]) == ([16, 32], 16, 3)


def test_diffusers_checkpointing_tests_keep_and_resume_checkpoints(tmp_path, local_stand_ins):
    data, config = local_stand_ins
    output_dir = tmp_path / "run"
    common = f"""--train_data_dir {data} --model_config_name_or_path {config} --resolution 16 --output_dir {output_dir}
        --train_batch_size 1 --gradient_accumulation_steps 1 --ddpm_num_inference_steps 1 --learning_rate 1e-3
        --lr_warmup_steps 5 --ddpm_num_steps 20 --logger none --checkpointing_steps=2""".split()
    train_image.main(train_image.parse_args([*common, "--num_epochs", "1", "--checkpoints_total_limit=2"]))
    # 6 images, 6 steps: diffusers' OUTPUT_DIR/checkpoint-N are OUTPUT_DIR/checkpoints/checkpoint-N here
    assert sorted(os.listdir(output_dir / "checkpoints")) == ["checkpoint-4", "checkpoint-6"]
    for resume_from in ("checkpoint-6", str(output_dir / "checkpoint-6")):  # diffusers' names of one checkpoint
        args = train_image.parse_args(
            [*common, "--num_epochs", "2", f"--resume_from_checkpoint={resume_from}", "--checkpoints_total_limit=2"]
        )
        assert args.num_train_timesteps == 20
    train_image.main(args)
    assert sorted(os.listdir(output_dir / "checkpoints")) == ["checkpoint-10", "checkpoint-12"]
    steps = [json.loads(line)["step"] for line in (output_dir / "losses.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 13))


def test_push_to_hub_without_a_model_id_names_the_repository_after_the_output_folder(tmp_path):
    args = train_image.parse_args(
        ["--dataset_name", "digits", "--output_dir", str(tmp_path / "ddpm-ema-digits"), "--push_to_hub"]
    )
    assert args.hub_model_id == "ddpm-ema-digits"  # as diffusers does; the Hub puts it under the token's user


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--model_preset", "tiny"], r"choose the U-Net; give one of them, got \[.*'tiny'\]"),
        (["--resolution", "7"], r"resolution 7 does not fit the U-Net of .*ddpm_dummy.*a multiple of 2"),
    ],
)
def test_a_model_config_is_checked_when_the_flags_are_read(tmp_path, local_stand_ins, extra, message):
    _, config = local_stand_ins
    argv = ["--dataset_name", "digits", "--output_dir", str(tmp_path / "run"), "--model_config_name_or_path"]
    with pytest.raises(ValueError, match=message):
        train_image.parse_args([*argv, str(config), *extra])
    with pytest.raises(ValueError, match=r"no UNet2DModel config there"):
        train_image.parse_args([*argv, str(tmp_path / "missing")])
    learned_variance = tmp_path / "learned_variance"
    UNet2DModel(
        sample_size=8, block_out_channels=(8, 16), norm_num_groups=4, out_channels=6,
        down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
    ).save_config(learned_variance)  # fmt: skip
    with pytest.raises(ValueError, match=r"in_channels=3 and out_channels=6"):
        train_image.parse_args([*argv, str(learned_variance)])
    assert not (tmp_path / "run").exists()


def test_an_unconditional_run_is_a_folder_plain_diffusers_loads_with_the_same_images(tmp_path, local_stand_ins):
    data, _ = local_stand_ins
    output_dir = tmp_path / "run"
    argv = f"""--train_data_dir {data} --condition none --model_preset tiny --resolution 8 --output_dir {output_dir}
        --train_batch_size 2 --max_train_steps 2 --ddpm_num_steps 20 --ddpm_beta_schedule squaredcos_cap_v2
        --prediction_type sample --ddpm_num_inference_steps 2 --logger none""".split()
    train_image.main(train_image.parse_args(argv))
    index = json.loads((output_dir / "model_index.json").read_text())
    assert index["_class_name"] == "DDPMPipeline" and index["scheduler"] == ["diffusers", "DDPMScheduler"]
    plain = DiffusionPipeline.from_pretrained(output_dir)  # no custom code: no trust_remote_code needed
    assert type(plain) is DDPMPipeline
    ours = DDPMCFGPipeline.from_pretrained(output_dir)
    images = []
    for pipe in (plain, ours):
        pipe.set_progress_bar_config(disable=True)
        call = {"batch_size": 3, "num_inference_steps": 20, "output_type": "np"}
        images.append(pipe(generator=torch.Generator().manual_seed(4), **call).images)
    np.testing.assert_array_equal(images[0], images[1])
    assert (output_dir / "samplers.py").is_file()  # the sampler table travels for the Space
