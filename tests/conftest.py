"""Shared test configuration: integration tests need root (Asterisk runs in a chroot)."""

import os

import pytest


def pytest_collection_modifyitems(config, items):  # type: ignore[no-untyped-def]
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="integration tests need root: Asterisk runs chrooted (make test as root)")
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(skip)
