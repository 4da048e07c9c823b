"""How the package installs: one top-level module (ddpm_hf, with the pipelines inside it), and pipeline files that
can travel with a saved model (they import nothing of ddpm_hf)."""

import ast
import importlib.metadata
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What a saved pipeline folder's source copies may import: the standard library and these.
TRAVELLING_IMPORTS = {"torch", "numpy", "PIL", "diffusers", "huggingface_hub"}


def test_the_installed_distribution_has_one_top_level_module():
    top_level = importlib.metadata.distribution("ddpm-hf").read_text("top_level.txt")
    assert top_level.split() == ["ddpm_hf"]


def test_outside_the_repository_pipelines_is_not_a_module_and_ddpm_hf_pipelines_is(tmp_path):
    script = (
        "import importlib.util, ddpm_hf\n"
        "assert importlib.util.find_spec('pipelines') is None, importlib.util.find_spec('pipelines')\n"
        "from ddpm_hf import DDPMCFGPipeline, DDPM2DPipeline\n"
        "print(DDPMCFGPipeline.__module__, DDPM2DPipeline.__module__)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["ddpm_hf.pipelines.pipeline_ddpm_cfg", "ddpm_hf.pipelines.pipeline_ddpm_2d"]


def test_pyproject_lists_every_package():
    tomllib = pytest.importorskip("tomllib")
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        setuptools_config = tomllib.load(f)["tool"]["setuptools"]
    found = {"ddpm_hf.pipelines"}
    for root, _, files in os.walk(os.path.join(REPO, "ddpm_hf")):
        if "__init__.py" in files and "__pycache__" not in root:
            found.add(os.path.relpath(root, REPO).replace(os.sep, "."))
    assert set(setuptools_config["packages"]) == found
    assert setuptools_config["package-dir"] == {"ddpm_hf.pipelines": "pipelines"}


def imported_modules(path: str) -> tuple[set[str], set[str]]:
    """(absolute top-level modules, relative sibling modules) that a file imports."""
    absolute, relative = set(), set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            absolute |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                absolute.add(node.module.split(".")[0])
            else:
                assert node.level == 1 and node.module, f"{path}: only 'from .module import name' travels"
                relative.add(node.module)
    return absolute, relative


@pytest.mark.parametrize(
    "name", sorted(name for name in os.listdir(os.path.join(REPO, "pipelines")) if name.endswith(".py"))
)
def test_pipeline_modules_import_only_what_travels(name):
    absolute, relative = imported_modules(os.path.join(REPO, "pipelines", name))
    standard_library = set(sys.stdlib_module_names)
    assert absolute - standard_library <= TRAVELLING_IMPORTS, name  # never ddpm_hf: no import loop, and it travels
    assert all(os.path.isfile(os.path.join(REPO, "pipelines", f"{module}.py")) for module in relative)


def test_the_cfg_pipeline_imports_every_helper_itself():
    # diffusers copies the modules a pipeline file imports relatively, but not theirs in turn: the helpers of
    # pipeline_ddpm_cfg.py must all be imported by it directly.
    _, direct = imported_modules(os.path.join(REPO, "pipelines", "pipeline_ddpm_cfg.py"))
    for module in direct:
        _, nested = imported_modules(os.path.join(REPO, "pipelines", f"{module}.py"))
        assert nested <= direct, (module, nested - direct)
