"""The suite's runs in MLflow's UI: saved views that compare the cells, a description that links
them, and the defaults of the UI server ``simecg-bench ui`` starts.

What MLflow's UI (3.18) can do, and what this module asks of it:

* **Saved views.** The runs page of an experiment lists, under *Views*, the experiment tags
  ``mlflow.sharedViewState.<id>`` (the envelope ``{"name", "createdAt", "updatedAt", "state"}``
  MLflow's own *Save view* writes), and opens one from the URL ``runs?viewStateShareKey=<id>``:
  a filter, sort, columns, grouping and charts. :func:`publish_views` writes two:
  ``simecg-cells`` (every cell of the suite as a row: model, task, lead, budget, seed, test F1,
  AUROC, AUPRC) and ``simecg-model-task`` (the cells grouped by model and task, each group's
  *average* over its seeds, and a bar chart per metric with one bar per group).
* **Grouping.** MLflow groups the runs the page has loaded (100 at first; *Load more* adds
  more) by tags and shows each group's minimum, maximum or average of every metric column. It
  cannot show a spread (sd, interval), a strongest baseline, a gain, a significance test, or a flag
  for a task with too few test positives: those are the leaderboard's and the report's, whose
  comparison table is also logged on each invocation run (``comparison.json``, MLflow's artifact
  view shows it) and linked from the experiment's description (:func:`describe_experiment`).
* **The browser's defaults.** MLflow 3.18 keeps two choices in the browser's localStorage only,
  with no server option: the mode (GenAI, its default, or machine learning: a run page opened
  from the table falls back to GenAI) and whether its Assistant panel has been opened once (it
  opens on a local server's first visit and takes a quarter of the width). The UI server that
  ``simecg-bench ui`` starts is MLflow's own app wrapped by :func:`create_app` (an ``mlflow.app``
  plugin), which writes those two defaults into the page once, when the browser holds no choice
  of its own: machine learning, and the Assistant closed (its button stays).
* **A quiet server.** :func:`create_app` also tells MLflow this server runs without its
  basic-auth plugin. MLflow's GraphQL handler imports ``mlflow.server.auth`` on every request to
  look for that plugin; without the ``Flask-WTF`` package the import fails after seconds, is
  tried again on the next request, and while it runs the Assistant's routes read the half-made
  module: ``partially initialized module 'mlflow.server.auth' has no attribute
  'is_auth_enabled'`` tracebacks. Marked absent, the import fails at once and nothing reads a
  half-made module. The server runs without per-request access lines (``--no-access-log``).
"""

from __future__ import annotations

import json
import logging
import sys
import time
import warnings
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

APP_NAME = "simecg-bench"  # the mlflow.app entry point naming create_app (pyproject.toml)
VIEW_TAG = "mlflow.sharedViewState."  # + view id: a saved view of the runs page
NOTE_TAG = "mlflow.note.content"  # an experiment's or a run's description
CELLS_VIEW = "simecg-cells"
MODEL_TASK_VIEW = "simecg-model-task"
# the columns of the views and their widths in pixels: every one visible at 1,280 pixels
COLUMNS = {("tags", "model"): 95, ("tags", "task"): 90, ("tags", "lead"): 45, ("tags", "budget"): 60,
           ("tags", "seed"): 45, ("metrics", "test_f1"): 70, ("metrics", "test_auroc"): 80,
           ("metrics", "test_auprc"): 80, ("metrics", "test_n_pos"): 75}
FIXED_WIDTHS = {"attributes.`Run Name`": 230, "runDateAndNestInfo": 90}  # the run name and its "Created" time
CHART_METRICS = ("test_f1", "test_auroc", "test_auprc")
CELL_FILTER = "tags.kind = 'cell'"
RUN_NAME_KEY = "tags.`mlflow.runName`"  # the runs table's "Run Name" column (its sort key)
STATE_LIMIT = 16000  # characters of a saved view's state: MLflow caps an experiment tag at 20,000
# what the page seeds into a browser that has no choice of its own (localStorage keys: "<key>_v<version>")
BROWSER_DEFAULTS = {"mlflow.workflowType_v1": "machine_learning", "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": True}
AUTH_PLUGIN = "mlflow.server.auth"
PRESIGNED_FALLBACK = "Presigned download is not supported for the current artifact repository"


# ----------------------------------------------------------------------------------------- saved views
def _column(kind: str, key: str) -> str:
    """A column of the runs table as MLflow names it: ``metrics.`test_f1```."""
    return f"{kind}.`{key}`"


def _charts(metrics: tuple[str, ...]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One bar chart per metric (every group or run shown, not MLflow's first 10), in one section."""
    section = {"uuid": "simecg-metrics", "name": "Test metrics (mean over seeds per group)", "display": True,
               "isReordered": False}
    cards = [{"uuid": f"simecg-{m}", "type": "BAR", "metricKey": m, "metricSectionId": section["uuid"],
              "runsCountToCompare": 1000, "deleted": False, "isGenerated": False, "displayName": m}
             for m in metrics]
    return cards, [section]


def view_states(groups: list[tuple[str, str]] = ()) -> dict[str, tuple[str, dict[str, Any]]]:
    """The saved views, by id: ``(name, state)``, a state being what MLflow's runs page restores.

    ``groups`` are the suite's (model, task) pairs: the grouped view opens with them collapsed
    (one row per model and task; MLflow opens every group unless its state says otherwise), as
    far as :data:`STATE_LIMIT` allows."""
    columns = [_column(kind, key) for kind, key in COLUMNS]
    widths = {**FIXED_WIDTHS, **{_column(kind, key): width for (kind, key), width in COLUMNS.items()}}
    charts, sections = _charts(CHART_METRICS)
    common = {"searchFilter": CELL_FILTER, "orderByKey": RUN_NAME_KEY, "orderByAsc": True,
              "lifecycleFilter": "Active", "startTime": "ALL", "selectedColumns": columns,
              "columnOrder": [*FIXED_WIDTHS, *columns], "columnWidths": widths,
              "runsHiddenMode": "SHOW_ALL", "compareRunCharts": charts, "compareRunSections": sections,
              "hideEmptyCharts": True}
    grouped = {**common, "groupBy": {"aggregateFunction": "average",
                                     "groupByKeys": [{"mode": "tag", "groupByData": "model"},
                                                     {"mode": "tag", "groupByData": "task"}]},
               "useGroupedValuesInCharts": True}
    collapsed: dict[str, bool] = {}
    for model, task in sorted(groups):
        collapsed[f"tag.model.{model},tag.task.{task}"] = False
        if len(json.dumps({**grouped, "groupsExpanded": collapsed})) > STATE_LIMIT:
            collapsed.popitem()
            break
    grouped["groupsExpanded"] = collapsed
    return {
        CELLS_VIEW: ("SimECG-Bench: every cell (model, task, lead, budget, seed, test F1/AUROC/AUPRC)", common),
        MODEL_TASK_VIEW: ("SimECG-Bench: model x task, mean over seeds", grouped),
    }


def publish_views(client: Any, experiment_id: str) -> list[str]:
    """Write the saved views on the experiment (a view that already holds the same state is left
    as it is, so its creation time stays); returns their ids."""
    experiment = client.get_experiment(experiment_id)
    now = int(time.time() * 1000)
    groups = {(r.data.tags.get("model", ""), r.data.tags.get("task", ""))
              for r in client.search_runs([experiment_id], CELL_FILTER, max_results=5000)}
    for view_id, (name, state) in view_states(sorted(groups)).items():
        key = VIEW_TAG + view_id
        text = json.dumps(state, sort_keys=True)
        old = _envelope(experiment.tags.get(key))
        if old is not None and old.get("name") == name and old.get("state") == text:
            continue
        created = old.get("createdAt", now) if old else now
        client.set_experiment_tag(experiment_id, key, json.dumps(
            {"name": name, "createdAt": created, "updatedAt": now, "state": text}))
    return list(view_states())


def _envelope(value: str | None) -> dict[str, Any] | None:
    try:
        envelope = json.loads(value) if value else None
    except ValueError:
        return None
    return envelope if isinstance(envelope, dict) else None


def runs_url(base: str, experiment_id: str, view: str | None = None, charts: bool = False) -> str:
    """The runs page of an experiment in machine-learning mode, at a saved view (``charts``: its charts)."""
    query: dict[str, str] = {}
    if view:
        query["viewStateShareKey"] = view
    if charts:
        query["compareRunsMode"] = "CHART"
    query["workflowType"] = "machine_learning"
    return f"{base}/#/experiments/{experiment_id}/runs?{urlencode(query)}"


def describe_experiment(client: Any, experiment_id: str, suite: str, headline: list[str] | None = None,
                        report: str | None = None) -> str:
    """Set the experiment's description: how to compare its runs (the saved views, as relative links
    that work on any host), what MLflow's grouping cannot say, and where the report is."""
    base = ""  # links relative to the page: "#/experiments/..."
    lines = [f"**SimECG-Bench suite `{suite}`.** Compare its runs:",
             f"- [every cell]({runs_url(base, experiment_id, CELLS_VIEW)}) (model, task, lead, budget, seed, "
             "test F1, AUROC, AUPRC as columns);",
             f"- [model x task, mean over seeds]({runs_url(base, experiment_id, MODEL_TASK_VIEW)}) "
             f"(table) or [as bar charts]({runs_url(base, experiment_id, MODEL_TASK_VIEW, charts=True)});",
             "- or open *Views* above the table.",
             "",
             "MLflow averages the runs the page has loaded (*Load more* for more) and shows no spread, no "
             "strongest baseline, no gain and no flag for a task with too few test positives: the leaderboard "
             f"(`simecg-bench leaderboard --suite {suite} --metric f1|auroc`), the report and each invocation "
             "run's `comparison.json` do."]
    if headline:
        lines += ["", *headline]
    if report:
        lines += ["", f"Report: {report}"]
    text = "\n".join(lines)
    client.set_experiment_tag(experiment_id, NOTE_TAG, text)
    return text


# ----------------------------------------------------------------------------------------- the UI server
def has_app() -> bool:
    """Whether the ``mlflow.app`` plugin :data:`APP_NAME` is installed (it is, once the package is)."""
    from importlib.metadata import entry_points

    return any(e.name == APP_NAME for e in entry_points(group="mlflow.app"))


def create_app() -> Any:
    """MLflow's UI server app with SimECG-Bench's defaults (module docstring); the ``mlflow.app``
    plugin :data:`APP_NAME`, run by ``mlflow ui --app-name simecg-bench``."""
    # no basic-auth plugin on this server: its import is refused at once instead of attempted per request
    sys.modules.setdefault(AUTH_PLUGIN, None)  # type: ignore[arg-type]
    logging.getLogger("mlflow.server.handlers").addFilter(_expected_fallback)
    with warnings.catch_warnings():  # a notice to MLflow about its own use of Starlette, not to the user
        warnings.filterwarnings("ignore", message="starlette.middleware.wsgi is deprecated")
        from mlflow.server.fastapi_app import app

    return BrowserDefaults(app, BROWSER_DEFAULTS)


def _expected_fallback(record: logging.LogRecord) -> bool:
    """Drop MLflow's ERROR line for a presigned download a local store cannot give: the UI asks for
    one before every artifact preview and, answered "not supported" (HTTP 501, which MLflow logs as
    an error), downloads the artifact through the server, as it should. Every other line passes."""
    return not (record.levelno == logging.ERROR and PRESIGNED_FALLBACK in record.getMessage())


class BrowserDefaults:
    """ASGI middleware: MLflow's page (``GET /``) seeds localStorage keys the browser does not hold yet."""

    def __init__(self, app: Any, defaults: Mapping[str, Any]):
        self.app = app
        pairs = json.dumps({key: json.dumps(value) for key, value in defaults.items()})
        self.script = ("<script>(function(){try{var d=" + pairs + ",s=window.localStorage;for(var k in d)"
                       "{if(s.getItem(k)===null){s.setItem(k,d[k]);}}}catch(e){}})();</script>").encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http" or scope.get("method") != "GET" or scope.get("path") not in ("/", ""):
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] = {}
        body: list[bytes] = []

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            body.append(message.get("body", b""))
            if not message.get("more_body"):
                await self._send(send, start, b"".join(body))

        await self.app(scope, receive, capture)

    async def _send(self, send: Any, start: dict[str, Any], page: bytes) -> None:
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        encoded = any(k.lower() == b"content-encoding" for k, _ in headers)
        html = any(k.lower() == b"content-type" and b"text/html" in v for k, v in headers)
        if html and not encoded and b"<head>" in page:
            page = page.replace(b"<head>", b"<head>" + self.script, 1)
        headers.append((b"content-length", str(len(page)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": page})


def serve_dashboard(storage: str, host: str, port: str | int) -> None:
    """optuna-dashboard on ``storage`` (its public :func:`optuna_dashboard.wsgi`), one line when it
    listens and none per request; runs until stopped."""
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    import optuna_dashboard

    class Threaded(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
            pass

    server = make_server(host, int(port), optuna_dashboard.wsgi(storage), server_class=Threaded, handler_class=Quiet)
    server.serve_forever()
