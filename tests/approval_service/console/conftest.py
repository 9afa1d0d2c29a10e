"""Fixtures of the reviewer console tests: a served console, headless Chromium, login."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from console_helpers import ConsoleServer

from his_sdk.config import ConsoleSettings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives the console in headless Chromium")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.path.exists(CHROMIUM):
        return
    skip = pytest.mark.skip(
        reason=f"{CHROMIUM} is absent; run scripts/install_browser_test_deps.sh"
    )
    for item in items:
        if item.get_closest_marker("browser") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleServer]:
    settings = ConsoleSettings(enabled=True, dev_login=True, session_secret="s" * 32, port=0)
    with ConsoleServer(tmp_path_factory.mktemp("console"), settings) as server:
        yield server


# Module scope: while Playwright's sync API runs, this thread has a running event loop, which
# async tests elsewhere cannot share.
@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


@pytest.fixture
def new_page(chromium, console: ConsoleServer):
    """Opens pages in fresh browser contexts (one reviewer each); closes them afterwards."""
    contexts = []

    def _open():
        context = chromium.new_context(base_url=console.url)
        contexts.append(context)
        return context.new_page()

    yield _open
    for context in contexts:
        context.close()
    console.clock.offset = console.clock.offset * 0
