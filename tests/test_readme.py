"""The README and the docs/ pages stay true: the quick start runs as written and prints what it promises, the
README stays one short page that links to the reference pages, and every link, module, name and script the pages
mention exists in the package as it is laid out now."""

import contextlib
import importlib
import importlib.util
import io
import pathlib
import re

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
README = REPO_ROOT / "README.md"
DOCS = sorted((REPO_ROOT / "docs").glob("*.md"))
# The other pages a reader meets: their links and the modules they name are checked too.
READMES = [*sorted((REPO_ROOT / "projects").glob("*/README.md")), REPO_ROOT / "notebooks" / "README.md"]
PAGES = [README, *DOCS, REPO_ROOT / "CHANGELOG.md", *READMES]


def page_id(page: pathlib.Path) -> str:
    return str(page.relative_to(REPO_ROOT))


def test_quick_start_runs_and_reverses_digits():
    code = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)[0]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    lines = out.getvalue().strip().splitlines()
    assert lines[0].startswith("step 0: loss")  # iter_num at on_batch_end is 0-based, as in the original minGPT
    promised = re.search(r"print\(model\.generate\(prompt, max_new_tokens=5\)\)\s+# (.*)", code).group(1)
    assert lines[-1] == promised


def test_setup_commands_match_ci():
    text = README.read_text(encoding="utf-8")
    commands = re.search(r"## Set-up.*?```bash\n(.*?)```", text, re.S).group(1)
    commands = [line for line in commands.splitlines() if line and not line.startswith("#")]
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert len(commands) == 2 and all(command in ci for command in commands)


def test_readme_is_one_short_page_that_links_every_docs_page():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200, "README.md grew past 200 lines: move the reference part to a docs/ page"
    linked = set(re.findall(r"\]\((docs/[^)#]+\.md)", text))
    assert linked, "README.md links no docs/ page"
    assert sorted(page for page in linked if not (REPO_ROOT / page).is_file()) == []
    assert sorted(page_id(page) for page in DOCS) == sorted(linked)  # no docs/ page that nobody can find


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a markdown heading: its text (a link counts as its words), lower case, punctuation
    dropped, spaces become hyphens."""
    text = re.sub(r"\[([^]]*)\]\([^)]*\)", r"\1", heading.strip())
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_relative_link_and_anchor_exists(page):
    text = page.read_text(encoding="utf-8")
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):  # https://... : not checked offline
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md":
            headings = re.findall(r"^#+ (.*)$", file.read_text(encoding="utf-8"), re.M)
            if anchor not in {github_anchor(h) for h in headings}:
                broken.append(target)
    assert broken == [], f"{page_id(page)} links to what does not exist"


def code_spans(text: str) -> str:
    """The text inside `code` spans and ``` blocks: where a page names modules, attributes and scripts."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, re.S)
    return "\n".join(blocks + re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S)))


@pytest.mark.parametrize("page", [README, *DOCS, *READMES], ids=page_id)
def test_every_mingpt_module_name_and_script_named_exists(page):
    """A file moved or renamed (mingpt/hooks.py -> mingpt/interp/hooks.py) leaves no stale path on the pages.
    The CHANGELOG is left out on purpose: it names the old paths."""
    code = code_spans(page.read_text(encoding="utf-8"))
    missing = []
    for path in set(re.findall(r"\b((?:mingpt|projects|bench|tests|notebooks)/[\w/.-]*\w)", code)):
        if not (REPO_ROOT / path).exists():
            missing.append(path)
    known_files = {path.name for path in REPO_ROOT.glob("*.py")}
    for folder in ("mingpt", "projects", "bench"):
        known_files |= {path.name for path in (REPO_ROOT / folder).rglob("*.py")}
    for name in set(re.findall(r"^(\w+\.py)$", code, re.M)):  # a file named alone: `tokenizer.py`
        if name not in known_files:
            missing.append(name)
    for dotted in set(re.findall(r"\bmingpt(?:\.\w+)+", code)):
        parts = dotted.split(".")
        for n in range(len(parts), 0, -1):  # the longest importable prefix, then attributes
            try:
                obj = importlib.import_module(".".join(parts[:n]))
                break
            except ModuleNotFoundError:
                continue
        for attribute in parts[n:]:
            obj = getattr(obj, attribute, None)
        if obj is None:
            missing.append(dotted)
    for module in re.findall(r"python -m (mingpt[\w.]*)", code):
        importlib.util.find_spec(module) or missing.append(module)
    assert sorted(missing) == [], f"{page_id(page)} names what does not exist"


def test_documented_commands_use_the_users_paths_not_this_repositorys_layout():
    """Data paths such as ../shared/data exist only beside this repository's checkout: a command, docstring or
    notebook a user reads finds data as mingpt does (MINGPT_DATA_DIR, the cache), never there."""
    root = pathlib.Path(__file__).resolve().parents[1]
    readable = [*root.glob("*.md"), *root.glob("docs/*.md"), *root.glob("projects/*/*"), *root.glob("bench/*.py"),
                *root.glob("notebooks/**/*.ipynb"), *root.glob("notebooks/*.md")]
    offenders = []
    for path in readable:
        if not path.is_file() or path.suffix not in (".md", ".py", ".ipynb"):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if "shared/data" in line and "the tests also take them from" not in line:
                offenders.append(f"{path.relative_to(root)}:{number}: {line.strip()[:100]}")
    assert not offenders, "\n".join(offenders)


def test_where_a_user_starts_the_readme_says_one_thread_on_a_busy_machine():
    """PyTorch's one-thread-per-core default oversubscribes a busy machine (measured figures in the README):
    both places a user starts from, the set-up and the Quick start, say how to avoid it."""
    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    setup = readme.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    quick_start = readme.split("## Quick start", 1)[1].split("```", 1)[0]
    for section in (setup, quick_start):
        assert "OMP_NUM_THREADS=1" in section
    assert "CPU" in setup and "vary by CPU" in setup
