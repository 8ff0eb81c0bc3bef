"""The pieces of `simecg-bench ui` that need no browser: saved views, the page's defaults, a quiet server."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys

import pytest

from benchmark.tracking.mlflow_ui import (
    CELLS_VIEW,
    MODEL_TASK_VIEW,
    PRESIGNED_FALLBACK,
    STATE_LIMIT,
    BrowserDefaults,
    _expected_fallback,
    publish_views,
    runs_url,
    view_states,
)
from benchmark.tracking.tags import RunTags
from benchmark.tracking.tracker import Tracker


def test_the_views_show_every_cell_and_group_them_by_model_and_task() -> None:
    views = view_states([("mae:sim", "ptbxl/LVH"), ("resnet18-1d", "ptbxl/LVH")])
    _, cells = views[CELLS_VIEW]
    _, grouped = views[MODEL_TASK_VIEW]
    assert cells["searchFilter"] == "tags.kind = 'cell'" and cells["runsHiddenMode"] == "SHOW_ALL"
    for column in ("tags.`model`", "tags.`task`", "tags.`lead`", "tags.`budget`", "tags.`seed`",
                   "metrics.`test_f1`", "metrics.`test_auroc`", "metrics.`test_auprc`"):
        assert column in cells["selectedColumns"] and cells["columnWidths"][column] > 0
    assert sum(cells["columnWidths"].values()) + 73 <= 1040  # the table's width at 1,280 pixels, sidebar open
    assert [k["groupByData"] for k in grouped["groupBy"]["groupByKeys"]] == ["model", "task"]
    assert grouped["groupBy"]["aggregateFunction"] == "average" and "groupBy" not in cells
    assert grouped["groupsExpanded"] == {"tag.model.mae:sim,tag.task.ptbxl/LVH": False,
                                         "tag.model.resnet18-1d,tag.task.ptbxl/LVH": False}
    assert {c["metricKey"] for c in grouped["compareRunCharts"]} == {"test_f1", "test_auroc", "test_auprc"}
    # a paper-sized suite: groups stay open past what an experiment tag can hold, the view still fits
    pairs = [(f"mae:pretraining-source-{m}", f"challenge-dataset/TASK_{t:02d}") for m in range(12) for t in range(26)]
    many = view_states(pairs)[MODEL_TASK_VIEW][1]
    assert 0 < len(many["groupsExpanded"]) < 12 * 26 and len(json.dumps(many)) <= STATE_LIMIT
    assert runs_url("http://h:1", "3", CELLS_VIEW, charts=True) == (
        "http://h:1/#/experiments/3/runs?viewStateShareKey=simecg-cells&compareRunsMode=CHART"
        "&workflowType=machine_learning")


def test_publishing_the_views_twice_keeps_them_as_they_were(tracking_uri: str) -> None:
    tracker = Tracker(tracking_uri, "views")
    with tracker.run("c", RunTags(kind="cell", model="mae:sim", task="ptbxl/LVH", lead="II", seed=1)):
        pass
    publish_views(tracker.client, tracker.experiment_id)
    first = tracker.client.get_experiment(tracker.experiment_id).tags
    envelope = json.loads(first[f"mlflow.sharedViewState.{MODEL_TASK_VIEW}"])
    assert envelope["name"] == "SimECG-Bench: model x task, mean over seeds"
    assert json.loads(envelope["state"])["groupsExpanded"] == {"tag.model.mae:sim,tag.task.ptbxl/LVH": False}
    publish_views(tracker.client, tracker.experiment_id)
    assert tracker.client.get_experiment(tracker.experiment_id).tags == first  # nothing rewritten


def _page(app_body: bytes, path: str = "/") -> tuple[dict, bytes]:
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/html"), (b"content-length", str(len(app_body)).encode())]})
        await send({"type": "http.response.body", "body": app_body[:10], "more_body": True})
        await send({"type": "http.response.body", "body": app_body[10:]})

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    wrapped = BrowserDefaults(app, {"mlflow.workflowType_v1": "machine_learning"})
    asyncio.run(wrapped({"type": "http", "method": "GET", "path": path}, None, send))
    return dict(sent[0]["headers"]), b"".join(m.get("body", b"") for m in sent[1:])


def test_the_page_seeds_the_browser_defaults_once_and_nothing_else_changes() -> None:
    headers, body = _page(b"<!doctype html><html><head><title>MLflow</title></head><body></body></html>")
    assert body.startswith(b"<!doctype html><html><head><script>")
    assert b'"mlflow.workflowType_v1": "\\"machine_learning\\""' in body and b"getItem(k)===null" in body
    assert int(headers[b"content-length"]) == len(body)
    _, other = _page(b"<!doctype html><html><head></head></html>", path="/static-files/x.js")
    assert b"<script>" not in other  # only MLflow's page, not its scripts or API answers


def test_only_the_presigned_download_fallback_line_is_dropped() -> None:
    def record(message: str, level: int = logging.ERROR) -> logging.LogRecord:
        return logging.LogRecord("mlflow.server.handlers", level, __file__, 1, message, None, None)

    assert not _expected_fallback(record(f"Error in _create_presigned_download_url: {PRESIGNED_FALLBACK}. Set ..."))
    assert _expected_fallback(record("Error in _get_run: Run 'x' not found"))  # real errors pass
    assert _expected_fallback(record(PRESIGNED_FALLBACK, logging.DEBUG))


@pytest.mark.slow
def test_the_app_marks_the_absent_auth_plugin_so_no_request_reads_a_half_made_module() -> None:
    """MLflow's Assistant routes ask ``sys.modules`` for the auth plugin while its GraphQL handler
    imports it; marked absent, the import fails at once and the question has an answer."""
    code = ("import sys; from benchmark.tracking.mlflow_ui import create_app; create_app(); "
            "import mlflow.server.assistant.identity as i; print(i.auth_plugin_active()); "
            "import importlib\n"
            "try:\n importlib.import_module('mlflow.server.auth')\nexcept ImportError as e: print('refused')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "refused"]
