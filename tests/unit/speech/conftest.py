"""The speech tests' shared fixtures: the shipped Korean model, loaded once."""

from __future__ import annotations

import pytest
import vosk

from asr import LoadedModel, default_registry


@pytest.fixture(scope="session")
def korean() -> LoadedModel:
    vosk.SetLogLevel(-1)
    return default_registry().get("ko")
