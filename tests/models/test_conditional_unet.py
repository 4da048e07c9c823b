"""MultiLabelUNet2DModel: the label embedding against float64 maths, the null row, config round-trip, bad input."""

import numpy as np
import pytest
import torch
from diffusers import UNet2DModel

from ddpm_hf import make_unet
from ddpm_hf.models import MultiLabelUNet2DModel

TINY = dict(
    sample_size=8,
    in_channels=3,
    out_channels=3,
    block_out_channels=(32, 64),
    down_block_types=("DownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "UpBlock2D"),
    layers_per_block=1,
    norm_num_groups=8,
    attention_head_dim=16,
)


def tiny_model(num_labels=5):
    torch.manual_seed(0)
    model = MultiLabelUNet2DModel(num_labels=num_labels, **TINY)
    with torch.no_grad():  # a null embedding that differs from anything the projection gives
        model.null_label_embedding.normal_()
    return model.eval()


def test_label_embedding_is_the_projection_and_the_zero_row_is_the_null_embedding():
    model = tiny_model()
    labels = torch.tensor([[1, 0, 0, 1, 0], [0, 0, 0, 0, 0], [1, 1, 1, 0, 0]], dtype=torch.float32)
    weight = model.label_projection.weight.detach().double().numpy()
    bias = model.label_projection.bias.detach().double().numpy()
    expected = labels.double().numpy() @ weight.T + bias
    expected[1] = model.null_label_embedding.detach().double().numpy()
    np.testing.assert_allclose(model.embed_labels(labels).detach().double().numpy(), expected, rtol=1e-6, atol=1e-6)
    assert model.embed_labels(labels).shape == (3, 32 * 4)  # UNet2DModel's time embedding size


def test_output_is_the_unet_given_the_label_embedding_as_its_class_embedding():
    """Same weights in a plain UNet2DModel with class_embed_type='identity', fed the embedding by hand."""
    model = tiny_model()
    plain = UNet2DModel(class_embed_type="identity", **TINY).eval()
    missing, unexpected = plain.load_state_dict(model.state_dict(), strict=False)
    assert missing == [] and sorted(unexpected) == ["label_projection.bias", "label_projection.weight",
                                                    "null_label_embedding"]  # fmt: skip
    sample, labels = torch.randn(2, 3, 8, 8), torch.tensor([[0, 1, 0, 0, 1], [0, 0, 0, 0, 0]], dtype=torch.float32)
    with torch.no_grad():
        ours = model(sample, 7, class_labels=labels).sample
        by_hand = plain(sample, 7, class_labels=model.embed_labels(labels)).sample
    torch.testing.assert_close(ours, by_hand, rtol=0, atol=0)


def test_different_label_sets_give_different_outputs():
    model = tiny_model()
    sample = torch.randn(1, 3, 8, 8)
    outputs = [
        model(sample, 3, class_labels=torch.tensor([row], dtype=torch.float32)).sample
        for row in ([1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0])
    ]
    assert not torch.allclose(outputs[0], outputs[1]) and not torch.allclose(outputs[0], outputs[2])


def test_config_and_weights_round_trip(tmp_path):
    model = tiny_model(num_labels=7)
    model.save_pretrained(tmp_path)
    loaded = MultiLabelUNet2DModel.from_pretrained(tmp_path).eval()
    assert loaded.config.num_labels == 7 and loaded.config.class_embed_type == "identity"
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor, rtol=0, atol=0)


def test_make_unet_builds_it_from_a_preset():
    model = make_unet("tiny", 16, 3, 24, multi_label=True)
    assert isinstance(model, MultiLabelUNet2DModel)
    assert (model.config.num_labels, model.config.sample_size, model.config.in_channels) == (24, 16, 3)
    with pytest.raises(ValueError, match="needs num_classes"):
        make_unet("tiny", 16, 3, None, multi_label=True)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_labels": 0}, "num_labels must be an integer >= 1, got 0"),
        ({"class_embed_type": "timestep"}, "class_embed_type must be 'identity'"),
        ({"num_class_embeds": 10}, "num_class_embeds None, got 'identity' and 10"),
    ],
)
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MultiLabelUNet2DModel(**{**TINY, **kwargs})


def test_bad_conditions_are_refused():
    model = tiny_model()
    sample = torch.randn(2, 3, 8, 8)
    with pytest.raises(ValueError, match=r"shape \(batch_size, 5\), got shape \(2, 4\)"):
        model(sample, 1, class_labels=torch.zeros(2, 4))
    with pytest.raises(ValueError, match="needs class_labels"):
        model(sample, 1)


def test_saved_weight_names_are_those_of_earlier_saves():
    # folders saved before the label embedding moved to MultiHotLabelsMixin name these weights; they must still load
    names = {name for name in tiny_model().state_dict() if "label" in name}
    assert names == {"label_projection.weight", "label_projection.bias", "null_label_embedding"}
