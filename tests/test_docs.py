"""The documentation stays true to the code: the site builds with `mkdocs build --strict` (a broken link or anchor
fails), the reference tables are what the app generates, every option the docs name exists, the README's links
resolve, the README stays a front page, and the layout page names every package and module."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from doc_examples import (
    DOCS,
    ROOT,
    blocks,
    codescaler_command,
    command_lines,
    options_named,
    pages,
    prose,
    stages,
    tokens,
)

PACKAGE = ROOT / "codescaler_cli"
# Options of other programs that the docs name in prose, and whose they are.
FOREIGN_OPTIONS = {
    "--runner": "vLLM's api_server",
    "--remote_rm_url": "OpenRLHF",
    "--openai-api-base": "aider",
    "--strict": "mkdocs build",
}


def _load_reference_tables() -> ModuleType:
    spec = importlib.util.spec_from_file_location("reference_tables", DOCS / "reference_tables.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reference_tables = _load_reference_tables()
COMMANDS = {path: command for path, command in reference_tables.commands()}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built once with --strict into a temporary directory."""
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def test_site_builds_strictly_with_every_page_in_the_nav(site: Path) -> None:
    for page in DOCS.glob("*.md"):
        built = site / "index.html" if page.stem == "index" else site / page.stem / "index.html"
        assert built.is_file(), f"{page.name} was not built"


def test_strict_build_fails_on_a_broken_anchor(tmp_path: Path) -> None:
    """The validation settings really make a broken anchor fatal (a copy of the site with one bad link)."""
    copy = tmp_path / "project"
    (copy / "docs").mkdir(parents=True)
    for page in DOCS.iterdir():
        if page.is_file():
            (copy / "docs" / page.name).write_bytes(page.read_bytes())
    (copy / "docs" / "images").symlink_to(DOCS / "images")
    (copy / "mkdocs.yml").write_bytes((ROOT / "mkdocs.yml").read_bytes())
    with (copy / "docs" / "cpu.md").open("a", encoding="utf-8") as page:
        page.write("\nSee [the records](reference.md#no-such-section).\n")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=copy, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode != 0
    assert "no-such-section" in done.stdout + done.stderr


def test_reference_tables_are_generated_from_the_app() -> None:
    page = (DOCS / "reference.md").read_text(encoding="utf-8")
    assert reference_tables.updated(page) == page, \
        "docs/reference.md is out of date with the command line: run `python docs/reference_tables.py`"


def test_every_command_and_option_is_in_the_reference() -> None:
    page = (DOCS / "reference.md").read_text(encoding="utf-8")
    sections = re.split(r"^### ", page, flags=re.M)
    for path, command in COMMANDS.items():
        section = next((s for s in sections if s.startswith(path + "\n")), None)
        assert section is not None, f"docs/reference.md has no section for `{path}`"
        missing = sorted(name for name in reference_tables.option_names(command) - {"--help", "-h"}
                         if f"`{name}`" not in section)
        assert not missing, f"docs/reference.md, `{path}`: options missing: {missing}"


def _command_for(path: list[str]) -> object | None:
    return COMMANDS.get(" ".join(["codescaler", *path]))


def test_every_option_in_an_example_exists_for_its_command() -> None:
    """Each `codescaler ...` line of every example (run or not) names only options its command has; so does each
    `python bench/*.py` line for the script's own options."""
    problems = []
    for page in pages():
        for block in blocks(page):
            if block.language != "sh":
                continue
            for line in command_lines(block):
                for stage in stages(tokens(line)):
                    found = codescaler_command(stage)
                    if found is not None:
                        path, words = found
                        command = _command_for(path)
                        if command is None:
                            problems.append(f"{block.where}: no command `codescaler {' '.join(path)}`: {line}")
                            continue
                        unknown = set(options_named(words)) - reference_tables.option_names(command)
                        problems += [f"{block.where}: `codescaler {' '.join(path)}` has no option {name}: {line}"
                                     for name in sorted(unknown)]
                    scripts = [w for w in stage if re.fullmatch(r"bench/\w+\.py", w)]
                    if scripts and (ROOT / scripts[0]).is_file():
                        source = (ROOT / scripts[0]).read_text(encoding="utf-8")
                        problems += [f"{block.where}: {scripts[0]} has no option {name}: {line}"
                                     for name in options_named(stage[stage.index(scripts[0]) + 1:])
                                     if f'"{name}"' not in source]
                    elif scripts:
                        problems.append(f"{block.where}: no such script {scripts[0]}")
    assert not problems, "\n".join(problems)


def _all_options() -> set[str]:
    import typer.main

    from codescaler_cli.cli import app

    names = set().union(*(reference_tables.option_names(c) for c in COMMANDS.values()))
    names |= reference_tables.option_names(typer.main.get_command(app))  # --debug, --version
    for script in [*(ROOT / "bench").glob("*.py"), ROOT / "tests" / "tiny_models.py"]:
        names.update(re.findall(r'"(--[\w-]+)"', script.read_text(encoding="utf-8")))
    return names | set(FOREIGN_OPTIONS)


def test_every_option_named_in_the_prose_exists() -> None:
    """An option in inline code (`--top-k`, `--max-length 4096`) is some command's, a benchmark's, or a named other
    program's: a renamed option cannot live on in the docs."""
    known = _all_options()
    problems = []
    for page in pages():
        for span in re.findall(r"`([^`\n]+)`", prose(page)):
            for name in re.findall(r"(?<![\w-])(--[a-z][\w-]*)", span):
                if name not in known:
                    problems.append(f"{page.relative_to(ROOT)}: `{span}` names {name}, which no command has")
    assert not problems, "\n".join(problems)


def _anchor_exists(site: Path, page: Path, anchor: str) -> bool:
    built = site / "index.html" if page.stem == "index" else site / page.stem / "index.html"
    return f'id="{anchor}"' in built.read_text(encoding="utf-8")


def test_readme_links_resolve(site: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    problems = []
    for target in re.findall(r"\]\(([^)\s]+)\)", readme):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        file = ROOT / path
        if not file.exists():
            problems.append(f"README.md links to {target}: no such file")
        elif anchor and not (file.suffix == ".md" and file.parent == DOCS and _anchor_exists(site, file, anchor)):
            problems.append(f"README.md links to {target}: no such anchor in the built page")
    assert not problems, "\n".join(problems)


def test_readme_is_a_front_page() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines: move detail into docs/ (at most ~300)"
    commands = {path.split()[1] for path in COMMANDS}
    examples = " ".join(block.text for block in blocks(ROOT / "README.md") if block.language == "sh")
    missing = sorted(name for name in commands if f"codescaler {name}" not in examples)
    assert not missing, f"README.md has no example of: {missing}"


def _layout_rows() -> dict[str, str]:
    """The layout table: path → its modules cell."""
    rows = {}
    for line in (DOCS / "layout.md").read_text(encoding="utf-8").splitlines():
        match = re.match(r"\| `(codescaler_cli/[^`]*)` \|.*\| *(.*?) *\|$", line)
        if match:
            rows[match.group(1)] = match.group(2)
    return rows


def test_layout_names_every_package_and_module() -> None:
    rows = _layout_rows()
    expected = {f"codescaler_cli/{p.name}" for p in PACKAGE.glob("*.py")}
    expected |= {f"codescaler_cli/{p.parent.name}/" for p in PACKAGE.glob("*/__init__.py")}
    assert set(rows) >= expected, f"docs/layout.md has no row for: {sorted(expected - set(rows))}"
    for path, modules in rows.items():
        if path.endswith("/"):
            actual = ", ".join(f"`{p.stem}`" for p in sorted((ROOT / path).glob("*.py")) if p.stem != "__init__")
            assert modules == actual, f"docs/layout.md, row {path}: the modules cell should read: {actual}"


def test_every_package_path_the_docs_name_exists() -> None:
    problems = []
    for page in pages():
        for path in re.findall(r"`(codescaler_cli/[\w/.]*)`", page.read_text(encoding="utf-8")):
            if not (ROOT / path).exists():
                problems.append(f"{page.relative_to(ROOT)} names {path}, which does not exist")
    assert not problems, "\n".join(problems)


def test_example_markers_are_well_formed() -> None:
    """Every page parses (a misspelt marker is an error), every skipped example says why, and a test a reason names
    as running the example exists."""
    for page in pages():
        for block in blocks(page):
            if block.skip is None:
                continue
            assert len(block.skip.split()) >= 2, f"{block.where}: give a reason to skip"
            for file, name in re.findall(r"(tests/\w+\.py)::(\w+)", block.skip):
                source = (ROOT / file).read_text(encoding="utf-8") if (ROOT / file).is_file() else ""
                assert f"def {name}(" in source, f"{block.where}: the skip reason names {file}::{name}, which is gone"
