"""The classifier's class names, checked where they enter: one per label, each given once and not empty, so that the
evaluation can match them against the data's and the model's names."""

import json

import pytest

from ddpm_hf.models import ImageClassifier

TINY = dict(in_channels=1, resolution=8, num_labels=3, block_channels=(8, 16), feature_dim=6)


@pytest.mark.parametrize(
    "label_names, message",
    [
        (["a", "b"], r"label_names holds 2 name\(s\) for num_labels=3; give one per label"),
        (["a", "b", "c", "d"], r"label_names holds 4 name\(s\) for num_labels=3"),
        (["", "b", "c"], r"label_names: the name of class 0 is ''"),
        (["a", "b", "a"], r"label_names: the name 'a' is given to classes 0 and 2"),
    ],
)
def test_label_names_that_do_not_name_each_label_once_are_refused(label_names, message):
    with pytest.raises(ValueError, match=message):
        ImageClassifier(**TINY, label_names=label_names)


def test_a_hand_edited_config_is_refused_when_loaded(tmp_path):
    ImageClassifier(**TINY, label_names=["a", "b", "c"]).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "label_names": ["a", "b", "b"]}))
    with pytest.raises(ValueError, match=r"the name 'b' is given to classes 1 and 2"):
        ImageClassifier.from_pretrained(tmp_path)
