"""An unconditional model saved as diffusers' own DDPMPipeline: loaded by DDPMPipeline and DiffusionPipeline with no
code from the folder, the same images as DDPMCFGPipeline bit for bit, and loaded back by DDPMCFGPipeline."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDPMPipeline, DDPMScheduler, DiffusionPipeline

from ddpm_hf import DDPMCFGPipeline, ExtendedDDPMScheduler, make_unet

T = 20
REPO = Path(__file__).resolve().parents[2]
WITHOUT_DDPM_HF = """
import sys
sys.modules["ddpm_hf"] = None
"""


def tiny_pipeline(num_classes=None, multi_label=False, **scheduler_settings):
    torch.manual_seed(0)
    unet = make_unet("tiny", 8, 1, num_classes, multi_label=multi_label).eval()
    scheduler = ExtendedDDPMScheduler(num_train_timesteps=T, **scheduler_settings)
    id2label = {index: f"class {index}" for index in range(num_classes)} if num_classes else None
    pipe = DDPMCFGPipeline(unet=unet, scheduler=scheduler, id2label=id2label)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def images_of(pipe, steps=T, seed=0, output_type="numpy"):
    pipe.set_progress_bar_config(disable=True)
    generator = torch.Generator().manual_seed(seed)
    return pipe(batch_size=3, num_inference_steps=steps, generator=generator, output_type=output_type).images


SCHEDULES = [
    {"beta_schedule": "linear", "prediction_type": "epsilon"},
    {"beta_schedule": "quad", "prediction_type": "x0"},
    {"beta_schedule": "cosine", "prediction_type": "v_prediction"},
    {"beta_schedule": "linear", "prediction_type": "epsilon", "variance_type": "fixed_large", "clip_sample": False},
    {"beta_schedule": "cosine", "prediction_type": "x0", "thresholding": True},
]


@pytest.mark.parametrize("settings", SCHEDULES, ids=lambda settings: "-".join(map(str, settings.values())))
def test_the_diffusers_twin_gives_the_same_images_bit_for_bit(tmp_path, settings):
    pipe = tiny_pipeline(**settings)
    twin = pipe.to_ddpm_pipeline()
    assert type(twin) is DDPMPipeline and type(twin.scheduler) is DDPMScheduler and twin.unet is pipe.unet
    # diffusers' own names: quad is scaled_linear, cosine squaredcos_cap_v2, x0 sample
    expected_names = {"linear": "linear", "quad": "scaled_linear", "cosine": "squaredcos_cap_v2"}
    assert twin.scheduler.config.beta_schedule == expected_names[settings["beta_schedule"]]
    expected_prediction = {"x0": "sample"}.get(settings["prediction_type"], settings["prediction_type"])
    assert twin.scheduler.config.prediction_type == expected_prediction
    for steps in (T, 7):
        expected = images_of(pipe, steps)
        np.testing.assert_array_equal(images_of(twin, steps), expected)
    pipe.save_pretrained(tmp_path, as_ddpm_pipeline=True)
    for loader in (DDPMPipeline.from_pretrained, DiffusionPipeline.from_pretrained):  # no trust_remote_code
        loaded = loader(tmp_path)
        assert type(loaded) is DDPMPipeline and type(loaded.scheduler) is DDPMScheduler
        np.testing.assert_array_equal(images_of(loaded, 7), images_of(pipe, 7))


def test_the_folder_is_diffusers_own_layout_with_the_sampler_table_beside_it(tmp_path):
    tiny_pipeline(beta_schedule="cosine").save_pretrained(tmp_path, as_ddpm_pipeline=True)
    files = {
        os.path.relpath(os.path.join(root, name), tmp_path) for root, _, names in os.walk(tmp_path) for name in names
    }
    assert files == {
        "model_index.json",
        "scheduler/scheduler_config.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "samplers.py",  # for the Space (diffusers loads no code of a DDPMPipeline folder)
        "input_checks.py",  # which samplers.py imports
    }
    assert (tmp_path / "samplers.py").read_text() == (REPO / "pipelines" / "samplers.py").read_text()
    model_index = json.loads((tmp_path / "model_index.json").read_text())
    assert model_index["_class_name"] == "DDPMPipeline"
    assert model_index["scheduler"] == ["diffusers", "DDPMScheduler"] and model_index["unet"] == [
        "diffusers",
        "UNet2DModel",
    ]
    scheduler_config = json.loads((tmp_path / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler_config["_class_name"] == "DDPMScheduler"


def test_ddpm_pipeline_loads_it_where_ddpm_hf_cannot_be_imported(tmp_path):
    pipe = tiny_pipeline(beta_schedule="quad", prediction_type="v_prediction")
    pipe.save_pretrained(tmp_path / "model", as_ddpm_pipeline=True)
    script = WITHOUT_DDPM_HF + textwrap.dedent(f"""
        import numpy as np, torch
        from diffusers import DDPMPipeline
        pipe = DDPMPipeline.from_pretrained({str(tmp_path / "model")!r})
        pipe.set_progress_bar_config(disable=True)
        images = pipe(batch_size=3, num_inference_steps={T}, generator=torch.Generator().manual_seed(0),
                      output_type="numpy").images
        np.save({str(tmp_path / "images.npy")!r}, images)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    np.testing.assert_array_equal(np.load(tmp_path / "images.npy"), images_of(pipe))


def test_ddpm_cfg_pipeline_loads_a_ddpm_pipeline_folder_with_its_own_scheduler(tmp_path, diffusers_ddpm_folder):
    pipe = tiny_pipeline(beta_schedule="cosine", prediction_type="x0")
    pipe.save_pretrained(tmp_path / "twin", as_ddpm_pipeline=True)
    for folder in (tmp_path / "twin", diffusers_ddpm_folder[0]):  # ours, and one diffusers itself saved
        loaded = DDPMCFGPipeline.from_pretrained(folder)
        # the same DDPM as diffusers' DDPMScheduler in float32, exact in half precision, and able to run compiled
        assert type(loaded) is DDPMCFGPipeline and type(loaded.scheduler) is ExtendedDDPMScheduler
        assert loaded.num_classes is None and loaded.config.id2label is None
        np.testing.assert_array_equal(images_of(loaded), images_of(DDPMPipeline.from_pretrained(folder)))
    np.testing.assert_array_equal(images_of(DDPMCFGPipeline.from_pretrained(tmp_path / "twin")), images_of(pipe))


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda: tiny_pipeline(num_classes=3), "it is class-conditional"),
        (lambda: tiny_pipeline(num_classes=4, multi_label=True), "its U-Net is a MultiLabelUNet2DModel"),
        (lambda: tiny_pipeline(prediction_type="mean"), "it predicts 'mean', which diffusers' DDPMScheduler cannot"),
    ],
    ids=["class-conditional", "multi-label", "posterior mean"],
)
def test_models_that_need_this_pipeline_keep_their_portable_folder(tmp_path, make, reason):
    pipe = make()
    assert reason in pipe.ddpm_pipeline_obstacle()
    with pytest.raises(ValueError, match=rf"cannot be a diffusers DDPMPipeline: {reason}"):
        pipe.save_pretrained(tmp_path / "plain", as_ddpm_pipeline=True)
    assert not (tmp_path / "plain").exists()
    pipe.save_pretrained(tmp_path / "portable")  # the default: the folder with its source copies
    assert json.loads((tmp_path / "portable" / "model_index.json").read_text())["_class_name"][1] == "DDPMCFGPipeline"
    assert tiny_pipeline().ddpm_pipeline_obstacle() is None


def test_the_twin_is_built_from_the_models_ddpm_scheduler_whatever_sampler_is_set():
    pipe = tiny_pipeline(beta_schedule="quad")
    pipe.set_sampler("ddim")
    twin = pipe.to_ddpm_pipeline()
    assert type(twin.scheduler) is DDPMScheduler and twin.scheduler.config.clip_sample is True
    pipe.set_sampler("ddpm")
    np.testing.assert_array_equal(images_of(twin, 5), images_of(pipe, 5))


def test_numpy_output_type_is_np_as_in_ddpm_pipeline():
    pipe = tiny_pipeline()
    np.testing.assert_array_equal(images_of(pipe, 4, output_type="numpy"), images_of(pipe, 4, output_type="np"))
    twin = pipe.to_ddpm_pipeline()
    np.testing.assert_array_equal(images_of(twin, 4, output_type="numpy"), images_of(pipe, 4, output_type="numpy"))


def test_save_pretrained_as_ddpm_pipeline_uploads_what_it_wrote(fake_hub, tmp_path):
    tiny_pipeline().save_pretrained(tmp_path / "run", as_ddpm_pipeline=True, push_to_hub=True, repo_id="me/plain")
    (uploaded,) = fake_hub.commits
    assert uploaded["repo_id"] == "me/plain" and uploaded["summary"] == "Upload DDPMPipeline"
    assert uploaded["files"]["model_index.json"] == (tmp_path / "run" / "model_index.json").read_bytes()
    assert {path for path in uploaded["files"] if path.endswith(".py")} == {"samplers.py", "input_checks.py"}
