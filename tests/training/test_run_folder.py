"""Every saved folder whole: a pipeline save killed at any rename leaves a folder that loads (or, where no atomic
exchange exists, one that is refused naming what is missing until the next writer restores it); staging folders do not
outlive their run; a full disk is named, with the file being written and the space left, and the earlier save stays."""

import errno
import io
import json
import os
import re
import shutil
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from safetensors import SafetensorError

from ddpm_hf import DDPMCFGPipeline, ExtendedDDPMScheduler, make_unet
from ddpm_hf.training import (
    RUN_MARKER,
    DeferredLossLog,
    DiskFullError,
    folder_swap,
    open_run_folder,
    prepare_output_dir,
    read_best_record,
    save_best_pipeline,
    save_pipeline_folder,
    staged_output_dir,
)


class Killed(BaseException):
    """Stands for the process being killed: nothing runs after it, clean-up included."""


def tiny_pipeline(seed, num_train_timesteps):
    torch.manual_seed(seed)
    unet = make_unet("tiny", 8, 1, 3).eval()
    scheduler = ExtendedDDPMScheduler(num_train_timesteps=num_train_timesteps)
    return DDPMCFGPipeline(unet=unet, scheduler=scheduler, id2label={0: "a", 1: "b", 2: "c"})


OLD, NEW = (0, 10), (1, 12)  # (seed, num_train_timesteps) of the earlier and the later save


def weights_of(seed):
    return tiny_pipeline(seed, 10).unet.state_dict()


def component_versions(folder):
    """Load the folder with from_pretrained; return which save its U-Net and its scheduler come from."""
    pipe = DDPMCFGPipeline.from_pretrained(folder)
    loaded = pipe.unet.state_dict()
    unet = [
        seed
        for seed in (OLD[0], NEW[0])
        if all(torch.equal(loaded[key], value) for key, value in weights_of(seed).items())
    ]
    assert len(unet) == 1, "the U-Net is neither save's"
    scheduler = {OLD[1]: "old", NEW[1]: "new"}[pipe.scheduler.config.num_train_timesteps]
    return ("old" if unet[0] == OLD[0] else "new"), scheduler


def install_kill(monkeypatch, folder, kill_at, atomic):
    """Count the renames into `folder` (os.replace, and the atomic exchange unless `atomic` is False, when it is
    reported unsupported); the `kill_at`-th raises Killed, after which shutil.rmtree does nothing. Returns the renames
    done."""
    seen = []
    killed = []
    real_replace, real_exchange, real_rmtree = os.replace, folder_swap.exchange_paths, shutil.rmtree

    def counted(real):
        def rename(source, target, *args, **kwargs):
            if str(source).startswith(str(folder)):
                if len(seen) == kill_at:
                    killed.append(True)
                    raise Killed()
                seen.append((os.path.basename(str(source)), os.path.basename(str(target))))
            return real(source, target, *args, **kwargs)

        return rename

    monkeypatch.setattr(os, "replace", counted(real_replace))
    monkeypatch.setattr(folder_swap, "exchange_paths", counted(real_exchange) if atomic else lambda *_: False)
    monkeypatch.setattr(shutil, "rmtree", lambda *args, **kwargs: None if killed else real_rmtree(*args, **kwargs))
    return seen


def left_overs(folder):
    return sorted(name for name in os.listdir(folder) if name.startswith(".") and name != RUN_MARKER)


@pytest.mark.parametrize("atomic", [True, False], ids=["exchange", "two_renames"])
def test_a_save_killed_at_any_rename_leaves_a_loadable_folder(tmp_path, monkeypatch, atomic):
    dry_run = tmp_path / "dry_run"
    save_pipeline_folder(tiny_pipeline(*OLD), str(dry_run))
    with monkeypatch.context() as patch:
        renames = install_kill(patch, dry_run, kill_at=-1, atomic=atomic)
        save_pipeline_folder(tiny_pipeline(*NEW), str(dry_run))
    # one rename per file (the pipeline's source files, model_index.json last), and per component folder one exchange
    # or two renames
    saved = [name for name in os.listdir(dry_run) if not name.startswith(".")]
    components = [name for name in saved if (dry_run / name).is_dir()]
    assert sorted(components) == ["scheduler", "unet"] and renames[-1][0] == "model_index.json"
    assert len(renames) == len(saved) + (0 if atomic else len(components))

    for kill_at in range(len(renames)):
        folder = tmp_path / f"killed_at_{kill_at}"
        prepare_output_dir(str(folder))
        save_pipeline_folder(tiny_pipeline(*OLD), str(folder))
        with monkeypatch.context() as patch:
            install_kill(patch, folder, kill_at, atomic)
            with pytest.raises(Killed):
                save_pipeline_folder(tiny_pipeline(*NEW), str(folder))
        assert left_overs(folder)  # the staging folder a kill leaves
        if atomic:
            component_versions(folder)  # each component whole: the earlier save's or the later one's
        else:
            try:
                component_versions(folder)
            except OSError as error:  # a component set aside and not yet replaced: named, never loaded half
                assert re.search(r"no file named (scheduler_config|config)\.json", str(error)), str(error)
        # the next writer of the folder (a resumed run) restores what was set aside and removes the staging folders
        lock = open_run_folder(str(folder), resume=True)
        assert left_overs(folder) == [".ddpm_hf_lock"]
        lock.release()
        component_versions(folder)
    save_pipeline_folder(tiny_pipeline(*NEW), str(folder))  # and the next save completes
    assert component_versions(folder) == ("new", "new") and left_overs(folder) == []


def write_best_metrics(loss):
    def write(folder):
        (Path(folder) / "metrics.json").write_text(json.dumps({"heldout": {"best": {"heldout_loss": loss}}}))

    return write


@pytest.mark.parametrize("atomic", [True, False], ids=["exchange", "two_renames"])
def test_a_best_model_write_killed_at_any_write_or_rename_keeps_the_previous_best(tmp_path, monkeypatch, atomic):
    def fresh_run(name):
        folder = tmp_path / name
        prepare_output_dir(str(folder))
        save_best_pipeline(tiny_pipeline(*OLD), str(folder), write_extras=write_best_metrics(0.5))
        return folder

    dry_run = fresh_run("dry_run")
    with monkeypatch.context() as patch:
        renames = install_kill(patch, dry_run, kill_at=-1, atomic=atomic)
        save_best_pipeline(tiny_pipeline(*NEW), str(dry_run), write_extras=write_best_metrics(0.25))
    assert [source for source, _ in renames if source == "best"] == ([] if atomic else ["best"])
    assert component_versions(dry_run / "best") == ("new", "new") and read_best_record(str(dry_run)) == {
        "heldout_loss": 0.25
    }
    assert left_overs(dry_run) == []

    for kill_at in ["write", *range(len(renames))]:
        folder = fresh_run(f"killed_at_{kill_at}")
        with monkeypatch.context() as patch:
            if kill_at == "write":  # killed while the new best is being written (into its staging folder)

                def killed_save(self, save_directory, **kwargs):
                    (Path(save_directory) / "unet").mkdir(parents=True)
                    (Path(save_directory) / "unet" / "config.json").write_text("{")
                    raise Killed()

                patch.setattr(DDPMCFGPipeline, "save_pretrained", killed_save)
                patch.setattr(shutil, "rmtree", lambda *args, **kwargs: None)
            else:
                install_kill(patch, folder, kill_at, atomic)
            with pytest.raises(Killed):
                save_best_pipeline(tiny_pipeline(*NEW), str(folder), write_extras=write_best_metrics(0.25))
        if atomic or kill_at == "write" or kill_at == 0:
            assert component_versions(folder / "best") == ("old", "old")  # the previous best, whole
        else:  # set aside and not yet replaced: no best/ until the next writer restores the previous one
            assert not (folder / "best").exists()
        assert left_overs(folder)  # the staging folder a kill leaves
        lock = open_run_folder(str(folder), resume=True)  # the resumed run restores and cleans
        assert left_overs(folder) == [".ddpm_hf_lock"]
        lock.release()
        assert component_versions(folder / "best") in [("old", "old"), ("new", "new")]
        assert read_best_record(str(folder))["heldout_loss"] in (0.5, 0.25)


@pytest.mark.parametrize(
    "failure",
    [
        RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 4160 vs 4058"),
        RuntimeError("basic_ios::clear: iostream error"),
        RuntimeError("[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing file data/3: "
                     "file write failed"),
        SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "
                        '"No space left on device" })'),
        OSError(errno.ENOSPC, "No space left on device"),
    ],
    ids=["unexpected_pos", "basic_ios", "file_write_failed", "safetensors", "enospc"],
)  # fmt: skip
def test_a_full_disk_is_named_and_the_earlier_save_stays_loadable(tmp_path, monkeypatch, failure):
    folder = tmp_path / "run"
    save_pipeline_folder(tiny_pipeline(*OLD), str(folder))

    def fill_the_disk(self, save_directory, **kwargs):
        (Path(save_directory) / "unet").mkdir()
        (Path(save_directory) / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"\0" * 100)
        raise failure

    with monkeypatch.context() as patch:
        patch.setattr(DDPMCFGPipeline, "save_pretrained", fill_the_disk)
        with pytest.raises(DiskFullError) as error:
            save_pipeline_folder(tiny_pipeline(*NEW), str(folder))
    message = str(error.value)
    assert error.value.errno == errno.ENOSPC and "The disk is full: writing " + str(folder) in message
    assert "last file written: unet/diffusion_pytorch_model.safetensors" in message
    assert re.search(r"with \d+(\.\d)? (bytes|KiB|MiB|GiB|TiB) left on its disk", message), message
    assert component_versions(folder) == ("old", "old") and left_overs(folder) == []


def test_other_save_errors_pass_through_unchanged(tmp_path, monkeypatch):
    folder = tmp_path / "run"
    save_pipeline_folder(tiny_pipeline(*OLD), str(folder))

    def fail(self, save_directory, **kwargs):
        raise RuntimeError("something else went wrong")

    monkeypatch.setattr(DDPMCFGPipeline, "save_pretrained", fail)
    with pytest.raises(RuntimeError, match="^something else went wrong$"):
        save_pipeline_folder(tiny_pipeline(*NEW), str(folder))
    monkeypatch.undo()
    assert component_versions(folder) == ("old", "old") and left_overs(folder) == []


def test_a_full_disk_in_a_staged_folder_leaves_the_earlier_run(tmp_path):
    run = tmp_path / "run"
    prepare_output_dir(str(run))
    (run / "metrics.json").write_text('{"old": 1}')
    with pytest.raises(DiskFullError) as error:
        with staged_output_dir(str(run), overwrite_output_dir=True) as staging:
            (Path(staging) / "samples.png").write_bytes(b"\0" * 10)
            raise OSError(errno.ENOSPC, "No space left on device")
    message = str(error.value)
    assert "The disk is full: writing " + str(tmp_path / ".run.partial-") in message
    assert "last file written: samples.png" in message and f"{run} is as it was" in message
    assert json.loads((run / "metrics.json").read_text()) == {"old": 1}
    assert sorted(os.listdir(tmp_path)) == ["run"]


def test_a_full_disk_while_logging_losses_names_the_file(tmp_path, monkeypatch):
    losses_path = tmp_path / "losses.jsonl"
    losses_path.write_text('{"loss": 0.25, "step": 1}\n')

    class FullDiskFile(io.StringIO):
        def writelines(self, lines):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("ddpm_hf.training.loss_log.open", lambda *args, **kwargs: FullDiskFile(), raising=False)
    log = DeferredLossLog(
        Accelerator(cpu=True), str(losses_path), read_every=1, log_to_trackers=False, non_finite_message=str
    )
    log.add(2, torch.tensor(0.5), {"lr": 0.1})
    with pytest.raises(DiskFullError) as error:
        log.read()
    assert f"The disk is full: writing {losses_path} failed with " in str(error.value)
    assert "left on its disk (OSError: [Errno 28] No space left on device)" in str(error.value)
