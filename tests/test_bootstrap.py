"""`make serve` / `make test` install what they say: every extra of pyproject.toml, into the
.venv these tests run in, and the README says so."""

import re
import tomllib
from importlib.metadata import PackageNotFoundError, version

from tests.conftest import REPO

EXTRAS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def _bootstrap_extras() -> set[str]:
    found = re.search(r'^EXTRAS="([a-z,]+)"', (REPO / "scripts/bootstrap.sh").read_text(), re.M)
    assert found, "scripts/bootstrap.sh sets EXTRAS=... for its pip install"
    return set(found[1].split(","))


def test_bootstrap_installs_every_extra():
    assert _bootstrap_extras() == set(EXTRAS)


def test_every_extra_is_installed_in_the_venv():
    """What a .venv made by an older bootstrap lacked (uvloop): the stamp now covers the
    extras, so bootstrap installs them again."""
    missing = []
    for extra, requirements in EXTRAS.items():
        for requirement in requirements:
            name = re.match(r"[A-Za-z0-9._-]+", requirement)[0]
            try:
                version(name)
            except PackageNotFoundError:
                missing.append(f"{name} ({extra})")
    assert missing == []


def test_the_readme_says_what_make_serve_installs():
    readme = (REPO / "README.md").read_text()
    line = next(x for x in readme.splitlines() if x.startswith("make serve"))
    assert all(extra in line for extra in EXTRAS), line
