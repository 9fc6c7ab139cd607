"""asterisk_conf/extensions.conf through asterisklint (a dialplan linter, dev dependency): no finding but the
documented false positives, and every application and function the dialplan uses is in a module that
modules.conf loads (it has autoload = no, so a forgotten module is a dialplan that halts mid-call).

asterisklint reads extensions.conf the way pbx_config does and knows the applications and functions of
Asterisk with their modules: it finds unknown applications and functions, Goto/GotoIf targets that do not
exist, unbalanced parentheses and quotes. It checks no other configuration file; that the whole of
asterisk_conf/ loads without errors in the real Asterisk is the integration suite's job.

False positives, filtered precisely (by code and line):

- W_WSH_VARSET on the ``key = value`` lines of [general] and [globals]: asterisklint prefers ``key=value``
  as in a Set(); Asterisk's config parser strips the blanks around ``=`` in these sections (config.c,
  ``ast_variable_new(ast_strip(name), ast_strip(value))``), so ``IVR_AGI = agi://...`` sets exactly
  ``agi://...``. Only those lines are excused: the same finding in a context, where blanks would really
  be part of a name or value, still fails the test.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

CONF = Path(__file__).resolve().parents[3] / "asterisk_conf"
EXTENSIONS = CONF / "extensions.conf"
FINDING = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+) (?P<code>[EW]_[A-Z0-9_]+): (?P<message>.*)$", re.M)
#: Sections whose settings Asterisk's config parser reads as name = value with blanks stripped.
SETTINGS_SECTIONS = ("general", "globals")


def asterisklint(*args: str) -> subprocess.CompletedProcess[str]:
    try:
        import asterisklint  # noqa: F401
    except ImportError:
        pytest.fail("asterisklint is not installed: it is a dev dependency (make setup installs it)")
    code = "import os, sys; from asterisklint.main import main; sys.exit(main(sys.argv[1:], os.environ))"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120,
                          check=False)


def findings(output: str) -> list[tuple[int, str, str]]:
    return [(int(m["line"]), m["code"], m["message"]) for m in FINDING.finditer(output)]


def excused_lines(path: Path) -> set[int]:
    """Lines of [general] and [globals] that assign a setting (W_WSH_VARSET there is a false positive)."""
    lines: set[int] = set()
    section = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        header = re.match(r"^\[([^\]]+)\]", line)
        if header:
            section = header.group(1)
        elif section in SETTINGS_SECTIONS and re.match(r"^[A-Za-z_][A-Za-z0-9_]*\s*=", line):
            lines.add(number)
    return lines


def real_findings(path: Path) -> list[tuple[int, str, str]]:
    result = asterisklint("dialplan-check", str(path))
    everything = findings(result.stdout + result.stderr)
    if result.returncode not in (0, 1) or (result.returncode == 1 and not everything):
        pytest.fail(f"asterisklint did not run (exit {result.returncode}): {result.stderr[-2000:]}")
    excused = excused_lines(path)
    return [f for f in everything if not (f[1] == "W_WSH_VARSET" and f[0] in excused)]


def test_extensions_conf_has_no_findings() -> None:
    problems = real_findings(EXTENSIONS)
    assert not problems, "\n".join(f"extensions.conf:{line} {code}: {message}" for line, code, message in problems)


def test_the_filter_excuses_only_the_settings_lines() -> None:
    excused = excused_lines(EXTENSIONS)
    text = EXTENSIONS.read_text(encoding="utf-8").splitlines()
    assert excused, "the [general]/[globals] settings lines were not found"
    assert all(text[n - 1].split("=")[0].strip() in ("static", "writeprotect", "clearglobalvars", "IVR_AGI",
                                                     "IVR_QUEUE_TIMEOUT") for n in excused)


def test_the_linter_catches_real_mistakes(tmp_path: Path) -> None:
    # The gate must be able to fail: a misspelt application and function, a Goto to a missing context,
    # a label that does not exist, a blank-padded Set in a context.
    text = EXTENSIONS.read_text(encoding="utf-8")
    broken = (text.replace("Dial(PJSIP/${T},25)", "Dail(PJSIP/${T},25)", 1)
              .replace("FILTER(0-9,${IVR_PRIORITY})", "FILTR(0-9,${IVR_PRIORITY})", 1)
              .replace("Goto(ivr-hold,${Q},1)", "Goto(ivr-holdd,${Q},1)", 1)
              .replace('GotoIf($["${Q}" = ""]?fallback)', 'GotoIf($["${Q}" = ""]?fallbak)', 1))
    assert broken.count("Dail(") == 1 and "FILTR(" in broken and "ivr-holdd" in broken and "fallbak" in broken
    path = tmp_path / "extensions.conf"
    path.write_text(broken, encoding="utf-8")
    codes = {code for _, code, _ in real_findings(path)}
    assert {"E_APP_MISSING", "E_FUNC_MISSING", "E_DP_GOTO_NOCONTEXT", "W_DP_GOTO_CONTEXT_NOEXTEN"} <= codes, codes


def test_every_module_the_dialplan_needs_is_loaded() -> None:
    shown = asterisklint("modules-show", str(EXTENSIONS))
    needed = set(re.findall(r"^load => (\S+)\.so$", shown.stdout, flags=re.M))
    assert needed, f"asterisklint modules-show printed no module: {shown.stdout[-1000:]} {shown.stderr[-1000:]}"
    modules = (CONF / "modules.conf").read_text(encoding="utf-8")
    assert re.search(r"^autoload\s*=\s*no", modules, flags=re.M), "modules.conf no longer lists modules explicitly"
    loaded = set(re.findall(r"^load\s*=>\s*(\S+)\.so", modules, flags=re.M))
    assert needed <= loaded, f"extensions.conf uses modules that modules.conf does not load: {sorted(needed - loaded)}"
