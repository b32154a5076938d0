"""The package's shape, read from its source (no import, no subprocess): no import cycle, imports inside functions
included; a small package root; no alias modules."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "bert_pl"
# `python -m bert_pl.export` and `python -m bert_pl.evaluate` are documented commands: their modules only run
# bert_pl/cli/export.py's and cli/evaluate.py's main, and are the only modules allowed to do no more.
ENTRY_MODULES = {"bert_pl.export", "bert_pl.evaluate"}


def modules() -> dict:
    """Dotted module name -> parsed source, for every .py file under bert_pl/."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return found


def imports_of(name: str, tree: ast.Module, known) -> set:
    """The bert_pl modules `name` imports anywhere in its body (functions and methods too), each as the deepest
    module the import names: `from bert_pl.io import runs` is bert_pl.io.runs, `from bert_pl.io.runs import
    expand` is bert_pl.io.runs."""

    def deepest(dotted: str) -> str:
        while dotted and dotted not in known:
            dotted = dotted.rpartition(".")[0]
        return dotted

    package = name if name in known and (PACKAGE.parent / name.replace(".", "/") / "__init__.py").is_file() \
        else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {deepest(a.name) for a in node.names if a.name.split(".")[0] == "bert_pl"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x, from ..io import runs
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != "bert_pl":
                continue
            out |= {deepest(f"{base}.{a.name}") for a in node.names}
    out.discard(name)
    out.discard("")
    return out


def cycles(graph: dict) -> list:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_cycles_through_imports_inside_functions():
    """The scan itself: a cycle closed by an import inside a function, and a relative import, are found."""
    known = {"bert_pl", "bert_pl.io", "bert_pl.io.runs", "bert_pl.training", "bert_pl.training.runner"}
    runs = ast.parse("from bert_pl.training.runner import PROJECT_ROOT\n")
    runner = ast.parse("def f():\n    from ..io import runs\n")
    graph = {m: set() for m in known}
    graph["bert_pl.io.runs"] = imports_of("bert_pl.io.runs", runs, known)
    graph["bert_pl.training.runner"] = imports_of("bert_pl.training.runner", runner, known)
    assert cycles(graph) == [["bert_pl.io.runs", "bert_pl.training.runner"]]


def test_no_import_cycle_in_the_package():
    found = modules()
    graph = {name: imports_of(name, tree, found) for name, tree in found.items()}
    assert "bert_pl.io.checkpoints" in graph["bert_pl.training.checks"]  # the scan sees imports inside functions
    loops = cycles(graph)
    detail = "; ".join(" <-> ".join(c) + " (" + ", ".join(f"{a} imports {sorted(graph[a] & set(c))}" for a in c) + ")"
                       for c in loops)
    assert not loops, f"import cycles: {detail}"


def test_the_package_root_keeps_the_public_surface_only():
    root = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(root) <= 4, f"bert_pl/ holds {root}: at most __init__, errors and two more; commands go in bert_pl/cli/"


def _only_imports(tree: ast.Module) -> bool:
    """A body of imports only, apart from its docstring and an `if __name__ == "__main__":` block."""
    body = list(tree.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    body = [s for s in body if not (isinstance(s, ast.If) and "__main__" in ast.unparse(s.test))]
    return bool(body) and all(isinstance(s, (ast.Import, ast.ImportFrom)) for s in body)


def test_no_alias_modules():
    found = modules()
    aliases = sorted(name for name, tree in found.items() if _only_imports(tree) and name not in ENTRY_MODULES)
    assert not aliases, f"modules that only re-import another module: {aliases}; import the real module instead"
    for name in ENTRY_MODULES:  # the documented `python -m` paths stay, and stay thin
        assert name in found and _only_imports(found[name]), name
    assert _only_imports(ast.parse('"""doc"""\nfrom bert_pl.cli.export import main\n\nif __name__ == "__main__":'
                                   '\n    main()\n'))
    assert not _only_imports(ast.parse("from x import y\n\ndef f():\n    return y\n"))


def module_level_imports(tree: ast.Module) -> set:
    """What importing the module runs: its imports outside function bodies (class bodies and `if`/`try` blocks at
    module level run on import too)."""
    found, todo = set(), list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level:
            found |= {f"{node.module}.{a.name}" for a in node.names} | {node.module}
        todo += [c for c in ast.iter_child_nodes(node) if isinstance(c, ast.stmt)]
    return found


def test_entry_points_import_lightning_only_inside_their_jobs():
    """Imported before Hydra sets up logging, lightning adds its own console handler (every message twice, "Seed set
    to" on stderr first): train.py, finetune.py, predict.py and the console scripts import it only when a job runs."""
    found = modules()
    for path in sorted(PACKAGE.parent.glob("*.py")):
        found[path.stem] = ast.parse(path.read_text(encoding="utf-8"))
    todo, seen, outside = ["train", "finetune", "predict", "bert_pl.cli"], set(), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for imported in module_level_imports(found[name]):
            parts = imported.split(".")
            chain = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]  # a.b.c runs a, a.b and a.b.c
            todo += [m for m in chain if m in found]
            outside |= {parts[0]} if parts[0] not in ("bert_pl",) + tuple(found) else set()
    assert "bert_pl.training.jobs" in seen and "omegaconf" in outside  # the walk reaches the jobs' module
    assert not {"lightning", "pytorch_lightning"} & outside, sorted(outside)


# Where a head may be named: its family's module (bert_pl/tasks/, and pretraining's in bert_pl/pretraining/) and the
# registry. Everything else (prediction, export, serving, checkpoints, training) asks the registry.
HEAD_NAMES_ALLOWED = ("bert_pl.tasks.", "bert_pl.model.heads", "bert_pl.pretraining.")


def head_literal_comparisons(tree: ast.Module, heads) -> list:
    """Line numbers where a head's name is compared to something (==, !=, in (...)) or keys a table of heads."""

    def names(node) -> set:
        if isinstance(node, ast.Constant) and node.value in heads:
            return {node.value}
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return {e.value for e in node.elts if isinstance(e, ast.Constant) and e.value in heads}
        return set()

    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(names(x) for x in [node.left, *node.comparators]):
            lines.append(node.lineno)
        elif isinstance(node, ast.Dict) and len({k.value for k in node.keys if isinstance(k, ast.Constant)}
                                                & set(heads)) >= 2:
            lines.append(node.lineno)
    return lines


def test_the_head_check_finds_comparisons_and_tables():
    tree = ast.parse('if head == "span": pass\nx = h in ("a", "classification")\n'
                     'outputs = {"span": 1, "classification": 2}\nok = head == "spam"\n')
    assert head_literal_comparisons(tree, {"span", "classification"}) == [1, 2, 3]


def test_no_head_is_named_outside_its_family_and_the_registry():
    from bert_pl.model.heads import HEADS

    found = {name: lines for name, tree in modules().items() if not name.startswith(HEAD_NAMES_ALLOWED)
             for lines in [head_literal_comparisons(tree, set(HEADS))] if lines}
    assert not found, f"heads named outside their family and the registry (module: lines): {found}"
