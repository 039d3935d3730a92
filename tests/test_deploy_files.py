"""The deployment files say only true things: they parse, they set only real
settings, they run only real commands, and the image installs the wheel the
way CI's smoke test does (deploy/README.md says why they are not run here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from http_facade.settings import FacadeSettings
from ledger_client.settings_kit import env_names
from ledger_service.settings import Settings

from .conftest import ROOT

DEPLOY = ROOT / "deploy"
YAML_FILES = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])
SETTINGS = set(env_names(Settings)) | set(env_names(FacadeSettings))
_VARIABLE = re.compile(r"\b((?:LEDGER|FACADE)_[A-Z0-9_]+)\b")


@pytest.mark.parametrize("path", YAML_FILES, ids=[str(p.relative_to(DEPLOY)) for p in YAML_FILES])
def test_every_yaml_file_parses(path: Path):
    documents = [document for document in yaml.safe_load_all(path.read_text()) if document]
    assert documents


def test_kustomization_names_only_files_that_exist():
    kustomization = yaml.safe_load((DEPLOY / "kubernetes" / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (DEPLOY / "kubernetes" / resource).is_file(), resource


def _set_variables() -> dict[str, set[str]]:
    """Variables each file sets: YAML keys and systemd Environment= lines."""
    found: dict[str, set[str]] = {}
    for path in [*YAML_FILES, *DEPLOY.glob("systemd/*.service"), DEPLOY / "Containerfile"]:
        text = path.read_text()
        names = set()
        for line in text.splitlines():
            stripped = line.strip().lstrip("-").strip()
            if stripped.startswith("#"):
                continue
            names |= {
                match
                for match in _VARIABLE.findall(stripped)
                if stripped.startswith((match, "Environment=", "name: " + match, "- name: "))
                or f"{match}=" in stripped
                or f"{match}:" in stripped
            }
        found[str(path.relative_to(DEPLOY))] = names
    return found


def test_every_variable_the_files_set_is_a_real_setting():
    used = _set_variables()
    assert used["compose.yaml"] and used["kubernetes/settings.yaml"]
    unknown = {path: sorted(names - SETTINGS) for path, names in used.items() if names - SETTINGS}
    assert unknown == {}


def test_every_command_the_files_run_exists():
    # `ledger-service serve`, `["ledger-service", "migrate"]`: the word after the program.
    commands = re.compile(r"ledger-service(?![.\w-])[\"', ]+([a-z][\w-]*)")
    text = "\n".join(p.read_text() for p in DEPLOY.rglob("*") if p.is_file())
    words = set(commands.findall(text))
    assert words and words <= {"serve", "migrate", "check-config"}, words
    assert "--no-migrate" in (DEPLOY / "kubernetes" / "ledger.yaml").read_text()


def test_the_image_installs_the_wheel_as_ci_does():
    smoke = (DEPLOY / "wheel-smoke.sh").read_text().replace('"', "")
    image = (DEPLOY / "Containerfile").read_text()
    for step in ("pip install --quiet build", "-m build --wheel --outdir"):
        assert step in smoke and step in image, step
    assert re.search(r"pip install --quiet \S*\.whl", image)
    assert "USER ledger" in image and "HEALTHCHECK" in image
    assert "LimitNOFILE=65536" in (DEPLOY / "systemd" / "ledger-facade.service").read_text()
