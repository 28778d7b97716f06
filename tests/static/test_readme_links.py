"""Every link between the READMEs leads somewhere: the file exists, and so does the
section an anchor names (as GitHub spells anchors: lower case, punctuation dropped,
spaces as hyphens)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support import REPO

READMES = sorted(
    path
    for path in REPO.glob("**/README.md")
    if not any(part.startswith(".") for part in path.relative_to(REPO).parts)
    and "results" not in path.relative_to(REPO).parts
)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    in_code = False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not line.startswith("#"):
            continue
        title = line.lstrip("#").strip().lower()
        slug = re.sub(r"[^\w\- ]", "", title).replace(" ", "-")
        found.add(slug)
    return found


def local_links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL)
    return [link for link in LINK.findall(text) if not re.match(r"^[a-z]+://|^mailto:", link)]


def test_the_main_readme_and_every_folder_readme_are_found() -> None:
    names = {str(path.relative_to(REPO)) for path in READMES}
    assert {"README.md", "api/README.md", "lab/README.md", "locust/README.md"} <= names


@pytest.mark.parametrize("readme", READMES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_local_link_and_anchor_resolves(readme: Path) -> None:
    broken = []
    for link in local_links(readme):
        target, _, anchor = link.partition("#")
        path = (readme.parent / target).resolve() if target else readme
        if not path.exists():
            broken.append(f"{link}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{link}: no such section")
    assert not broken, broken
