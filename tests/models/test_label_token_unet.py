"""MultiLabelTokenUNet2DModel: the tokens and mask it builds, masked tokens having no effect (against a U-Net fed only
the requested tokens), the null row, config round-trip, the presets, bad input."""

import json

import numpy as np
import pytest
import torch

from ddpm_hf import UNET_PRESETS, make_unet
from ddpm_hf.models import MultiLabelTokenUNet2DModel

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
    cross_attention_dim=24,
)


def tiny_model(num_labels=5):
    torch.manual_seed(0)
    model = MultiLabelTokenUNet2DModel(num_labels=num_labels, **TINY)
    with torch.no_grad():  # trained values rather than the zeros they start from
        model.null_token.normal_()
        model.null_label_embedding.normal_()
    return model.eval()


def test_tokens_mask_and_embedding_against_float64_maths():
    model = tiny_model()
    labels = torch.tensor([[1, 0, 0, 1, 0], [0, 0, 0, 0, 0]], dtype=torch.float32)
    tokens, mask, embedding = model.encode_labels(labels)
    table = np.concatenate(
        [model.null_token.detach().double().numpy()[None], model.label_tokens.weight.detach().double().numpy()]
    )
    np.testing.assert_array_equal(tokens.detach().double().numpy(), np.stack([table, table]))
    assert mask.tolist() == [[True, True, False, False, True, False], [True, False, False, False, False, False]]
    weight = model.label_projection.weight.detach().double().numpy()
    bias = model.label_projection.bias.detach().double().numpy()
    expected = labels.double().numpy() @ weight.T + bias
    expected[1] = model.null_label_embedding.detach().double().numpy()
    np.testing.assert_allclose(embedding.detach().double().numpy(), expected, rtol=1e-6, atol=1e-6)
    assert embedding.shape == (2, 32 * 4)  # UNet2DConditionModel's time embedding size


@pytest.mark.parametrize("labels", [[0, 1, 1, 0, 1], [0, 0, 1, 0, 0], [0, 0, 0, 0, 0]])
def test_output_is_the_unet_fed_only_the_requested_tokens(labels):
    """The mask must make the model equal to its inner U-Net given only the null token and the requested ones."""
    model = tiny_model()
    sample, multi_hot = torch.randn(1, 3, 8, 8), torch.tensor([labels], dtype=torch.float32)
    requested = [i for i, flag in enumerate(labels) if flag]
    tokens = torch.cat([model.null_token[None], model.label_tokens.weight[requested]])[None]
    with torch.no_grad():
        ours = model(sample, 7, class_labels=multi_hot).sample
        by_hand = model.unet(
            sample, 7, encoder_hidden_states=tokens, class_labels=model.encode_labels(multi_hot)[2]
        ).sample
    torch.testing.assert_close(ours, by_hand, rtol=1e-5, atol=1e-5)


def test_only_requested_labels_tokens_matter():
    model = tiny_model()
    sample, labels = torch.randn(1, 3, 8, 8), torch.tensor([[0, 1, 0, 0, 0]], dtype=torch.float32)
    with torch.no_grad():
        before = model(sample, 3, class_labels=labels).sample
        model.label_tokens.weight[3] += 5.0  # not requested
        torch.testing.assert_close(model(sample, 3, class_labels=labels).sample, before, rtol=0, atol=1e-6)
        model.label_tokens.weight[1] += 5.0  # requested
        assert not torch.allclose(model(sample, 3, class_labels=labels).sample, before, atol=1e-3)


def test_save_and_load_round_trip(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path)
    loaded = MultiLabelTokenUNet2DModel.from_pretrained(tmp_path).eval()

    def public(component):  # the config as saved, without diffusers' private bookkeeping
        return {key: value for key, value in json.loads(component.to_json_string()).items() if key[0] != "_"}

    assert public(loaded) == public(model)
    sample, labels = torch.randn(2, 3, 8, 8), torch.tensor([[1, 0, 1, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.float32)
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(sample, 4, class_labels=labels).sample, model(sample, 4, class_labels=labels).sample, rtol=0, atol=0
        )


@pytest.mark.parametrize("preset", list(UNET_PRESETS))
def test_every_preset_builds_with_tokens(preset):
    model = make_unet(preset, 32, 3, 24, multi_label=True, label_conditioning="tokens")
    assert isinstance(model, MultiLabelTokenUNet2DModel)
    assert model.config.block_out_channels == UNET_PRESETS[preset]["block_out_channels"]
    attention_levels = sum(block == "AttnDownBlock2D" for block in UNET_PRESETS[preset]["down_block_types"])
    cross_attention_downs = sum(block == "CrossAttnDownBlock2D" for block in model.unet.config.down_block_types)
    assert cross_attention_downs == attention_levels


def test_bad_input():
    with pytest.raises(ValueError, match="num_labels must be an integer >= 1, got 0"):
        MultiLabelTokenUNet2DModel(num_labels=0, **TINY)
    with pytest.raises(ValueError, match=r"Unknown block type\(s\) \['CrossAttnDownBlock2D'\]"):
        MultiLabelTokenUNet2DModel(**{**TINY, "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D")})
    with pytest.raises(ValueError, match="attention_head_dim 24 must divide"):
        MultiLabelTokenUNet2DModel(**{**TINY, "attention_head_dim": 24})
    with pytest.raises(ValueError, match="one entry per level"):
        MultiLabelTokenUNet2DModel(**{**TINY, "block_out_channels": (32, 64, 64)})
    model = tiny_model()
    with pytest.raises(ValueError, match=r"shape \(batch_size, 5\), got shape \(1, 4\)"):
        model(torch.randn(1, 3, 8, 8), 1, class_labels=torch.zeros(1, 4))
    with pytest.raises(ValueError, match="needs class_labels"):
        model(torch.randn(1, 3, 8, 8), 1)
    with pytest.raises(ValueError, match="Unknown label_conditioning 'attention'"):
        make_unet("tiny", 8, 3, 5, multi_label=True, label_conditioning="attention")
    with pytest.raises(ValueError, match="'tokens' is for multi-label models"):
        make_unet("tiny", 8, 3, 5, label_conditioning="tokens")


def test_saved_weight_names_are_those_of_earlier_saves():
    # folders saved before the label embedding moved to MultiHotLabelsMixin name these weights; they must still load
    names = {name for name in tiny_model().state_dict() if not name.startswith("unet.")}
    assert names == {
        "label_tokens.weight", "null_token", "label_projection.weight", "label_projection.bias", "null_label_embedding"
    }  # fmt: skip
