"""train_image.py's speed levers on the CPU: each trains the same steps as the plain path and saves a plain model."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from test_train_image import TINY, accelerate_launch, make_image_folder
from test_train_image import train as train_in_process
from test_train_image_faults import COMMON, losses, train_image

from ddpm_hf import DDPMCFGPipeline

ALL_OFF = [
    "--no-channels_last", "--no-fused_adamw", "--no-foreach_ema", "--no-torch_compile", "--no-data_on_device",
    "--loss_read_steps", "1",
]  # fmt: skip


def train(tmp_path, name, data, extra):
    output_dir = tmp_path / name
    train_in_process(["--train_data_dir", str(data), "--output_dir", str(output_dir), *TINY, *extra])
    return output_dir


def unet_weights(run):
    return load_file(run / "unet" / "diffusion_pytorch_model.safetensors")


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("speed")
    data = make_image_folder(tmp_path / "data")
    return data, train(tmp_path, "plain", data, ALL_OFF)


def assert_same_training(run, reference, rtol):
    np.testing.assert_allclose(losses(run), losses(reference), rtol=rtol)
    weights, reference_weights = unet_weights(run), unet_weights(reference)
    assert weights.keys() == reference_weights.keys()  # no "_orig_mod." of a compiled module
    for key, value in weights.items():
        assert value.is_contiguous()
        torch.testing.assert_close(value, reference_weights[key], rtol=rtol, atol=1e-5)


def test_cpu_defaults_are_the_plain_path(plain_run, tmp_path):
    data, plain = plain_run
    run = train(tmp_path, "defaults", data, [])
    settings = json.loads((run / "metrics.json").read_text())["speed_settings"]
    assert settings == {
        "channels_last": False,
        "fused_adamw": False,
        "foreach_ema": True,
        "torch_compile": False,
        "data_on_device": False,
        "loss_read_steps": 1,
        "pinned_batches": False,
    }
    assert_same_training(run, plain, rtol=1e-5)  # foreach EMA: the same update, other kernels


def test_channels_last_fused_adamw_preloaded_data_and_rare_loss_reads_train_the_same_steps(plain_run, tmp_path):
    data, plain = plain_run
    levers = ["--channels_last", "--fused_adamw", "--foreach_ema", "--data_on_device", "--loss_read_steps", "3"]
    run = train(tmp_path, "levers", data, levers)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["speed_settings"] == {
        "channels_last": True,
        "fused_adamw": True,
        "foreach_ema": True,
        "torch_compile": False,
        "data_on_device": True,
        "loss_read_steps": 3,
        "pinned_batches": False,
    }
    assert metrics["data_preload_seconds"] >= 0 and metrics["first_step_seconds"] > 0
    assert [json.loads(line)["step"] for line in (run / "losses.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
    # same batches (same sampler, same pixels), same noise; only kernels differ
    assert_same_training(run, plain, rtol=1e-4)
    pipe = DDPMCFGPipeline.from_pretrained(run)
    assert pipe.unet.conv_in.weight.is_contiguous()


def test_compiled_training_saves_a_plain_model(plain_run, tmp_path):
    data, plain = plain_run
    # aot_eager runs dynamo and AOTAutograd, the parts that wrap the module, without inductor's C++ build
    # launched apart, so that the compiled graphs stay out of the test process
    run = tmp_path / "compiled"
    result = accelerate_launch(
        ["--train_data_dir", str(data), "--output_dir", str(run), *TINY, *ALL_OFF, "--torch_compile",
         "--compile_backend", "aot_eager"]
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run / "metrics.json").read_text())["speed_settings"]["torch_compile"] is True
    assert_same_training(run, plain, rtol=1e-4)
    DDPMCFGPipeline.from_pretrained(run)
    resumed = accelerate_launch(
        ["--train_data_dir", str(data), "--output_dir", str(run), *TINY, *ALL_OFF, "--torch_compile",
         "--compile_backend", "aot_eager", "--max_train_steps", "6", "--resume_from_checkpoint", "latest"]
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert len(losses(run)) == 6


def test_preloaded_multi_label_scenes_train_the_same_steps(tmp_path):
    from ddpm_hf.data import make_synthetic_iclevr

    # an i-CLEVR-style folder: label lists become multi-hot rows of the IndexDataset, read by a label-token U-Net
    folder = make_synthetic_iclevr(str(tmp_path / "iclevr"), num_images=12, resolution=16, num_test=3)
    extra = ["--resize_mode", "stretch", "--label_conditioning", "tokens"]
    plain = train(tmp_path, "plain", folder, [*ALL_OFF, *extra])
    preloaded = train(tmp_path, "preloaded", folder, [*extra, "--data_on_device", "--loss_read_steps", "2"])
    assert_same_training(preloaded, plain, rtol=1e-5)


def test_two_processes_shard_the_preloaded_rows_as_they_shard_images(tmp_path):
    def two_process_run(name, extra):
        output_dir = tmp_path / name
        args = [*COMMON, "--max_train_steps", "7", "--checkpointing_steps", "4", "--output_dir", str(output_dir)]
        result = accelerate_launch([*args, *extra], num_processes=2)
        assert result.returncode == 0, result.stderr[-3000:]
        return output_dir

    plain = two_process_run("plain", ALL_OFF)
    levers = two_process_run("levers", ["--data_on_device", "--loss_read_steps", "3", "--channels_last"])
    # each step's loss is the mean over both processes' batches: equal only if each process drew the same rows
    np.testing.assert_allclose(losses(levers), losses(plain), rtol=1e-5)
    assert sorted(path.name for path in (levers / "checkpoints").iterdir()) == ["checkpoint-4", "checkpoint-7"]


def test_a_non_finite_loss_read_late_still_stops_before_any_checkpoint_holds_it(tmp_path):
    def run(name, read_steps):
        output_dir = tmp_path / name
        args = train_image.parse_args(
            [*COMMON, "--max_train_steps", "40", "--checkpointing_steps", "6", "--checkpoints_total_limit", "50",
             "--learning_rate", "1", "--lr_warmup_steps", "0", "--loss_read_steps", str(read_steps),
             "--output_dir", str(output_dir)]
        )  # fmt: skip
        with pytest.raises(RuntimeError, match=r"Loss became (nan|inf) at step (\d+); training stopped") as error:
            train_image.main(args)
        step = int(error.value.args[0].split(" at step ")[1].split(";")[0])
        return output_dir, step

    # a learning rate of 1 makes the loss non-finite after a dozen steps (at step 15 on this data and seed)
    every_step, first_bad = run("every_step", 1)
    late, late_step = run("late", 5)
    assert first_bad > 12 and late_step == first_bad  # the same first bad step, found up to 4 steps later
    assert losses(late) == losses(every_step) and len(losses(late)) == first_bad - 1
    checkpoints = sorted(int(path.name.split("-")[1]) for path in (late / "checkpoints").iterdir())
    assert checkpoints == list(range(6, first_bad, 6))
    assert not (late / "model_index.json").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--loss_read_steps", "0"], r"argument --loss_read_steps: must be an integer in \[1, inf\), got 0"),
        (["--data_on_device", "--no-center_crop"], "--data_on_device keeps one crop"),
        (["--torch_compile_mode", "fastest"], r"argument --torch_compile_mode: invalid choice: 'fastest'"),
        (
            ["--compile_backend", "bogus"],
            r"argument --compile_backend: invalid choice: 'bogus' \(choose from 'eager', 'aot_eager', 'inductor'",
        ),
    ],
)
def test_bad_speed_flags(tmp_path, argv, message):
    with pytest.raises(ValueError, match=message):
        train_image.parse_args([*COMMON, "--output_dir", str(tmp_path / "run"), *argv])
