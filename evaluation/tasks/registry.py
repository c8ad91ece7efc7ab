"""The registry of tasks and suites, read from YAML declarations.

Building a registry parses only the YAML declarations (fast: done at service start); a task's
data is read the first time it is asked for and then kept by that registry instance.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from evaluation.hashing import content_hash
from evaluation.tasks.sources import DATA_DIR, load_source
from evaluation.tasks.spec import LoadedTask, TaskSpec, load_task

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
TASKS_DIR = PACKAGE_DIR  # the task declarations sit beside the code that reads them
SUITES_DIR = PACKAGE_DIR / "suites"


@dataclass(frozen=True)
class SuiteSpec:
    name: str
    description: str
    patterns: tuple[str, ...]
    """Task names or ``fnmatch`` patterns, e.g. ``safety.adversarial.*``."""


@dataclass(frozen=True)
class Suite:
    name: str
    version: str
    tasks: tuple[LoadedTask, ...]


class Registry:
    def __init__(
        self, tasks: Sequence[TaskSpec], suites: Sequence[SuiteSpec], data_dir: Path = DATA_DIR
    ) -> None:
        self._tasks = {task.name: task for task in tasks}
        if len(self._tasks) != len(tasks):
            raise ValueError("duplicate task names")
        self._suites = {suite.name: suite for suite in suites}
        self._data_dir = data_dir
        self._loaded: dict[str, LoadedTask] = {}

    @classmethod
    def from_directories(
        cls, tasks_dir: Path = TASKS_DIR, suites_dir: Path = SUITES_DIR, data_dir: Path = DATA_DIR
    ) -> Registry:
        tasks = [
            TaskSpec.from_mapping(raw)
            for path in _yaml_files(tasks_dir)
            for raw in _read(path).get("tasks", [])
        ]
        suites = [_suite_spec(_read(path)) for path in _yaml_files(suites_dir)]
        return cls(tasks, suites, data_dir)

    def task_names(self) -> list[str]:
        return sorted(self._tasks)

    def suite_names(self) -> list[str]:
        return sorted(self._suites)

    def task(self, name: str) -> TaskSpec:
        return self._tasks[name]

    def load(self, name: str) -> LoadedTask:
        """The task with its data; read once per registry instance."""
        if name not in self._loaded:
            spec = self._tasks[name]
            self._loaded[name] = load_task(spec, load_source(spec.source, self._data_dir))
            log.info("evaluation.task.loaded", extra={"task": name, "version": self._loaded[name].version})
        return self._loaded[name]

    def suite_task_names(self, name: str) -> list[str]:
        patterns = self._suites[name].patterns
        names = [task for task in self.task_names() if any(fnmatch.fnmatchcase(task, p) for p in patterns)]
        missing = [p for p in patterns if not any(fnmatch.fnmatchcase(t, p) for t in self._tasks)]
        if missing:
            raise KeyError(f"suite {name}: no task matches {missing}")
        return names

    def suite(self, name: str) -> Suite:
        """The suite with every task loaded; its version hashes the task versions."""
        tasks = tuple(self.load(task) for task in self.suite_task_names(name))
        version = content_hash({"suite": name, "tasks": [[t.name, t.version] for t in tasks]})
        return Suite(name=name, version=version, tasks=tasks)


def default_registry() -> Registry:
    """A fresh registry over the declarations shipped in this package."""
    return Registry.from_directories()


def _yaml_files(folder: Path) -> list[Path]:
    return sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])


def _read(path: Path) -> Mapping[str, Any]:
    return (
        yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        or {}
    )


def _suite_spec(raw: Mapping[str, Any]) -> SuiteSpec:
    return SuiteSpec(
        name=str(raw["name"]), description=str(raw.get("description", "")), patterns=tuple(raw["tasks"])
    )
