"""Fetching a small Vosk model for a language with Vosk's own model list and downloader."""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path
from typing import Any

import requests
import vosk

from asr.packs import DEFAULT_MODELS_DIR, ModelMissing, discover_packs

logger = logging.getLogger(__name__)


class ModelPullFailed(ModelMissing):
    """A model could not be downloaded; the message says why and what to do instead."""


class _VoskDownloader:
    """Just enough of a vosk.Model for its download_model(), which only needs this method.

    A real vosk.Model cannot be made without loading a model, and vosk.Model(lang=...) itself
    would sys.exit() on an unknown language and pick its own folder.
    """

    download_progress_hook = vosk.Model.download_progress_hook


def pull(language: str, models_dir: Path = DEFAULT_MODELS_DIR) -> Path:
    """Download the current small Vosk model for `language` into `models_dir`; return its folder.

    A model for the language already in `models_dir` is returned without any download. `language`
    matches Vosk's list either exactly ("en-us") or as its prefix ("en" finds "en-us").
    """
    for pack in discover_packs(models_dir):
        if language in (pack.language, f"{pack.language}-{pack.dialect}"):
            return pack.path
    name = _choose_model(language, _fetch_model_list(language, models_dir))
    target = models_dir / name
    logger.info("downloading Vosk model %s into %s", name, models_dir)
    try:
        vosk.Model.download_model(_VoskDownloader(), target)
    except (OSError, zipfile.BadZipFile) as exc:  # URLError is an OSError
        raise ModelPullFailed(
            language, f"downloading {vosk.MODEL_PRE_URL}{name}.zip into {models_dir} failed: {exc}"
        ) from exc
    if not target.is_dir():
        raise ModelPullFailed(language, f"{name}.zip did not unpack to {target}")
    return target


def _fetch_model_list(language: str, models_dir: Path) -> list[dict[str, Any]]:
    url = vosk.MODEL_LIST_URL  # read at call time so tests and mirrors can point it elsewhere
    try:
        response = requests.get(url, timeout=10)
        response.raise_for_status()
        models: list[dict[str, Any]] = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise ModelPullFailed(
            language,
            f"could not fetch Vosk's model list from {url} ({exc}); this machine may be offline: "
            f"download a vosk-model-small-{language}-*.zip on a connected machine and unpack it into "
            f"{models_dir}",
        ) from exc
    return models


def _choose_model(language: str, models: list[dict[str, Any]]) -> str:
    # The same choice as vosk.Model(lang=...): a small, current model of the language.
    fitting = [
        m
        for m in models
        if m.get("type") == "small"
        and m.get("obsolete") == "false"
        and (m.get("lang") == language or str(m.get("lang", "")).startswith(f"{language}-"))
    ]
    if not fitting:
        languages = ", ".join(sorted({str(m.get("lang")) for m in models if m.get("type") == "small"}))
        raise ModelPullFailed(language, f"Vosk offers no small model for it (languages offered: {languages})")
    # An exact language match ("en-us" asked) wins over a regional one found by prefix.
    exact = [m for m in fitting if m.get("lang") == language]
    return str((exact or fitting)[0]["name"])
