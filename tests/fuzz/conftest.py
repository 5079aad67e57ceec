"""One live app per fuzz module (an app per example would spend the run starting servers)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fuzz.harness import App, live_app


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    with live_app(tmp_path_factory.mktemp("fuzzapp")) as a:
        yield a
