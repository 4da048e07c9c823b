"""check_portable.py: a saved folder gives the same images with plain diffusers; a broken copy is caught."""

import sys
from pathlib import Path

import pytest
import torch

from ddpm_hf import DDPMCFGPipeline, ExtendedDDPMScheduler, make_unet

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "train_scripts"))
import check_portable  # noqa: E402


def saved(folder, num_classes=3, multi_label=False):
    torch.manual_seed(0)
    unet = make_unet("tiny", 8, 1, num_classes, multi_label=multi_label)
    DDPMCFGPipeline(unet=unet, scheduler=ExtendedDDPMScheduler(num_train_timesteps=10)).save_pretrained(folder)
    return str(folder)


@pytest.mark.parametrize("num_classes, multi_label", [(3, False), (None, False), (3, True)])
def test_a_saved_folder_is_portable(tmp_path, num_classes, multi_label, monkeypatch):
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "modules"))
    folder = saved(tmp_path / "run", num_classes, multi_label)
    report = check_portable.main(check_portable.parse_args(["--pipeline", folder]))
    assert report["identical"] and report["max_abs_difference"] == 0.0
    # one image per class; a multi-label model: each label alone and with the next one
    assert report["images"] == (6 if multi_label else 3 if num_classes else 4)
    pipeline_module, scheduler_module, unet_module = report["plain_diffusers_classes"]
    assert pipeline_module.startswith("diffusers_modules") and scheduler_module.startswith("diffusers_modules")
    assert unet_module == (
        "diffusers_modules.local.conditional_unet" if multi_label else "diffusers.models.unets.unet_2d"
    )


def test_a_copy_that_differs_from_the_weights_is_caught(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "modules"))
    folder = Path(saved(tmp_path / "run"))
    copy = folder / "pipeline_ddpm_cfg.py"
    # the travelling copy guides with a different scale than it is asked for
    copy.write_text(
        copy.read_text().replace("unconditional + guidance_scale *", "unconditional + 0.5 * guidance_scale *")
    )
    report = check_portable.main(check_portable.parse_args(["--pipeline", str(folder)]))
    assert not report["identical"] and report["max_abs_difference"] > 0


def test_a_folder_without_a_pipeline_is_refused(tmp_path):
    with pytest.raises(ValueError, match="has no model_index.json"):
        check_portable.parse_args(["--pipeline", str(tmp_path)])
