import pytest
import torch

from ddpm_hf import MLP2DModel


def test_output_shape_and_timestep_forms():
    model = MLP2DModel(hidden_dims=(16, 16), time_embedding_dim=8)
    sample = torch.randn(5, 2)
    per_sample = model(sample, torch.full((5,), 3)).sample
    assert per_sample.shape == (5, 2)
    torch.testing.assert_close(model(sample, 3).sample, per_sample)
    torch.testing.assert_close(model(sample, torch.tensor(3)).sample, per_sample)
    assert model(sample, 3, return_dict=False)[0].shape == (5, 2)


def test_timestep_changes_the_output():
    torch.manual_seed(0)
    model = MLP2DModel(hidden_dims=(16, 16), time_embedding_dim=8)
    sample = torch.randn(4, 2)
    assert not torch.allclose(model(sample, 1).sample, model(sample, 500).sample)


def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = MLP2DModel(sample_dim=3, hidden_dims=(32, 8), time_embedding_dim=16)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").exists()
    loaded = MLP2DModel.from_pretrained(tmp_path)
    assert loaded.config.hidden_dims == [32, 8] or tuple(loaded.config.hidden_dims) == (32, 8)
    sample = torch.randn(3, 3)
    torch.testing.assert_close(loaded(sample, 7).sample, model(sample, 7).sample, rtol=0, atol=0)


@pytest.mark.parametrize(
    "kwargs", [{"hidden_dims": ()}, {"hidden_dims": (0, 4)}, {"sample_dim": 0}, {"time_embedding_dim": 7}]
)
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        MLP2DModel(**kwargs)


def test_residual_output_and_output_scale():
    torch.manual_seed(0)
    plain = MLP2DModel(hidden_dims=(16, 16), time_embedding_dim=8)
    scaled = MLP2DModel(hidden_dims=(16, 16), time_embedding_dim=8, residual_output=True, output_scale=0.02)
    scaled.load_state_dict(plain.state_dict())
    sample = torch.randn(5, 2)
    with torch.no_grad():
        torch.testing.assert_close(scaled(sample, 9).sample, sample + 0.02 * plain(sample, 9).sample)
    with pytest.raises(ValueError, match="output_scale must be > 0, got 0"):
        MLP2DModel(output_scale=0)
