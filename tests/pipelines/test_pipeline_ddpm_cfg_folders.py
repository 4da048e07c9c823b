"""Saved DDPMCFGPipeline folders: diffusers' layout plus source copies, loading with and without ddpm_hf, Hub upload
and download through a fake Hub at the HTTP boundary."""

import json
import os
import pickle
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline

from ddpm_hf import DDPMCFGPipeline, ExtendedDDPMScheduler, make_unet

T = 20
NAMES = {0: "zero", 1: "one", 2: "two"}
SAMPLE_KWARGS = dict(num_inference_steps=T, output_type="np", guidance_scale=2.5)
# The pipeline module and the modules it imports relatively travel at the top; the scheduler source sits in scheduler/
SOURCE_COPIES = {
    "pipeline_ddpm_cfg.py",
    "class_conditions.py",
    "compiled_sampling.py",
    "input_checks.py",
    "portable_folder.py",
    "samplers.py",
    "scheduler/scheduling_ddpm_ext.py",
}
PIPELINE_FILES = SOURCE_COPIES | {
    "model_index.json",
    "scheduler/scheduler_config.json",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
}
# Run in a fresh interpreter in which ddpm_hf cannot be imported.
WITHOUT_DDPM_HF = """
import sys
sys.modules["ddpm_hf"] = None
"""


# The U-Net is put in eval mode, as from_pretrained leaves a loaded one: same weights, same mode, same process, so a
# saved-then-loaded pipeline gives bit-identical images. (In train mode the U-Net's forward differs in the last bits
# from eval mode's, which a posterior-mean model amplifies to about 3e-5 over 20 steps.)
def tiny_pipeline(num_classes=3, prediction_type="epsilon", multi_label=False, label_conditioning="projection"):
    torch.manual_seed(0)
    unet = make_unet("tiny", 8, 1, num_classes, multi_label=multi_label, label_conditioning=label_conditioning).eval()
    scheduler = ExtendedDDPMScheduler(num_train_timesteps=T, beta_schedule="cosine", prediction_type=prediction_type)
    pipe = DDPMCFGPipeline(unet=unet, scheduler=scheduler, id2label=NAMES if num_classes else None)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def labels_for(pipe):
    if pipe.is_multi_label:
        return {"class_labels": [["one", "two"], [0]]}
    return {"class_labels": ["one", 2]} if pipe.num_classes else {"batch_size": 2}


def sample(pipe, seed=0):
    return pipe(generator=torch.Generator().manual_seed(seed), **labels_for(pipe), **SAMPLE_KWARGS).images


def files_under(folder) -> set[str]:
    return {
        os.path.relpath(os.path.join(root, name), folder).replace(os.sep, "/")
        for root, _, names in os.walk(folder)
        for name in names
    }


def test_saved_folder_has_diffusers_layout_source_copies_and_safetensors(tmp_path):
    tiny_pipeline().save_pretrained(tmp_path)
    assert files_under(tmp_path) == PIPELINE_FILES
    model_index = json.loads((tmp_path / "model_index.json").read_text())
    assert model_index["_class_name"] == ["pipeline_ddpm_cfg", "DDPMCFGPipeline"]
    assert model_index["scheduler"] == ["scheduling_ddpm_ext", "ExtendedDDPMScheduler"]
    assert model_index["unet"] == ["diffusers", "UNet2DModel"]
    assert model_index["id2label"] == {"0": "zero", "1": "one", "2": "two"}
    assert "_name_or_path" not in model_index
    # the copies are the very files this process runs
    import ddpm_hf.pipelines.pipeline_ddpm_cfg as pipeline_module

    import ddpm_hf.schedulers.scheduling_ddpm_ext as scheduler_module

    pipeline_folder = os.path.dirname(pipeline_module.__file__)
    for name in SOURCE_COPIES - {"scheduler/scheduling_ddpm_ext.py"}:
        assert (tmp_path / name).read_text() == open(os.path.join(pipeline_folder, name)).read()
    assert (tmp_path / "scheduler" / "scheduling_ddpm_ext.py").read_text() == open(scheduler_module.__file__).read()


def test_plain_diffusers_without_ddpm_hf_gives_the_same_images(tmp_path):
    cases = {
        "epsilon": tiny_pipeline(),
        "x0": tiny_pipeline(prediction_type="x0"),
        "v_prediction": tiny_pipeline(prediction_type="v_prediction"),
        "mean": tiny_pipeline(prediction_type="mean"),
        "unconditional": tiny_pipeline(num_classes=None),
        "multi_label": tiny_pipeline(multi_label=True),
        "multi_label_tokens": tiny_pipeline(multi_label=True, label_conditioning="tokens"),
    }
    labels = {name: labels_for(pipe) for name, pipe in cases.items()}
    expected = {}
    for name, pipe in cases.items():
        pipe.save_pretrained(tmp_path / name)
        loaded = DDPMCFGPipeline.from_pretrained(tmp_path / name)
        loaded.set_progress_bar_config(disable=True)
        expected[name] = sample(loaded)
        np.testing.assert_array_equal(expected[name], sample(pipe))
    script = WITHOUT_DDPM_HF + textwrap.dedent(f"""
        import numpy as np, torch
        from diffusers import DiffusionPipeline
        try:
            import ddpm_hf
            raise SystemExit("ddpm_hf must not be importable here")
        except ImportError:
            pass
        for name in {list(cases)!r}:
            pipe = DiffusionPipeline.from_pretrained({str(tmp_path)!r} + "/" + name, trust_remote_code=True)
            pipe.set_progress_bar_config(disable=True)
            assert type(pipe).__module__.startswith("diffusers_modules"), type(pipe).__module__
            assert type(pipe.scheduler).__module__.startswith("diffusers_modules"), type(pipe.scheduler).__module__
            if name.startswith("multi_label"):
                module = "label_token_unet" if name.endswith("tokens") else "conditional_unet"
                assert type(pipe.unet).__module__ == "diffusers_modules.local." + module, type(pipe.unet)
            images = pipe(generator=torch.Generator().manual_seed(0), **{labels!r}[name], **{SAMPLE_KWARGS!r}).images
            np.save({str(tmp_path)!r} + "/" + name + ".npy", images)
    """)
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules")}
    # about 20 s alone; up to 220 s measured with another CPU-heavy process on a 2-core machine
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for name in cases:
        np.testing.assert_array_equal(np.load(tmp_path / f"{name}.npy"), expected[name])


def test_plain_diffusers_asks_for_trust_remote_code(tmp_path):
    tiny_pipeline().save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        DiffusionPipeline.from_pretrained(tmp_path)


def test_ddpm_hf_route_never_runs_the_copies_in_the_folder(tmp_path):
    pipe = tiny_pipeline()
    pipe.save_pretrained(tmp_path)
    for copy in SOURCE_COPIES:
        (tmp_path / copy).write_text('raise RuntimeError("folder code ran")\n')
    loaded = DDPMCFGPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert type(loaded) is DDPMCFGPipeline and type(loaded.scheduler) is ExtendedDDPMScheduler
    np.testing.assert_array_equal(sample(loaded), sample(pipe))


def test_folders_saved_before_the_source_copies_still_load(tmp_path):
    pipe = tiny_pipeline()
    pipe.save_pretrained(tmp_path)
    index_path = tmp_path / "model_index.json"
    model_index = json.loads(index_path.read_text())
    model_index["_class_name"] = "DDPMCFGPipeline"
    model_index["scheduler"] = ["ddpm_hf.schedulers.scheduling_ddpm_ext", "ExtendedDDPMScheduler"]
    index_path.write_text(json.dumps(model_index))
    for copy in SOURCE_COPIES:
        (tmp_path / copy).unlink()
    loaded = DDPMCFGPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(sample(loaded), sample(pipe))


def test_unknown_scheduler_class_names_both_ways_out(tmp_path):
    tiny_pipeline().save_pretrained(tmp_path)
    index_path = tmp_path / "model_index.json"
    model_index = json.loads(index_path.read_text())
    model_index["scheduler"] = ["scheduling_ddpm_ext", "NoSuchScheduler"]
    index_path.write_text(json.dumps(model_index))
    with pytest.raises(ValueError, match=r"NoSuchScheduler .*import ddpm_hf.*trust_remote_code=True"):
        DDPMCFGPipeline.from_pretrained(tmp_path)


def test_pickle_serialization_is_refused(tmp_path):
    with pytest.raises(ValueError, match="safe_serialization=False"):
        tiny_pipeline().save_pretrained(tmp_path, safe_serialization=False)
    assert not (tmp_path / "model_index.json").exists()


def test_a_swapped_diffusers_scheduler_is_saved_as_diffusers_without_a_copy(tmp_path):
    from diffusers import DDIMScheduler

    pipe = tiny_pipeline()
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "model_index.json").read_text())["scheduler"] == ["diffusers", "DDIMScheduler"]
    assert not (tmp_path / "scheduler" / "scheduling_ddpm_ext.py").exists()
    loaded = DDPMCFGPipeline.from_pretrained(tmp_path)
    assert type(loaded.scheduler) is DDIMScheduler


def test_push_to_hub_uploads_the_folder_and_the_card_and_loads_back(fake_hub, tmp_path):
    pipe = tiny_pipeline()
    card = "---\nlicense: mit\nlibrary_name: diffusers\n---\n\n# A tiny test model\n"
    commit = pipe.push_to_hub("me/tiny-ddpm", model_card=card, private=True)
    assert commit.commit_url.startswith("https://huggingface.co/me/tiny-ddpm/commit/")
    assert fake_hub.created == [{"name": "tiny-ddpm", "organization": "me", "visibility": "private"}]
    (uploaded,) = fake_hub.commits
    assert uploaded["summary"] == "Upload DDPMCFGPipeline"
    assert set(uploaded["files"]) == PIPELINE_FILES | {"README.md"}
    assert uploaded["files"]["README.md"].decode().strip() == card.strip()
    # back from the (fake) Hub: configs, weights and card only, never the source copies
    loaded = DDPMCFGPipeline.from_pretrained("me/tiny-ddpm", cache_dir=tmp_path / "cache")
    loaded.set_progress_bar_config(disable=True)
    resolved = [re.fullmatch(r"/me/tiny-ddpm/resolve/[^/]+/(.+)", path) for _, path in fake_hub.requests]
    downloaded = {match.group(1) for match in resolved if match}
    assert downloaded == PIPELINE_FILES - SOURCE_COPIES | {"README.md"}
    np.testing.assert_array_equal(sample(loaded), sample(pipe))


def test_push_to_hub_keeps_the_card_of_the_folder_it_was_loaded_from(fake_hub, tmp_path):
    tiny_pipeline().save_pretrained(tmp_path)
    (tmp_path / "README.md").write_text("---\nlicense: mit\n---\n\n# Card written by the training run\n")
    DDPMCFGPipeline.from_pretrained(tmp_path).push_to_hub("me/from-folder")
    (uploaded,) = fake_hub.commits
    assert "# Card written by the training run" in uploaded["files"]["README.md"].decode()


def test_save_pretrained_with_push_to_hub_uploads_what_it_wrote(fake_hub, tmp_path):
    tiny_pipeline().save_pretrained(tmp_path / "run", push_to_hub=True, repo_id="me/saved", commit_message="first")
    (uploaded,) = fake_hub.commits
    assert uploaded["summary"] == "first" and set(uploaded["files"]) == PIPELINE_FILES
    for name, data in uploaded["files"].items():
        assert (tmp_path / "run" / name).read_bytes() == data


class _RunsCodeWhenUnpickled:
    """A pickle payload that would create a marker file if anything unpickled it."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('unpickled')",))


def replace_weights_with_a_pickle(folder, component):
    (folder / component / "diffusion_pytorch_model.safetensors").unlink()
    with open(folder / component / "diffusion_pytorch_model.bin", "wb") as f:
        pickle.dump(_RunsCodeWhenUnpickled(folder / "MARKER"), f)


def test_pickled_weights_are_refused_not_unpickled(tmp_path):
    tiny_pipeline().save_pretrained(tmp_path)
    replace_weights_with_a_pickle(tmp_path, "unet")
    with pytest.raises(OSError, match="safetensors"):
        DDPMCFGPipeline.from_pretrained(tmp_path)
    assert not (tmp_path / "MARKER").exists()
