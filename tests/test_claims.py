"""Workers and claims (benchmark.run.claims): one holder per key, dead holders lose their claims."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmark.run.claims import Coordinator, prepare_storage


@pytest.fixture
def storage(tmp_path: Path) -> str:
    return prepare_storage(f"sqlite:///{tmp_path / 'optuna.db'}")


def test_one_holder_per_key_until_released(storage: str) -> None:
    with Coordinator(storage) as a, Coordinator(storage) as b:
        assert a.claim("cell:x")
        assert a.claim("cell:x")  # a holder claiming again keeps it
        assert not b.claim("cell:x")
        assert b.holder("cell:x") == a.worker_id
        a.release("cell:x")
        assert b.claim("cell:x") and not a.claim("cell:x")


def test_a_failed_cell_is_not_retried_in_the_same_round_but_by_a_later_invocation(storage: str) -> None:
    with Coordinator(storage) as a, Coordinator(storage) as b:
        assert a.claim("cell:bad")
        a.release("cell:bad", failed=True)
        assert not b.claim("cell:bad")  # b started before the failure: same round
    time.sleep(0.01)
    with Coordinator(storage) as later:
        assert later.claim("cell:bad")


def test_a_worker_killed_holding_a_claim_releases_it_at_once_on_its_machine(storage: str) -> None:
    code = ("import sys, time; from benchmark.run.claims import Coordinator; c = Coordinator(sys.argv[1]); "
            "assert c.claim('cell:y'); print('held', flush=True); time.sleep(600)")
    holder = subprocess.Popen([sys.executable, "-c", code, storage], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with Coordinator(storage) as other:
            assert not other.claim("cell:y")  # its holder is alive
            holder.send_signal(signal.SIGKILL)
            holder.wait(timeout=30)
            assert other.claim("cell:y")  # same host, process gone: no lease to wait for
    finally:
        holder.kill()


def test_a_silent_worker_of_another_machine_loses_its_claims_when_its_lease_runs_out(storage: str) -> None:
    with Coordinator(storage, lease_s=2, heartbeat_s=60) as remote, Coordinator(storage, lease_s=2) as here:
        with remote.engine.begin() as con:  # it claims, then its machine goes silent (no heartbeat: 60 s)
            con.execute(remote.workers.update().values(host="another-machine")
                        .where(remote.workers.c.worker_id == remote.worker_id))
        assert remote.claim("cell:z")
        assert not here.claim("cell:z")
        time.sleep(2.5)
        assert here.claim("cell:z")
        assert here.dead([remote.worker_id]) == {remote.worker_id}


def test_local_workers_counts_live_processes_of_this_machine(storage: str) -> None:
    with Coordinator(storage) as a:
        assert a.local_workers() == 1
        with Coordinator(storage):
            assert a.local_workers() == 2
        assert a.local_workers() == 1  # a closed worker removes its row


def test_a_storage_file_is_made_whole_or_not_at_all(tmp_path: Path) -> None:
    db = tmp_path / "optuna.db"
    db.write_bytes(b"")  # as a kill at the first moment of an older version left it
    prepare_storage(f"sqlite:///{db}")
    assert db.stat().st_size > 0
    with Coordinator(f"sqlite:///{db}") as worker:
        assert worker.claim("k")
    assert not list(tmp_path.glob(".optuna.db.tmp*"))


# ----- fencing: a live worker taken for dead never finishes the work another took over
def _silence(worker: Coordinator) -> None:
    """Make ``worker`` look silent (its last heartbeat long ago), as a paused process would."""
    with worker.engine.begin() as con:
        con.execute(worker.workers.update().values(heartbeat=time.time() - 3600)
                    .where(worker.workers.c.worker_id == worker.worker_id))


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_takeover_raises_the_epoch_and_the_old_holder_sees_it_lost(storage: str) -> None:
    with Coordinator(storage, heartbeat_s=3600) as paused, Coordinator(storage, lease_s=1) as other:
        assert paused.claim("cell:a")
        fence = paused.fence()
        assert fence == {"cell:a": 0} and paused.lost(fence) is None
        _silence(paused)
        assert other.claim("cell:a")  # taken over at epoch 1
        assert other.fence() == {"cell:a": 1}
        assert paused.lost(fence) == other.worker_id
        paused.release("cell:a")  # releasing a lost claim leaves the new holder's alone
        assert other.holder("cell:a") == other.worker_id and other.lost(other.fence()) is None


def test_a_claim_given_back_by_its_holder_is_done_with_not_lost(storage: str) -> None:
    with Coordinator(storage) as worker:
        assert worker.claim("cell:b") and worker.claim("study:b")
        fence = worker.fence()
        worker.release("study:b")  # a study tuned to its end while the cell run is open
        assert worker.lost(fence) is None


def test_a_superseded_run_ends_killed_and_never_finished(storage: str, tracking_uri: str) -> None:
    from benchmark.tracking.tags import RunTags
    from benchmark.tracking.tracker import SUPERSEDED_TAG, Tracker
    from simecg.errors import Superseded

    with Coordinator(storage, heartbeat_s=3600) as paused, Coordinator(storage, lease_s=1) as other:
        tracker = Tracker(tracking_uri, "fence", worker=paused)
        tags = RunTags(kind="cell", fingerprint="c" * 16)
        assert paused.claim("cell:c")
        with pytest.raises(Superseded, match="superseded"), tracker.run("cell c", tags) as run:
            _silence(paused)
            assert other.claim("cell:c")  # the paused worker is taken for dead meanwhile
        finished = tracker.client.get_run(run.run_id)
        assert finished.info.status == "KILLED" and finished.data.tags[SUPERSEDED_TAG] == other.worker_id
        with Tracker(tracking_uri, "fence", worker=other).run("cell c", tags) as winner:
            pass
        assert tracker.client.get_run(winner.run_id).info.status == "FINISHED"


def test_the_winner_closes_a_run_the_superseded_worker_finished_between_its_checks(
        storage: str, tracking_uri: str) -> None:
    from benchmark.tracking.tags import RunTags
    from benchmark.tracking.tracker import SUPERSEDED_TAG, Tracker

    with Coordinator(storage) as worker:
        tracker = Tracker(tracking_uri, "fence", worker=worker)
        tags = RunTags(kind="cell", fingerprint="d" * 16)
        late = tracker.client.create_run(tracker.experiment_id, run_name="late", tags=tags.to_mlflow()).info.run_id
        tracker.client.set_terminated(late, status="FINISHED")  # a superseded worker's, in the window
        assert worker.claim("cell:d")
        with tracker.run("cell d", tags) as run:
            pass
        assert tracker.client.get_run(run.run_id).info.status == "FINISHED"
        closed = tracker.client.get_run(late)
        assert closed.info.status == "KILLED" and closed.data.tags[SUPERSEDED_TAG] == worker.worker_id


def test_a_pid_of_another_pid_namespace_on_this_host_is_no_evidence_of_death(
        storage: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with Coordinator(storage) as container:
        with container.engine.begin() as con:  # a worker in another container with host networking:
            con.execute(container.workers.update().values(pid=_dead_pid(), pidns="pid:[4026530000]")  # its pid
                        .where(container.workers.c.worker_id == container.worker_id))  # means nothing here
        assert container.claim("cell:e")
        with Coordinator(storage) as here:
            assert here.pidns and here.pidns != "pid:[4026530000]"
            assert not here.claim("cell:e")  # its heartbeat is fresh: alive
            assert here.dead([container.worker_id]) == set()
        monkeypatch.setenv("SIMECG_PID_NAMESPACE", "pid:[4026530000]")
        with Coordinator(storage) as same_namespace:
            assert same_namespace.claim("cell:e")  # the same namespace: its pid is gone, so is it


def test_a_database_of_an_older_version_gets_the_new_columns(tmp_path: Path) -> None:
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as con:
        con.execute(sa.text("CREATE TABLE simecg_workers (worker_id VARCHAR(32) PRIMARY KEY, host VARCHAR(255) "
                            "NOT NULL, pid INTEGER NOT NULL, started FLOAT NOT NULL, heartbeat FLOAT NOT NULL)"))
        con.execute(sa.text("CREATE TABLE simecg_claims (key VARCHAR(200) PRIMARY KEY, worker_id VARCHAR(32) "
                            "NOT NULL, state VARCHAR(16) NOT NULL, since FLOAT NOT NULL)"))
        con.execute(sa.text("INSERT INTO simecg_claims VALUES ('cell:old', 'gone', 'running', 0)"))
    engine.dispose()
    with Coordinator(url) as worker:
        assert worker.claim("cell:old") and worker.fence() == {"cell:old": 1}


def test_a_trial_ended_by_another_worker_meanwhile_is_not_told_again(storage: str,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    """A worker paused mid-trial wakes up to find its trial FAILed by a worker that took it for dead:
    one warning line, the study goes on (Optuna alone raises "Cannot tell a FAIL trial")."""
    import optuna

    from benchmark.run.tuning import tune
    from benchmark.suites.config import TuningConfig

    failed = []

    def fit(params: dict, on_eval) -> float:
        if not failed:  # the first trial: another worker marks it FAIL while this one "sleeps"
            study = optuna.load_study(study_name="study-paused", storage=storage)
            trial = study.get_trials(deepcopy=False)[-1]
            study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
            failed.append(trial.number)
        return params["lr"]

    space = lambda trial: {"lr": trial.suggest_float("lr", 1e-3, 1e-2)}  # noqa: E731
    best = tune(space, fit, TuningConfig(n_trials=2), "study-paused", storage)
    assert set(best) == {"lr"}
    states = [t.state.name for t in optuna.load_study(study_name="study-paused", storage=storage).trials]
    assert states == ["FAIL", "COMPLETE"]  # the lost trial used up an attempt of this session
    assert any("ended FAIL by another worker" in r.getMessage() for r in caplog.records)


def test_a_diverged_trial_is_pruned_and_never_the_best(storage: str) -> None:
    import optuna

    from benchmark.run.tuning import tune
    from benchmark.suites.config import TuningConfig
    from simecg.errors import DivergedError

    def fit(params: dict, on_eval) -> float:
        if params["lr"] > 5e-3:
            raise DivergedError("fine-tuning diverged")
        return 1.0 - params["lr"]  # a larger lr would be "better" if its loss were believed

    space = lambda trial: {"lr": trial.suggest_float("lr", 1e-3, 1e-2)}  # noqa: E731
    best = tune(space, fit, TuningConfig(n_trials=6), "study-diverged", storage)
    trials = optuna.load_study(study_name="study-diverged", storage=storage).trials
    states = {t.number: t.state.name for t in trials}
    assert len(trials) == 6 and "FAIL" not in states.values()  # pruned: it counts, the sampler moves on
    assert {states[t.number] for t in trials if t.params["lr"] > 5e-3} == {"PRUNED"}
    assert best and best["lr"] <= 5e-3


def test_trials_tell_the_study_they_are_alive_and_say_nothing_else(storage: str) -> None:
    """Each trial beats the study's heartbeat from its own thread (what ``study.optimize`` would do), and
    running trials one by one prints no warning of Optuna's ("Heartbeat ... Study.optimize")."""
    import warnings

    import optuna
    import sqlalchemy

    from benchmark.run.tuning import tune
    from benchmark.suites.config import TuningConfig

    beats = []

    def fit(params: dict, on_eval) -> float:  # a trial's first beat is written when it starts
        engine = sqlalchemy.create_engine(storage)
        with engine.connect() as con:
            beats.append(con.execute(sqlalchemy.text("SELECT COUNT(*) FROM trial_heartbeats")).scalar())
        engine.dispose()
        return params["lr"]

    space = lambda trial: {"lr": trial.suggest_float("lr", 1e-3, 1e-2)}  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        tune(space, fit, TuningConfig(n_trials=2), "study-beats", storage)
    assert beats == [1, 2]  # one heartbeat row per trial, there while it runs
    trials = optuna.load_study(study_name="study-beats", storage=storage).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
