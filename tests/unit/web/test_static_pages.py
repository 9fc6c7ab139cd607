"""The web pages (ivr/web/static): light checks that need no browser.

Only /static assets that exist, every documented data-testid present, no HTML sinks for data, a viewport and a
language on every page, every control labelled, no inline script (the pages carry a strict CSP), JS that parses,
and demo mode kept out of the pages' modules. The import graph is checked in test_js_imports.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ivr.web.desk import TICKET_TEMPLATES

ROOT = Path(__file__).resolve().parents[3]
STATIC = ROOT / "ivr" / "web" / "static"
PAGES = ["agent.html", "field.html", "supervisor.html", "admin.html", "trainer.html", "reports.html", "qa.html"]
TESTIDS_MD = ROOT / "docs" / "web_testids.md"


def _pages() -> dict[str, str]:
    return {name: (STATIC / name).read_text(encoding="utf-8") for name in PAGES}


VENDOR = STATIC / "vendor"
"""Third-party builds as published (JsSIP): checked against their version note in test_vendor.py, not here."""


def _ours(pattern: str) -> list[Path]:
    """The files under static/ matching ``pattern`` that this project wrote (not vendor/)."""
    return [path for path in sorted(STATIC.rglob(pattern)) if not path.is_relative_to(VENDOR)]


def _scripts() -> dict[str, str]:
    """Every module, by its path under static/ ("agent.js", "lib/api.js", ...)."""
    return {path.relative_to(STATIC).as_posix(): path.read_text(encoding="utf-8") for path in _ours("*.js")}


def test_the_pages_their_scripts_the_shared_modules_and_one_stylesheet_exist() -> None:
    shared = ["lib/api.js", "lib/backend.js", "lib/boot.js", "lib/session.js", "lib/socket.js", "lib/page.js",
              "lib/pop.js", "lib/disposition.js", "demo/backend.js"]
    for name in [*PAGES, "agent.js", "field.js", "supervisor.js", "admin.js", *shared, "style.css"]:
        assert (STATIC / name).is_file(), name
    assert [p.relative_to(STATIC).as_posix() for p in STATIC.rglob("*.css")] == ["style.css"]


def test_pages_reference_only_existing_static_files() -> None:
    for name, html in _pages().items():
        refs = re.findall(r"""\b(?:src|href)\s*=\s*["']([^"']*)["']""", html)
        assert refs, name
        for ref in refs:
            if ref.startswith("#") or ref.startswith("data:"):
                continue
            assert ref.startswith("/static/"), f"{name}: {ref} is not served from /static (no CDN, no relative paths)"
            assert (STATIC / ref.removeprefix("/static/")).is_file(), f"{name}: {ref} does not exist"
        assert f'src="/static/{name.removesuffix(".html")}.js"' in html, f"{name} does not load its own script"


def test_nothing_is_loaded_from_outside() -> None:
    for path in _ours("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            assert not re.search(r"https?://|//fonts\.|@import", text), f"{path.name} loads something from outside"


def test_every_documented_testid_is_in_the_pages_or_scripts() -> None:
    ids = re.findall(r"^\|\s*`([^`]+)`\s*\|", TESTIDS_MD.read_text(encoding="utf-8"), flags=re.M)
    assert len(ids) > 40
    sources = "\n".join([*_pages().values(), *_scripts().values()])
    # testids built from a template literal, e.g. `disposition-${value}` with 'resolved' elsewhere in the source
    prefixes = set(re.findall(r"`([a-z][a-z-]*-)\$\{", sources))
    missing = []
    for testid in ids:
        if "<" in testid:
            if testid.split("<", 1)[0] not in prefixes:
                missing.append(testid)
        elif not any(f"{q}{testid}{q}" in sources for q in "\"'"):
            if not any(testid.startswith(p) and f"'{testid[len(p):]}'" in sources for p in prefixes):
                missing.append(testid)
    assert not missing, f"documented in web_testids.md but not in ivr/web/static: {missing}"


def test_no_html_sinks_in_the_scripts() -> None:
    """Pop content comes from callers' speech: data is rendered with textContent / Text nodes only."""
    sink = re.compile(r"\.(?:inner|outer)HTML\s*\+?=|insertAdjacentHTML|document\.write|createContextualFragment"
                      r"|\beval\s*\(|new\s+Function\s*\(|DOMParser")
    for name, source in _scripts().items():
        hits = [line.strip() for line in source.splitlines() if sink.search(line)]
        assert not hits, f"{name}: {hits}"


def test_token_only_in_session_storage_and_socket_url_from_location() -> None:
    scripts = _scripts()
    for name, source in scripts.items():
        assert "localStorage" not in source, name
        assert "document.cookie" not in source, name
        assert not re.search(r"new WebSocket\(\s*['\"`]wss?://", source), f"{name}: hard-coded socket URL"
    assert "sessionStorage" in scripts["lib/session.js"]
    socket = scripts["lib/socket.js"]
    assert "location.host" in socket and "'wss:'" in socket and "/ws?token=" in socket


def test_every_page_has_lang_viewport_and_no_inline_script() -> None:
    for name, html in _pages().items():
        assert re.search(r'<html\s+lang="[a-z]{2}(-[A-Za-z]+)?"', html), f"{name}: <html lang>"
        assert re.search(r'<meta\s+name="viewport"\s+content="width=device-width', html), f"{name}: viewport meta"
        assert '<meta charset="utf-8">' in html, name
        assert "Content-Security-Policy" in html, name
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), f"{name}: inline <script>"
        assert not re.search(r"\son[a-z]+\s*=", html), f"{name}: inline event handler"
        assert not re.search(r"\sstyle\s*=", html), f"{name}: inline style (blocked by the CSP)"


def test_every_control_in_the_pages_has_a_label() -> None:
    for name, html in _pages().items():
        for tag in re.findall(r"<(?:input|select|textarea)\b[^>]*>", html):
            control_id = re.search(r'\bid="([^"]+)"', tag)
            labelled = "aria-label=" in tag or (control_id and f'for="{control_id.group(1)}"' in html)
            assert labelled, f"{name}: {tag} has no label"
        for tag in re.findall(r"<button\b[^>]*>(.*?)</button>", html, flags=re.S):
            assert re.sub(r"<[^>]+>", "", tag).strip() or "aria-label" in tag, f"{name}: empty button"


@pytest.mark.parametrize("name", sorted(p.relative_to(STATIC).as_posix() for p in _ours("*.js")))
def test_scripts_parse_as_modules(name: str, tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: cannot syntax-check the page scripts")
    # .mjs: parsed as an ES module whatever the node version
    module = tmp_path / (name.replace("/", "_").removesuffix(".js") + ".mjs")
    module.write_text((STATIC / name).read_text(encoding="utf-8"), encoding="utf-8")
    result = subprocess.run([node, "--check", str(module)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_demo_mode_is_a_backend_outside_the_pages_modules() -> None:
    """#demo swaps the backend (lib/boot.js); no page module has a demo branch, and only boot.js loads demo/."""
    for name, source in _scripts().items():
        if name.startswith("demo/") or name == "lib/boot.js":
            continue
        code = re.sub(r"//[^\n]*|/\*.*?\*/", "", source, flags=re.S)
        assert not re.search(r"demo", code, flags=re.I), f"{name}: demo code in a page module"
    importers = [name for name, source in _scripts().items() if "demo/" in source and not name.startswith("demo/")]
    assert importers == ["lib/boot.js"]


def test_the_demo_shows_the_servers_ticket_templates() -> None:
    """The demo cannot ask the server (no session): it serves a copy of the one table, kept equal to it here."""
    copy = json.loads((STATIC / "demo" / "ticket-templates.json").read_text(encoding="utf-8"))
    assert copy == TICKET_TEMPLATES, "regenerate ivr/web/static/demo/ticket-templates.json from ivr.web.desk"


def test_the_pages_hold_no_copy_of_the_ticket_templates() -> None:
    """GET /api/ticket-templates is the one list of templates and of the intents that need a ticket."""
    for name, source in _scripts().items():
        if name.startswith("demo/"):
            continue
        distinctive = [f["name"] for t in TICKET_TEMPLATES.values() for f in t["fields"] if "_" in f["name"]]
        assert not [field for field in distinctive if field in source], f"{name} names ticket template fields"
        assert not re.search(r"\[\s*'lost_card'\s*,\s*'complaint'", source), f"{name}: a list of ticket intents"
