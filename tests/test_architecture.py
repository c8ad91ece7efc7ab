"""The folder table of ../shared/ARCHITECTURE.md, checked by import-linter and by grimp's import graph.

The contracts live in ``[tool.importlinter]`` of pyproject.toml. The last tests run the same contracts
on a tiny made-up project with one broken import each (direct, and through a chain of modules), so a
contract that could never fail would show up here.
"""

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = ("core", "server", "arena", "evaluation", "inference", "ranking")
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300,
                          check=False, env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"})


def test_import_contracts_hold() -> None:
    result = subprocess.run([str(LINT), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_ranking_imports_numpy_and_scipy_only() -> None:
    """`ranking` is pure maths: besides the standard library, numpy and scipy, nothing at all."""
    graph = grimp.build_graph("ranking", include_external_packages=True)
    external = {m.split(".")[0] for m in graph.modules if not m.startswith("ranking")}
    assert external - set(sys.stdlib_module_names) <= {"numpy", "scipy"}, external


@pytest.mark.parametrize("domain", ["core", "arena", "evaluation", "inference", "ranking"])
def test_no_domain_imports_the_web_layer(domain: str) -> None:
    graph = grimp.build_graph(*OURS)
    chains = graph.find_shortest_chains(importer=domain, imported="server", as_packages=True)
    assert not chains, f"{domain} reaches server through {sorted(chains)}"


# --- the contracts can fail -----------------------------------------------------------------------


def _made_up_project(tmp_path: Path, modules: dict[str, str]) -> Path:
    """Our six top-level packages, empty but for ``modules``, under our own import contracts."""
    for package in OURS:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    modules = {"inference.openai_server": "import fastapi\n", **modules}  # the one adapter allowed FastAPI
    for name, source in modules.items():
        (tmp_path / f"{name.replace('.', '/')}.py").write_text(textwrap.dedent(source))
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    lines = ["[importlinter]", f"root_packages =\n    {chr(10).join('    ' + p for p in OURS).strip()}",
             "include_external_packages = True"]
    for k, contract in enumerate(contracts["contracts"]):
        lines.append(f"\n[importlinter:contract:{k}]")
        for key, value in contract.items():
            lines.append(f"{key} =\n    " + "\n    ".join(value) if isinstance(value, list) else f"{key} = {value}")
    (tmp_path / ".importlinter").write_text("\n".join(lines) + "\n")
    return tmp_path


BROKEN = {
    "a domain imports the web layer": {"arena.votes": "import server.app\n", "server.app": ""},
    "a domain reaches the web layer through a chain": {
        "evaluation.run": "import core.helpers\n",
        "core.helpers": "import server.runtime\n",
        "server.runtime": "",
    },
    "ranking imports the database": {"ranking.fit": "import core.db\n", "core.db": ""},
    "evaluation imports the arena": {"evaluation.jobs": "import arena.service\n", "arena.service": ""},
    "a domain imports FastAPI": {"arena.service": "import fastapi\n"},
    "core imports a domain": {"core.registry": "import evaluation.models\n", "evaluation.models": ""},
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_contract_fails(tmp_path: Path, case: str) -> None:
    result = _lint(_made_up_project(tmp_path, BROKEN[case]))
    assert result.returncode != 0, result.stdout + result.stderr
    assert "1 broken" in result.stdout or "2 broken" in result.stdout, result.stdout + result.stderr


def test_the_made_up_project_passes_when_nothing_is_broken(tmp_path: Path) -> None:
    """The check above fails for the broken import, not for the made-up project itself."""
    fine = {"server.app": "import arena.votes\n", "arena.votes": "import evaluation.run\n",
            "evaluation.run": "import core.db\nimport ranking.fit\n", "core.db": "", "ranking.fit": "import numpy\n"}
    result = _lint(_made_up_project(tmp_path, fine))
    assert result.returncode == 0, result.stdout + result.stderr
