"""
The package's import graph, as the README's layout section describes it: imports point one way (no cycles, also
counting imports inside functions, which is how cycles hide), every mingpt import sits at the top of its file, and
the Trainer knows nothing about GPT or its data.
"""

from __future__ import annotations

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "mingpt"


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def mingpt_imports(name: str) -> list[tuple[str, bool]]:
    """(imported mingpt module, imported at the top of the file?) for every import statement in module `name`."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    top = set(map(id, tree.body))
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # from . import x / from .x import y
                parents = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parents + ([node.module] if node.module else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            # `from mingpt import hub` names the module mingpt.hub; the package itself is not an edge for its own
            # modules (importing mingpt.x runs mingpt/__init__.py first, whoever asks)
            if target in MODULES and target != name and target != "mingpt":
                found.append((target, id(node) in top))
    return found


GRAPH = {name: {target for target, _ in mingpt_imports(name)} for name in MODULES}


def test_no_import_cycles_even_through_imports_inside_functions():
    # Tarjan-free version for a small graph: a module is in a cycle when it can reach itself.
    def reachable(start):
        seen, todo = set(), list(GRAPH[start])
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo.extend(GRAPH[name])
        return seen

    assert [name for name in MODULES if name in reachable(name)] == []


def test_every_mingpt_import_is_at_the_top_of_its_file():
    inside = [(name, target) for name in MODULES for target, at_top in mingpt_imports(name) if not at_top]
    assert inside == []


def test_the_model_imports_its_helpers_and_the_trainer_imports_no_model_or_gpt_data():
    assert {"mingpt.generation", "mingpt.hooks", "mingpt.pretrained"} <= GRAPH["mingpt.model"]
    below_trainer = set()
    todo = list(GRAPH["mingpt.trainer"])
    while todo:
        name = todo.pop()
        if name not in below_trainer:
            below_trainer.add(name)
            todo.extend(GRAPH[name])
    assert not below_trainer & {"mingpt.model", "mingpt.data", "mingpt.token_shards", "mingpt.bpe"}
