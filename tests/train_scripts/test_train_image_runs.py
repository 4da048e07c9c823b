"""train_image.py keeps what users own and answers resumes truthfully; it fine-tunes saved pipelines, saves loadable
pipelines during training, feeds its trackers, and any checkpoint exports to a pipeline."""

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from ddpm_hf import DDPMCFGPipeline

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "train_scripts"
sys.path.insert(0, str(SCRIPTS))
import export_checkpoint  # noqa: E402
import train_image  # noqa: E402
from test_train_image import TINY, accelerate_launch, make_image_folder  # noqa: E402

WEIGHTS = "unet/diffusion_pytorch_model.safetensors"


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def write_config(tmp_path, text):
    path = tmp_path / "preset.yaml"
    path.write_text(text)
    return ["--config", str(path)]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A 4-step digits run (checkpoints at steps 2 and 4), trained once for the tests that copy it."""
    output_dir = tmp_path_factory.mktemp("finished") / "run"
    train_image.main(train_image.parse_args(["--dataset_name", "digits", *TINY, "--output_dir", str(output_dir)]))
    return output_dir


def copy_of(run, tmp_path):
    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run"


# ---------- nothing a user owns is deleted ----------


@pytest.mark.parametrize("where", ["is", "inside", "holds"])
def test_an_output_dir_overlapping_the_training_data_is_refused_and_the_data_kept(tmp_path, where):
    data = make_image_folder(tmp_path / "data")
    output_dir = {"is": data, "inside": data / "cat", "holds": tmp_path}[where]
    before = files_of(data)
    argv = ["--train_data_dir", str(data), "--output_dir", str(output_dir), "--overwrite_output_dir", *TINY]
    with pytest.raises(ValueError, match="overlaps the training data"):
        train_image.main(train_image.parse_args(argv))
    assert files_of(data) == before


def test_overwrite_deletes_only_an_earlier_runs_folder(tmp_path):
    users = tmp_path / "mine"
    users.mkdir()
    (users / "notes.txt").write_text("keep me")
    for argv in (["--overwrite_output_dir"], write_config(tmp_path, 'overwrite_output_dir: "no"\n')):
        with pytest.raises(ValueError, match="mine"):
            train_image.main(
                train_image.parse_args(["--dataset_name", "digits", *TINY, "--output_dir", str(users), *argv])
            )
    with pytest.raises(ValueError, match="not a run folder"):  # resuming into it would write over its files
        train_image.parse_args(
            ["--dataset_name", "digits", *TINY, "--output_dir", str(users), "--resume_from_checkpoint", "latest"]
        )
    assert files_of(users) == {"notes.txt": b"keep me"}


def test_config_values_go_through_each_flags_type(tmp_path):
    common = ["--dataset_name", "digits", "--output_dir", str(tmp_path / "run")]
    assert train_image.parse_args([*common, *write_config(tmp_path, 'use_ema: "false"\n')]).use_ema is False
    assert train_image.parse_args([*common, *write_config(tmp_path, "use_ema: no\n")]).use_ema is False
    bad = {
        'use_ema: "maybe"\n': "use_ema",
        "max_train_steps: 2.5\n": "max_train_steps",
        "train_batch_size: [4, 8]\n": "train_batch_size",
        "adam_beta1: 1.5\n": r"adam_beta1: 1.5: must be a number in \[0, 1\), got 1.5",
        "guidance_scale: .nan\n": "guidance_scale",
        "condition: &a [*b, *b]\n": "alias",
    }
    for text, message in bad.items():
        with pytest.raises(ValueError, match=message):
            train_image.parse_args([*common, *write_config(tmp_path, text)])
    bomb = (
        "a: &a [x, x, x, x, x, x, x, x, x]\n"
        + "".join(
            f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
            for i in range(8)
        )
        + "condition: *i\n"
    )
    started = time.time()
    with pytest.raises(ValueError) as refused:
        train_image.parse_args([*common, *write_config(tmp_path, bomb)])
    assert len(str(refused.value)) < 400 and time.time() - started < 5
    for argv in (["--guidance_scale", "nan"], ["--adam_beta1", "1.5"], ["--learning_rate", "inf"]):
        with pytest.raises(ValueError, match=argv[0][2:]):
            train_image.parse_args([*common, *argv])
    assert not (tmp_path / "run").exists()


# ---------- resuming ----------


def test_a_finished_run_resumes_to_zero_steps(finished_run, tmp_path):
    run = copy_of(finished_run, tmp_path)
    before = files_of(run)
    train_image.main(
        train_image.parse_args(
            ["--dataset_name", "digits", *TINY, "--output_dir", str(run), "--resume_from_checkpoint", "latest"]
        )
    )
    assert files_of(run) == {**before, "run_config.json": files_of(run)["run_config.json"]}
    assert [json.loads(line)["step"] for line in (run / "losses.jsonl").read_text().splitlines()] == [1, 2, 3, 4]


def test_resuming_a_run_without_checkpoints_starts_anew_and_forgets_its_old_losses(finished_run, tmp_path):
    run = copy_of(finished_run, tmp_path)
    shutil.rmtree(run / "checkpoints")  # killed before its first checkpoint, with steps logged
    (run / "metrics.json").unlink()
    train_image.main(
        train_image.parse_args(
            ["--dataset_name", "digits", *TINY, "--output_dir", str(run), "--resume_from_checkpoint", "latest"]
        )
    )
    assert [json.loads(line)["step"] for line in (run / "losses.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
    assert (run / "losses.jsonl").read_bytes() == (finished_run / "losses.jsonl").read_bytes()  # the same seed


def test_resuming_refuses_changed_training_settings_and_records_changed_saving_ones(finished_run, tmp_path):
    run = copy_of(finished_run, tmp_path)
    common = ["--dataset_name", "digits", *TINY, "--output_dir", str(run), "--resume_from_checkpoint", "latest"]
    with pytest.raises(ValueError, match=r"--train_batch_size: '4' there, '32' now, --learning_rate: '0.001' there"):
        train_image.parse_args([*common, "--train_batch_size", "32", "--learning_rate", "0.1"])
    args = train_image.parse_args([*common, "--checkpoints_total_limit", "5", "--max_train_steps", "4"])
    train_image.main(args)
    assert json.loads((run / "run_config.json").read_text())["checkpoints_total_limit"] == 5


def test_a_damaged_latest_checkpoint_is_named_and_the_older_one_used(finished_run, tmp_path, caplog):
    run = copy_of(finished_run, tmp_path)
    (run / "metrics.json").unlink()  # as if the run had been stopped before its end
    weights = run / "checkpoints" / "checkpoint-4" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with caplog.at_level("WARNING"):
        train_image.main(
            train_image.parse_args(
                ["--dataset_name", "digits", *TINY, "--output_dir", str(run), "--resume_from_checkpoint", "latest"]
            )
        )
    assert "checkpoint-4" in caplog.text and "checkpoint-2" in caplog.text
    steps = [json.loads(line)["step"] for line in (run / "losses.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]  # steps 3 and 4 ran again from checkpoint-2
    assert not list((run / "checkpoints").rglob("*.pkl")) or not list(
        (run / "checkpoints").rglob("custom_checkpoint*")
    )


# Takes the lock of the run folder given as its argument, says so, and holds it until killed: another writer.
HOLDER = """
import sys, time
from ddpm_hf.training import lock_run_folder
lock = lock_run_folder(sys.argv[1], script="holder.py")
print("held", flush=True)
time.sleep(600)
"""


def test_a_second_writer_is_refused_naming_the_first_until_it_is_killed(finished_run, tmp_path):
    run = copy_of(finished_run, tmp_path)
    resume = ["--dataset_name", "digits", *TINY, "--output_dir", str(run), "--resume_from_checkpoint", "latest"]
    args = train_image.parse_args([*resume, "--max_train_steps", "6"])  # checked while the folder was free
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        before = files_of(run)
        for refused in (lambda: train_image.parse_args(resume), lambda: train_image.main(args)):
            with pytest.raises(ValueError, match=f"is in use by holder.py \\(PID {holder.pid} on host "):
                refused()
        assert files_of(run) == before  # no loss row, config, checkpoint or pipeline written
    finally:
        holder.kill()  # SIGKILL: its lock file stays, and the kernel frees the lock
        holder.wait(timeout=60)
        holder.stdout.close()
    train_image.main(args)
    assert [json.loads(line)["step"] for line in (run / "losses.jsonl").read_text().splitlines()] == [1, 2, 3, 4, 5, 6]
    assert not (run / ".ddpm_hf_lock").exists()


def test_another_runs_checkpoint_is_refused_for_resuming_and_exporting(finished_run, tmp_path):
    run = copy_of(finished_run, tmp_path)
    other = tmp_path / "other"
    train_image.main(train_image.parse_args(["--dataset_name", "digits", *TINY, "--output_dir", str(other)]))
    foreign = other / "checkpoints" / "checkpoint-2"
    before = files_of(run)
    resume = ["--dataset_name", "digits", *TINY, "--output_dir", str(run), "--resume_from_checkpoint", str(foreign)]
    with pytest.raises(ValueError) as error:
        train_image.parse_args(resume)
    message = str(error.value)
    assert f"Checkpoint {foreign} is not one of this run's ({run})" in message
    assert f"it belongs to the run in {other} (run id " in message and "--pretrained_model_name_or_path" in message
    export = ["--run_dir", str(run), "--checkpoint", str(foreign), "--output_dir", str(tmp_path / "exported")]
    with pytest.raises(ValueError, match=f"it belongs to the run in {other} "):
        export_checkpoint.main(export_checkpoint.parse_args(export))
    assert files_of(run) == before and not (tmp_path / "exported").exists()
    assert sorted(os.listdir(tmp_path)) == ["other", "run"]  # no staging folder either


def test_a_run_from_before_run_ids_still_resumes_and_exports_its_own_checkpoints(finished_run, tmp_path):
    run = copy_of(finished_run, tmp_path)
    for path in [run / ".ddpm_hf_run.json", *(run / "checkpoints").glob("*/ddpm_hf_checkpoint.json")]:
        content = json.loads(path.read_text())
        content.pop("run_id"), content.pop("run_dir", None)
        path.write_text(json.dumps(content))
    export = ["--run_dir", str(run), "--checkpoint", "checkpoint-2", "--output_dir", str(tmp_path / "step2")]
    export_checkpoint.main(export_checkpoint.parse_args(export))
    assert DDPMCFGPipeline.from_pretrained(tmp_path / "step2").num_classes == 10
    (run / "metrics.json").unlink()  # stopped before its end
    resume = ["--dataset_name", "digits", *TINY, "--output_dir", str(run), "--resume_from_checkpoint", "checkpoint-2"]
    train_image.main(train_image.parse_args(resume))
    run_id = json.loads((run / ".ddpm_hf_run.json").read_text())["run_id"]  # given one when resumed
    manifest = json.loads((run / "checkpoints" / "checkpoint-4" / "ddpm_hf_checkpoint.json").read_text())
    assert manifest["run_id"] == run_id and manifest["step"] == 4


# ---------- export, fine-tuning, saves during training, trackers ----------


def test_any_checkpoint_exports_to_a_loadable_pipeline(finished_run, tmp_path):
    export_checkpoint.main(
        export_checkpoint.parse_args(
            ["--run_dir", str(finished_run), "--checkpoint", "checkpoint-4", "--output_dir", str(tmp_path / "step4")]
        )
    )
    exported, saved = load_file(tmp_path / "step4" / WEIGHTS), load_file(finished_run / WEIGHTS)
    assert exported.keys() == saved.keys() and all(torch.equal(exported[key], saved[key]) for key in saved)
    export_checkpoint.main(
        export_checkpoint.parse_args(
            ["--run_dir", str(finished_run), "--checkpoint", "checkpoint-2", "--output_dir", str(tmp_path / "step2")]
        )
    )
    pipe = DDPMCFGPipeline.from_pretrained(tmp_path / "step2")
    assert list(pipe.id2label.values()) == [str(digit) for digit in range(10)]
    assert "| training steps | 2 |" in (tmp_path / "step2" / "README.md").read_text()
    assert not all(torch.equal(pipe.unet.state_dict()[key], saved[key]) for key in saved)


def test_fine_tuning_a_diffusers_ddpm_pipeline_adds_classes(tmp_path, diffusers_ddpm_folder):
    source, _ = diffusers_ddpm_folder
    common = [
        "--dataset_name",
        "digits",
        "--pretrained_model_name_or_path",
        str(source),
        "--output_dir",
        str(tmp_path / "run"),
        "--max_train_steps",
        "2",
        "--train_batch_size",
        "4",
        "--logger",
        "none",
        "--save_images_epochs",
        "1000",
        "--num_inference_steps",
        "2",
    ]
    for flags, message in ((["--model_preset", "tiny"], "--model_preset"), (["--num_train_timesteps", "50"], "20")):
        with pytest.raises(ValueError, match=message):
            train_image.parse_args([*common, *flags])
    args = train_image.parse_args(common)
    assert (args.resolution, args.num_train_timesteps, args.prediction_type) == (8, 20, "epsilon")
    train_image.main(args)
    pipe = DDPMCFGPipeline.from_pretrained(tmp_path / "run")
    pipe.set_progress_bar_config(disable=True)
    assert pipe.num_classes == 10 and pipe.unet.config.block_out_channels == [8, 16]
    images = pipe(class_labels=["3", "7"], num_inference_steps=2, output_type="np").images
    assert images.shape == (2, 8, 8, 1)
    assert str(source) in (tmp_path / "run" / "README.md").read_text()


# Put on PYTHONPATH, this sitecustomize kills the process (SIGKILL) just after a pipeline's model_index.json is moved
# into the run folder: right after the first save of --save_model_epochs is complete.
KILL_AFTER_SAVE = """
import os, signal
_replace = os.replace
def _replace_then_die(source, target, *args, **kwargs):
    _replace(source, target, *args, **kwargs)
    if os.path.basename(str(target)) == "model_index.json" and ".pipeline-" in str(source):
        os.kill(os.getpid(), signal.SIGKILL)
os.replace = _replace_then_die
"""


def test_a_run_killed_after_its_first_model_save_leaves_a_loadable_pipeline(tmp_path):
    data = make_image_folder(tmp_path / "data")  # 12 images: 3 steps of 4 per epoch
    (tmp_path / "hook").mkdir()
    (tmp_path / "hook" / "sitecustomize.py").write_text(KILL_AFTER_SAVE)
    output_dir = tmp_path / "run"
    argv = [
        "--train_data_dir",
        str(data),
        "--output_dir",
        str(output_dir),
        *TINY,
        "--max_train_steps",
        "30",
        "--checkpointing_steps",
        "100",
        "--save_model_epochs",
        "1",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(tmp_path / "hook")}
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "train_image.py"), *argv], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    assert not list(output_dir.glob("checkpoints/checkpoint-*"))  # nothing but the save to load from
    pipe = DDPMCFGPipeline.from_pretrained(output_dir)
    assert list(pipe.id2label.values()) == ["cat", "dog"]
    assert "| training steps | 3 |" in (output_dir / "README.md").read_text()


def test_trackers_get_losses_and_grids_and_saves_are_pushed_each_time(tmp_path, fake_hub_server):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    data = make_image_folder(tmp_path / "data")
    output_dir = tmp_path / "run"
    argv = [
        "--train_data_dir",
        str(data),
        "--output_dir",
        str(output_dir),
        *TINY,
        "--max_train_steps",
        "6",
        "--logger",
        "tensorboard",
        "--save_images_epochs",
        "1",
        "--epoch_sampler",
        "dpm_solver++",
        "--final_sampler",
        "ddim",
        "--save_model_epochs",
        "1",
        "--push_to_hub",
        "--hub_model_id",
        "me/cats",
    ]
    result = accelerate_launch(argv, extra_env=fake_hub_server.env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "epoch 0 grid (dpm_solver++, 10 steps)" in result.stderr  # its progress bar
    assert "final grid and GIF (ddim, 20 steps)" in result.stderr  # 50 steps, at most T = 20
    scheduler_config = json.loads((output_dir / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler_config["_class_name"] == "ExtendedDDPMScheduler"  # what sampled the figures is not saved
    assert (output_dir / "samples" / "epoch_0000.png").is_file() and (
        output_dir / "samples" / "epoch_0001.png"
    ).is_file()
    assert len(fake_hub_server.commits) == 2  # after epoch 0, then at the end
    loss_steps, image_steps = [], []
    for events in sorted((output_dir / "logs").rglob("events.out.tfevents*")):  # the tracker may hold several files
        accumulator = EventAccumulator(str(events), size_guidance={"images": 0, "scalars": 0})
        accumulator.Reload()
        tags = accumulator.Tags()
        loss_steps += [event.step for event in accumulator.Scalars("loss")] if "loss" in tags["scalars"] else []
        image_steps += [event.step for event in accumulator.Images("samples")] if "samples" in tags["images"] else []
    assert sorted(loss_steps) == [1, 2, 3, 4, 5, 6] and sorted(image_steps) == [3, 6]


def wandb_records(path):
    """The protobuf records of a .wandb run file: a 7-byte header, then 32 KiB blocks of chunks (CRC32, 2-byte
    length, type: 1 full, 2 first, 3 middle, 4 last), as LevelDB's log format lays them out."""
    from wandb.proto import wandb_internal_pb2

    data, position, pending = path.read_bytes(), 7, b""
    assert data[:4] == b":W&B"
    while position + 7 <= len(data):
        if 32768 - position % 32768 < 7:  # a block's tail too short for a chunk header is padding
            position += 32768 - position % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def test_wandb_offline_gets_losses_and_grids(tmp_path):
    pytest.importorskip("wandb")
    data = make_image_folder(tmp_path / "data")
    output_dir = tmp_path / "run"
    argv = [
        "--train_data_dir",
        str(data),
        "--output_dir",
        str(output_dir),
        *TINY,
        "--max_train_steps",
        "3",
        "--logger",
        "wandb",
        "--save_images_epochs",
        "1",
    ]
    result = accelerate_launch(argv, extra_env={"WANDB_MODE": "offline", "WANDB_SILENT": "true"})
    assert result.returncode == 0, result.stderr[-3000:]
    (run_file,) = (output_dir / "logs" / "wandb").glob("offline-run-*/run-*.wandb")
    losses, values = {}, []
    for record in wandb_records(run_file):
        items = []
        if record.WhichOneof("record_type") == "history":
            items = record.history.item
            row = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items}
            losses[row["_step"]] = row["loss"]
        elif record.WhichOneof("record_type") == "summary":
            items = record.summary.update
        values += [item.value_json for item in items]
    assert sorted(losses) == [1, 2, 3] and all(np.isfinite(value) for value in losses.values())
    (image,) = (run_file.parent / "files" / "media" / "images").glob("samples_3_*.png")  # the grid of step 3
    assert any(f'"media/images/{image.name}"' == value for value in values)
