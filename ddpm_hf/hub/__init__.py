from .model_card import make_model_card, make_run_card
from .upload import push_run_folder

__all__ = ["make_model_card", "make_run_card", "push_run_folder"]
