"""`make serve` / `make test` install what they say: every extra of pyproject.toml, into the
.venv these tests run in, and the README says so; `--test` installs the browser the browser
tests need, strictly under CI."""

import os
import re
import subprocess
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

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


# ---------------------------------------------------------- Chromium for tests/browser
# `bootstrap.sh --test` run for real, with CHROMIUM aimed at a file of the test's choosing and
# a stand-in apt-get first on PATH that logs its arguments (and, when told, "installs" the
# browser by creating that file): what the script does about a missing browser, without
# touching the machine's packages.

APT_GET_STUB = """#!/bin/sh
echo "$*" >> "{log}"
case "$1" in install) [ -n "{creates}" ] && printf '#!/bin/sh\\n' > "{creates}" \\
    && chmod +x "{creates}" ;; esac
exit {status}
"""


def _bootstrap_with_stub_apt(
    tmp_path: Path, *, chromium: Path, ci: bool, status: int = 0, creates: bool = False
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    stubs = tmp_path / "bin"
    stubs.mkdir(exist_ok=True)
    log = tmp_path / "apt-get.log"
    apt_get = stubs / "apt-get"
    apt_get.write_text(
        APT_GET_STUB.format(log=log, creates=chromium if creates else "", status=status)
    )
    apt_get.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update(
        PATH=f"{stubs}:{env['PATH']}", CHROMIUM=str(chromium), **({"CI": "true"} if ci else {})
    )
    done = subprocess.run(
        ["bash", str(REPO / "scripts/bootstrap.sh"), "--test"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done, log.read_text().splitlines() if log.exists() else []


def test_bootstrap_leaves_apt_alone_when_chromium_is_there(tmp_path):
    chromium = tmp_path / "chromium"
    chromium.write_text("#!/bin/sh\n")
    chromium.chmod(0o755)
    done, apt = _bootstrap_with_stub_apt(tmp_path, chromium=chromium, ci=True)
    assert done.returncode == 0, done.stderr
    assert apt == []


@pytest.mark.skipif(os.geteuid() != 0, reason="apt-get runs only as root (or with sudo -n)")
def test_bootstrap_installs_chromium_and_its_driver_when_missing(tmp_path):
    chromium = tmp_path / "chromium"
    done, apt = _bootstrap_with_stub_apt(tmp_path, chromium=chromium, ci=True, creates=True)
    assert done.returncode == 0, done.stderr
    assert apt == ["update -qq", "install -y -qq chromium chromium-driver"]
    assert chromium.exists()


def test_bootstrap_under_ci_fails_when_chromium_cannot_be_installed(tmp_path):
    done, _ = _bootstrap_with_stub_apt(tmp_path, chromium=tmp_path / "chromium", ci=True, status=1)
    assert done.returncode == 1
    assert "ERROR" in done.stderr and "chromium" in done.stderr


def test_bootstrap_elsewhere_warns_when_chromium_cannot_be_installed(tmp_path):
    done, _ = _bootstrap_with_stub_apt(tmp_path, chromium=tmp_path / "chromium", ci=False, status=1)
    assert done.returncode == 0, done.stderr
    assert "WARNING" in done.stderr and "chromium" in done.stderr


def test_bootstrap_under_ci_fails_when_apt_installs_no_chromium(tmp_path):
    """apt-get said yes but the binary the tests launch is still not there."""
    done, _ = _bootstrap_with_stub_apt(tmp_path, chromium=tmp_path / "chromium", ci=True)
    assert done.returncode == 1
    assert "still missing" in done.stderr
