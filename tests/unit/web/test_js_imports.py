"""The pages' ES modules (ivr/web/static/**.js) import each other without a cycle, and only files that exist.

There is no build step: the browser follows the imports as written. A cycle still loads, but a module may then
run before what it imports is initialised (a TDZ error at start-up, depending on which page imports first), and it
means two modules can no longer be understood apart. So the graph must stay a DAG; this checks it.
"""

from __future__ import annotations

import re
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

STATIC = Path(__file__).resolve().parents[3] / "ivr" / "web" / "static"

_COMMENT = re.compile(r"/\*.*?\*/|(?:^|(?<=\s))//[^\n]*", re.S)
# import x from '...'; import {a, b} from '...' (over lines); import '...'; export {a} from '...'; export * from '...'
_STATIC_IMPORT = re.compile(r"""(?:^|[;}\s])(?:import|export)\s*(?:[\w$*{},\s]*?\bfrom\s*)?(['"])([^'"\n]+)\1""", re.M)
_DYNAMIC_IMPORT = re.compile(r"""\bimport\s*\(\s*([^)]*?)\s*\)""")
_LITERAL = re.compile(r"""^(['"])([^'"\n]+)\1$""")


def module_imports(source: str) -> tuple[list[str], list[str]]:
    """The specifiers a module imports (static and dynamic), and the import() calls whose path is not a literal."""
    code = _COMMENT.sub(" ", source)
    specs = [m.group(2) for m in _STATIC_IMPORT.finditer(code)]
    computed = []
    for m in _DYNAMIC_IMPORT.finditer(code):
        literal = _LITERAL.match(m.group(1))
        if literal:
            specs.append(literal.group(2))
        else:
            computed.append(m.group(1))
    return specs, computed


def import_graph(root: Path) -> tuple[dict[str, set[str]], list[str]]:
    """Module -> the modules it imports (paths relative to root), and what is wrong with the imports."""
    graph: dict[str, set[str]] = {}
    problems: list[str] = []
    for path in sorted(root.rglob("*.js")):
        name = path.relative_to(root).as_posix()
        if name.startswith("vendor/"):
            continue  # third-party builds, loaded as classic scripts (checked in test_vendor.py)
        specs, computed = module_imports(path.read_text(encoding="utf-8"))
        graph[name] = set()
        problems += [f"{name}: import({expr}) is computed: the checker (and a reader) cannot follow it"
                     for expr in computed]
        for spec in specs:
            if not spec.startswith(("./", "../")):
                problems.append(f"{name} imports {spec!r}: only relative paths to local modules")
                continue
            target = (path.parent / spec).resolve()
            if not target.is_relative_to(root.resolve()):
                problems.append(f"{name} imports {spec!r}, outside {root.name}/")
            elif not target.is_file():
                problems.append(f"{name} imports {spec!r}, which does not exist")
            else:
                graph[name].add(target.relative_to(root.resolve()).as_posix())
    return graph, problems


def import_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (its modules, the first repeated at the end), or None."""
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as error:
        return list(error.args[1])
    return None


def test_the_pages_modules_import_no_cycle_and_no_missing_file() -> None:
    graph, problems = import_graph(STATIC)
    assert len(graph) > 10 and "lib/dom.js" in graph["lib/pop.js"]
    assert not problems, problems
    cycle = import_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_every_module_is_reached_from_a_page() -> None:
    """No module is dead weight: each is imported, directly or not, by a page's script (or is one)."""
    graph, _ = import_graph(STATIC)
    reached: set[str] = set()
    todo = [html.with_suffix(".js").name for html in STATIC.glob("*.html")]
    while todo:
        name = todo.pop()
        if name not in reached:
            reached.add(name)
            todo += graph.get(name, ())
    assert set(graph) - reached == set()


def test_the_checker_catches_a_cyclic_pair(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "a.js").write_text("import { b } from './lib/b.js';\nexport const a = () => b;\n")
    (tmp_path / "lib" / "b.js").write_text("import {\n  a,\n} from '../a.js';\nexport const b = 1;\n")
    graph, problems = import_graph(tmp_path)
    assert problems == []
    assert graph == {"a.js": {"lib/b.js"}, "lib/b.js": {"a.js"}}
    cycle = import_cycle(graph)
    assert cycle is not None and set(cycle) == {"a.js", "lib/b.js"} and cycle[0] == cycle[-1]


def test_the_checker_follows_dynamic_and_re_exports_and_ignores_comments(tmp_path: Path) -> None:
    (tmp_path / "a.js").write_text("// import './c.js';\n/* import('./c.js') */\n"
                                   "export async function load() { return import('./b.js'); }\n")
    (tmp_path / "b.js").write_text("export * from './c.js';\n")
    (tmp_path / "c.js").write_text("import './a.js';\nconst url = `${location.protocol}//${location.host}`;\n")
    graph, problems = import_graph(tmp_path)
    assert problems == []
    assert graph == {"a.js": {"b.js"}, "b.js": {"c.js"}, "c.js": {"a.js"}}
    assert import_cycle(graph) is not None
    assert import_cycle({"a.js": {"b.js"}, "b.js": set()}) is None


def test_the_checker_reports_missing_remote_and_computed_imports(tmp_path: Path) -> None:
    (tmp_path / "a.js").write_text("import { x } from './gone.js';\nimport y from 'https://cdn.example/y.js';\n"
                                   "const page = 'p';\nimport(`./${page}.js`);\n")
    _, problems = import_graph(tmp_path)
    assert len(problems) == 3
    assert any("'./gone.js', which does not exist" in p for p in problems)
    assert any("only relative paths" in p for p in problems)
    assert any("is computed" in p for p in problems)
