"""envs/*.yaml (for --software-deployment-method conda) stay consistent with pyproject.toml."""

import re
import tomllib

import yaml

from tests.conftest import ROOT

CONDA_NAMES = {"pillow": "pillow", "pyyaml": "pyyaml"}


def _name(req: str) -> str:
    return re.split(r"[=<>!~\[ ]", req.strip(), maxsplit=1)[0].lower()


def _deps():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {_name(d): d for d in pyproject["project"]["dependencies"]}


def test_env_packages_are_project_dependencies_with_the_same_pins():
    deps = _deps()
    union = set()
    for env in sorted((ROOT / "envs").glob("*.yaml")):
        spec = yaml.safe_load(env.read_text())
        items = []
        for d in spec["dependencies"]:
            items += d["pip"] if isinstance(d, dict) else [d]
        for item in items:
            if item.startswith("-e") or _name(item) in ("python", "pip"):
                continue
            name = _name(item)
            assert name in deps, f"{env.name}: {name} is not a dependency in pyproject.toml"
            if "==" in deps[name]:
                assert item.replace(" ", "") == deps[name].replace(" ", ""), f"{env.name}: {item} != {deps[name]}"
            union.add(name)
        assert any(str(i).startswith("-e") for i in items), f"{env.name} must install spurlab itself"
    workflow_only = {"snakemake", "snakemake-executor-plugin-slurm"}  # the driver, not the jobs
    assert set(deps) - workflow_only <= union, f"missing from envs: {set(deps) - workflow_only - union}"


def test_every_rule_names_an_existing_env():
    for smk in (ROOT / "rules").glob("*.smk"):
        for env in re.findall(r'conda:\s*\n\s*"([^"]+)"', smk.read_text()):
            assert (smk.parent / env).resolve().is_file(), f"{smk.name}: {env} does not exist"
