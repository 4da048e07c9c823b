"""Checkpoints: the script's own states (LR schedule, EMA, noise generator) round-trip through safetensors + JSON, no
pickle in a checkpoint folder is ever run, and a damaged checkpoint is named (or skipped for an older one)."""

import json
import logging
import os
import pickle
import shutil
import zipfile

import numpy as np
import pytest
import torch
from accelerate import Accelerator
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel

from ddpm_hf.training import (
    DiskFullError,
    TrainingRNG,
    find_checkpoint_problem,
    list_checkpoints,
    load_checkpoint,
    load_state_files,
    resolve_checkpoint,
    save_checkpoint,
    save_state_files,
)


class Training:
    """A tiny model with everything train_image.py checkpoints: weights, AdamW, LR schedule, EMA, noise generator."""

    def __init__(self, seed):
        self.accelerator = Accelerator(cpu=True)
        torch.manual_seed(seed)
        model = torch.nn.Linear(3, 2)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.lr_scheduler = get_scheduler(
            "cosine", optimizer=self.optimizer, num_warmup_steps=2, num_training_steps=20
        )
        self.ema = EMAModel(self.model.parameters(), decay=0.99, use_ema_warmup=True)
        self.rng = TrainingRNG(seed)

    def states(self):
        return {"states": {"ema": self.ema, "lr_scheduler": self.lr_scheduler}, "process_states": {"rng": self.rng}}

    def step(self):
        inputs = torch.randn(4, 3, generator=self.rng.generator)
        loss = self.model(inputs).square().mean()
        self.accelerator.backward(loss)
        self.optimizer.step()
        self.lr_scheduler.step()
        self.optimizer.zero_grad()
        self.ema.step(self.model.parameters())
        return loss.item()

    def save(self, checkpoints_dir, step, total_limit=None, run_id=None):
        return save_checkpoint(
            self.accelerator, str(checkpoints_dir), step, total_limit, **self.states(), run_id=run_id
        )


def train_and_save(checkpoints_dir, steps=(2, 4), run_id=None):
    run = Training(seed=0)
    done = 0
    for step in steps:
        while done < step:
            run.step()
            done += 1
        run.save(checkpoints_dir, step, run_id=run_id)
    return run


def test_states_round_trip_without_pickle(tmp_path):
    run = train_and_save(tmp_path, steps=(3,))
    path = tmp_path / "checkpoint-3"
    files = sorted(str(file.relative_to(path)) for file in path.rglob("*") if file.is_file())
    # accelerate's own files, then ours: no custom_checkpoint_*.pkl
    assert [name for name in files if name.endswith(".pkl")] == ["random_states_0.pkl"]
    assert "training_states/ema.safetensors" in files and "training_states/lr_scheduler.json" in files

    resumed = Training(seed=1)  # different weights, schedule position, EMA and generator until loaded
    assert not torch.equal(resumed.model.weight, run.model.weight)
    load_checkpoint(resumed.accelerator, str(path), **resumed.states())
    torch.testing.assert_close(resumed.model.state_dict(), run.model.state_dict(), rtol=0, atol=0)
    assert resumed.lr_scheduler.state_dict() == run.lr_scheduler.state_dict()
    assert resumed.ema.optimization_step == run.ema.optimization_step == 3
    for loaded, saved in zip(resumed.ema.shadow_params, run.ema.shadow_params):
        torch.testing.assert_close(loaded, saved, rtol=0, atol=0)
    assert torch.equal(resumed.rng.generator.get_state(), run.rng.generator.get_state())
    optimizer_state, saved_state = resumed.optimizer.state_dict()["state"], run.optimizer.state_dict()["state"]
    for index in saved_state:
        torch.testing.assert_close(optimizer_state[index], saved_state[index], rtol=0, atol=0)
    # the next steps are the same in both
    assert [resumed.step() for _ in range(3)] == [run.step() for _ in range(3)]
    torch.testing.assert_close(resumed.ema.shadow_params, run.ema.shadow_params, rtol=0, atol=0)


class WritesAFile:
    """A pickle whose loading would run code: it writes `path`."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (exec, (f"open({self.path!r}, 'w').write('unpickled')",))


@pytest.mark.parametrize("name", ["custom_checkpoint_0.pkl", "random_states_0.pkl", "optimizer.bin"])
def test_a_pickle_planted_in_a_checkpoint_is_never_run(tmp_path, name):
    checkpoints_dir = tmp_path / "checkpoints"
    train_and_save(checkpoints_dir)
    witness = tmp_path / "witness.txt"
    # as torch.save would write it (a zip), and as a plain pickle
    planted = checkpoints_dir / "checkpoint-4" / name
    if name == "optimizer.bin":
        torch.save(WritesAFile(witness), planted)
    else:
        planted.write_bytes(pickle.dumps(WritesAFile(witness)))

    with pytest.raises(ValueError, match=rf"checkpoint-4 cannot be resumed: {name}") as error:
        resolve_checkpoint(str(checkpoints_dir), "checkpoint-4")
    assert "checkpoint-2" in str(error.value)
    resumed = Training(seed=1)
    with pytest.raises(ValueError, match=rf"checkpoint-4 cannot be resumed: {name}"):
        load_checkpoint(resumed.accelerator, str(checkpoints_dir / "checkpoint-4"), **resumed.states())
    assert resolve_checkpoint(str(checkpoints_dir), "latest") == (2, str(checkpoints_dir / "checkpoint-2"))
    assert not witness.exists()


@pytest.mark.parametrize(
    "damaged_file", ["model.safetensors", "optimizer.bin", "random_states_0.pkl", "training_states/ema.safetensors",
                     "training_states/lr_scheduler.json", "training_states/rng.process_0.json"],
)  # fmt: skip
def test_a_truncated_file_in_the_latest_checkpoint_is_named_and_skipped(tmp_path, caplog, damaged_file):
    checkpoints_dir = tmp_path / "checkpoints"
    train_and_save(checkpoints_dir)
    path = checkpoints_dir / "checkpoint-4" / damaged_file
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])

    with caplog.at_level(logging.WARNING, logger="ddpm_hf.training.checkpoints"):
        step, chosen = resolve_checkpoint(str(checkpoints_dir), "latest")
    assert (step, chosen) == (2, str(checkpoints_dir / "checkpoint-2"))
    warning = caplog.text
    assert "checkpoint-4" in warning and damaged_file in warning and "resuming from" in warning
    assert str(checkpoints_dir / "checkpoint-2") in warning

    with pytest.raises(ValueError) as error:
        resolve_checkpoint(str(checkpoints_dir), "checkpoint-4")
    message = str(error.value)
    assert "checkpoint-4 cannot be resumed" in message and damaged_file in message
    assert "verify: ['checkpoint-2']" in message

    resumed = Training(seed=1)
    load_checkpoint(resumed.accelerator, chosen, **resumed.states())
    assert resumed.ema.optimization_step == 2


def test_a_flipped_byte_in_a_torch_file_fails_its_crc(tmp_path):
    train_and_save(tmp_path)
    path = tmp_path / "checkpoint-4" / "optimizer.bin"
    content = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:  # the first byte of the first tensor's record
        record = next(info for info in archive.infolist() if "/data/" in info.filename)
    name_and_extra = int.from_bytes(content[record.header_offset + 26 : record.header_offset + 28], "little")
    name_and_extra += int.from_bytes(content[record.header_offset + 28 : record.header_offset + 30], "little")
    content[record.header_offset + 30 + name_and_extra] ^= 0xFF  # same size: only the content check can see it
    path.write_bytes(bytes(content))
    assert "optimizer.bin" in find_checkpoint_problem(str(tmp_path / "checkpoint-4"))


def test_when_no_checkpoint_verifies_each_is_named(tmp_path):
    train_and_save(tmp_path)
    os.remove(tmp_path / "checkpoint-2" / "model.safetensors")
    (tmp_path / "checkpoint-4" / "optimizer.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="No checkpoint in") as error:
        resolve_checkpoint(str(tmp_path), "latest")
    assert "checkpoint-2: model.safetensors: missing" in str(error.value)
    assert "checkpoint-4: optimizer.bin:" in str(error.value)
    assert resolve_checkpoint(str(tmp_path / "none_yet"), "latest") is None


def test_a_checkpoint_of_other_states_is_refused_by_name(tmp_path):
    train_and_save(tmp_path, steps=(2,))
    resumed = Training(seed=1)
    states = resumed.states()
    states["states"]["ema"] = None  # a run resumed without --use_ema
    with pytest.raises(ValueError, match=r"holds the states \['ema', 'lr_scheduler'\], and this run has"):
        load_checkpoint(resumed.accelerator, str(tmp_path / "checkpoint-2"), **states)


def test_states_registered_with_accelerate_are_refused(tmp_path):
    run = Training(seed=0)
    run.accelerator.register_for_checkpointing(run.rng)
    try:
        with pytest.raises(ValueError, match="register_for_checkpointing"):
            run.save(tmp_path, 1)
        assert list_checkpoints(str(tmp_path)) == []
    finally:
        run.accelerator._custom_objects.clear()


def test_pruning_keeps_the_newest_checkpoints_of_this_attempt(tmp_path):
    run = train_and_save(tmp_path, steps=(2, 4, 6))
    manifest = json.loads((tmp_path / "checkpoint-6" / "ddpm_hf_checkpoint.json").read_text())
    assert manifest["step"] == 6 and "model.safetensors" in manifest["files"]
    # resumed from step 2 after checkpoint-6 was found damaged: 6 belongs to the abandoned attempt
    run.save(tmp_path, 3, total_limit=2)
    run.save(tmp_path, 5, total_limit=2)
    assert [step for step, _ in list_checkpoints(str(tmp_path))] == [4, 5, 6]


def test_loaded_tensors_go_to_the_device_of_those_they_replace_and_keep_their_shape(tmp_path):
    # EMAModel.load_state_dict keeps the tensors it is given: on a GPU run they must come back on the GPU. The meta
    # device stands in for it on the CPU.
    state = {"shadow_params": [torch.arange(6.0).reshape(2, 3)], "optimization_step": 7}
    save_state_files(state, str(tmp_path), "ema")
    loaded = load_state_files(str(tmp_path), "ema", like={"shadow_params": [torch.empty(2, 3, device="meta")]})
    assert loaded["shadow_params"][0].device.type == "meta" and loaded["optimization_step"] == 7
    torch.testing.assert_close(load_state_files(str(tmp_path), "ema")["shadow_params"][0], state["shadow_params"][0])
    with pytest.raises(ValueError, match=r"shadow_params\.0 has shape \(2, 3\) in the checkpoint and \(3, 2\)"):
        load_state_files(str(tmp_path), "ema", like={"shadow_params": [torch.empty(3, 2)]})
    with pytest.raises(TypeError, match=r"State 'bad': step is of type int64"):
        save_state_files({"step": np.int64(3)}, str(tmp_path), "bad")


RUN_A, RUN_B = "a" * 32, "b" * 32


def test_a_checkpoint_of_another_run_is_refused_naming_that_run(tmp_path, caplog):
    mine, other = tmp_path / "mine" / "checkpoints", tmp_path / "other" / "checkpoints"
    train_and_save(mine, run_id=RUN_A)
    train_and_save(other, run_id=RUN_B)
    foreign = str(other / "checkpoint-2")
    for run_id in (RUN_A, None):  # by where it lies, whatever the ids say
        with pytest.raises(ValueError) as error:
            resolve_checkpoint(str(mine), foreign, run_id=run_id)
        message = str(error.value)
        assert f"Checkpoint {foreign} is not one of this run's ({tmp_path / 'mine'})" in message
        assert f"it belongs to the run in {tmp_path / 'other'} (run id {RUN_B})" in message
        assert "--run_dir" in message and "--pretrained_model_name_or_path" in message
    # copied into this run's folder: its manifest names the other run
    shutil.copytree(other / "checkpoint-4", mine / "checkpoint-6")
    with pytest.raises(ValueError, match=rf"belongs to the run in {tmp_path / 'other'} \(run id {RUN_B}\)"):
        resolve_checkpoint(str(mine), "checkpoint-6", run_id=RUN_A)
    with caplog.at_level(logging.WARNING, logger="ddpm_hf.training.checkpoints"):
        assert resolve_checkpoint(str(mine), "latest", run_id=RUN_A) == (4, str(mine / "checkpoint-4"))
    assert "checkpoint-6 cannot be resumed (it belongs to the run in" in caplog.text


def test_diffusers_naming_of_a_checkpoint_finds_it_in_the_checkpoints_folder(tmp_path):
    mine, other = tmp_path / "mine" / "checkpoints", tmp_path / "other" / "checkpoints"
    train_and_save(mine, run_id=RUN_A)
    train_and_save(other, run_id=RUN_B)
    # diffusers writes RUN/checkpoint-N; this project keeps it as RUN/checkpoints/checkpoint-N
    found = resolve_checkpoint(str(mine), str(tmp_path / "mine" / "checkpoint-2"), run_id=RUN_A)
    assert found == (2, str(mine / "checkpoint-2"))
    with pytest.raises(ValueError, match=rf"it belongs to the run in {tmp_path / 'other'} \(run id {RUN_B}\)"):
        resolve_checkpoint(str(mine), str(tmp_path / "other" / "checkpoint-2"), run_id=RUN_A)
    with pytest.raises(ValueError, match=r"'checkpoint-8' is not a checkpoint folder; use 'latest' or one of"):
        resolve_checkpoint(str(mine), "checkpoint-8", run_id=RUN_A)


def test_a_checkpoint_written_before_run_ids_still_resumes_from_its_own_run(tmp_path):
    mine, other = tmp_path / "mine" / "checkpoints", tmp_path / "other" / "checkpoints"
    train_and_save(mine)
    train_and_save(other)
    for path in [*mine.iterdir(), *other.iterdir()]:  # manifests as an older version wrote them: no run id
        manifest = json.loads((path / "ddpm_hf_checkpoint.json").read_text())
        del manifest["run_id"], manifest["run_dir"]
        (path / "ddpm_hf_checkpoint.json").write_text(json.dumps(manifest))
    assert resolve_checkpoint(str(mine), "latest", run_id=RUN_A) == (4, str(mine / "checkpoint-4"))
    assert resolve_checkpoint(str(mine), "checkpoint-2", run_id=RUN_A) == (2, str(mine / "checkpoint-2"))
    assert resolve_checkpoint(str(mine), str(mine / "checkpoint-2")) == (2, str(mine / "checkpoint-2"))
    with pytest.raises(ValueError) as error:  # another run's, even without ids: it lies in another run's folder
        resolve_checkpoint(str(mine), str(other / "checkpoint-2"), run_id=RUN_A)
    assert f"it belongs to the run in {tmp_path / 'other'}. A run resumes" in str(error.value)


def test_a_full_disk_during_a_checkpoint_save_is_named_and_the_earlier_checkpoints_stay(tmp_path):
    run = train_and_save(tmp_path, steps=(2,))
    save_state = run.accelerator.save_state

    def fill_the_disk(output_dir, **kwargs):
        save_state(output_dir, **kwargs)
        raise RuntimeError(
            "[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing file data/0"
        )

    run.accelerator.save_state = fill_the_disk
    with pytest.raises(DiskFullError) as error:
        run.save(tmp_path, 4)
    message = str(error.value)
    assert f"The disk is full: writing {tmp_path / 'tmp-checkpoint-4'} (last file written: " in message
    assert (
        "the half-written checkpoint is deleted, and the earlier checkpoints" in message
        and "left on its disk" in message
    )
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-2"]
    assert resolve_checkpoint(str(tmp_path), "latest") == (2, str(tmp_path / "checkpoint-2"))
