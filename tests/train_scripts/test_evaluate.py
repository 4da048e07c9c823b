"""evaluate.py end to end on tiny local data: the floor, the sweep, the report files, and the reference cache."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ddpm_hf import DDPMCFGPipeline, ExtendedDDPMScheduler, make_unet
from ddpm_hf.data import load_image_tensors
from ddpm_hf.metrics import extract_features, frechet_distance
from ddpm_hf.models import ImageClassifier

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "train_scripts"))
import evaluate  # noqa: E402


@pytest.fixture
def setup(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    images = (rng.random((60, 8, 8)) * 80 + labels[:, None, None] * 80).astype(np.uint8)
    np.savez(tmp_path / "data.npz", images=images, labels=labels, label_names=np.array(["dark", "mid", "light"]))
    torch.manual_seed(0)
    pipe = DDPMCFGPipeline(
        unet=make_unet("tiny", 8, 1, 3), scheduler=ExtendedDDPMScheduler(num_train_timesteps=20),
        id2label={0: "dark", 1: "mid", 2: "light"},
    )  # fmt: skip
    pipe.save_pretrained(tmp_path / "pipe")
    classifier = ImageClassifier(in_channels=1, resolution=8, num_labels=3, block_channels=(8, 16), feature_dim=6)
    classifier.save_pretrained(tmp_path / "judge")
    return tmp_path


def run(setup, *extra):
    args = evaluate.parse_args(
        [
            "--pipeline",
            str(setup / "pipe"),
            "--dataset",
            str(setup / "data.npz"),
            "--feature_network",
            str(setup / "judge"),
            "--output_dir",
            str(setup / "eval"),
            "--cache_dir",
            str(setup / "cache"),
            "--guidance_scales",
            "1",
            "3",
            "--sampler",
            "ddim",
            "--num_inference_steps",
            "3",
            *extra,
        ]  # fmt: skip
    )
    return evaluate.main(args)


def test_report_has_the_floor_and_one_row_per_guidance_scale(setup, capsys):
    report = run(setup)
    saved = json.loads((setup / "eval" / "eval.json").read_text())
    assert saved["floor"] == report["floor"] and [r["omega"] for r in saved["results"]] == [0, 2]
    assert all(r["num_samples"] == 30 and 0 <= r["accuracy"] <= 1 for r in saved["results"])
    # the floor is the FID between the two real halves, recomputed here from the same split
    images, _, _ = load_image_tensors(str(setup / "data.npz"), resolution=8, mode="L")
    half_a, half_b = evaluate.split_halves(60, 0)
    judge = ImageClassifier.from_pretrained(setup / "judge")
    features_a, _ = extract_features(judge, (images[half_a] + 1) / 2)
    features_b, _ = extract_features(judge, (images[half_b] + 1) / 2)
    assert report["floor"]["fid"] == pytest.approx(frechet_distance(features_a, features_b), rel=1e-9)
    for name in ("report.md", "guidance_sweep.png", "samples_ddim3_s1.png", "samples_ddim3_s3.png"):
        assert (setup / "eval" / name).exists()
    text = (setup / "eval" / "report.md").read_text()
    assert "| real vs real (half B) |" in text and "| pipe | linear | epsilon | ddim | 3 | 2 |" in text
    assert "features cached" not in capsys.readouterr().out
    again = run(setup)
    assert "features cached" in capsys.readouterr().out
    assert again["floor"] == report["floor"] and again["results"][0]["fid"] == report["results"][0]["fid"]


def test_runs_and_samplers_make_one_table(setup):
    torch.manual_seed(1)
    other = DDPMCFGPipeline(
        unet=make_unet("tiny", 8, 1, 3),
        scheduler=ExtendedDDPMScheduler(num_train_timesteps=20, beta_schedule="cosine", prediction_type="x0"),
        id2label={0: "dark", 1: "mid", 2: "light"},
    )
    other.save_pretrained(setup / "pipe_cosine_x0")
    report = run(setup, "--pipeline", str(setup / "pipe"), str(setup / "pipe_cosine_x0"), "--sampler", "ddpm:4",
                 "dpm_solver++:2", "--guidance_scales", "2")  # fmt: skip
    rows = [(r["pipeline"].split("/")[-1], r["beta_schedule"], r["prediction_type"], r["sampler"],
             r["num_inference_steps"]) for r in report["results"]]  # fmt: skip
    assert rows == [
        ("pipe", "linear", "epsilon", "ddpm", 4), ("pipe", "linear", "epsilon", "dpm_solver++", 2),
        ("pipe_cosine_x0", "squaredcos_cap_v2", "sample", "ddpm", 4),
        ("pipe_cosine_x0", "squaredcos_cap_v2", "sample", "dpm_solver++", 2),
    ]  # fmt: skip
    assert (setup / "eval" / "samples_pipe_cosine_x0_dpm_solver++2_s2.png").exists()
    assert len({r["fid"] for r in report["results"]}) == 4  # four different sample sets


def test_bad_flags_are_refused(setup):
    with pytest.raises(ValueError, match="not a saved classifier"):
        evaluate.parse_args(
            ["--pipeline", "p", "--dataset", "d", "--feature_network", str(setup), "--output_dir", "o"]
        )
    with pytest.raises(ValueError, match="guidance_scales must be >= 0"):
        evaluate.parse_args(["--pipeline", "p", "--dataset", "d", "--feature_network", str(setup / "judge"),
                             "--output_dir", "o", "--guidance_scales", "-1"])  # fmt: skip
    with pytest.raises(ValueError, match=r"Unknown sampler 'euler'.*\['ddpm', 'ddim', 'dpm_solver\+\+'\]"):
        evaluate.parse_args(["--pipeline", "p", "--dataset", "d", "--feature_network", str(setup / "judge"),
                             "--output_dir", "o", "--sampler", "euler:10"])  # fmt: skip
    with pytest.raises(ValueError, match="steps must be a whole number"):
        evaluate.parse_args(["--pipeline", "p", "--dataset", "d", "--feature_network", str(setup / "judge"),
                             "--output_dir", "o", "--sampler", "ddim:x"])  # fmt: skip


def test_multi_label_model_is_scored_on_the_conditions_file_by_iclevrs_rule(tmp_path):
    from ddpm_hf.data import ICLEVR_OBJECTS, make_synthetic_iclevr
    from ddpm_hf.metrics import multi_label_accuracy

    folder = make_synthetic_iclevr(str(tmp_path / "iclevr"), num_images=12, resolution=16, num_test=3)
    torch.manual_seed(0)
    pipe = DDPMCFGPipeline(
        unet=make_unet("tiny", 8, 3, 24, multi_label=True), scheduler=ExtendedDDPMScheduler(num_train_timesteps=20),
        id2label=dict(enumerate(ICLEVR_OBJECTS)),
    )  # fmt: skip
    pipe.save_pretrained(tmp_path / "pipe")
    judge = ImageClassifier(in_channels=3, resolution=8, num_labels=24, multi_label=True, block_channels=(8, 16),
                            feature_dim=6, pooling="mean_max")  # fmt: skip
    judge.save_pretrained(tmp_path / "judge")
    conditions = Path(folder) / "test.json"
    argv = ["--pipeline", str(tmp_path / "pipe"), "--dataset", folder, "--feature_network", str(tmp_path / "judge"),
            "--output_dir", str(tmp_path / "eval"), "--cache_dir", str(tmp_path / "cache"), "--guidance_scales", "3",
            "--sampler", "ddim", "--num_inference_steps", "2", "--num_samples", "7"]  # fmt: skip
    report = evaluate.main(evaluate.parse_args([*argv, "--conditions", str(conditions)]))
    (result,) = report["results"]
    # the same images again, with the file's 3 conditions in turn, judged by i-CLEVR's rule
    names = json.loads(conditions.read_text())
    requested = torch.zeros(7, 24)
    for row in range(7):
        requested[row, [ICLEVR_OBJECTS.index(name) for name in names[row % 3]]] = 1
    loaded = DDPMCFGPipeline.from_pretrained(tmp_path / "pipe")
    loaded.scheduler = evaluate.make_sampler("ddim", loaded.scheduler.config)
    loaded.set_progress_bar_config(disable=True)
    images = evaluate.generate(loaded, requested, 7, 3.0, 2, 500, seed=1)
    _, logits = extract_features(ImageClassifier.from_pretrained(tmp_path / "judge"), images)
    assert result["accuracy"] == pytest.approx(multi_label_accuracy(logits, requested), abs=1e-12)
    counts = requested.sum(dim=1)
    for count, row in result["accuracy_by_label_count"].items():
        rows = counts == count
        assert row == {"accuracy": pytest.approx(multi_label_accuracy(logits[rows], requested[rows])),
                       "images": int(rows.sum())}  # fmt: skip
    assert sum(row["images"] for row in result["accuracy_by_label_count"].values()) == 7
    assert "accuracy by labels asked" in (tmp_path / "eval" / "report.md").read_text()
    assert 0 <= report["floor"]["accuracy"] <= 1 and (tmp_path / "eval" / result["grid"]).exists()

    single = tmp_path / "single.npz"
    np.savez(single, images=np.zeros((4, 8, 8), np.uint8), labels=np.array([0, 1, 0, 1]))
    with pytest.raises(ValueError, match="--conditions is for multi-label data"):
        evaluate.main(evaluate.parse_args([*argv, "--dataset", str(single), "--conditions", str(conditions)]))
    with pytest.raises(ValueError, match="--conditions 'nope.json' is not a file"):
        evaluate.parse_args([*argv, "--conditions", "nope.json"])


def test_compiled_ddpm_sampling_scores_the_same_as_the_plain_loop(setup):
    plain = run(setup, "--sampler", "ddpm", "--guidance_scales", "3", "--no-compiled_sampling")
    compiled = run(setup, "--sampler", "ddpm", "--guidance_scales", "3", "--compiled_sampling")
    assert [row["compiled_sampling"] for row in plain["results"]] == [False]
    assert [row["compiled_sampling"] for row in compiled["results"]] == [True]
    for key in ("fid", "kid", "inception_score", "accuracy"):
        assert compiled["results"][0][key] == pytest.approx(plain["results"][0][key], rel=1e-3, abs=1e-4)
