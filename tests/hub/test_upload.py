"""push_run_folder uploads a finished run's pipeline, card and figures through huggingface_hub (fake Hub)."""

import pytest
import torch

from ddpm_hf import DDPMCFGPipeline, ExtendedDDPMScheduler, make_unet
from ddpm_hf.hub import push_run_folder


def fake_run_folder(folder):
    torch.manual_seed(0)
    pipe = DDPMCFGPipeline(unet=make_unet("tiny", 8, 1, None), scheduler=ExtendedDDPMScheduler(num_train_timesteps=10))
    pipe.save_pretrained(folder)
    run_files = ["README.md", "grid.png", "denoising.gif", "loss_curve.png", "metrics.json", "losses.jsonl"]
    run_files += ["checkpoints/checkpoint-2/model.safetensors", "logs/events.out", "samples/epoch_0001.png"]
    for name in run_files:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"---\nlicense: mit\n---\n" if name == "README.md" else name.encode())
    return folder


def test_uploads_the_model_and_its_figures_but_not_the_training_state(fake_hub, tmp_path):
    folder = fake_run_folder(tmp_path / "run")
    push_run_folder(str(folder), "me/run", private=True)
    assert fake_hub.created == [{"name": "run", "organization": "me", "visibility": "private"}]
    (commit,) = fake_hub.commits
    assert set(commit["files"]) == {
        "model_index.json", "pipeline_ddpm_cfg.py", "class_conditions.py", "compiled_sampling.py", "input_checks.py",
        "portable_folder.py", "samplers.py", "scheduler/scheduler_config.json",
        "scheduler/scheduling_ddpm_ext.py", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
        "README.md", "grid.png", "denoising.gif", "loss_curve.png", "metrics.json",
    }  # fmt: skip
    for name, data in commit["files"].items():
        assert (folder / name).read_bytes() == data


@pytest.mark.parametrize("missing", ["model_index.json", "README.md"])
def test_a_folder_without_pipeline_or_card_is_refused_before_any_request(fake_hub, tmp_path, missing):
    folder = fake_run_folder(tmp_path / "run")
    (folder / missing).unlink()
    with pytest.raises(ValueError, match=f"has no {missing}"):
        push_run_folder(str(folder), "me/run")
    assert fake_hub.requests == []
