"""Upload a training run's output folder to the Hub: the pipeline, its card and figures, not checkpoints or logs."""

import os

from huggingface_hub import create_repo, upload_folder

# Training state and per-epoch material stay local: they are large and no one loading the model needs them.
RUN_ONLY_PATTERNS = ["checkpoints/**", "logs/**", "samples/**", "losses.jsonl", "*.tmp", ".*"]


def push_run_folder(
    folder: str,
    repo_id: str,
    token: str | None = None,
    private: bool | None = None,
    commit_message: str = "Upload DDPM pipeline trained with ddpm-hf",
):
    """
    Creates `repo_id` if needed and uploads `folder` (a train script's output_dir) without its run-only files.

    Args:
        folder (`str`): Must hold a saved pipeline (model_index.json) and its model card (README.md).
        repo_id (`str`): The Hub repository, e.g. `"your-name/ddpm-digits"`.
        token (`str`, *optional*): Hub token; defaults to the stored login.
        private (`bool`, *optional*): Visibility of a newly created repository.
        commit_message (`str`): The commit's message.

    Returns:
        `huggingface_hub.CommitInfo` of the upload.
    """
    for required in ("model_index.json", "README.md"):
        if not os.path.isfile(os.path.join(folder, required)):
            raise ValueError(f"{folder} has no {required}; push the output_dir of a finished training run.")
    repo_id = create_repo(repo_id, private=private, token=token, exist_ok=True).repo_id
    return upload_folder(
        repo_id=repo_id,
        folder_path=folder,
        token=token,
        commit_message=commit_message,
        ignore_patterns=RUN_ONLY_PATTERNS,
    )
