"""
The package's import graph, as the README's layout section describes it: imports point one way (no cycles, also
counting imports inside functions, which is how cycles hide), every mingpt import sits at the top of its file, and
the Trainer knows nothing about GPT or its data.
"""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

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
            # `from mingpt.io import hub` imports the module mingpt.io.hub; `from mingpt.data import X` the package
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        for target in targets:
            # `from mingpt import hub` names the module mingpt.io.hub; the package itself is not an edge for its own
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


# The house (README, "The house"): which floor each module stands on. A module imports only from its own floor or
# the floors below it, so the arrows of the whole package point down.
FLOORS = [
    ("foundation", ["mingpt.utils", "mingpt.cfgnode", "mingpt.atomic", "mingpt.inputs", "mingpt.components",
                    "mingpt.config"]),
    ("io", ["mingpt.io"]),  # files and the network: below everything that reads or downloads
    ("training and interp", ["mingpt.training", "mingpt.interp"]),  # the rooms the core stands on
    # modern: the parts of models after GPT-2 (rotary, RMSNorm, SwiGLU, GQA...), which model.py builds from; they
    # carry hook points, so they stand on interp
    ("modern", ["mingpt.modern"]),
    ("core", ["mingpt.model", "mingpt.generation", "mingpt.tokenizer", "mingpt.bpe", "mingpt.bpe_train",
              "mingpt.hub_tokenizer", "mingpt.trainer"]),
    # posttrain: fine-tuning after pretraining (chat, SFT, LoRA, DPO, RL); it uses the model and the Trainer
    ("above the core", ["mingpt.data", "mingpt.exercises", "mingpt.cli", "mingpt.posttrain"]),
]
# The imports allowed inside a function, each for a reason its comment gives: the core stays light to import.
LAZY_IMPORTS = {("mingpt.model", "mingpt.io.pretrained"), ("mingpt.model", "mingpt.hub_tokenizer"),
                ("mingpt.model", "mingpt.training.optimizer"),
                # BPETokenizer() and minGPT's get_file reach the network only when a file must be fetched
                ("mingpt.bpe", "mingpt.io.data_files"), ("mingpt.bpe", "mingpt.io.download")}


def floor_of(module: str) -> int:
    for number, (_, prefixes) in enumerate(FLOORS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return number
    raise AssertionError(f"{module} stands on no floor: add it to FLOORS (and to the README's map)")


def test_every_module_stands_on_a_floor_and_imports_only_down():
    upward = [(name, target) for name in MODULES if name != "mingpt" for target in GRAPH[name]
              if floor_of(target) > floor_of(name)]
    assert upward == []


def test_training_and_interp_do_not_import_each_other():
    # two rooms on one floor: neither knows the other, so each can be read (and changed) alone
    crossing = [(name, target) for name in MODULES for target in GRAPH[name]
                if {name.split(".")[1], target.split(".")[1]} == {"training", "interp"}]
    assert crossing == []


def test_the_top_level_holds_the_core_and_its_helpers_only():
    top = sorted(name for name in MODULES if name.count(".") == 1 and not (PACKAGE / name.split(".")[1]).is_dir())
    assert len(top) <= 16
    core = [name for name, _ in FLOORS].index("core")
    assert all(floor_of(name) in (0, core) for name in top), top


def test_every_mingpt_import_is_at_the_top_of_its_file_but_the_listed_lazy_ones():
    inside = {(name, target) for name in MODULES for target, at_top in mingpt_imports(name) if not at_top}
    assert inside == LAZY_IMPORTS


def test_importing_the_core_loads_no_plumbing():
    # `import mingpt.model` must not pull in the Hub, downloads, checkpoints or data: a fresh interpreter, so that
    # nothing another test imported counts
    code = ("import sys, mingpt.model, mingpt.generation, mingpt.bpe, mingpt.bpe_train; "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('mingpt'))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=PACKAGE.parent).stdout.split()
    heavy = [m for m in loaded if m.startswith(("mingpt.io.hub", "mingpt.io.download", "mingpt.io.pretrained",
                                               "mingpt.training", "mingpt.data", "mingpt.exercises", "mingpt.cli"))]
    assert heavy == []
    assert {"mingpt.model", "mingpt.bpe", "mingpt.tokenizer", "mingpt.bpe_train"} <= set(loaded)


def test_the_trainer_imports_no_model_and_no_gpt_data():
    below_trainer = set()
    todo = list(GRAPH["mingpt.trainer"])
    while todo:
        name = todo.pop()
        if name not in below_trainer:
            below_trainer.add(name)
            todo.extend(GRAPH[name])
    assert not below_trainer & {"mingpt.model", "mingpt.bpe", "mingpt.tokenizer"}
    assert not any(name.startswith(("mingpt.data", "mingpt.io.hub", "mingpt.io.download")) for name in below_trainer)
