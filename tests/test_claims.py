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
