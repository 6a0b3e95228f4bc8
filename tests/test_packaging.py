"""What a user gets from a package index: the project's addresses, a README whose links work
away from the repository."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
URL_LABELS = {"Homepage", "Documentation", "Changelog", "Issues", "Source"}


def _project() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        project: dict[str, Any] = tomllib.load(f)["project"]
    return project


def _repository_path(url: str, source: str) -> str | None:
    """The path inside the repository that ``url`` shows (``blob``/``tree`` on main), if any."""
    match = re.fullmatch(re.escape(source) + r"/(?:blob|tree)/main/(.+)", url)
    return match[1] if match else None


def test_project_urls_name_the_repository_and_files_in_it() -> None:
    urls: dict[str, str] = _project()["urls"]
    assert set(urls) == URL_LABELS
    source = urls["Source"]
    assert source.startswith("https://")
    for label, url in urls.items():
        assert url.startswith(source), (label, url)
        path = _repository_path(url, source)
        if path is not None:
            assert (ROOT / path).exists(), (label, url)


def test_readme_links_work_on_a_package_index() -> None:
    # PyPI shows the README without the repository: a relative link there is dead.
    readme = (ROOT / "README.md").read_text()
    source = _project()["urls"]["Source"]
    inline = re.findall(r"\]\(([^)\s]+)\)", readme)
    definitions = dict(re.findall(r"^\[([^\]]+)\]:\s*(\S+)", readme, re.MULTILINE))
    assert inline or definitions
    for link in [*inline, *definitions.values()]:
        assert link.startswith(("https://", "#")), f"relative link in README.md: {link}"
        path = _repository_path(link, source)
        if path is not None:
            assert (ROOT / path).exists(), f"README.md links to a missing file: {link}"
    # A reference without its definition is shown as plain brackets.
    used = re.findall(r"\]\[([^\]]*)\]", readme) + re.findall(r"\[([^\]]+)\]\[\]", readme)
    defined = {label.lower() for label in definitions}
    missing = {label for label in used if label and label.lower() not in defined}
    assert not missing, f"README.md uses undefined link references: {sorted(missing)}"
