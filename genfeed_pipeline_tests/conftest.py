"""Shared fixtures: the fal emulator over real HTTP, a private data directory, PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from genfeed_pipeline_tests.fal_emulator import EmulatedCatalog, EmulatorSettings, FalEmulator

TEST_FAL_KEY = "fal-test-key-id:fal-test-key-secret-9f8e7d"
DEFAULT_TEST_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
IN_CI = os.environ.get("CI", "").lower() == "true"


def pytest_configure(config: pytest.Config) -> None:
    """Signals as an interactive shell gives them, however the suite was started.

    Started in the background (`nohup`, `cmd &` without job control), a process inherits SIGINT ignored.
    Dagster maps SIGTERM to SIGINT's handler while it runs a job in process, so SIGTERM becomes ignored
    too and every process the tests start after that (the emulator, `genfeed-catalog`, the `tail` that
    mirrors a step's logs) outlives the `terminate()` meant to stop it, and the test waits on it."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGTERM) == signal.SIG_IGN:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def shared_dir() -> Path | None:
    """`../shared` beside the repository (present on the developers' machines, absent in a user's clone)."""
    configured = os.environ.get("GENFEED_SHARED_DIR")
    path = Path(configured) if configured else Path(__file__).resolve().parents[1].parent / "shared"
    return path if (path / "fal-data").is_dir() else None


@pytest.fixture
def fal_data_dir() -> Path:
    """The raw fal data, for the checks that rebuild the snapshot or compare the bundled copies with it."""
    shared = shared_dir()
    if shared is None:
        pytest.skip(
            "../shared/fal-data is absent (a user's clone): this check compares the bundled data with "
            "the raw fal data it was built from"
        )
    return shared / "fal-data"


@pytest.fixture(scope="session")
def snapshot_catalog() -> EmulatedCatalog:
    return EmulatedCatalog.from_snapshot()


@pytest.fixture(scope="session")
def priced_snapshot(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Any]:
    """The bundled snapshot mapped and priced for cloud: (PricedModel by endpoint id, the policy)."""
    from genfeed_pipeline.fal.cache import FalCache
    from genfeed_pipeline.fal.source import OfflineCatalogSource
    from genfeed_pipeline.mapping import map_catalog
    from genfeed_pipeline.pricing import PricingPolicy, price_catalog
    from genfeed_pipeline.settings import Deployment

    source = OfflineCatalogSource(FalCache(tmp_path_factory.mktemp("cache") / "cache.sqlite3"))
    listing, schemas = source.discover()
    policy = PricingPolicy(deployment=Deployment.CLOUD)
    return price_catalog(map_catalog(listing, schemas), listing.prices, policy), policy


@pytest.fixture
def fal_emulator(snapshot_catalog: EmulatedCatalog) -> Iterator[FalEmulator]:
    """A fresh emulator serving a private copy of the bundled snapshot's catalog."""
    with FalEmulator(
        snapshot_catalog.scaled(len(snapshot_catalog.models)), EmulatorSettings(), api_key=TEST_FAL_KEY
    ) as emulator:
        yield emulator


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "genfeed-data"
    path.mkdir()
    return path


def require_tools(*names: str, package: str) -> list[str]:
    """The paths of the named executables. A missing one skips the test with a message, except under
    `CI=true`, where `.ci/run` installs them and a missing one fails the test."""
    found = {name: shutil.which(name) for name in names}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        message = f"{' and '.join(missing)} not installed (Debian package: {package})"
        if IN_CI:
            pytest.fail(f"{message}; under CI=true every tool the tests use must be present")
        pytest.skip(message)
    return [path for path in found.values() if path is not None]


def _postgres_unavailable(reason: str) -> None:
    message = f"PostgreSQL is not reachable ({reason}); set GENFEED_TEST_POSTGRES_URL to run these tests"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    return os.environ.get("GENFEED_TEST_POSTGRES_URL", DEFAULT_TEST_POSTGRES_URL)


@contextlib.contextmanager
def private_postgres_database(server_url: str, prefix: str = "genfeed_test") -> Iterator[str]:
    """A database of its own on the server at `server_url`, dropped (connections and all) afterwards.

    Skips the test, with the reason, when the server cannot be reached (fails it in CI)."""
    import sqlalchemy as sa

    server = sa.make_url(server_url)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        _postgres_unavailable(str(exc.orig).splitlines()[0])
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A database of its own for one test, dropped afterwards."""
    with private_postgres_database(postgres_server_url) as url:
        yield url


@pytest.fixture
def dagster_postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A second fresh database on the same server, for a Dagster instance (`deploy/dagster.yaml`)."""
    with private_postgres_database(postgres_server_url, "genfeed_test_dagster") as url:
        yield url
