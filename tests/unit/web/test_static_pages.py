"""The web pages (ivr/web/static): light checks that need no browser.

Only /static assets that exist, every documented data-testid present, no HTML sinks for data, a viewport and a
language on every page, every control labelled, no inline script (the pages carry a strict CSP), and JS that parses.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
STATIC = ROOT / "ivr" / "web" / "static"
PAGES = ["agent.html", "field.html", "supervisor.html", "admin.html"]
TESTIDS_MD = ROOT / "docs" / "web_testids.md"


def _pages() -> dict[str, str]:
    return {name: (STATIC / name).read_text(encoding="utf-8") for name in PAGES}


def _scripts() -> dict[str, str]:
    return {path.name: path.read_text(encoding="utf-8") for path in sorted(STATIC.glob("*.js"))}


def test_the_three_pages_the_shared_script_and_one_stylesheet_exist() -> None:
    for name in [*PAGES, "app.js", "agent.js", "field.js", "supervisor.js", "style.css"]:
        assert (STATIC / name).is_file(), name
    assert [p.name for p in STATIC.glob("*.css")] == ["style.css"]


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


def test_scripts_import_only_existing_local_modules_and_nothing_remote() -> None:
    for name, source in _scripts().items():
        for spec in re.findall(r"""\bimport\s*(?:[^'"]*?\bfrom\s*)?\(?\s*['"]([^'"]+)['"]""", source):
            assert spec.startswith("./"), f"{name} imports {spec}: only ./local modules"
            assert (STATIC / spec.removeprefix("./")).is_file(), f"{name} imports missing {spec}"
    for path in STATIC.iterdir():
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
    app = scripts["app.js"]
    assert "sessionStorage" in app and "location.host" in app and "'wss:'" in app and "/ws?token=" in app


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


@pytest.mark.parametrize("name", sorted(p.name for p in STATIC.glob("*.js")))
def test_scripts_parse_as_modules(name: str, tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: cannot syntax-check the page scripts")
    module = tmp_path / (Path(name).stem + ".mjs")  # .mjs: parsed as an ES module whatever the node version
    module.write_text((STATIC / name).read_text(encoding="utf-8"), encoding="utf-8")
    result = subprocess.run([node, "--check", str(module)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
