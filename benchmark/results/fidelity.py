"""The fidelity table: each point of the study's protocol, what the authors' code does, what we run.

Why a table computed from the code: a benchmark whose defaults quietly differ from the study it
reproduces publishes wrong comparisons. Each :class:`Point` holds the authors' value (as their
code runs it, which is not always what their config files declare) and a function that reads our
value from the *resolved* suite (its config, ``--set`` overrides included, and the registries).
:func:`fidelity_rows` compares the two, so ``simecg-bench protocol`` shows what a run of that suite
would actually do, and ``tests/test_fidelity.py`` fails when code and table disagree.

A point either matches the authors, or it is a *declared* deviation: our default deliberately
differs (better practice, e.g. pretraining on PTB-XL without the downstream test records), and
``option`` says how to get the authors' behaviour. Any other difference shows as ``differs``: a suite
setting or a ``--set`` moved the point away from the authors' value (the row's ``option`` names the key),
or, in the ``paper`` suite, a bug.
The prose behind each point is ``docs/protocol.md``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from baselines.base import resolve_model
from baselines.pretrained_mae import PAPER_MODEL
from benchmark.data import splits
from benchmark.data.budgets import BUDGETS
from benchmark.data.preprocess import window_starts
from benchmark.registries import TASKS
from benchmark.results.metrics import THRESHOLD
from benchmark.suites.config import SuiteConfig
from pretraining.config import corpus_options, method_config, model_config
from simecg import signal
from simecg.registries import BASELINES

SAME, DEVIATION, DIFFERS = "as authors", "deviation", "differs"
COLUMNS = ("area", "point", "authors", "authors_file", "ours", "status", "option")


@dataclass(frozen=True)
class Setup:
    """What a suite resolves to, for the readers of :data:`POINTS` (each property built once)."""

    suite: SuiteConfig

    def source(self, name: str = "sim") -> Any:
        """The pretraining config of one source (``[pretrain]`` and its ``[sources.*]`` table)."""
        return self.suite.source_config(name)

    def model(self, name: str) -> Any:
        """An unfitted model as a cell makes it: registry config, the suite's overrides, the fine-tuning
        config resolved with the model's own defaults."""
        return resolve_model(name, self.suite.baselines).create(self.suite.finetune, seed=1)

    @cached_property
    def architecture(self) -> Any:
        return model_config(self.source())

    def grid(self, name: str) -> Any:
        """The suite's grid called ``name`` (None when it has none)."""
        return next((g for g in self.suite.grids if g.name == name), None)


Reader = Callable[[Setup], Any]


@dataclass(frozen=True)
class Point:
    """One protocol point.

    ``authors`` is the authors' value in our terms (what :attr:`read` returns when we do what they
    do); ``shown`` replaces it in the table when words say it better. ``deviation`` is non-empty
    when our default differs on purpose: why; ``option`` then says how to get the authors' value,
    else how to deviate from it.
    """

    area: str
    point: str
    authors: Any
    source: str
    read: Reader
    option: str = ""
    shown: str = ""
    deviation: str = ""


def _close(a: Any, b: Any) -> bool:
    """Equality, with floats compared to a relative 1e-9 and sequences element-wise."""
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
        except (TypeError, ValueError):
            return False
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    return a == b


def show(value: Any) -> str:
    """A value as the table prints it: compact, lists joined, floats in their shortest form."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return ", ".join(show(v) for v in value) if value else "(none)"
    if isinstance(value, dict):
        return ", ".join(f"{k} {show(v)}" for k, v in sorted(value.items()))
    if value is None:
        return "(none)"
    return str(value)


def fidelity_rows(suite: SuiteConfig, points: Iterable[Point] | None = None) -> list[dict[str, str]]:
    """The table for a resolved suite: one dict per point with the keys of :data:`COLUMNS`.

    ``status`` is ``as authors`` when our value equals theirs, ``deviation`` when it differs and the
    point declares the difference, and ``differs`` when it differs undeclared (a suite setting or a
    ``--set`` moved it: the row's ``option`` names the key).
    """
    setup = Setup(suite)
    rows = []
    for point in POINTS if points is None else points:
        ours = point.read(setup)
        same = _close(ours, point.authors)
        status = SAME if same else DEVIATION if point.deviation else DIFFERS
        rows.append({"area": point.area, "point": point.point, "authors": point.shown or show(point.authors),
                     "authors_file": point.source, "ours": show(ours), "status": status, "option": point.option})
    return rows


def _field(obj: Any, name: str) -> Any:
    value = getattr(obj, name)
    return list(value) if isinstance(value, tuple) else value


# ----- the points -------------------------------------------------------------------------------------------
# Readers take what a cell or a pretraining of the suite would take: the resolved suite, its sources and
# models. The authors' files are paths in seitalab/SynECG-Pub (baselines: seitalab/SynECG).
SSL_CLF = "src/ssl_clf/codes"
SSL_PT = "src/ssl_pt/codes"
PREP = "src/prep"
SIMECG_N = "src/prep/SimECG-N"
DGMS = "src/dgms/codes"
BASELINE_POOL = ["resnet18-1d", "mega", "luna", "emb-gru", "emb-lstm"]


def _options(source: str) -> Reader:
    """A source's corpus options, resolved as a pretraining of the suite resolves them."""
    def read(setup: Setup) -> Any:
        return corpus_options(setup.source(source))
    return read


def _fields(of: Callable[[Setup], Any], *names: str) -> Reader:
    """``names`` of the object ``of`` gives (one value, or a list of several)."""
    def read(setup: Setup) -> Any:
        obj = of(setup)
        values = [_field(obj, n) for n in names]
        return values[0] if len(values) == 1 else values
    return read


def _gaussian(*names: str) -> Reader:
    return _fields(lambda s: _options("sim")(s).gaussian, *names)


def _ecgsyn(*names: str) -> Reader:
    return _fields(lambda s: _options("ecgsyn")(s).ecgsyn, *names)


def _generator(source: str, *names: str) -> Reader:
    return _fields(lambda s: _options(source)(s).generator_config(), *names)


def _arch(*names: str) -> Reader:
    return _fields(lambda s: s.architecture, *names)


def _method(method: str, *names: str) -> Reader:
    """Fields of a pretraining method's resolved settings on the ``sim`` source (``pretrain.method_options``)."""
    return _fields(lambda s: method_config(dataclasses.replace(s.source(), method=method)), *names)


def _pretrain(*names: str) -> Reader:
    return _fields(lambda s: s.source(), *names)


def _training(*names: str, model: str = PAPER_MODEL) -> Reader:
    return _fields(lambda s: s.model(model).training, *names)


def _tuning(*names: str) -> Reader:
    return _fields(lambda s: s.suite.tuning, *names)


def _signal(setup: Setup) -> Any:
    return [signal.FS, signal.N_SAMPLES]


def _cpsc_windows(setup: Setup) -> Any:
    return [len(window_starts(round(seconds * signal.FS), signal.N_SAMPLES)) for seconds in (6, 10, 12.3, 60)]


def _task_counts(setup: Setup) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in TASKS.names():
        dataset = name.split("/", 1)[0]
        if dataset in ("ptbxl", "g12ec", "cpsc2018"):
            counts[dataset] = counts.get(dataset, 0) + 1
    return counts


def _any_likelihood(setup: Setup) -> Any:
    return sorted(name.split("/", 1)[1] for name in TASKS.names()
                  if name.startswith("ptbxl/") and TASKS.get(name).min_likelihood == 0)


def _main_seeds(setup: Setup) -> Any:
    grid = setup.grid("main") or (setup.suite.grids[0] if setup.suite.grids else None)
    return list(grid.seeds) if grid is not None else None


def _budgets(setup: Setup) -> Any:
    grid = setup.grid("budgets")
    return [b for b in grid.budgets if b] if grid is not None else list(BUDGETS)


def _leads(setup: Setup) -> Any:
    grid = setup.grid("leads")
    return len(grid.leads) if grid is not None else len(signal.LEADS)


def _head(setup: Setup) -> Any:
    config = setup.model(PAPER_MODEL).config
    return [config.pooling, config.head_width, config.activation, config.dropout]


def _pool(setup: Setup) -> Any:
    return sorted(name for name, cls in BASELINES.items() if cls.role == "baseline")


def _all_weight_decay(setup: Setup) -> Any:
    names = [PAPER_MODEL, *BASELINE_POOL, "transformer-scratch"]
    values = {setup.model(n).training.weight_decay for n in names}
    return values.pop() if len(values) == 1 else sorted(values)


def _mae_space(setup: Setup) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = setup.model(PAPER_MODEL)
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    return sorted(type(spec).tuning_space(trial, spec.config))


def _reuse(setup: Setup) -> Any:
    """Which cells take the values of the full-data lead-II study: [budget, lead, frozen] each yes or no
    (``tuning.separate_studies`` names those that get a study of their own; benchmark.run.cells.study_cell)."""
    separate = set(setup.suite.tuning.separate_studies)
    return ["budget" not in separate, "lead" not in separate, "frozen" not in separate]


def _real_source(corpus: str) -> Reader:
    """Whether a real-data corpus (``ptbxl``, ``g12ec``) keeps its dataset's test records out."""
    def read(setup: Setup) -> Any:
        return "no test record" if _options(corpus)(setup).exclude_test_splits else "every record"
    return read


POINTS: tuple[Point, ...] = (
    # signals and records
    Point("signals", "sampling rate, window (samples)", [500, 5000], f"{PREP}/dataset/prep_base.py", _signal),
    Point("signals", "PTB-XL and G12EC records not exactly 5,000 samples", "exact",
          f"{PREP}/dataset/ptbxl.py, g12ec.py", _fields(lambda s: s.suite.data, "lengths"),
          shown="exact (dropped)", option="data.lengths=any (kept, windowed like CPSC2018)"),
    Point("signals", "CPSC2018 evaluation windows of 6 / 10 / 12.3 / 60-s records", [1, 2, 2, 12],
          f"{SSL_CLF}/data/transform_funcs.py (SubsampleEval)", _cpsc_windows,
          shown="every 2,500 samples over the record padded by 2,500 - len mod 2,500; max of window logits"),
    # tasks
    Point("tasks", "tasks per dataset", {"ptbxl": 13, "g12ec": 7, "cpsc2018": 6}, f"{PREP}/dataset/*.py",
          _task_counts),
    Point("tasks", "PTB-XL statements counted at any likelihood (others >= 100)", ["ABQRS", "AFIB", "PAC", "STD_"],
          f"{PREP}/dataset/ptbxl.py", _any_likelihood),
    Point("tasks", "a record both positive and normal", "both", f"{PREP}/dataset/prep_base.py; "
          f"{SSL_CLF}/data/dataset.py", _fields(lambda s: s.suite.data, "overlap"),
          shown="both (one list per class, each split on its own)", option="data.overlap=positive"),
    Point("tasks", "G12EC and CinC labels", "substring", f"{PREP}/dataset/g12ec.py",
          _fields(lambda s: s.suite.data, "dx_match"), shown="substring of the #Dx line, no equivalences",
          option="data.dx_match=equivalent (CinC 2020 equivalences)"),
    # splits and metric
    Point("splits", "split preset (unit of the split)", "paper", f"{PREP}/dataset/prep_base.py",
          lambda s: s.suite.split, option="split=patient (patient-disjoint; PTB-XL strat_fold 1-8/9/10)",
          shown="paper (by record, stratified by class)"),
    Point("splits", "test split: fraction, seed", [0.2, 123], f"{PREP}/dataset/prep_base.py",
          lambda s: [splits.TEST_FRACTION, s.suite.test_seed], option="test_seed=<int>"),
    Point("splits", "train/validation: validation fraction", 0.2, f"{PREP}/dataset/prep_base.py",
          lambda s: splits.VAL_FRACTION),
    Point("splits", "scored seeds", [1, 2, 3, 4, 5], "src/ssl_clf/experiment.py", _main_seeds,
          option="grid.seeds=<list>"),
    Point("splits", "exact duplicate signals (e.g. PTB-XL 137/138)", "ignore", f"{PREP}/dataset/prep_base.py",
          lambda s: s.suite.duplicates, shown="ignore (split as independent records)",
          deviation="a model would be tested on a signal it trained on", option="duplicates=ignore"),
    Point("metric", "F1 of the positive class at score threshold", 0.5, f"{SSL_CLF}/train_model.py",
          lambda s: THRESHOLD),
    Point("metric", "AUROC and AUPRC computed from", "thresholded predictions", f"{SSL_CLF}/train_model.py",
          lambda s: "scores", deviation="AUROC of 0/1 predictions is not comparable with the usual AUROC",
          option="none offered (F1, the headline metric, is computed as theirs)"),
    # MAE pretraining
    Point("MAE", "patch (samples), width, depth, heads, MLP ratio", [50, 128, 10, 8, 4.0],
          f"{SSL_PT}/models/ssl/mae.py", _arch("patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio"),
          option="pretrain.preset=tiny, pretrain.model.<field>=..."),
    Point("MAE", "decoder width, depth, heads", [128, 2, 16], f"{SSL_PT}/models/ssl/mae.py",
          _arch("decoder_embed_dim", "decoder_depth", "decoder_num_heads"), option="pretrain.model.decoder_*=..."),
    Point("MAE", "mask ratio", 0.75, f"{SSL_PT}/models/ssl/mae.py", _arch("mask_ratio"),
          option="pretrain.model.mask_ratio=..."),
    Point("MAE", "qk-norm in the Transformer blocks", True, f"{SSL_PT}/models/transformer.py", _arch("qk_norm")),
    Point("MAE", "optimizer, lr, batch, weight decay", ["adam", 1e-4, 512, 0.0], f"{SSL_PT}/train_base.py; config.yaml",
          _pretrain("optimizer", "lr", "batch_size", "weight_decay"),
          option="pretrain.optimizer|lr|batch_size|weight_decay=..."),
    Point("MAE", "steps (the loop stops once more than 1e9 samples are seen)", 1_953_126,
          f"{SSL_PT}/pretrain_model.py; config.yaml pt_syn01", _pretrain("steps"), option="pretrain.steps=..."),
    Point("MAE", "corpus size, validation ECGs", [1_000_000, 5000], "config.yaml pt_syn01 (data_lim, val_lim)",
          _pretrain("corpus_size", "val_size"), option="pretrain.corpus_size|val_size=..."),
    Point("MAE", "validation every (samples seen)", 1_000_000, f"{SSL_PT}/pretrain_model.py; config.yaml",
          _pretrain("val_every_samples"), option="pretrain.val_every_samples=..., pretrain.val_every=<steps>"),
    Point("MAE", "encoder handed to fine-tuning", "best_val", f"{SSL_PT}/pretrain_model.py (net.pth)",
          _pretrain("select"), shown="best validation loss (net.pth)", option="pretrain.select=last"),
    Point("MAE", "validation masks", "fresh", f"{SSL_PT}/models/ssl/mae.py", _pretrain("val_masks"),
          shown="drawn anew at every validation", option="pretrain.val_masks=fixed"),
    # pretraining sources
    Point("sources", "real-PTB-XL pretraining records", "every record", f"{PREP}/dataset/ptbxl.py, prep_base.py",
          _real_source("ptbxl"), shown="random 64% of all records (seeds 123, 7): ~64% of each test set seen",
          deviation="the default ptbxl source must not pretrain on records it is tested on",
          option="--corpus ptbxl-authors (marked †)"),
    Point("sources", "real-G12EC pretraining records (Exp08/09)", "every record",
          f"{PREP}/dataset/g12ec.py, prep_base.py", _real_source("g12ec"),
          shown="random 64% of the 5,000-sample records (seeds 123, 7): ~64% of each test set seen",
          deviation="the default g12ec source must not pretrain on records it is tested on",
          option="--corpus g12ec-authors (marked †)"),
    Point("sources", "generators' training records", "authors", f"{DGMS}/data/dataloader.py",
          _fields(_options("vae"), "records"), shown="another random 64% (split seed 1), test records included",
          deviation="the generated corpora would carry the test records into pretraining",
          option="pretrain.corpus_options.records=authors (marked †)"),
    Point("sources", "simulator of the sim corpus", "gaussian", f"{SIMECG_N}/gen_ecg.py",
          _fields(_options("sim"), "simulator"), option="pretrain.corpus_options.simulator=ecgsyn|mix"),
    # SimECG-N
    Point("SimECG-N", "augmentations per ECG (Poisson mean), kinds", [2.0, 7], f"{SIMECG_N}/augment.py; gen_ecg.py",
          lambda s: [_options("sim")(s).gaussian.augment_rate, sum(w > 0 for w in
                     _options("sim")(s).gaussian.augment_kind_weights)],
          shown="Poisson(2) draws of 7 kinds, uniformly (the YAML's augment_params are never read)",
          option="pretrain.corpus_options.gaussian.augment_rate|augment_kind_weights=..."),
    Point("SimECG-N", "scale; sine and square drift frequencies (Hz); white noise sd", [[0.25, 4.0], [0.001, 0.02],
          [0.001, 0.1], [0.0, 0.05]], f"{SIMECG_N}/augment.py",
          _gaussian("augment_scale", "augment_sine_freq", "augment_square_freq", "augment_white_sd"),
          option="pretrain.corpus_options.gaussian.augment_*=..."),
    Point("SimECG-N", "partial curves: amplitude, width; partial white noise: sd, width",
          [1.0, [0.0, 1.0], 1.0, [0.0, 0.2]], f"{SIMECG_N}/augment.py",
          _gaussian("augment_partial_amplitude", "augment_partial_width", "augment_partial_white_sd",
                    "augment_partial_white_width"), option="pretrain.corpus_options.gaussian.augment_partial_*=..."),
    Point("SimECG-N", "R peak (base, sd per record, sd per beat)", [1.5, 0.75, 0.25],
          f"{SIMECG_N}/resources/syn_ecg-04.yaml",
          lambda s: [_gaussian(n)(s)[2] for n in ("peak", "peak_sd_record", "peak_sd_beat")]),
    Point("SimECG-N", "beat length (base, sd per record, sd per beat, clip)", [0.8, 0.25, 0.1, 0.0, math.inf],
          f"{SIMECG_N}/gen_ecg.py; syn_ecg-04.yaml",
          _gaussian("beat_length", "beat_length_sd_record", "beat_length_sd_beat", "beat_length_min",
                    "beat_length_max"), shown="0.8 / 0.25 / 0.1 s, not clipped",
          option="pretrain.corpus_options.gaussian.beat_length_min|max=..."),
    Point("SimECG-N", "noise blocks: width 10 (sd 1 / 0.5) at 1/100, width 3 (sd 0.3 / 0.15) at 1/200",
          [10.0, 1.0, 0.5, 100.0, 3.0, 0.3, 0.15, 200.0], f"{SIMECG_N}/gen_ecg.py; syn_ecg-04.yaml",
          _gaussian("noise1_block", "noise1_block_sd_record", "noise1_block_sd_beat", "noise1_scaler",
                    "noise2_block", "noise2_block_sd_record", "noise2_block_sd_beat", "noise2_scaler"),
          option="pretrain.corpus_options.gaussian.noise*=..."),
    # ECGSYN
    Point("ECGSYN", "mean HR ~ N(80, 10); HR sd max(0, N(0, 1)) + 1; noise max(0, N(1, 1))",
          [80.0, 10.0, 1.0, 1.0, 1.0, 1.0], "src/prep/SimECG-M/linux/gen_sample.py",
          _ecgsyn("hr_mean_mu", "hr_mean_sd", "hr_std_sd", "hr_std_offset", "noise_mu", "noise_sd"),
          option="pretrain.corpus_options.ecgsyn.*=..."),
    Point("ECGSYN", "LF, HF centres U(0, .2), U(0, .5); widths U(0, .04); LF/HF U(0, 1) (Hz)",
          [0.2, 0.5, 0.04, 0.04, 1.0], "src/prep/SimECG-M/linux/gen_sample.py",
          _ecgsyn("lf_max", "hf_max", "lf_std_max", "hf_std_max", "lf_hf_ratio_max")),
    # generators
    Point("generators", "batch, steps (just over 1e8 samples)", [256, 390_626], "config.yaml main02; "
          f"{DGMS}/utils/monitor.py", _generator("vae", "batch_size", "steps"),
          option="pretrain.corpus_options.generator.batch_size|steps=..."),
    Point("generators", "VAE learning rate; DCGAN D and G learning rates", [1e-6, 1e-4, 1e-5],
          f"{DGMS}/trainer.py, gan_trainer.py; dgm0002.yaml",
          lambda s: [_generator("vae", "lr")(s), *_generator("gan", "lr_d", "lr_g")(s)],
          option="pretrain.corpus_options.generator.lr|lr_d|lr_g=..."),
    Point("generators", "learning-rate schedule (declared cosine, never stepped)", "constant",
          f"{DGMS}/trainer.py, gan_trainer.py", _generator("vae", "lr_schedule"),
          option="pretrain.corpus_options.generator.lr_schedule=cosine"),
    Point("generators", "VAE latent, decoder width, chunk", [128, 256, 50], f"{DGMS}/models/nn_arch/resnet.py",
          _generator("vae", "latent_dim", "decoder_width", "chunk"),
          option="pretrain.corpus_options.preset=tiny, generator.<field>=..."),
    Point("generators", "DCGAN discriminator updated every n-th batch; its gradient keeps G's", [5, "paper"],
          f"{DGMS}/gan_trainer.py", _generator("gan", "disc_every", "d_gradient"),
          option="pretrain.corpus_options.generator.disc_every=..., d_gradient=separate"),
    Point("generators", "corpus latent of the VAE, the DCGAN", ["normal", "normal"], f"{DGMS}/generator.py",
          lambda s: [_options("vae")(s).latent_distribution(), _options("gan")(s).latent_distribution()],
          shown="N(0, 1) for both (the DCGAN was trained on U(0, 1))",
          option="pretrain.corpus_options.latent_sampling=matched"),
    Point("generators", "weights that sample the corpus", "best_val", f"{DGMS}/trainer.py (net.pth)",
          _generator("vae", "select"), option="pretrain.corpus_options.generator.select=last"),
    # pretraining methods other than the MAE (docs/protocol.md, "Pretraining methods")
    Point("methods", "views of every method but the MAE: RandomMask, RandomShift ratios", [0.5, 0.5],
          f"config.yaml (ssl.pretrain.common.base); {SSL_PT}/data/dataloader.py", _method(
              "simclr", "aug_mask_ratio", "max_shift_ratio"),
          option="pretrain.method_options.aug_mask_ratio|max_shift_ratio=..."),
    Point("methods", "views at validation (the loss that chooses the encoder)", "plain",
          f"{SSL_PT}/data/dataloader.py (no augmentation unless is_train)", _method("simclr", "val_views"),
          shown="plain (both views are the record)", option="pretrain.method_options.val_views=augmented"),
    Point("methods", "SimCLR loss: each row's positive", "authors", f"{SSL_PT}/models/ssl/simclr.py (forward_loss)",
          _method("simclr", "loss"), shown="authors (its own similarity; the other view is a negative)",
          option="pretrain.method_options.loss=nt_xent (the published NT-Xent)"),
    Point("methods", "SimCLR projection width, temperature (read, set in no public config)", [128, 0.1],
          f"{SSL_PT}/models/model.py", _method("simclr", "projection_dim", "temperature"),
          shown="inferred: 128, 0.1", option="pretrain.method_options.projection_dim|temperature=..."),
    Point("methods", "BYOL projection, hidden width, target momentum (code not public)", [128, 512, 0.996],
          f"{SSL_PT}/models/model.py (names BYOL)", _method("byol", "projection_dim", "hidden_dim", "momentum"),
          shown="inferred from Grill et al. 2020", option="pretrain.method_options.*=..."),
    Point("methods", "DINO outputs, hidden width, temperatures, centre momentum (code not public)",
          [1024, 512, 0.1, 0.04, 0.9], f"{SSL_PT}/models/model.py (names DINO)", _method(
              "dino", "projection_dim", "hidden_dim", "temperature_student", "temperature_teacher", "center_momentum"),
          shown="inferred from Caron et al. 2021", option="pretrain.method_options.*=..."),
    Point("methods", "iBOT masked share of patches, patch loss weight (code not public)", [0.3, 1.0],
          f"{SSL_PT}/models/model.py (names iBOT)", _method("ibot", "mask_ratio", "patch_loss_weight"),
          shown="inferred from Zhou et al. 2022", option="pretrain.method_options.*=..."),
    # fine-tuning
    Point("fine-tuning", "head on the CLS token: pooling, width, activation, dropout", ["cls", 32, "relu", 0.25],
          f"{SSL_CLF}/models/prepare_model.py", _head, shown="Linear(128, 32), ReLU, Dropout 0.25, Linear(32, 1)",
          option=f"baselines.{PAPER_MODEL.entry}.head_width|activation|dropout|pooling=..."),
    Point("fine-tuning", "weight decay (every model: Adam(params, lr) ignores the YAML's 0.01)", 0.0,
          f"{SSL_CLF}/train_base.py; SynECG src/baselines/codes/train_base.py", _all_weight_decay,
          option="finetune.weight_decay=0.01 (what the YAML declares)"),
    Point("fine-tuning", "batch size", 256, f"{SSL_CLF}/train_base.py", _training("batch_size"),
          option="finetune.batch_size=..."),
    Point("fine-tuning", "max epochs, evaluate every, patience, early stopping", [500, 5, 5, True],
          f"{SSL_CLF}/supports/monitor.py (EarlyStopper: stop when bad > patience)",
          _training("max_epochs", "eval_every", "patience", "early_stopping"),
          option="finetune.max_epochs|eval_every|patience|early_stopping=..."),
    # tuning
    Point("tuning", "sampler seed (TPE)", 6, f"{SSL_CLF}/hyperparam_search.py", _tuning("sampler_seed"),
          option="tuning.sampler_seed=..."),
    Point("tuning", "pruner patience (PatientPruner over MedianPruner)", 5, f"{SSL_CLF}/hyperparam_search.py",
          _tuning("pruner_patience"), option="tuning.pruner_patience=..."),
    Point("tuning", "split seed of the trials (outside the scored 1-5)", 6, "config.yaml (seed.hps); "
          "src/ssl_clf/experiment.py", _tuning("tune_seed"), option="tuning.tune_seed=..."),
    Point("tuning", "trials: epochs, early stopping", [250, False], "src/ssl_clf/resources/templates/template001.yaml;"
          f" {SSL_CLF}/train_model.py", _tuning("trial_max_epochs", "trial_early_stopping"),
          option="tuning.trial_max_epochs|trial_early_stopping=..."),
    Point("tuning", "trials and time per study", [10_000, 21600.0], "src/ssl_clf/resources/templates/template001.yaml",
          _tuning("n_trials", "timeout_s"), shown="10,000 trials or 6 h", option="tuning.n_trials|timeout_s=..."),
    Point("tuning", "the MAE's search space (its head width has no effect there)", ["lr", "mask_ratio",
          "max_shift_ratio"], f"{SSL_CLF}/models/prepare_model.py; templates/template001.yaml", _mae_space,
          option=f"baselines.{PAPER_MODEL.entry}.tune_head_width=true"),
    Point("tuning", "budget, single-lead and frozen cells reuse the full-data study", [True, True, True],
          "src/ssl_clf/resources/exp02_random-init.py, exp03_frozen.py, templates/template004.yaml", _reuse,
          shown="yes (single-lead: inferred)", option="tuning.separate_studies=budget,lead,shift,frozen"),
    Point("tuning", "the scratch encoder takes the SimECG-N MAE's study", [f"transformer-scratch={PAPER_MODEL}"],
          "src/ssl_clf/resources/exp02_random-init.py", _tuning("shared_studies"), option="tuning.shared_studies="),
    # baselines
    Point("baselines", "the pool of the strongest baseline", sorted(BASELINE_POOL), "SynECG src/baselines", _pool,
          option="a plugin with role 'baseline' joins the pool"),
    # budgets and leads
    Point("budgets", "labels per class", [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000],
          "src/ssl_clf/resources/README.md (Exp04)", _budgets, option="grid.budgets=<list>"),
    Point("leads", "leads fine-tuned (lead-II encoder)", 12, "src/ssl_clf/resources/README.md (Exp05)", _leads,
          option="grid.leads=<list>"),
)


def as_markdown(rows: list[dict[str, str]]) -> str:
    """The table in GitHub markdown (README carries it)."""
    header = ["area", "point", "authors (their code)", "authors' file", "ours", "status", "option"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row[c].replace("|", "\\|") for c in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
