from .model_card import make_model_card, make_run_card
from .sources import (
    check_classifier_folder,
    check_dataset_source,
    check_pipeline_class,
    check_pipeline_source,
    local_dataset_splits,
    looks_local,
    read_json_file,
    what_the_folder_holds,
)
from .upload import push_run_folder

__all__ = [
    "check_classifier_folder",
    "check_dataset_source",
    "check_pipeline_class",
    "check_pipeline_source",
    "local_dataset_splits",
    "looks_local",
    "make_model_card",
    "make_run_card",
    "push_run_folder",
    "read_json_file",
    "what_the_folder_holds",
]
