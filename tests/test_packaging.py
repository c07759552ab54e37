"""pyproject.toml and the conda environment carry the same pins."""
import re
import tomllib

import yaml

from conftest import REPO


def pins(requirements):
    return {re.split(r"[=<>!~]", r, maxsplit=1)[0].strip().lower(): r.replace(" ", "") for r in requirements}


def test_conda_env_pins_equal_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((REPO / "envs/soundclf.yaml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pins(pip_section) == pins(project["dependencies"])
    assert all("==" in r for r in project["dependencies"]), "every runtime dependency is pinned"


def test_torch_pins_are_the_ones_this_project_needs():
    deps = pins(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"])
    assert deps["torch"] == "torch==2.14.1"
    assert deps["torchaudio"] == "torchaudio==2.11.0"
    assert deps["torchvision"] == "torchvision==0.29.1"
