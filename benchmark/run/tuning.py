"""Optuna tuning of one (task, model) study before the cells that take its values run (docs/protocol.md).

TPE sampler with seed 6, PatientPruner(MedianPruner, patience 5), minimising validation loss.
The space is each model's ``tuning_space`` (:class:`baselines.base.Baseline`): for neural
models learning rate log-uniform [5e-6, 5e-3], augmentation mask ratio [0, 0.5], max shift ratio
[0, 0.75], plus the model's own space (the baselines' architecture spaces and head width; the
pretrained MAE's head stays as the authors' had it in effect). Which cells share a study, and
what its trials train on, is :func:`benchmark.run.cells.study_cell`'s. Studies live in an RDB named
by the study's identity (:func:`simecg.identity.study_identity`), so a killed tuning resumes
with the trials it finished.

Budgets (:class:`~benchmark.suites.config.TuningConfig`): ``n_trials`` finished trials and, as the
authors ran it, ``timeout_s`` seconds per study (6 h in the paper suites), both counted over
every session of the study: a resumed study runs only what is left of either.

MLflow (:class:`StudyRuns`): each tuning session is a run of kind ``tuning`` nested under the
cell run that needed the study, and each Optuna trial a run of kind ``trial`` under it (one per
trial number: a resumed study only adds runs for its new trials), holding the trial's
parameters, its validation curve (``val_loss`` per evaluated epoch) and its Optuna state in the
tag ``trial_state`` (COMPLETE, PRUNED or FAIL). A trial interrupted by Ctrl-C or SIGTERM ends
KILLED; one whose process died outright is found by Optuna's heartbeat (the study is opened with
one) and its run is marked KILLED by the next session of the study.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from benchmark.suites.config import TuningConfig
from benchmark.tracking.tags import RunTags
from simecg import progress as progress_lines
from simecg.errors import DivergedError, first_line
from simecg.failpoints import failpoint, writing

log = logging.getLogger(__name__)

HEARTBEAT_S = 60  # a running trial tells the study it is alive this often
GRACE_S = 180  # a trial silent this long belongs to a dead process: Optuna marks it FAIL

Space = Callable[[Any], dict[str, Any]]  # trial -> overrides (a model's tuning_space)
Fit = Callable[[dict[str, Any], Callable[[int, float], None]], float]  # (overrides, on_eval) -> val loss


@dataclass(frozen=True)
class StudyRuns:
    """Where a study's MLflow runs go: a ``tuning`` run per session under ``parent``, a ``trial`` run
    per Optuna trial under that.

    ``tags`` are the tuning run's (kind ``tuning``, ``study`` = the study's fingerprint); each
    trial run copies them with kind ``trial`` and its trial number. ``tracker`` is a
    :class:`benchmark.tracking.tracker.Tracker`.
    """

    tracker: Any
    parent: str  # run id, e.g. the cell run that needed the study
    name: str  # the tuning run's name
    tags: RunTags
    params: Mapping[str, Any] = field(default_factory=dict)  # logged on the tuning run


def tune(
    space: Space,
    fit: Fit,
    config: TuningConfig,
    study_name: str,
    storage: str,
    runs: StudyRuns | None = None,
    workers: Any = None,
) -> dict[str, Any]:
    """Run (or resume) the study and return the best trial's parameters (the overrides ``space`` gave).

    ``space(trial)`` draws a trial's overrides; ``fit(overrides, on_eval)`` trains with them and
    returns the best validation loss, calling ``on_eval(epoch, val_loss)`` at each evaluation
    (which reports to Optuna, logs the curve and raises :class:`optuna.TrialPruned` to prune).
    With ``runs``, the session and its trials are logged to MLflow (module docstring). With
    ``workers`` (:class:`benchmark.run.claims.Coordinator`), trials left RUNNING by dead workers are
    failed at once instead of after Optuna's grace period.

    A resumed study gives the trials an uninterrupted one would have: only COMPLETE and PRUNED
    trials count towards ``n_trials`` (a trial killed mid-way is run again), and each trial's
    sampler is seeded by the sampler seed and the number of trials done before it
    (:func:`_sampler_for`), not by a generator whose state a killed process took with it.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = _open_study(config, study_name, storage)
    if runs is not None and study.user_attrs.get("label") != runs.name:  # what optuna-dashboard shows beside its name
        study.set_user_attr("label", runs.name)
    _fail_dead_trials(study, workers)
    if runs is not None:
        _end_dead_runs(study, runs)
    if _remaining(study, config)[0]:
        label = runs.name if runs is not None else study_name
        if runs is None:
            _optimize(study, config, _objective(space, fit, None, workers), label)
        else:
            with runs.tracker.run(runs.name, runs.tags, runs.params, parent=runs.parent) as session:
                _optimize(study, config, _objective(space, fit, (runs, session.run_id), workers), label)
                _end_dead_runs(study, runs, keep=session.run_id)
                session.log_metrics(_summary(study))
                if _best(study):
                    session.log_params({f"best.{k}": v for k, v in _best(study).items()})
                log_study_figures(session, study)
    return _best(study)


def _done(study: Any) -> list[Any]:
    """Trials that count towards ``n_trials``: COMPLETE and PRUNED (a FAILed one, e.g. killed, does not)."""
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False) if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]


def _remaining(study: Any, config: TuningConfig) -> tuple[int, float | None]:
    """Trials still to run, and seconds left of ``timeout_s`` (None: no time budget), over all sessions."""
    done = _done(study)
    spent = sum(float(t.user_attrs.get("seconds", 0.0)) for t in study.get_trials(deepcopy=False)
                if t.state.is_finished())
    time_left = config.timeout_s - spent if config.timeout_s else None
    if time_left is not None and time_left <= 0:
        return 0, time_left
    return max(config.n_trials - len(done), 0), time_left


def _sampler_for(config: TuningConfig, done: int) -> Any:
    """The TPE sampler of the trial that follows ``done`` finished trials: its seed depends on nothing
    else, so a study resumed after a kill samples the parameters an uninterrupted one would."""
    import optuna

    return optuna.samplers.TPESampler(seed=config.sampler_seed + 7919 * done)


def _optimize(study: Any, config: TuningConfig, objective: Callable[[Any], float], name: str) -> None:
    """Run trials one at a time until ``n_trials`` are done or the time budget is spent; a progress
    line per trial (:mod:`simecg.progress`: shown off a terminal)."""
    remaining, time_left = _remaining(study, config)
    log.info("tuning %s: up to %d trials (%d already done%s)", name, remaining, len(_done(study)),
             f", {time_left:.0f} s left" if time_left is not None else "")
    progress_lines.say(f"{name}: up to {remaining} trial(s) ({len(_done(study))} done before)")
    for _ in range(remaining):  # a trial that fails (a RuntimeError) uses up an attempt of this session
        study.sampler = _sampler_for(config, len(_done(study)))
        started = time.perf_counter()
        _run_trial(study, objective)
        left, time_left = _remaining(study, config)
        progress_lines.say(_trial_line(study, name, left, time.perf_counter() - started))
        if not left:
            break


def _run_trial(study: Any, objective: Callable[[Any], float]) -> None:
    """One trial, asked and told by hand (what ``study.optimize`` does for one trial, with two
    differences): a trial that another worker ended meanwhile (this one was paused past its lease,
    or past Optuna's grace period, and was taken for dead) is told nothing and said in one line,
    where Optuna would raise ``ValueError: Cannot tell a FAIL trial``; and a failed trial
    (a :class:`RuntimeError`, e.g. out of memory) is one line, not a logged traceback.
    """
    import warnings

    import optuna
    from optuna.trial import TrialState

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    trial = study.ask()
    value, state, failure = None, TrialState.FAIL, None
    try:
        with _trial_heartbeat(study._storage, trial._trial_id):
            value = objective(trial)
        state = TrialState.COMPLETE
    except optuna.TrialPruned:
        state = TrialState.PRUNED
    except RuntimeError as exc:  # this trial failed; the study goes on
        failure = exc
    except BaseException:
        with contextlib.suppress(Exception):
            study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        raise
    ended = study._storage.get_trial(trial._trial_id).state
    if ended.is_finished():  # told by another worker that took this one for dead
        log.warning("tuning %s: trial %d was ended %s by another worker while this one was unresponsive; "
                    "it does not count", study.study_name, trial.number, ended.name)
        return
    if failure is not None:
        log.warning("tuning %s: trial %d failed: %s", study.study_name, trial.number, first_line(failure))
    with warnings.catch_warnings():  # a non-finite value: Optuna records FAIL (and would warn)
        warnings.simplefilter("ignore")
        study.tell(trial, value, state=state, skip_if_finished=True)


@contextlib.contextmanager
def _trial_heartbeat(storage: Any, trial_id: int) -> Iterator[None]:
    """Tell the study every ``HEARTBEAT_S`` that this trial's process is alive (what Optuna's own
    ``study.optimize`` does), each beat one database write taken with :func:`failpoints.writing
    <simecg.failpoints.writing>`, so a paused process is never frozen holding SQLite's write lock."""
    stop = threading.Event()

    def beat() -> None:
        while True:
            try:
                with writing():
                    storage.record_heartbeat(trial_id)
            except Exception as exc:  # a database hiccup: the next beat tries again
                log.warning("trial heartbeat failed: %s", first_line(exc))
            if stop.wait(storage.get_heartbeat_interval()):
                return

    thread = threading.Thread(target=beat, name="simecg-trial-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _trial_line(study: Any, name: str, left: int, seconds: float) -> str:
    """``trial 3 · mae:sim · ptbxl/LVH: PRUNED at epoch 35 (val loss 0.41; best 0.38), 7 left, 52 s``."""
    trial = study.get_trials(deepcopy=False)[-1]
    outcome = trial.state.name
    if trial.intermediate_values:
        last_epoch = max(trial.intermediate_values)
        outcome += f" at epoch {last_epoch} (val loss {trial.intermediate_values[last_epoch]:.4g}"
        best = _summary(study).get("best_val_loss")
        outcome += f"; best {best:.4g})" if best is not None else ")"
    return f"{name}: trial {trial.number} {outcome}, {left} left, {seconds:.0f} s"


def _fail_dead_trials(study: Any, workers: Any) -> None:
    """FAIL the trials left RUNNING by workers that died (their heartbeat row says so)."""
    from optuna.trial import TrialState

    if workers is None:
        return
    running = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING]
    dead = workers.dead({t.user_attrs.get("worker", "") for t in running})
    for trial in running:
        if trial.user_attrs.get("worker", "") in dead:
            with contextlib.suppress(Exception):  # finished meanwhile
                study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)


def _open_study(config: TuningConfig, study_name: str, storage: str) -> Any:
    """The study in its RDB (created or loaded), with a heartbeat so trials of dead processes are found."""
    import warnings

    import optuna

    engine_kwargs = {"connect_args": {"timeout": 60}} if storage.startswith("sqlite:") else None
    with warnings.catch_warnings():  # the heartbeat and PatientPruner are "experimental" in Optuna
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        rdb = optuna.storages.RDBStorage(storage, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_S,
                                         grace_period=GRACE_S)
        sampler = optuna.samplers.TPESampler(seed=config.sampler_seed)
        pruner = optuna.pruners.PatientPruner(optuna.pruners.MedianPruner(), patience=config.pruner_patience)
    return optuna.create_study(study_name=study_name, storage=rdb, sampler=sampler, pruner=pruner,
                               direction="minimize", load_if_exists=True)


def _objective(space: Space, fit: Fit, runs: tuple[StudyRuns, str] | None,
               workers: Any = None) -> Callable[[Any], float]:
    from optuna.exceptions import UpdateFinishedTrialError

    fit = _pruned_when_diverged(fit)

    def objective(trial: Any) -> float:
        started = time.perf_counter()
        if workers is not None:
            trial.set_user_attr("worker", workers.worker_id)
        try:
            failpoint("tuning.trial")
            params = space(trial)
            trial.set_user_attr("params", params)
            if runs is None:
                return fit(params, lambda epoch, loss: _report(trial, epoch, loss))
            return _logged_trial(trial, params, fit, *runs)
        finally:  # the time this trial took counts against the study's timeout_s in later sessions
            with contextlib.suppress(UpdateFinishedTrialError):  # ended by a worker that took this one for dead
                trial.set_user_attr("seconds", time.perf_counter() - started)

    return objective


def _pruned_when_diverged(fit: Fit) -> Fit:
    """``fit``, with a diverged training (:class:`~simecg.errors.DivergedError`) ending its trial
    PRUNED: an outcome of its parameters, which counts towards ``n_trials`` and is never the best.
    As a failed trial it would be drawn again with the same parameters (the sampler is seeded by
    the trials done) and diverge again until the session's attempts ran out."""
    import optuna

    def guarded(params: dict[str, Any], on_eval: Callable[[int, float], None]) -> float:
        try:
            return fit(params, on_eval)
        except DivergedError as exc:
            log.warning("tuning: a trial with %s is pruned: %s", params, exc)
            raise optuna.TrialPruned(str(exc)) from None

    return guarded


def _logged_trial(trial: Any, params: dict[str, Any], fit: Fit, runs: StudyRuns, session: str) -> float:
    """One trial inside its own MLflow run: parameters, ``val_loss`` curve, Optuna state."""
    import optuna

    tags = dataclasses.replace(runs.tags, kind="trial", fingerprint="", trial=trial.number)
    pruned: optuna.TrialPruned | None = None
    with runs.tracker.run(tags.run_name(), tags, params, parent=session) as run:

        def on_eval(epoch: int, val_loss: float) -> None:
            run.log_metrics({"val_loss": val_loss}, step=epoch)
            _report(trial, epoch, val_loss)

        try:
            value = fit(params, on_eval)
        except optuna.TrialPruned as exc:  # the run ends FINISHED: pruning is an outcome, not an error
            pruned = exc
        except BaseException:  # the run ends FAILED (KILLED on Ctrl-C/SIGTERM); Optuna records FAIL
            run.set_tags({"trial_state": "FAIL"})
            raise
        run.set_tags({"trial_state": "PRUNED" if pruned else "COMPLETE"})
        if pruned is None:
            run.log_metrics({"best_val_loss": value})
    if pruned is not None:
        raise pruned
    return value


def _report(trial: Any, epoch: int, val_loss: float) -> None:
    import optuna

    trial.report(val_loss, epoch)
    if trial.should_prune():
        raise optuna.TrialPruned()


def _end_dead_runs(study: Any, runs: StudyRuns, keep: str = "") -> None:
    """Mark KILLED the study's MLflow runs left RUNNING by a process that died (SIGKILL, power loss).

    A trial run is dead when its Optuna trial is no longer running (the heartbeat marks the
    trials of dead processes FAIL); a tuning run when no trial of the study is running. A live
    session of another process (a shard sharing the study) keeps its runs.
    """
    import warnings

    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    trials = study.get_trials(deepcopy=False)
    running = {t.number for t in trials if t.state == optuna.trial.TrialState.RUNNING}
    client = runs.tracker.client
    query = f"tags.study = '{runs.tags.study}' and attributes.status = 'RUNNING'"
    for run in client.search_runs([runs.tracker.experiment_id], filter_string=query):
        tags = run.data.tags
        if run.info.run_id == keep:
            continue
        if tags.get("kind") == "trial" and int(tags.get("trial", -1)) not in running:
            client.set_tag(run.info.run_id, "trial_state", "FAIL")
            client.set_terminated(run.info.run_id, status="KILLED")
        elif tags.get("kind") == "tuning" and not running:
            client.set_terminated(run.info.run_id, status="KILLED")


def log_study_figures(run: Any, study: Any) -> list[str]:
    """Optuna's own views of the study on its tuning run: ``optuna/optimization_history.png`` (each
    trial's value and the best so far) and ``optuna/param_importances.png`` (fANOVA importance of
    each searched parameter; it needs two finished trials). A figure that cannot be drawn is
    skipped with a debug line, never a failed tuning. Returns the files logged."""
    import warnings

    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization import matplotlib as views

    logged = []
    for name, draw in (("optimization_history", views.plot_optimization_history),
                       ("param_importances", views.plot_param_importances)):
        try:
            with warnings.catch_warnings():  # Optuna marks its matplotlib views experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                axes = draw(study)
            figure = axes.figure
            figure.set_size_inches(7, 4)
            figure.tight_layout()
            run.log_figure(figure, f"optuna/{name}.png")
            logged.append(f"optuna/{name}.png")
        except Exception as exc:  # e.g. fewer than two finished trials, or one parameter only
            log.debug("study %s: no %s figure (%s)", study.study_name, name, exc)
        finally:
            plt.close("all")
    return logged


def _summary(study: Any) -> dict[str, float]:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    out = {f"trials_{state.name.lower()}": float(sum(t.state == state for t in trials))
           for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if complete:
        out["best_val_loss"] = float(study.best_value)
    out["seconds_spent"] = float(sum(float(t.user_attrs.get("seconds", 0.0)) for t in trials))
    return out


def _best(study: Any) -> dict[str, Any]:
    from optuna.trial import TrialState

    if not any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        return {}
    return dict(study.best_trial.user_attrs.get("params", {}))
