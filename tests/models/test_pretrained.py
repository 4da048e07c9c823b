"""Starting from saved pipelines: diffusers' own DDPMPipeline folders and ddpm-hf folders, with a class embedding added
to an unconditional U-Net that leaves its outputs unchanged at the start."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ddpm_hf import DDPMCFGPipeline, ExtendedDDPMScheduler, make_unet
from ddpm_hf.models.pretrained import (
    KEPT_SCHEDULER_SETTINGS,
    SCHEDULER_FLAG_SETTINGS,
    load_pretrained_unet,
    pretrained_folder,
    pretrained_resolution,
    pretrained_scheduler_settings,
    read_pretrained_configs,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from diffusers_folders import save_diffusers_ddpm_folder  # noqa: E402


def test_a_class_embedding_added_to_an_unconditional_unet_starts_at_its_outputs(diffusers_ddpm_folder):
    folder, unconditional = diffusers_ddpm_folder
    conditional = load_pretrained_unet(pretrained_folder(folder), num_classes=3, multi_label=False).eval()
    assert conditional.config.num_class_embeds == 4 and torch.all(conditional.class_embedding.weight == 0)
    sample, timesteps = torch.randn(4, 1, 8, 8), torch.tensor([0, 5, 10, 19])
    with torch.no_grad():
        expected = unconditional(sample, timesteps).sample
        for class_id in range(4):  # every class, the null class 3 too
            labels = torch.full((4,), class_id)
            torch.testing.assert_close(conditional(sample, timesteps, class_labels=labels).sample, expected)


def test_the_same_conditioning_loads_as_saved(tmp_path):
    torch.manual_seed(0)
    pipe = DDPMCFGPipeline(
        unet=make_unet("tiny", 8, 1, 3),
        scheduler=ExtendedDDPMScheduler(num_train_timesteps=20),
        id2label={0: "a", 1: "b", 2: "c"},
    )
    pipe.save_pretrained(tmp_path / "ours")
    unet_config, scheduler_config, id2label = read_pretrained_configs(pretrained_folder(str(tmp_path / "ours")))
    assert id2label == {0: "a", 1: "b", 2: "c"} and scheduler_config["num_train_timesteps"] == 20
    unet = load_pretrained_unet(str(tmp_path / "ours"), num_classes=3, multi_label=False)
    for name, value in pipe.unet.state_dict().items():
        torch.testing.assert_close(unet.state_dict()[name], value, rtol=0, atol=0)


@pytest.mark.parametrize(
    "num_classes, multi_label, message",
    [
        (None, False, "3 classes and the training data is unconditional"),
        (5, False, "3 classes.*5 classes"),
        (3, True, "3 classes.*3 labels"),
    ],
)
def test_other_conditioning_is_refused_naming_both_sides(tmp_path, num_classes, multi_label, message):
    torch.manual_seed(0)
    DDPMCFGPipeline(unet=make_unet("tiny", 8, 1, 3), scheduler=ExtendedDDPMScheduler()).save_pretrained(tmp_path / "p")
    with pytest.raises(ValueError, match=message):
        load_pretrained_unet(str(tmp_path / "p"), num_classes, multi_label)


def test_folders_without_a_pipeline_and_local_paths_are_refused_without_the_hub(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no unet/config.json"):
        pretrained_folder(str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="is not a folder"):
        pretrained_folder("./no/such/folder")


def test_a_missing_folder_under_an_existing_one_reads_as_local_as_evaluate_py_reads_it(
    tmp_path, monkeypatch, fake_hub
):
    # one rule for "local path or Hub id?" (ddpm_hf.hub.looks_local): "runs/missing" beside an existing runs/ is a
    # mistyped folder, not the Hub repository runs/missing
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    for missing in ("runs/missing", "a/b/c", "~/no_such_ddpm_run", "no_owner"):
        with pytest.raises(ValueError, match="is not a folder"):
            pretrained_folder(missing)
    assert fake_hub.requests == []


def scheduler_of(name, **config):
    import diffusers

    return getattr(diffusers, name)(num_train_timesteps=20, **config)


@pytest.mark.parametrize(
    "unet_changes, scheduler, message",
    [
        (
            {"out_channels": 2},
            None,
            r"The pretrained U-Net has out_channels=2 for in_channels=1; ddpm-hf trains U-Nets whose out_channels "
            r"equal their in_channels \(one prediction per channel; a learned variance",
        ),
        (
            {"class_embed_type": "timestep"},
            None,
            r"The pretrained U-Net has class_embed_type='timestep'; ddpm-hf fine-tunes UNet2DModels without one",
        ),
        ({"class_embed_type": "identity"}, None, r"class_embed_type='identity'"),
        (
            {"sample_size": [8, 16]},
            None,
            r"The pretrained U-Net's sample_size is \[8, 16\] \(height x width\); ddpm-hf trains on square images",
        ),
        (
            {},
            ("DDPMScheduler", {"variance_type": "learned_range"}),
            r"variance_type='learned_range' \(a U-Net that also predicts its variance\); ddpm-hf trains fixed",
        ),
        (
            {},
            ("DDPMScheduler", {"trained_betas": [0.01] * 10}),
            r"trained_betas hold 10 value\(s\) in \[0.01, 0.01\]; they must be num_train_timesteps = 20 betas, each "
            r"in \(0, 1\)",
        ),
        ({}, ("DDPMScheduler", {"trained_betas": [0.0] + [0.01] * 19}), r"trained_betas hold 20 value\(s\) in \[0, "),
        (
            {},
            ("DDIMScheduler", {"set_alpha_to_one": False}),
            r"The pretrained scheduler \(DDIMScheduler\) has settings that a fine-tune's DDPM scheduler cannot keep: "
            r"set_alpha_to_one=False\.",
        ),
        ({}, ("ScoreSdeVeScheduler", {}), r"\(ScoreSdeVeScheduler\) has settings .*sigma_min=0.01"),
    ],
)
def test_bases_a_fine_tune_cannot_keep_are_refused_by_name(tmp_path, unet_changes, scheduler, message):
    scheduler = scheduler_of(scheduler[0], **scheduler[1]) if scheduler else None
    folder, _ = save_diffusers_ddpm_folder(tmp_path / "base", scheduler, **unet_changes)
    with pytest.raises(ValueError, match=message):
        read_pretrained_configs(pretrained_folder(folder))
    with pytest.raises(ValueError, match=message):
        load_pretrained_unet(folder, num_classes=3, multi_label=False)


@pytest.mark.parametrize(
    "id2label, message",
    [
        ({"0": "a", "1": "b", "2": "a"}, r"The pretrained model's id2label: the name 'a' is given to classes 0 and 2"),
        ({"0": "", "1": "b", "2": "c"}, r"The pretrained model's id2label: the name of class 0 is ''"),
        ({"0": "a", "1": "b"}, r"id2label holds 2 name\(s\) and this is a U-Net of 3 classes"),
    ],
)
def test_a_hand_edited_id2label_of_a_base_is_refused_by_name(tmp_path, id2label, message):
    torch.manual_seed(0)
    DDPMCFGPipeline(
        unet=make_unet("tiny", 8, 1, 3),
        scheduler=ExtendedDDPMScheduler(num_train_timesteps=20),
        id2label={0: "a", 1: "b", 2: "c"},
    ).save_pretrained(tmp_path)
    index_path = tmp_path / "model_index.json"
    index_path.write_text(json.dumps({**json.loads(index_path.read_text()), "id2label": id2label}))
    with pytest.raises(ValueError, match=message):
        read_pretrained_configs(pretrained_folder(str(tmp_path)))


def test_a_square_list_sample_size_is_its_side(tmp_path):
    folder, _ = save_diffusers_ddpm_folder(tmp_path / "base", sample_size=[8, 8])
    unet_config, _, _ = read_pretrained_configs(pretrained_folder(folder))
    assert pretrained_resolution(unet_config) == 8
    unet = load_pretrained_unet(folder, num_classes=None, multi_label=False).eval()
    with torch.no_grad():
        assert unet(torch.randn(2, 1, 8, 8), torch.tensor([3, 9])).sample.shape == (2, 1, 8, 8)


def test_every_other_setting_of_a_base_scheduler_is_kept():
    from diffusers import DDPMScheduler

    betas = np.linspace(2e-4, 0.05, 20)
    saved = dict(DDPMScheduler(num_train_timesteps=20, trained_betas=betas, variance_type="fixed_large",
                               clip_sample=False, timestep_spacing="trailing", steps_offset=1, thresholding=True,
                               sample_max_value=2.5).config)  # fmt: skip
    kept = pretrained_scheduler_settings(saved)
    assert set(kept) == set(KEPT_SCHEDULER_SETTINGS) and set(kept).isdisjoint(SCHEDULER_FLAG_SETTINGS)
    assert kept["trained_betas"] == pytest.approx(betas.tolist())
    assert (kept["variance_type"], kept["clip_sample"], kept["timestep_spacing"]) == ("fixed_large", False, "trailing")
    assert (kept["steps_offset"], kept["thresholding"], kept["sample_max_value"]) == (1, True, 2.5)
    # every setting a diffusers DDPMScheduler has is either a flag of train_image.py or kept
    assert set(saved) - {"_use_default_values"} <= set(KEPT_SCHEDULER_SETTINGS) | set(SCHEDULER_FLAG_SETTINGS)
