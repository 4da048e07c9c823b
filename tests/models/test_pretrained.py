"""Starting from saved pipelines: diffusers' own DDPMPipeline folders and ddpm-hf folders, with a class embedding added
to an unconditional U-Net that leaves its outputs unchanged at the start."""

import pytest
import torch

from ddpm_hf import DDPMCFGPipeline, ExtendedDDPMScheduler, make_unet
from ddpm_hf.models.pretrained import load_pretrained_unet, pretrained_folder, read_pretrained_configs


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
