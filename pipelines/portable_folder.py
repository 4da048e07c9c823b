"""Pipeline folders that plain diffusers can load: source copies on save, no code run from a folder on our own load.

`PortableFolderMixin` gives a `DiffusionPipeline` subclass a `save_pretrained` that writes diffusers' layout plus
copies of the pipeline's source files (its module and the modules it imports relatively) and of each component's source
that diffusers lacks, in diffusers' custom-pipeline layout, so that `DiffusionPipeline.from_pretrained(path,
trust_remote_code=True)` runs them without ddpm_hf installed. Its own `from_pretrained` reads the same folder with the
classes this process has imported, never the copies, and reads weights from safetensors only; it also reads folders of
diffusers' own `DDPMPipeline`, whose `DDPMScheduler` it reads as `ExtendedDDPMScheduler` where that is imported.

This file imports only the standard library, diffusers and huggingface_hub, so that it can travel with a saved model.
"""

import inspect
import json
import os
import re
import shutil
import tempfile

from diffusers.configuration_utils import ConfigMixin
from diffusers.utils.hub_utils import load_or_create_model_card, populate_model_card
from huggingface_hub import ModelCard, create_repo, snapshot_download, upload_folder

# Libraries diffusers loads components from by name; components of any other module travel as source copies.
LOADABLE_LIBRARIES = ("diffusers", "transformers")
# What `from_pretrained` fetches from the Hub: configs, the model card and safetensors weights, never the source copies
# (those run only on the plain-diffusers route, with trust_remote_code=True).
HUB_DATA_PATTERNS = ["model_index.json", "README.md", "*/*.json", "*/*.safetensors"]
# diffusers' own DDPM scheduler, and ddpm_hf's subclass of it, which a DDPMPipeline folder's scheduler is read as: the
# same DDPM (bit for bit in float32), exact in half precision, and able to run compiled.
DIFFUSERS_DDPM = ["diffusers", "DDPMScheduler"]
EXTENDED_DDPM = "ExtendedDDPMScheduler"
# The relative imports diffusers follows when it loads a pipeline module from a folder (`from .name import ...`).
RELATIVE_IMPORT = re.compile(r"^\s*from\s+\.(\w+)\s+import", flags=re.MULTILINE)


def imported_class(class_name: str) -> type | None:
    """The class called `class_name` among the imported subclasses of ConfigMixin, skipping the copies that diffusers
    loads from model folders (modules named diffusers_modules.*)."""
    stack = [ConfigMixin]
    while stack:
        candidate = stack.pop()
        if candidate.__name__ == class_name and not candidate.__module__.startswith("diffusers_modules"):
            return candidate
        stack.extend(candidate.__subclasses__())
    return None


def module_source_files(source_file: str) -> list[str]:
    """`source_file` and the files of the modules it imports relatively (`from .name import ...`), as diffusers copies
    them beside it when it loads the folder: direct imports only, so each helper module must be imported by the
    pipeline module itself."""
    with open(source_file) as f:
        names = RELATIVE_IMPORT.findall(f.read())
    folder = os.path.dirname(source_file)
    return [source_file] + [os.path.join(folder, f"{name}.py") for name in sorted(set(names))]


def copy_source(component_class: type, folder: str) -> str:
    """Copies the file that defines `component_class` (and the files it imports relatively) into `folder`; returns the
    defining module's name (its file stem), as model_index.json names it."""
    source_file = inspect.getsourcefile(component_class)
    for path in module_source_files(source_file):
        target = os.path.join(folder, os.path.basename(path))
        if os.path.abspath(path) != os.path.abspath(target):
            shutil.copyfile(path, target)
    return os.path.splitext(os.path.basename(source_file))[0]


def component_names(model_index: dict) -> list[str]:
    """The components a model_index.json names: its entries of the form [library or module, class name]."""
    return [
        name
        for name, value in model_index.items()
        if not name.startswith("_") and isinstance(value, (list, tuple)) and len(value) == 2
    ]


def source_copies(folder: str) -> list[str]:
    """The .py files a saved pipeline folder carries for plain diffusers (at its root and in its component folders),
    as paths relative to `folder`."""
    with open(os.path.join(folder, "model_index.json")) as f:
        components = component_names(json.load(f))
    paths = []
    for subfolder in ["", *components]:
        directory = os.path.join(folder, subfolder)
        if os.path.isdir(directory):
            paths += [os.path.join(subfolder, name) for name in sorted(os.listdir(directory)) if name.endswith(".py")]
    return [path.replace(os.sep, "/") for path in paths]


def check_safe_serialization(safe_serialization: bool) -> None:
    if not safe_serialization:
        raise ValueError("safe_serialization=False is not supported: this pipeline saves safetensors only.")


def upload_saved_folder(save_directory: str | os.PathLike, class_name: str, **kwargs) -> None:
    """Uploads a folder just saved, exactly as written: `save_pretrained(..., push_to_hub=True)`. `repo_id` (defaults
    to the folder's name), `token`, `private`, `commit_message` and `create_pr` are read from the keyword arguments."""
    repo_id = kwargs.pop("repo_id", os.path.basename(os.path.normpath(save_directory)))
    token = kwargs.pop("token", None)
    repo_id = create_repo(repo_id, private=kwargs.pop("private", None), token=token, exist_ok=True).repo_id
    upload_folder(
        repo_id=repo_id,
        folder_path=save_directory,
        token=token,
        commit_message=kwargs.pop("commit_message", None) or f"Upload {class_name}",
        create_pr=kwargs.pop("create_pr", False),
    )


class PortableFolderMixin:
    """`save_pretrained` with source copies, `from_pretrained` without running them, and `push_to_hub` of the folder
    with a model card, for a `DiffusionPipeline`."""

    @classmethod
    def load_config(cls, *args, **kwargs):
        """
        Reads model_index.json for `from_pretrained` called on this class. Entries that name a source copy saved in
        the folder (for plain diffusers) are pointed at the classes this Python process has imported instead, so this
        route never runs code from the folder.
        """
        loaded = super().load_config(*args, **kwargs)
        config = loaded[0] if isinstance(loaded, tuple) else loaded
        if isinstance(config.get("_class_name"), (list, tuple)):
            config["_class_name"] = config["_class_name"][1]
        if config.get("_class_name") == "DDPMPipeline" and list(config.get("scheduler", ())) == DIFFUSERS_DDPM:
            extended = imported_class(EXTENDED_DDPM)
            if extended is not None:
                config["scheduler"] = [extended.__module__, EXTENDED_DDPM]
        for name in component_names(config):
            library, class_name = config[name]
            if library is None or "." in library or library in LOADABLE_LIBRARIES:
                continue
            local_class = imported_class(class_name)
            if local_class is None:
                raise ValueError(
                    f"The {name} of this pipeline is {class_name} from the source copy {name}/{library}.py in the "
                    f"folder, and no class of that name is imported here. Install and import ddpm_hf (which defines "
                    f"it), or load with DiffusionPipeline.from_pretrained(path, trust_remote_code=True) to run the "
                    f"copy in the folder."
                )
            config[name] = [local_class.__module__, class_name]
        return loaded

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs):
        """
        Loads a folder or Hub repository saved by `save_pretrained`, with this class and the scheduler class that
        this process has imported (for the ddpm_hf scheduler: `import ddpm_hf`). From the Hub it fetches only configs,
        weights and the model card. Weights are read from safetensors only unless `use_safetensors=False` is passed.
        Keyword arguments are those of `DiffusionPipeline.from_pretrained`.
        """
        # Weights come from safetensors only: a folder holding only pickled (.bin) weights is refused, never unpickled.
        kwargs.setdefault("use_safetensors", True)
        path = str(pretrained_model_name_or_path)
        if not os.path.isdir(path):
            hub_keys = ("cache_dir", "force_download", "local_files_only", "proxies", "revision", "token")
            hub_kwargs = {key: kwargs.pop(key) for key in hub_keys if key in kwargs}
            path = snapshot_download(path, allow_patterns=HUB_DATA_PATTERNS, **hub_kwargs)
        return super().from_pretrained(path, **kwargs)

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        safe_serialization: bool = True,
        variant: str | None = None,
        push_to_hub: bool = False,
        **kwargs,
    ):
        """
        Saves the pipeline in diffusers' layout (model_index.json, unet/, scheduler/, safetensors weights) plus copies
        of its source files and of the scheduler's source in diffusers' custom-pipeline layout, so that plain diffusers
        loads the folder with `DiffusionPipeline.from_pretrained(path, trust_remote_code=True)`.

        Args:
            save_directory (`str` or `os.PathLike`): The folder to write.
            safe_serialization (`bool`, defaults to `True`): Must stay `True`: weights are saved as safetensors only.
            variant (`str`, *optional*): Weights variant, as in diffusers.
            push_to_hub (`bool`, defaults to `False`): Also upload the folder; `repo_id` (defaults to the folder's
                name), `token`, `private`, `commit_message` and `create_pr` are read from the keyword arguments.
        """
        check_safe_serialization(safe_serialization)
        super().save_pretrained(save_directory, safe_serialization=True, variant=variant)
        index_path = os.path.join(save_directory, "model_index.json")
        with open(index_path) as f:
            model_index = json.load(f)
        model_index.pop("_name_or_path", None)  # a local path of the machine that saved it; not part of the model
        model_index["_class_name"] = [copy_source(type(self), save_directory), type(self).__name__]
        for name in component_names(model_index):
            component = getattr(self, name)
            if component is not None and type(component).__module__.split(".")[0] not in LOADABLE_LIBRARIES:
                module_name = copy_source(type(component), os.path.join(save_directory, name))
                model_index[name] = [module_name, type(component).__name__]
        with open(index_path, "w") as f:
            json.dump(model_index, f, indent=2, sort_keys=True)
            f.write("\n")
        if push_to_hub:
            upload_saved_folder(save_directory, type(self).__name__, **kwargs)

    def push_to_hub(
        self,
        repo_id: str,
        commit_message: str | None = None,
        private: bool | None = None,
        token: str | None = None,
        create_pr: bool = False,
        model_card: str | ModelCard | None = None,
    ):
        """
        Uploads the folder `save_pretrained` writes (weights, configs, source copies) and a model card as README.md.

        Args:
            repo_id (`str`): The Hub repository, created if missing.
            commit_message (`str`, *optional*): Defaults to "Upload <pipeline class name>".
            private (`bool`, *optional*): Visibility of a newly created repository.
            token (`str`, *optional*): Hub token; defaults to the stored login.
            create_pr (`bool`, defaults to `False`): Open a pull request instead of committing to main.
            model_card (`str` or `ModelCard`, *optional*): The card. Defaults to the README.md of the local folder this
                pipeline was loaded from, else diffusers' generic card.
        """
        repo_id = create_repo(repo_id, private=private, token=token, exist_ok=True).repo_id
        if model_card is None:
            loaded_from = os.path.join(str(self.config.get("_name_or_path") or ""), "README.md")
            if os.path.isfile(loaded_from):
                model_card = ModelCard.load(loaded_from)
            else:
                model_card = populate_model_card(load_or_create_model_card(repo_id, token=token))
        if isinstance(model_card, str):
            model_card = ModelCard(model_card)
        with tempfile.TemporaryDirectory() as folder:
            self.save_pretrained(folder)
            model_card.save(os.path.join(folder, "README.md"))
            return upload_folder(
                repo_id=repo_id,
                folder_path=folder,
                token=token,
                commit_message=commit_message or f"Upload {type(self).__name__}",
                create_pr=create_pr,
            )
