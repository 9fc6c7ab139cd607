"""The vendored browser SIP stack (ivr/web/static/vendor/): the file is the version its note says, with its
licence and checksum, the page phone loads exactly that file, and no page loads a script from anywhere else."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

STATIC = Path(__file__).resolve().parents[3] / "ivr" / "web" / "static"
VENDOR = STATIC / "vendor"


def test_the_vendored_jssip_is_the_version_its_note_names() -> None:
    version = (VENDOR / "VERSION").read_text(encoding="utf-8").strip()
    assert re.fullmatch(r"3\.\d+\.\d+", version), f"VERSION {version!r}: JsSIP 3.x expected"
    builds = sorted(p.name for p in VENDOR.glob("jssip-*.min.js"))
    assert builds == [f"jssip-{version}.min.js"], f"one build, named after VERSION {version}: {builds}"
    source = (VENDOR / builds[0]).read_text(encoding="utf-8")
    assert source.startswith(f"/*\n * JsSIP {version}\n"), "the build's banner names another version"
    # The bundle carries JsSIP's own package.json: the version the library reports (JsSIP.version).
    assert f'name:"jssip",title:"JsSIP",description:"The Javascript SIP library",version:"{version}"' in source
    assert "globalName" not in source and source.count("var JsSIP=") == 1  # one IIFE defining window.JsSIP


def test_the_checksum_and_the_licence_match_the_file() -> None:
    version = (VENDOR / "VERSION").read_text(encoding="utf-8").strip()
    build = VENDOR / f"jssip-{version}.min.js"
    assert (VENDOR / "SHA256").read_text(encoding="utf-8").strip() == hashlib.sha256(build.read_bytes()).hexdigest()
    licence = (VENDOR / "LICENSE").read_text(encoding="utf-8")
    assert f"jssip {version}" in licence and "The MIT License" in licence
    for bundled in ("debug", "ms", "events", "sdp-transform"):
        assert re.search(rf"^{re.escape(bundled)} \d+\.\d+\.\d+$", licence, re.M), f"{bundled}'s licence is missing"
    readme = (VENDOR / "README.md").read_text(encoding="utf-8")
    assert "scripts/vendor-jssip.sh" in readme


def test_the_page_phone_loads_exactly_the_vendored_file() -> None:
    version = (VENDOR / "VERSION").read_text(encoding="utf-8").strip()
    phone = (STATIC / "lib" / "phone.js").read_text(encoding="utf-8")
    assert re.findall(r"JSSIP_FILE = '([^']+)'", phone) == [f"/static/vendor/jssip-{version}.min.js"]


def test_no_page_loads_a_script_from_outside() -> None:
    """No CDN: every <script> is same-origin, the CSP allows only 'self' scripts, and no module adds a remote one."""
    pages = sorted(STATIC.glob("*.html"))
    assert len(pages) >= 5
    for page in pages:
        html = page.read_text(encoding="utf-8")
        for src in re.findall(r"<script\b[^>]*\bsrc=[\"']([^\"']+)", html):
            assert src.startswith("/static/"), f"{page.name} loads the script {src}"
        csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)
        assert csp, page.name
        script_src = re.search(r"script-src ([^;]+)", csp.group(1))
        assert script_src and script_src.group(1).strip() == "'self'", f"{page.name}: script-src {script_src}"
    for module in sorted(STATIC.rglob("*.js")):
        if module.is_relative_to(VENDOR):
            continue
        source = module.read_text(encoding="utf-8")
        assert not re.search(r"""(?:\.src\s*=|import\s*\(?)\s*['"`](?:https?:)?//""", source), module.name
