"""evaluate.py end to end on tiny local data: the floor, the sweep, the report files, and the reference cache."""

import functools
import json
import shutil
import sys
import types
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ddpm_hf import DDPMCFGPipeline, ExtendedDDPMScheduler, make_unet
from ddpm_hf.data import load_image_tensors
from ddpm_hf.metrics import extract_features, frechet_distance, inception_score, kernel_distance
from ddpm_hf.models import ImageClassifier

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "train_scripts"))
import evaluate  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from diffusers_folders import save_diffusers_ddpm_folder  # noqa: E402


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


def test_saved_samples_are_the_scored_images_with_their_labels_and_omega(setup):
    report = run(setup, "--save_samples")
    saved = np.load(setup / "eval" / "samples.npz")
    assert saved["images"].shape == (60, 8, 8) and saved["images"].dtype == np.uint8
    np.testing.assert_array_equal(saved["omega"], np.repeat([0.0, 2.0], 30))
    np.testing.assert_array_equal(saved["row"], np.repeat([0, 1], 30))
    # asked for: half B's labels (the data's labels are 20 of each class in order)
    _, half_b = evaluate.split_halves(60, 0)
    np.testing.assert_array_equal(saved["labels"], np.tile(np.repeat(np.arange(3), 20)[half_b], 2))
    # the first row's images, sampled again with the same seed, rounded to the nearest of 256 levels
    pipe = DDPMCFGPipeline.from_pretrained(setup / "pipe")
    pipe.scheduler = evaluate.make_sampler("ddim", pipe.scheduler.config)
    again = evaluate.generate(pipe, torch.from_numpy(saved["labels"][:30]), 30, 1.0, 3, 500, 1)
    assert np.abs(saved["images"][:30] / 255 - again[:, 0].double().numpy()).max() <= 0.5 / 255 + 1e-6
    assert report["results"][0]["num_samples"] == 30


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


def test_compiled_ddpm_sampling_scores_the_same_as_the_plain_loop(setup, monkeypatch):
    # evaluate.py's use of the compiled step, traced by dynamo and AOTAutograd without inductor's C++ build (which
    # tests/pipelines/test_pipeline_ddpm_cfg_compiled.py runs against the plain loop)
    enable = DDPMCFGPipeline.enable_compiled_sampling
    monkeypatch.setattr(
        DDPMCFGPipeline, "enable_compiled_sampling", lambda pipe, **kwargs: enable(pipe, backend="aot_eager", **kwargs)
    )
    plain = run(setup, "--sampler", "ddpm", "--guidance_scales", "3", "--no-compiled_sampling")
    compiled = run(setup, "--sampler", "ddpm", "--guidance_scales", "3", "--compiled_sampling")
    assert [row["compiled_sampling"] for row in plain["results"]] == [False]
    assert [row["compiled_sampling"] for row in compiled["results"]] == [True]
    for key in ("fid", "kid", "inception_score", "accuracy"):
        assert compiled["results"][0][key] == pytest.approx(plain["results"][0][key], rel=1e-3, abs=1e-4)


def argv_for(folder, *extra, pipeline="pipe", judge="judge"):
    """evaluate.py's flags for a quick run on `folder`'s data; `judge=None` leaves --feature_network out."""
    argv = ["--pipeline", str(folder / pipeline), "--dataset", str(folder / "data.npz"), "--output_dir",
            str(folder / "eval"), "--cache_dir", str(folder / "cache"), "--guidance_scales", "3", "--sampler", "ddim",
            "--num_inference_steps", "2"]  # fmt: skip
    if judge is not None:
        argv += ["--feature_network", str(folder / judge)]
    return [*argv, *extra]


@pytest.fixture
def unconditional(setup):
    """`setup` plus an unconditional pipeline (pipe_uncond) of the same tiny U-Net shape."""
    torch.manual_seed(2)
    DDPMCFGPipeline(
        unet=make_unet("tiny", 8, 1), scheduler=ExtendedDDPMScheduler(num_train_timesteps=20)
    ).save_pretrained(setup / "pipe_uncond")
    return setup


def save_image_folder(root, counts, seed):
    """An image folder root/SPLIT/CLASS/i.png of random 8x8 greyscale images, `counts` = {split: images per class}."""
    rng = np.random.default_rng(seed)
    for split, count in counts.items():
        for class_name in ("a", "b"):
            (root / split / class_name).mkdir(parents=True)
            for index in range(count):
                pixels = (rng.random((8, 8)) * 255).astype(np.uint8)
                Image.fromarray(pixels, mode="L").save(root / split / class_name / f"{index}.png")


def test_split_picks_the_split_and_an_unknown_split_is_refused(unconditional):
    save_image_folder(unconditional / "folder", {"train": 4, "test": 6}, seed=3)
    judge = ImageClassifier(in_channels=1, resolution=8, num_labels=2, block_channels=(8, 16), feature_dim=6,
                            label_names=["a", "b"])  # fmt: skip
    judge.save_pretrained(unconditional / "judge_ab")
    folder = str(unconditional / "folder")
    argv = argv_for(unconditional, "--dataset", folder, "--num_samples", "2", pipeline="pipe_uncond", judge="judge_ab")
    for split, count in (("train", 8), ("test", 12)):
        report = evaluate.main(evaluate.parse_args([*argv, "--split", split]))
        assert report["split"] == split and report["reference_images"] == count // 2
        # the floor is that split's FID, recomputed from the split's own images
        images, _, _ = load_image_tensors(folder, resolution=8, split=split)
        half_a, half_b = evaluate.split_halves(count, 0)
        features_a, _ = extract_features(judge, (images[half_a] + 1) / 2)
        features_b, _ = extract_features(judge, (images[half_b] + 1) / 2)
        assert report["floor"]["fid"] == pytest.approx(frechet_distance(features_a, features_b), rel=1e-9)
    with pytest.raises(ValueError, match=r"Unknown split \"nonexistent\".*\['train', 'test'\]|\['test', 'train'\]"):
        evaluate.main(evaluate.parse_args([*argv, "--split", "nonexistent", "--output_dir", str(unconditional / "o")]))
    # single-split sources name the one split they have, before anything is loaded
    for dataset in (str(unconditional / "data.npz"), "digits"):
        with pytest.raises(ValueError, match=r"--split 'test': .* has the split\(s\) \['train'\]"):
            evaluate.parse_args([*argv, "--dataset", dataset, "--split", "test"])
    assert not (unconditional / "o").exists()


def test_a_missing_local_pipeline_folder_is_refused_without_asking_the_hub(setup, fake_hub, monkeypatch):
    monkeypatch.chdir(setup)
    (setup / "runs").mkdir()
    for missing in ("runs/missing", "./missing", str(setup / "missing"), "~/missing_ddpm_run", "a/b/c", "runs/"):
        with pytest.raises(ValueError, match="does not exist|not a saved pipeline"):
            evaluate.main(evaluate.parse_args(argv_for(setup, "--pipeline", missing)))
        assert fake_hub.requests == [], missing
    assert not (setup / "eval").exists()
    monkeypatch.setenv("HOME", str(setup))  # a quoted ~ is the home folder, as the shell would have it
    assert evaluate.parse_args(argv_for(setup, "--pipeline", "~/pipe")).pipeline == [str(setup / "pipe")]
    # a Hub id ("owner/name" whose owner is no local folder) still goes to the Hub
    with pytest.raises(OSError, match="Repository Not Found"):  # the fake Hub has no such repository
        evaluate.main(evaluate.parse_args(argv_for(setup, "--pipeline", "someone/ddpm-model")))
    assert fake_hub.requests and all("someone/ddpm-model" in path for _, path in fake_hub.requests)


def test_a_missing_local_dataset_is_refused_without_asking_the_hub(setup, fake_hub, monkeypatch):
    monkeypatch.chdir(setup)
    with pytest.raises(ValueError, match=r"--dataset '\./faces' does not exist"):
        evaluate.parse_args(argv_for(setup, "--dataset", "./faces"))
    assert fake_hub.requests == []


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--batch_size", "0"], r"--batch_size must be >= 1 .*got 0"),
        (["--batch_size", "-4"], r"--batch_size must be >= 1 .*got -4"),
        (["--num_inference_steps", "0"], r"--num_inference_steps must be >= 1, got 0"),
        (["--inception_weights", "w.pth"], r"--inception_weights is .* add --inception"),
    ],
)
def test_bad_numbers_are_refused_when_parsed(setup, extra, message):
    with pytest.raises(ValueError, match=message):
        evaluate.parse_args(argv_for(setup, *extra))


def test_no_feature_network_and_no_inception_is_refused(setup):
    with pytest.raises(ValueError, match=r"Give --feature_network PATH .*--inception"):
        evaluate.parse_args(argv_for(setup, judge=None))


@pytest.mark.parametrize("count", [1, 3])
def test_a_dataset_too_small_to_split_is_refused(setup, count):
    np.savez(setup / "small.npz", images=np.zeros((count, 8, 8), np.uint8), labels=np.zeros(count, np.int64),
             label_names=np.array(["dark", "mid", "light"]))  # fmt: skip
    with pytest.raises(ValueError, match=rf"holds {count} image\(s\); at least 4 are needed"):
        evaluate.main(evaluate.parse_args(argv_for(setup, "--dataset", str(setup / "small.npz"))))
    assert not (setup / "eval").exists()


def save_mismatched(folder, case):
    """The data or judge of one mismatch against `setup`'s greyscale 3-class pipeline; returns evaluate.py's extra
    flags and the message naming both sides."""
    rng = np.random.default_rng(5)
    labels = np.repeat(np.arange(3), 4)
    names = np.array(["dark", "mid", "light"])
    if case == "colour data":
        np.savez(folder / "other.npz", images=(rng.random((12, 8, 8, 3)) * 255).astype(np.uint8), labels=labels,
                 label_names=names)  # fmt: skip
        return ["--dataset", str(folder / "other.npz")], r"3-channel images and the pipeline .* makes 1-channel"
    if case == "more classes":
        np.savez(folder / "other.npz", images=(rng.random((12, 8, 8)) * 255).astype(np.uint8),
                 labels=np.arange(12) % 5)  # fmt: skip
        return ["--dataset", str(folder / "other.npz")], r"has 5 classes .* and the pipeline .* has 3 \['dark'"
    if case == "other class names":
        np.savez(folder / "other.npz", images=(rng.random((12, 8, 8)) * 255).astype(np.uint8), labels=labels,
                 label_names=np.array(["cat", "dog", "fox"]))  # fmt: skip
        return ["--dataset", str(folder / "other.npz")], r"classes \['cat', 'dog', 'fox'\] and the pipeline .*'dark'"
    if case == "colour judge":
        ImageClassifier(in_channels=3, resolution=8, num_labels=3, block_channels=(8, 16), feature_dim=6,
                        label_names=list(names)).save_pretrained(folder / "other_judge")  # fmt: skip
        return ["--feature_network", str(folder / "other_judge")], r"1-channel images and the classifier .* takes 3"
    ImageClassifier(in_channels=1, resolution=8, num_labels=4, block_channels=(8, 16),
                    feature_dim=6).save_pretrained(folder / "other_judge")  # fmt: skip
    return ["--feature_network", str(folder / "other_judge")], r"has 3 classes .* and the classifier .* has 4"


@pytest.mark.parametrize("case", ["colour data", "more classes", "other class names", "colour judge", "judge classes"])
def test_mismatched_data_or_judge_is_refused_before_sampling(setup, monkeypatch, case):
    extra, message = save_mismatched(setup, case)
    sampled = []
    monkeypatch.setattr(evaluate, "generate", lambda *args, **kwargs: sampled.append(args))
    with pytest.raises(ValueError, match=message):
        evaluate.main(evaluate.parse_args(argv_for(setup, *extra)))
    assert sampled == [] and not (setup / "eval").exists()


def test_an_unconditional_model_is_scored_by_the_classifier_judge(unconditional):
    report = evaluate.main(evaluate.parse_args(argv_for(unconditional, "--num_samples", "6",
                                                        pipeline="pipe_uncond")))  # fmt: skip
    (result,) = report["results"]  # sampled once: guidance does not apply
    assert result["accuracy"] is None and not result["conditional"] and result["num_samples"] == 6
    assert 0 <= report["floor"]["accuracy"] <= 1  # the judge on real labelled images still gives the floor
    # FID, KID and IS recomputed from the same samples and the judge
    pipe = DDPMCFGPipeline.from_pretrained(unconditional / "pipe_uncond")
    pipe.scheduler = evaluate.make_sampler("ddim", pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    generated = evaluate.generate(pipe, None, 6, 1.0, 2, 500, seed=1)
    judge = ImageClassifier.from_pretrained(unconditional / "judge")
    images, _, _ = load_image_tensors(str(unconditional / "data.npz"), resolution=8)
    half_a, _ = evaluate.split_halves(60, 0)
    features_a, _ = extract_features(judge, (images[half_a] + 1) / 2)
    features, logits = extract_features(judge, generated)
    assert result["fid"] == pytest.approx(frechet_distance(features_a, features), rel=1e-6)
    assert result["kid"] == pytest.approx(kernel_distance(features_a, features)[0], rel=1e-6, abs=1e-12)
    assert result["inception_score"] == pytest.approx(inception_score(logits)[0], rel=1e-6)
    assert (unconditional / "eval" / result["grid"]).exists()
    report_text = (unconditional / "eval" / "report.md").read_text()
    assert "| pipe_uncond | linear | epsilon | ddim | 2 | unconditional |" in report_text


def test_progress_bars_for_decoding_and_for_each_guidance_scale(setup, capsys, monkeypatch):
    # every update printed, so the 3/5 step shows however fast the machine samples (tqdm skips redraws < 0.1 s apart)
    monkeypatch.setattr(evaluate, "tqdm", functools.partial(evaluate.tqdm, mininterval=0, miniters=1))
    evaluate.main(evaluate.parse_args(argv_for(setup, "--guidance_scales", "1", "3", "--num_samples", "5",
                                               "--batch_size", "3")))  # fmt: skip
    err = capsys.readouterr().err
    assert "decode images: 100%" in err and "60/60" in err
    for scale in ("1", "3"):  # 5 samples per scale, in batches of 3 and 2
        assert f"pipe ddim:2 s={scale}:  60%" in err and f"pipe ddim:2 s={scale}: 100%" in err
    assert err.count("5/5") >= 2


INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"


class StandInInception(torch.nn.Module):
    """torch-fidelity's FeatureExtractorInceptionV3 as far as evaluate.py meets it, for machines without it: the
    constructor's weights step as torch-fidelity does it (torch.load of the given file, else torch.hub's
    load_state_dict_from_url: its cache, then a download) and a forward that takes uint8 RGB images and returns the
    requested features; a tiny conv net stands in for Inception-v3."""

    def __init__(self, name, features_list, feature_extractor_weights_path=None):
        super().__init__()
        assert name == "inception-v3-compat" and features_list == ["2048", "logits_unbiased"]
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8, 5)
        if feature_extractor_weights_path is None:
            state = torch.hub.load_state_dict_from_url(f"https://example.invalid/{INCEPTION_FILE}", progress=False)
        else:
            state = torch.load(feature_extractor_weights_path, weights_only=False)
        self.load_state_dict(state)

    def forward(self, images):
        assert images.dtype == torch.uint8 and images.ndim == 4 and images.shape[1] == 3
        pooled = self.conv(images.float() / 128 - 1).mean(dim=(2, 3))
        return pooled, self.fc(pooled)


def use_torch_fidelity(monkeypatch, kind):
    """Make `from torch_fidelity.feature_extractor_inceptionv3 import ...` give the stand-in, or check that the real
    torch-fidelity imports here (skip otherwise)."""
    if kind == "installed":
        try:
            import torch_fidelity.feature_extractor_inceptionv3  # noqa: F401
        except (ImportError, RuntimeError) as error:
            pytest.skip(f"torch-fidelity does not import here ({type(error).__name__}); the stand-in covers it")
        return
    package = types.ModuleType("torch_fidelity")
    module = types.ModuleType("torch_fidelity.feature_extractor_inceptionv3")
    module.URL_INCEPTION_V3 = f"https://example.invalid/{INCEPTION_FILE}"
    module.FeatureExtractorInceptionV3 = StandInInception
    package.feature_extractor_inceptionv3 = module
    monkeypatch.setitem(sys.modules, "torch_fidelity", package)
    monkeypatch.setitem(sys.modules, "torch_fidelity.feature_extractor_inceptionv3", module)


@pytest.fixture
def offline_torch_home(tmp_path, monkeypatch):
    """An empty torch.hub cache, and no network for torch.hub: a download fails as it does offline."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(torch.hub, "urlopen", refuse)
    return tmp_path / "torch_home"


@pytest.mark.parametrize("kind", ["stand-in", "installed"])
def test_inception_starts_without_a_feature_network_and_offline_says_how_to_supply_the_weights(
    unconditional, monkeypatch, offline_torch_home, kind
):
    use_torch_fidelity(monkeypatch, kind)
    args = evaluate.parse_args(argv_for(unconditional, "--inception", "--num_samples", "4", pipeline="pipe_uncond",
                                        judge=None))  # fmt: skip
    cached = offline_torch_home / "hub" / "checkpoints" / INCEPTION_FILE
    with pytest.raises(RuntimeError, match="Could not get the Inception-v3 weights") as error:
        evaluate.main(args)
    assert "--inception_weights FILE" in str(error.value) and str(cached) in str(error.value)
    assert not (unconditional / "eval").exists()
    if kind == "stand-in":  # following the message works: the file in torch.hub's cache is read, no download
        cached.parent.mkdir(parents=True, exist_ok=True)  # torch.hub made it for the failed download
        torch.save(stand_in_weights(), cached)
        report = evaluate.main(args)
        assert report["feature_network"] == "inception-v3" and report["judge"] is None


def stand_in_weights():
    torch.manual_seed(0)
    return {"conv.weight": torch.randn(8, 3, 3, 3) * 0.3, "conv.bias": torch.zeros(8),
            "fc.weight": torch.randn(5, 8), "fc.bias": torch.zeros(5)}  # fmt: skip


def test_inception_route_scores_fid_kid_and_is_on_the_inception_outputs(setup, unconditional, monkeypatch, tmp_path):
    use_torch_fidelity(monkeypatch, "stand-in")
    torch.save(stand_in_weights(), tmp_path / INCEPTION_FILE)
    inception = ["--inception", "--inception_weights", str(tmp_path / INCEPTION_FILE), "--num_samples", "6"]
    report = evaluate.main(evaluate.parse_args(argv_for(setup, *inception, pipeline="pipe_uncond", judge=None)))
    (result,) = report["results"]
    assert report["feature_network"] == "inception-v3" and report["judge"] is None
    assert result["accuracy"] is None and report["floor"]["accuracy"] is None  # no classifier: no accuracy
    # floor and scores recomputed with the same network: greyscale goes in as three equal channels, uint8
    network = StandInInception("inception-v3-compat", ["2048", "logits_unbiased"], str(tmp_path / INCEPTION_FILE))
    images, _, _ = load_image_tensors(str(setup / "data.npz"), resolution=8)
    half_a, half_b = evaluate.split_halves(60, 0)

    def outputs(batch):
        with torch.no_grad():
            features, logits = network((batch * 255).round().to(torch.uint8).expand(-1, 3, -1, -1))
        return features.double(), logits.double()

    features_a, _ = outputs((images[half_a] + 1) / 2)
    features_b, logits_b = outputs((images[half_b] + 1) / 2)
    assert report["floor"]["fid"] == pytest.approx(frechet_distance(features_a, features_b), rel=1e-6)
    assert report["floor"]["inception_score"] == pytest.approx(inception_score(logits_b)[0], rel=1e-6)
    pipe = DDPMCFGPipeline.from_pretrained(setup / "pipe_uncond")
    pipe.scheduler = evaluate.make_sampler("ddim", pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    features, logits = outputs(evaluate.generate(pipe, None, 6, 1.0, 2, 500, seed=1))
    assert result["fid"] == pytest.approx(frechet_distance(features_a, features), rel=1e-6)
    assert result["inception_score"] == pytest.approx(inception_score(logits)[0], rel=1e-6)

    # a conditional model with a classifier too: Inception scores FID/KID/IS, the classifier judges accuracy only
    both = evaluate.main(evaluate.parse_args(argv_for(setup, *inception, "--output_dir", str(tmp_path / "both"))))
    (row,) = both["results"]
    assert both["judge"] == str(setup / "judge") and 0 <= row["accuracy"] <= 1 and 0 <= both["floor"]["accuracy"] <= 1


def test_inception_without_torch_fidelity_names_what_to_install(unconditional, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # import torch_fidelity now fails, as when missing
    monkeypatch.setitem(sys.modules, "torch_fidelity.feature_extractor_inceptionv3", None)
    args = evaluate.parse_args(argv_for(unconditional, "--inception", pipeline="pipe_uncond", judge=None))
    with pytest.raises(ImportError, match=r'pip install "ddpm-hf\[inception\]" \(or: pip install torch-fidelity'):
        evaluate.main(args)
    assert not (unconditional / "eval").exists()


def save_not_an_image_pipeline(folder, case):
    """A folder a user may give evaluate.py by mistake; returns evaluate.py's extra flags and the message."""
    from ddpm_hf import DDPM2DPipeline, MLP2DModel

    if case == "2D run":
        DDPM2DPipeline(model=MLP2DModel(), scheduler=ExtendedDDPMScheduler(num_train_timesteps=10)).save_pretrained(
            folder / "swiss_roll"
        )
        return ["--pipeline", str(folder / "swiss_roll")], (
            r"--pipeline '.*swiss_roll' is a DDPM2DPipeline, a 2D point model \(train_2d.py\); evaluate.py scores "
            r"image models. A 2D run is scored by the Chamfer distance in its metrics.json."
        )
    if case == "another pipeline":
        shutil.copytree(folder / "pipe", folder / "other")
        index = json.loads((folder / "other" / "model_index.json").read_text())
        (folder / "other" / "model_index.json").write_text(json.dumps({**index, "_class_name": "DDIMPipeline"}))
        return ["--pipeline", str(folder / "other")], (
            r"holds a DDIMPipeline \(model_index.json\); evaluate.py scores \['DDPMCFGPipeline', 'DDPMPipeline'\]"
        )
    if case == "a checkpoint":
        checkpoint = folder / "run" / "checkpoints" / "checkpoint-4"
        checkpoint.mkdir(parents=True)
        (checkpoint / "model.safetensors").write_bytes(b"")
        return ["--pipeline", str(checkpoint)], r"it is a training checkpoint: make a pipeline of it with python"
    if case == "a run still training":
        (folder / "run" / "checkpoints").mkdir(parents=True)
        return ["--pipeline", str(folder / "run")], r"it is a run folder whose pipeline is not saved yet"
    if case == "the U-Net of a pipeline":
        return ["--pipeline", str(folder / "pipe" / "unet")], r"it holds a single UNet2DModel \(config.json\)"
    if case == "a U-Net as the classifier":
        return ["--feature_network", str(folder / "pipe" / "unet")], (
            r"--feature_network '.*unet' holds a UNet2DModel \(config.json\), not a classifier; give a folder saved "
            r"by train_classifier.py \(an ImageClassifier\), or --inception"
        )
    return ["--feature_network", str(folder / "pipe")], r"--feature_network '.*pipe' is a pipeline folder"


@pytest.mark.parametrize(
    "case",
    [
        "2D run",
        "another pipeline",
        "a checkpoint",
        "a run still training",
        "the U-Net of a pipeline",
        "a U-Net as the classifier",
        "a pipeline as the classifier",
    ],
)
def test_folders_that_are_no_image_pipeline_or_classifier_are_named_when_parsed(setup, case):
    extra, message = save_not_an_image_pipeline(setup, case)
    with pytest.raises(ValueError, match=message):
        evaluate.parse_args(argv_for(setup, *extra))
    assert not (setup / "eval").exists()


def test_a_diffusers_ddpm_pipeline_with_a_list_sample_size_is_scored(setup):
    from diffusers import DDIMScheduler, DDPMPipeline, DDPMScheduler

    # diffusers allows a [height, width] sample_size
    _, unet = save_diffusers_ddpm_folder(setup / "diffusers_ddpm", seed=3, sample_size=[8, 8])
    argv = argv_for(setup, "--num_samples", "6", "--save_samples", pipeline="diffusers_ddpm")
    (result,) = evaluate.main(evaluate.parse_args(argv))["results"]
    assert not result["conditional"] and result["num_samples"] == 6 and np.isfinite(result["fid"])
    # the scored images are diffusers' own DDPMPipeline's with the DDIM sampler, the same seed and steps
    sampler = DDIMScheduler.from_config(DDPMScheduler(num_train_timesteps=20).config, clip_sample=False)
    reference = DDPMPipeline(unet=unet.eval(), scheduler=sampler)
    reference.set_progress_bar_config(disable=True)
    expected = reference(batch_size=6, generator=torch.Generator().manual_seed(1), num_inference_steps=2,
                         output_type="np").images[..., 0]  # fmt: skip
    saved = np.load(setup / "eval" / "samples.npz")["images"]
    assert saved.shape == (6, 8, 8) and np.abs(saved / 255 - expected).max() <= 0.5 / 255 + 1e-5
