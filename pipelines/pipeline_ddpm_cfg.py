"""DiffusionPipeline for image DDPMs: unconditional, class-conditional or multi-label, with classifier-free guidance.

This file imports only torch, numpy, PIL, diffusers and huggingface_hub so that it can travel next to a saved model.
"""

import inspect
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch
from diffusers import DDPMScheduler, DiffusionPipeline
from diffusers.configuration_utils import ConfigMixin
from diffusers.utils import BaseOutput, logging
from diffusers.utils.hub_utils import load_or_create_model_card, populate_model_card
from diffusers.utils.torch_utils import randn_tensor
from huggingface_hub import ModelCard, create_repo, snapshot_download, upload_folder

logger = logging.get_logger(__name__)

OUTPUT_TYPES = ("pil", "np", "pt")
# DDPMScheduler variance types whose noise scale is a fixed number per step (what the compiled step supports)
FIXED_VARIANCE_TYPES = ("fixed_small", "fixed_small_log", "fixed_large")
COMPONENT_NAMES = ("unet", "scheduler")
# Libraries diffusers loads components from by name; components of any other module travel as source copies.
LOADABLE_LIBRARIES = ("diffusers", "transformers")
# What DDPMCFGPipeline.from_pretrained fetches from the Hub: configs, the model card and safetensors weights, never the
# source copies (those run only on the plain-diffusers route, with trust_remote_code=True).
HUB_DATA_PATTERNS = ["model_index.json", "README.md", "*/*.json", "*/*.safetensors"]


def _imported_class(class_name: str) -> type | None:
    """The class called `class_name` among the imported subclasses of ConfigMixin, skipping the copies that diffusers
    loads from model folders (modules named diffusers_modules.*)."""
    stack = [ConfigMixin]
    while stack:
        candidate = stack.pop()
        if candidate.__name__ == class_name and not candidate.__module__.startswith("diffusers_modules"):
            return candidate
        stack.extend(candidate.__subclasses__())
    return None


@dataclass
class DDPMCFGPipelineOutput(BaseOutput):
    """
    Args:
        images (`list[PIL.Image.Image]`, `np.ndarray` (N, H, W, C) in [0, 1], or `torch.Tensor` (N, C, H, W) in
            [0, 1]): The generated images.
    """

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor


class DDPMCFGPipeline(DiffusionPipeline):
    """
    Samples images from a `UNet2DModel` DDPM. A class-conditional U-Net (`num_class_embeds = K + 1`) was trained
    with the last id K as the null condition; a multi-label U-Net (`MultiLabelUNet2DModel`, `num_labels = K`) takes a
    multi-hot vector with a row of zeros as the null condition. Sampling then uses classifier-free guidance,
    eps = eps_uncond + guidance_scale * (eps_cond - eps_uncond), with both passes in one batched forward. The
    course's omega is guidance_scale - 1.

    Args:
        unet (`UNet2DModel`): The noise network.
        scheduler: `ddpm_hf.ExtendedDDPMScheduler` or any diffusers scheduler made with `from_config`.
        id2label (`dict[int, str]`, *optional*): Class names by id, saved in model_index.json.
    """

    model_cpu_offload_seq = "unet"
    _callback_tensor_inputs = ["sample", "pred_original_sample"]

    def __init__(self, unet, scheduler, id2label: dict | None = None):
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler)
        id2label = {int(key): str(value) for key, value in id2label.items()} if id2label else None
        self.register_to_config(id2label=id2label)

    def enable_compiled_sampling(
        self,
        mode: str | None = "reduce-overhead",
        backend: str = "inductor",
        channels_last: bool | None = None,
        fullgraph: bool = False,
    ):
        """
        Sample through one `torch.compile`d denoising step: the U-Net, the guidance mix and the DDPM update (x0 from
        the model output, clipping, posterior mean, noise) with per-step coefficients read from tables by a step index
        tensor, so that every step replays the same compiled graph; with `mode="reduce-overhead"` on CUDA, one CUDA
        graph. The noise of each step is drawn outside it, from the same generator in the same order as the plain
        loop, so both give the same images up to float rounding. Works with `DDPMScheduler` and its subclasses
        (`ExtendedDDPMScheduler`) with a fixed variance and no dynamic thresholding; other schedulers keep the plain
        loop. The first call pays the compile time, and so does the first call with a new batch size or with guidance
        switched on or off (the guidance scale itself is a tensor input, so a new scale needs no recompile).

        Args:
            mode (`str`, *optional*, defaults to `"reduce-overhead"`): `torch.compile` mode.
            backend (`str`, defaults to `"inductor"`): `torch.compile` backend.
            channels_last (`bool`, *optional*): Put the U-Net in channels_last memory format; default: on CUDA.
            fullgraph (`bool`, defaults to `False`): Raise instead of splitting the step where torch.compile cannot
                trace it (a check to find out whether a model compiles into one graph).
        """
        self._check_compiled_sampling_support()
        if channels_last is None:
            channels_last = self._execution_device.type == "cuda"
        if channels_last:
            self.unet.to(memory_format=torch.channels_last)
        self._compiled_step = torch.compile(
            self._denoising_step, mode=mode, backend=backend, fullgraph=fullgraph, dynamic=False
        )

    def disable_compiled_sampling(self):
        """Go back to the plain loop (`scheduler.step` after each U-Net call)."""
        self._compiled_step = None

    def _check_compiled_sampling_support(self):
        scheduler = self.scheduler
        if not isinstance(scheduler, DDPMScheduler):
            raise ValueError(
                f"Compiled sampling steps DDPMScheduler and its subclasses; this pipeline has "
                f"{type(scheduler).__name__}. Use the plain loop (disable_compiled_sampling) for other samplers."
            )
        if scheduler.config.variance_type not in FIXED_VARIANCE_TYPES or scheduler.config.thresholding:
            raise ValueError(
                f"Compiled sampling needs variance_type in {list(FIXED_VARIANCE_TYPES)} and no thresholding; this "
                f"scheduler has variance_type={scheduler.config.variance_type!r}, "
                f"thresholding={scheduler.config.thresholding}."
            )
        if scheduler.config.prediction_type == "mean" and not hasattr(scheduler, "get_x0_and_epsilon"):
            raise ValueError("prediction_type 'mean' needs ExtendedDDPMScheduler for compiled sampling.")

    def _step_tables(self, device: torch.device) -> dict[str, torch.Tensor]:
        """
        Per inference step i, the numbers `scheduler.step` uses at timestep t_i: x0 = a_i * output + b_i * x_t
        (any prediction type, from the scheduler's own formulas), then x_prev = c_i * clip(x0) + d_i * x_t +
        s_i * noise (posterior mean coefficients of eq. 7 of Ho et al. 2020, and the step's noise scale, 0 at t = 0).
        """
        scheduler = self.scheduler
        rows = {name: [] for name in ("a", "b", "c", "d", "s")}
        one, zero = torch.ones(()), torch.zeros(())
        for timestep in scheduler.timesteps.tolist():
            prev_t = scheduler.previous_timestep(timestep)
            alpha_prod_t = scheduler.alphas_cumprod[timestep]
            alpha_prod_t_prev = scheduler.alphas_cumprod[prev_t] if prev_t >= 0 else scheduler.one
            beta_prod_t, beta_prod_t_prev = 1 - alpha_prod_t, 1 - alpha_prod_t_prev
            current_alpha_t = alpha_prod_t / alpha_prod_t_prev
            current_beta_t = 1 - current_alpha_t
            # x0 is affine in (output, x_t): read its two coefficients off the scheduler's own x0 formula
            origin = self._predicted_x0(zero, timestep, zero)
            rows["a"].append(self._predicted_x0(one, timestep, zero) - origin)
            rows["b"].append(self._predicted_x0(zero, timestep, one) - origin)
            rows["c"].append(alpha_prod_t_prev**0.5 * current_beta_t / beta_prod_t)
            rows["d"].append(current_alpha_t**0.5 * beta_prod_t_prev / beta_prod_t)
            if timestep == 0:
                rows["s"].append(zero)
            elif scheduler.config.variance_type == "fixed_small_log":
                rows["s"].append(scheduler._get_variance(timestep))  # already a standard deviation there
            else:
                rows["s"].append(scheduler._get_variance(timestep) ** 0.5)
        return {name: torch.stack(values).float().to(device) for name, values in rows.items()} | {
            "timesteps": scheduler.timesteps.to(device)
        }

    def _predicted_x0(self, model_output: torch.Tensor, timestep: int, sample: torch.Tensor) -> torch.Tensor:
        scheduler = self.scheduler
        if hasattr(scheduler, "get_x0_and_epsilon"):  # ExtendedDDPMScheduler: every prediction type, "mean" too
            return scheduler.get_x0_and_epsilon(model_output, timestep, sample)[0]
        alpha_prod_t = scheduler.alphas_cumprod[timestep]
        prediction_type = scheduler.config.prediction_type
        if prediction_type == "epsilon":
            return (sample - (1 - alpha_prod_t) ** 0.5 * model_output) / alpha_prod_t**0.5
        if prediction_type == "sample":
            return model_output
        if prediction_type == "v_prediction":
            return alpha_prod_t**0.5 * sample - (1 - alpha_prod_t) ** 0.5 * model_output
        raise ValueError(f"Compiled sampling does not know prediction_type {prediction_type!r}.")

    def _denoising_step(self, sample, step_index, noise, conditions, guidance_scale, use_guidance, tables):
        """
        One whole reverse step as tensors only (no host sync): what `enable_compiled_sampling` compiles. `step_index`
        is a one-element tensor, so that reading the tables is a gather on the device, never a Python integer.
        """

        def at_step(name):  # 0-dim, so that float32 tables keep a bf16 sample bf16, as in scheduler.step
            return tables[name].index_select(0, step_index).reshape(())

        model_input = torch.cat([sample, sample]) if use_guidance else sample
        timestep = tables["timesteps"].index_select(0, step_index)
        model_output = self.unet(model_input, timestep, class_labels=conditions).sample
        if use_guidance:
            conditional, unconditional = model_output.chunk(2)
            model_output = unconditional + guidance_scale * (conditional - unconditional)
        pred_original_sample = at_step("a") * model_output + at_step("b") * sample
        if self.scheduler.config.clip_sample:
            clip_range = self.scheduler.config.clip_sample_range
            pred_original_sample = pred_original_sample.clamp(-clip_range, clip_range)
        prev_sample = at_step("c") * pred_original_sample + at_step("d") * sample + at_step("s") * noise
        return prev_sample, pred_original_sample

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
        for name in COMPONENT_NAMES:
            library, class_name = config.get(name, (None, None))
            if library is None or "." in library or library in LOADABLE_LIBRARIES:
                continue
            local_class = _imported_class(class_name)
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
        of this file and of the scheduler's source in diffusers' custom-pipeline layout, so that plain diffusers loads
        the folder with `DiffusionPipeline.from_pretrained(path, trust_remote_code=True)`.

        Args:
            save_directory (`str` or `os.PathLike`): The folder to write.
            safe_serialization (`bool`, defaults to `True`): Must stay `True`: weights are saved as safetensors only.
            variant (`str`, *optional*): Weights variant, as in diffusers.
            push_to_hub (`bool`, defaults to `False`): Also upload the folder; `repo_id` (defaults to the folder's
                name), `token`, `private`, `commit_message` and `create_pr` are read from the keyword arguments.
        """
        if not safe_serialization:
            raise ValueError("safe_serialization=False is not supported: this pipeline saves safetensors only.")
        super().save_pretrained(save_directory, safe_serialization=True, variant=variant)
        index_path = os.path.join(save_directory, "model_index.json")
        with open(index_path) as f:
            model_index = json.load(f)
        model_index.pop("_name_or_path", None)  # a local path of the machine that saved it; not part of the model
        module_name = self._copy_source(type(self), save_directory)
        model_index["_class_name"] = [module_name, type(self).__name__]
        for name in COMPONENT_NAMES:
            component = getattr(self, name)
            if type(component).__module__.split(".")[0] not in LOADABLE_LIBRARIES:
                module_name = self._copy_source(type(component), os.path.join(save_directory, name))
                model_index[name] = [module_name, type(component).__name__]
        with open(index_path, "w") as f:
            json.dump(model_index, f, indent=2, sort_keys=True)
            f.write("\n")
        if push_to_hub:
            repo_id = kwargs.pop("repo_id", os.path.basename(os.path.normpath(save_directory)))
            token = kwargs.pop("token", None)
            repo_id = create_repo(repo_id, private=kwargs.pop("private", None), token=token, exist_ok=True).repo_id
            upload_folder(
                repo_id=repo_id,
                folder_path=save_directory,
                token=token,
                commit_message=kwargs.pop("commit_message", None) or f"Upload {type(self).__name__}",
                create_pr=kwargs.pop("create_pr", False),
            )

    @staticmethod
    def _copy_source(component_class: type, folder: str) -> str:
        """Copies the file that defines `component_class` into `folder`; returns its module name (file stem)."""
        source_file = inspect.getsourcefile(component_class)
        target = os.path.join(folder, os.path.basename(source_file))
        if os.path.abspath(source_file) != os.path.abspath(target):
            shutil.copyfile(source_file, target)
        return os.path.splitext(os.path.basename(source_file))[0]

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
            commit_message (`str`, *optional*): Defaults to "Upload DDPMCFGPipeline".
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

    @property
    def is_multi_label(self) -> bool:
        """True for a U-Net conditioned on a multi-hot vector (several labels per image, e.g. i-CLEVR)."""
        return "num_labels" in self.unet.config

    @property
    def num_classes(self) -> int | None:
        """K, the number of real classes (of labels, for a multi-label model), or None for an unconditional model."""
        if self.is_multi_label:
            return self.unet.config.num_labels
        num_class_embeds = self.unet.config.num_class_embeds
        return None if num_class_embeds is None else num_class_embeds - 1

    @property
    def id2label(self) -> dict[int, str]:
        stored = self.config.id2label
        if stored:  # in id order (model_index.json sorts its keys as strings: "0", "1", "10", "11", ..., "2")
            return {int(key): stored[key] for key in sorted(stored, key=int)}
        return {index: str(index) for index in range(self.num_classes or 0)}

    def _label_id(self, value, label2id: dict[str, int]) -> int:
        """One class (or label) given by name or id, as its id."""
        if isinstance(value, str) and value in label2id:
            return label2id[value]
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and 0 <= value < self.num_classes:
            return int(value)
        raise ValueError(
            f"Unknown class {value!r}; valid ids are 0..{self.num_classes - 1} and valid names are {list(label2id)}."
        )

    def null_conditions(self, batch_size: int) -> torch.Tensor:
        """The null condition of classifier-free guidance: class id K, or an all-zero multi-hot row."""
        if self.is_multi_label:
            return torch.zeros((batch_size, self.num_classes))
        return torch.full((batch_size,), self.num_classes, dtype=torch.long)

    def class_ids(self, class_labels, batch_size: int) -> torch.Tensor | None:
        """
        The U-Net's condition for `class_labels`: a tensor of class ids, or for a multi-label model a multi-hot tensor
        (batch_size, K). None when `class_labels` is None.
        """
        if class_labels is None:
            return None
        if self.num_classes is None:
            raise ValueError(
                "This model is unconditional (its U-Net has no class embedding); call it without class_labels."
            )
        if self.is_multi_label:
            return self._multi_hot(class_labels, batch_size)
        values = class_labels.tolist() if isinstance(class_labels, (torch.Tensor, np.ndarray)) else class_labels
        if isinstance(values, (int, str, np.integer)) and not isinstance(values, bool):
            values = [values] * batch_size
        if not isinstance(values, (list, tuple)):
            raise ValueError(
                f"class_labels must be a class id, a class name, or a list or tensor of them; got {class_labels!r}."
            )
        values = list(values)
        if len(values) != batch_size:
            raise ValueError(f"Got {len(values)} class_labels for batch_size {batch_size}; give one or {batch_size}.")
        label2id = {name: index for index, name in self.id2label.items()}
        return torch.tensor([self._label_id(value, label2id) for value in values], dtype=torch.long)

    def _multi_hot(self, class_labels, batch_size: int) -> torch.Tensor:
        """Conditions of a multi-label model (a list of label lists, or a multi-hot array) as a multi-hot tensor."""
        example = f"e.g. [{list(self.id2label.values())[:2]}] for one image"
        if isinstance(class_labels, (torch.Tensor, np.ndarray)):
            multi_hot = torch.as_tensor(class_labels).float()
            if (
                multi_hot.ndim != 2
                or multi_hot.shape[1] != self.num_classes
                or not ((multi_hot == 0) | (multi_hot == 1)).all()
            ):
                raise ValueError(
                    f"A multi-hot class_labels tensor must have shape (batch_size, {self.num_classes}) and hold only "
                    f"0 and 1; got shape {tuple(multi_hot.shape)}."
                )
        else:
            if not isinstance(class_labels, (list, tuple)) or not all(
                isinstance(condition, (list, tuple)) for condition in class_labels
            ):
                raise ValueError(
                    f"This model is multi-label: class_labels must be a list with one list of label names or ids per "
                    f"image ({example}), or a multi-hot tensor; got {class_labels!r}."
                )
            label2id = {name: index for index, name in self.id2label.items()}
            multi_hot = torch.zeros((len(class_labels), self.num_classes))
            for row, condition in enumerate(class_labels):
                ids = [self._label_id(value, label2id) for value in condition]
                if not ids or len(set(ids)) != len(ids):
                    raise ValueError(
                        f"Condition {row} {list(condition)!r} must name 1 or more labels, each once ({example})."
                    )
                multi_hot[row, ids] = 1
        if len(multi_hot) == 1:
            multi_hot = multi_hot.expand(batch_size, -1)
        if len(multi_hot) != batch_size:
            raise ValueError(f"Got {len(multi_hot)} conditions for batch_size {batch_size}; give one or {batch_size}.")
        return multi_hot

    def check_inputs(self, batch_size, num_inference_steps, guidance_scale, output_type):
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}.")
        num_train_timesteps = self.scheduler.config.num_train_timesteps
        if (
            not isinstance(num_inference_steps, int)
            or isinstance(num_inference_steps, bool)
            or not 1 <= num_inference_steps <= num_train_timesteps
        ):
            raise ValueError(
                f"num_inference_steps must be an integer in 1..{num_train_timesteps} (the scheduler's "
                f"num_train_timesteps), got {num_inference_steps!r}."
            )
        if (
            not isinstance(guidance_scale, (int, float))
            or isinstance(guidance_scale, bool)
            or not 0 <= guidance_scale < float("inf")
        ):
            raise ValueError(f"guidance_scale must be a finite number >= 0, got {guidance_scale!r}.")
        if not isinstance(output_type, str) or output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {list(OUTPUT_TYPES)}, got {output_type!r}.")
        if self.scheduler.config.get("prediction_type") == "mean" and not hasattr(
            self.scheduler, "get_x0_and_epsilon"
        ):
            raise ValueError(
                f"This model predicts the posterior mean (prediction_type='mean'), which "
                f"{type(self.scheduler).__name__} cannot step; sample it with ExtendedDDPMScheduler."
            )

    @torch.no_grad()
    def __call__(
        self,
        class_labels: int | str | list[int | str] | torch.Tensor | None = None,
        batch_size: int | None = None,
        guidance_scale: float = 3.0,
        num_inference_steps: int | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
    ) -> DDPMCFGPipelineOutput | tuple:
        """
        Args:
            class_labels (`int`, `str`, list of them, or `torch.Tensor`, *optional*): Class ids or names, one for
                the whole batch or one per image. For a multi-label model: one list of label names or ids per image
                (or a single list in a list, for all images), or a multi-hot tensor (N, K). Leave out for
                unconditional sampling.
            batch_size (`int`, *optional*): Number of images; defaults to len(class_labels) or 1.
            guidance_scale (`float`, defaults to 3.0): s in eps_uncond + s * (eps_cond - eps_uncond); the course's
                omega is s - 1. With s = 1 (or 0, or no labels) only one pass runs per step.
            num_inference_steps (`int`, *optional*): Reverse steps; defaults to the scheduler's num_train_timesteps.
            generator (`torch.Generator`, *optional*): Makes sampling deterministic.
            output_type (`str`, defaults to `"pil"`): `"pil"`, `"np"` (N, H, W, C) in [0, 1], or `"pt"`.
            return_dict (`bool`, defaults to `True`): Return a [`DDPMCFGPipelineOutput`] instead of a tuple.
            callback_on_step_end (`Callable`, *optional*): Called as `callback(pipe, step_index, timestep,
                callback_kwargs)` after every step with the tensors named in `callback_on_step_end_tensor_inputs`
                (`"sample"`: x_t after the step, `"pred_original_sample"`: the x0 prediction); may return a dict
                that replaces `"sample"`.
            callback_on_step_end_tensor_inputs (`list[str]`, *optional*): Defaults to `["sample"]`.

        Example:
            ```py
            >>> import torch
            >>> from ddpm_hf import DDPMCFGPipeline

            >>> pipe = DDPMCFGPipeline.from_pretrained("outputs/digits")
            >>> images = pipe(class_labels=["3", "7"], guidance_scale=3.0, generator=torch.manual_seed(0)).images
            ```
        """
        if batch_size is None:
            is_sequence = isinstance(class_labels, (list, tuple)) or getattr(class_labels, "ndim", 0) >= 1
            batch_size = len(class_labels) if is_sequence else 1
        if num_inference_steps is None:
            num_inference_steps = self.scheduler.config.num_train_timesteps
        self.check_inputs(batch_size, num_inference_steps, guidance_scale, output_type)
        tensor_inputs = callback_on_step_end_tensor_inputs or ["sample"]
        unknown = [name for name in tensor_inputs if name not in self._callback_tensor_inputs]
        if unknown:
            raise ValueError(f"Unknown callback tensor inputs {unknown}; choose from {self._callback_tensor_inputs}.")

        device = self._execution_device
        conditions = self.class_ids(class_labels, batch_size)
        if conditions is None and self.num_classes is not None:
            conditions = self.null_conditions(batch_size)
            guidance_scale = 1.0
        use_guidance = conditions is not None and guidance_scale != 1.0
        if use_guidance and guidance_scale == 0:
            conditions = self.null_conditions(batch_size)
            use_guidance = False
        if conditions is not None:
            if conditions.is_floating_point():
                conditions = conditions.to(dtype=self.unet.dtype)
            conditions = conditions.to(device)
            if use_guidance:
                conditions = torch.cat([conditions, self.null_conditions(batch_size).to(conditions)])

        config = self.unet.config
        shape = (batch_size, config.in_channels, config.sample_size, config.sample_size)
        sample = randn_tensor(shape, generator=generator, device=device, dtype=self.unet.dtype)
        sample = sample * self.scheduler.init_noise_sigma
        self.scheduler.set_timesteps(num_inference_steps, device=device)

        compiled_step = getattr(self, "_compiled_step", None)
        if compiled_step is not None:
            try:
                self._check_compiled_sampling_support()
            except ValueError as reason:
                logger.warning(f"{reason} Sampling with the plain loop.")
                compiled_step = None
        if compiled_step is not None:
            tables = self._step_tables(device)
            step_indices = torch.arange(len(self.scheduler.timesteps), device=device)[:, None]
            no_noise = torch.zeros_like(sample)
            guidance = torch.tensor(float(guidance_scale), device=device)  # a tensor: new scales need no recompile
            for step_index, timestep in enumerate(self.progress_bar(self.scheduler.timesteps.tolist())):
                # drawn as scheduler.step draws it: same generator, same order, none at t = 0
                noise = (
                    randn_tensor(shape, generator=generator, device=device, dtype=sample.dtype)
                    if timestep > 0
                    else no_noise
                )
                torch.compiler.cudagraph_mark_step_begin()
                sample, pred_original_sample = compiled_step(
                    sample, step_indices[step_index], noise, conditions, guidance, use_guidance, tables
                )
                sample = sample.clone()  # a CUDA graph's output buffer is overwritten by its next replay
                if callback_on_step_end is not None:
                    sample = self._run_step_callback(
                        callback_on_step_end, tensor_inputs, step_index, timestep, sample, pred_original_sample.clone()
                    )
            return self._finish(sample, output_type, return_dict)

        for step_index, timestep in enumerate(self.progress_bar(self.scheduler.timesteps)):
            model_input = self.scheduler.scale_model_input(sample, timestep)
            if use_guidance:
                model_input = torch.cat([model_input, model_input])
            model_output = self.unet(model_input, timestep, class_labels=conditions).sample
            if use_guidance:
                conditional, unconditional = model_output.chunk(2)
                model_output = unconditional + guidance_scale * (conditional - unconditional)
            step = self.scheduler.step(model_output, timestep, sample, generator=generator)
            sample = step.prev_sample
            if callback_on_step_end is not None:
                sample = self._run_step_callback(
                    callback_on_step_end, tensor_inputs, step_index, timestep, sample,
                    getattr(step, "pred_original_sample", None),
                )  # fmt: skip
        return self._finish(sample, output_type, return_dict)

    def _run_step_callback(self, callback, tensor_inputs, step_index, timestep, sample, pred_original_sample):
        """Call `callback_on_step_end` with the requested tensors; return the sample it hands back, else `sample`."""
        available = {"sample": sample, "pred_original_sample": pred_original_sample}
        callback_kwargs = {name: available[name] for name in tensor_inputs}
        returned = callback(self, step_index, timestep, callback_kwargs) or {}
        return returned.get("sample", sample)

    def _finish(self, sample, output_type, return_dict):
        images = (sample / 2 + 0.5).clamp(0, 1)
        if output_type != "pt":
            images = images.cpu().permute(0, 2, 3, 1).float().numpy()
            if output_type == "pil":
                images = self.numpy_to_pil(images)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images,)
        return DDPMCFGPipelineOutput(images=images)
