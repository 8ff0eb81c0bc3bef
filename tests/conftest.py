"""Shared fixtures: real data from ../shared/data (skipped when absent), temporary stores."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from baselines.base import EncoderNeed
    from simecg.identity import Identity

ROOT = Path(__file__).resolve().parents[1]


def _shared_data() -> Path:
    env = os.environ.get("SIMECG_TEST_DATA")
    return Path(env) if env else ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only real-data subsets; the test is skipped when the folder is absent."""
    path = _shared_data()
    if not (path / "ptbxl").is_dir():
        pytest.skip(f"real data subsets not found at {path} (set SIMECG_TEST_DATA)")
    return path


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test writes caches to a temporary folder, never beside the data or in ~/.cache."""
    cache = tmp_path_factory.getbasetemp() / "simecg-cache"
    monkeypatch.setenv("SIMECG_CACHE", str(cache))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture
def one_thread():
    """Tiny models run fastest on one thread, and do not fight parallel jobs for the cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def one_openmp_thread():
    """scikit-learn's boosted trees (the corpus report's C2ST) on one OpenMP thread: on a loaded 2-core machine
    their spinning threads took 174 s for what one thread does in 6 s. The import first: threadpoolctl limits
    only the runtimes already loaded."""
    import sklearn.ensemble  # noqa: F401
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


class RandomEncoders:
    """An encoder source of tiny randomly initialised encoders, one per (method, source), seeded the
    same: tests of fine-tuning and of the model contract, not of pretraining, use it."""

    def __init__(self, folder: Path):
        self.folder = folder

    def identity(self, need: EncoderNeed) -> Identity:
        from simecg.identity import Identity

        return Identity("encoder", {"random": need.source, "method": need.method})

    def path(self, need: EncoderNeed) -> Path:
        import torch

        from pretraining.checkpoint import save_encoder
        from pretraining.mae import ECGEncoder, preset

        path = self.folder / f"{need.method}-{need.source}.pt"
        if not path.exists():
            torch.manual_seed(0)
            save_encoder(ECGEncoder(preset("tiny")), path, extra={"fingerprint": self.identity(need).fingerprint})
        return path


@pytest.fixture
def random_encoders(tmp_path: Path) -> RandomEncoders:
    """Tiny random encoders in the test's folder, as the encoder source of a pretrained model."""
    return RandomEncoders(tmp_path / "encoders")


@pytest.fixture
def tracking_uri(tmp_path: Path) -> str:
    """A fresh SQLite MLflow store for one test."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL database URL: ``$SIMECG_TEST_POSTGRES`` (CI starts one), else a cluster started for
    the session (.ci/postgres.sh, when the server binaries are installed); skipped, saying why, otherwise."""
    import services

    if url := os.environ.get(services.POSTGRES_ENV):
        try:
            services.check_postgres(url)
        except services.Unavailable as exc:
            pytest.fail(f"{services.POSTGRES_ENV} is set but unusable: {exc}")
        yield url
        return
    try:
        url, folder = services.start_postgres()
    except services.Unavailable as exc:
        pytest.skip(f"PostgreSQL: {exc} (or set {services.POSTGRES_ENV})")
    try:
        yield url
    finally:
        services.stop_postgres(folder)


@pytest.fixture
def postgres_db(postgres_url: str) -> Iterator[str]:
    """A fresh, empty database for one test (random name), dropped after it."""
    import services

    url = services.create_database(postgres_url)
    try:
        yield url
    finally:
        services.drop_database(url, postgres_url)


@pytest.fixture
def mlflow_server(postgres_db: str, tmp_path: Path) -> Iterator[str]:
    """``mlflow server`` on loopback over a fresh PostgreSQL database, serving artifacts from a tmp
    folder: its ``http://127.0.0.1:<port>`` URI; the server's process group is stopped after."""
    import services

    artifacts = tmp_path / "served-artifacts"
    artifacts.mkdir()
    try:
        server, uri = services.start_mlflow_server(postgres_db, artifacts, log_file=tmp_path / "mlflow-server.log")
    except services.Unavailable as exc:
        pytest.skip(str(exc))
    try:
        yield uri
    finally:
        services.stop_server(server)


@pytest.fixture(params=["sqlite", "postgres"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(MLflow tracking URI, Optuna/coordination storage URL) on SQLite files or on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'mlflow.db'}", f"sqlite:///{tmp_path / 'optuna.db'}"
        return
    import services

    tracking = request.getfixturevalue("postgres_db")
    admin = request.getfixturevalue("postgres_url")
    # artifacts of a store on PostgreSQL: a folder of the test's, never the CWD (the checkout)
    request.getfixturevalue("monkeypatch").setenv("SIMECG_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    optuna = services.create_database(admin, prefix="simecg_test_optuna")
    try:
        yield tracking, optuna
    finally:
        services.drop_database(optuna, admin)
