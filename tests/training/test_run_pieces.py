"""The pieces train_image.py is built from: deferred loss reads, the throughput record, pipeline saves into a run
folder, tracker images, and checkpoint export."""

import json
import os

import numpy as np
import pytest
import torch
from accelerate import Accelerator
from PIL import Image

from ddpm_hf import DDPMCFGPipeline, ExtendedDDPMScheduler, make_unet
from ddpm_hf.training import (
    DeferredLossLog,
    ThroughputRecord,
    final_loss,
    log_images_to_trackers,
    read_losses,
    save_pipeline_folder,
)


def never_finite(value, step):
    return f"non-finite {value} at step {step}"


def test_losses_are_read_in_batches_in_step_order(tmp_path):
    path = str(tmp_path / "losses.jsonl")
    log = DeferredLossLog(
        Accelerator(cpu=True), path, read_every=3, log_to_trackers=False, non_finite_message=never_finite
    )
    for step, value in enumerate([0.5, 0.25, 0.125], start=1):
        assert not log.due()
        log.add(step, torch.tensor(value), {"lr": 0.1 * step})
    assert log.due() and not os.path.exists(path)  # nothing read until asked
    last = log.read()
    assert last == {"loss": 0.125, "lr": pytest.approx(0.3), "step": 3}
    assert read_losses(path) == [0.5, 0.25, 0.125]
    assert log.read() is None  # nothing pending
    log.forget_after(2)
    assert [json.loads(line)["step"] for line in open(path)] == [1, 2]


def test_read_losses_up_to_a_step_and_the_final_loss_is_the_mean_of_the_last_100(tmp_path):
    path = tmp_path / "losses.jsonl"
    path.write_text("".join(json.dumps({"loss": float(step), "step": step}) + "\n" for step in range(1, 151)))
    assert read_losses(str(path), up_to_step=3) == [1.0, 2.0, 3.0]
    assert final_loss(read_losses(str(path))) == np.mean(np.arange(51, 151))  # steps 51..150
    assert final_loss(read_losses(str(path), up_to_step=4)) == 2.5  # a run shorter than 100 steps


def test_a_non_finite_loss_stops_at_its_step_and_logs_only_the_steps_before_it(tmp_path):
    path = str(tmp_path / "losses.jsonl")
    log = DeferredLossLog(
        Accelerator(cpu=True), path, read_every=10, log_to_trackers=False, non_finite_message=never_finite
    )
    for step, value in enumerate([0.5, float("nan"), 0.25], start=1):
        log.add(step, torch.tensor(value), {"lr": 0.0})
    with pytest.raises(RuntimeError, match="non-finite nan at step 2"):
        log.read()
    assert read_losses(path) == [0.5]


def test_throughput_leaves_out_the_excluded_time_and_the_first_step(monkeypatch):
    clock = iter([100.0, 101.0, 103.0, 107.0, 111.0])  # start, first step done, excluded block, finish
    monkeypatch.setattr("ddpm_hf.training.throughput.time.time", lambda: next(clock))
    record = ThroughputRecord(torch.device("cpu"))
    record.start()  # 100
    record.add_images(10)
    record.step_done()
    record.first_step_done()  # 101: 1 s, 10 images
    record.add_images(30)
    record.step_done()
    with record.excluded():  # 103 .. 107: 4 s of sampling
        pass
    record.finish()  # 111: 11 s in all, 4 excluded
    metrics = record.metrics()
    assert metrics["train_seconds"] == 7 and metrics["sample_grid_seconds"] == 4
    assert metrics["first_step_seconds"] == 1 and metrics["images_per_second"] == round(40 / 7, 1)
    assert metrics["images_per_second_after_first_step"] == 5.0  # 30 images in 6 s
    assert metrics["peak_gpu_memory_gib"] is None


def tiny_pipeline(seed):
    torch.manual_seed(seed)
    unet = make_unet("tiny", 8, 1, 3).eval()
    return DDPMCFGPipeline(
        unet=unet, scheduler=ExtendedDDPMScheduler(num_train_timesteps=10), id2label={0: "a", 1: "b", 2: "c"}
    )


def test_a_pipeline_saved_over_an_earlier_one_replaces_it_and_keeps_the_run_files(tmp_path):
    (tmp_path / "losses.jsonl").write_text("{}\n")
    (tmp_path / "checkpoints").mkdir()
    save_pipeline_folder(tiny_pipeline(0), str(tmp_path))
    save_pipeline_folder(tiny_pipeline(1), str(tmp_path))
    loaded = DDPMCFGPipeline.from_pretrained(tmp_path)
    for name, value in tiny_pipeline(1).unet.state_dict().items():
        torch.testing.assert_close(loaded.unet.state_dict()[name], value, rtol=0, atol=0)
    left = {name for name in os.listdir(tmp_path) if name.startswith(".")}
    assert not left  # no staging folder left behind
    assert (tmp_path / "losses.jsonl").read_text() == "{}\n" and (tmp_path / "checkpoints").is_dir()


def test_grids_reach_tensorboard_as_images(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accelerator = Accelerator(cpu=True, log_with="tensorboard", project_dir=str(tmp_path))
    accelerator.init_trackers("run")
    grid = Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3) * 5)
    log_images_to_trackers(accelerator, "samples", grid, step=7)
    accelerator.end_training()
    (events,) = [
        os.path.join(root, name) for root, _, names in os.walk(tmp_path) for name in names if "events" in name
    ]
    accumulator = EventAccumulator(events, size_guidance={"images": 0})
    accumulator.Reload()
    (image,) = accumulator.Images("samples")
    assert image.step == 7 and (image.width, image.height) == (4, 4)
