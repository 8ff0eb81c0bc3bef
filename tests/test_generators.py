"""The ``vae`` and ``gan`` corpora: the authors' VAE and DCGAN (layer shapes, recipe), trained on PTB-XL
training records only, resumable, cached by identity, sampled deterministically per index."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.corpora.generated import ptbxl_training_data
from pretraining.config import PretrainConfig, corpus_options
from pretraining.generators import resolve_config, train_generator
from pretraining.generators.common import GENERATOR_FILE, TrainingBatch, build_model, read_file
from pretraining.generators.train import GeneratorData, augment, batch_positions, set_learning_rates
from simecg.errors import ConfigError, DataError, DataMissingError
from simecg.registries import CORPORA


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("generators-cache")


@pytest.fixture(scope="module")
def data(shared_data: Path, cache: Path):
    return ptbxl_training_data(300, 0, shared_data, cache)


def corpus(name: str, shared_data: Path, cache: Path, size: int = 200, seed: int = 0, **options):
    entry = CORPORA.get(name)
    return entry(size=size, seed=seed, options=entry.Options(data_dir=str(shared_data), cache_dir=str(cache),
                                                             **{"preset": "tiny", **options}))


@pytest.mark.realdata
def test_vae_loss_falls_on_real_records(data, one_thread, tmp_path):
    config = resolve_config("vae", "tiny", {"steps": 30, "log_every": 1})
    result = train_generator(config, tmp_path / "vae", progress=False, data=data)
    losses = [h["loss"] for h in result.history]
    assert len(losses) == 30 and np.isfinite(losses).all()
    assert np.mean(losses[-5:]) < 0.96 * np.mean(losses[:5]), losses
    assert result.history[0]["kl_weight"] == pytest.approx(0.001)


@pytest.mark.realdata
@pytest.mark.parametrize("name", ["vae", "gan"])
def test_samples_are_finite_and_the_same_per_index_in_any_batch(name, shared_data, cache, one_thread, tmp_path):
    from benchmark.corpora.generated import CHUNK
    from pretraining.corpora.base import Corpus

    ecgs = corpus(name, shared_data, cache, steps=3)
    assert isinstance(ecgs, Corpus) and len(ecgs) == 200
    with pytest.raises(DataMissingError, match=f"generators train {name}"):
        ecgs.get_batch(np.arange(2))  # not prepared yet: a clear message, not a silent training
    model = ecgs.generator()  # what provisioning trains or fetches: declared, computed without training
    assert (model.kind, model.preset, model.folder) == (name, "tiny", ecgs.generator_dir) and not ecgs.is_prepared()
    folder = ecgs.prepare()
    assert folder == model.folder and folder.parent.parent == cache and (folder / GENERATOR_FILE).is_file()
    assert ecgs.is_prepared() and model.identity == ecgs.generator_identity()
    batch = ecgs.get_batch(np.arange(10))
    assert batch.shape == (10, 5000) and batch.dtype == np.float32 and np.isfinite(batch).all()
    assert not np.allclose(batch[0], batch[1])
    np.testing.assert_array_equal(ecgs.get_batch(np.array([7, 2])), batch[[7, 2]])
    crossing = np.random.default_rng(0).permutation(np.arange(CHUNK + 30))  # other rows, another chunk
    np.testing.assert_array_equal(ecgs.get_batch(crossing)[np.argsort(crossing)][:10], batch)
    copy = pickle.loads(pickle.dumps(ecgs))  # a DataLoader worker: no model or data travels
    assert copy._sampler is None and copy._data is None
    np.testing.assert_array_equal(copy.get_batch(np.arange(10)), batch)
    if name == "vae":  # `corpus build vae` once the generator is prepared: the same ECGs
        from benchmark.corpora.store import CorpusStore, build_store

        config = PretrainConfig(corpus=name, corpus_size=12, corpus_options=dict(
            data_dir=str(shared_data), cache_dir=str(cache), preset="tiny", steps=3))
        build_store(config, tmp_path / "store", workers=1, shard_size=5, progress=False)
        np.testing.assert_array_equal(CorpusStore.open(tmp_path / "store").get_batch(np.arange(10)), batch)
        stored = corpus(name, shared_data, cache, steps=3, path=str(tmp_path / "store"))
        assert stored.identity() == ecgs.identity()  # a store holds the same values
        np.testing.assert_array_equal(stored.get_batch(np.arange(10, 14)), ecgs.get_batch(np.arange(10, 14)))
        with pytest.raises(ConfigError, match="other ECGs"):
            corpus(name, shared_data, cache, seed=1, steps=3, path=str(tmp_path / "store")).get_batch(np.arange(2))


@pytest.mark.realdata
def test_no_test_record_reaches_a_generator_training_set(shared_data, cache, data):
    from benchmark.data.splits import make_split
    from benchmark.data.tasks import load_task, tasks_of

    paper = corpus("vae", shared_data, cache, preset="paper").training_data()  # every eligible record
    assert set(data.record_ids) <= set(paper.record_ids) and len(paper) > 100
    assert paper.identity["options"]["exclude_test_splits"] and paper.identity["options"]["lead"] == "II"
    for spec in tasks_of("ptbxl"):
        task = load_task(spec.name, shared_data, cache_dir=cache)
        test_ids = set(task.records["record_id"].astype(str).to_numpy()[make_split(task, "paper").test])
        assert test_ids and not test_ids & set(paper.record_ids), spec.name


class _Killer:
    """A logger that interrupts training (as Ctrl-C would) when step ``at`` is logged."""

    def __init__(self, at: int):
        self.at = at

    def log_metrics(self, metrics, step=None):
        if step == self.at:
            raise KeyboardInterrupt

    def log_figure(self, figure, artifact_file):
        pass


@pytest.mark.realdata
@pytest.mark.parametrize("name", ["vae", "gan"])
def test_killed_training_resumes_to_the_same_weights(name, data, one_thread, tmp_path):
    config = resolve_config(name, "tiny", {"steps": 6, "checkpoint_every": 2, "log_every": 1, "sample_every": 3})
    whole = train_generator(config, tmp_path / "whole", progress=False, data=data)
    with pytest.raises(KeyboardInterrupt):
        train_generator(config, tmp_path / "killed", _Killer(at=5), progress=False, data=data)
    assert not (tmp_path / "killed" / GENERATOR_FILE).exists()
    resumed = train_generator(config, tmp_path / "killed", progress=False, data=data)
    assert resumed.trained_now and resumed.fingerprint == whole.fingerprint
    assert resumed.history == whole.history
    a, b = read_file(whole.path)["sampler"], read_file(resumed.path)["sampler"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    again = train_generator(config, tmp_path / "killed", progress=False, data=data)
    assert not again.trained_now
    other = resolve_config(name, "tiny", {"steps": 6, "batch_size": 8})
    with pytest.raises(ConfigError, match="another generator"):
        train_generator(other, tmp_path / "killed", progress=False, data=data)


@pytest.mark.slow
@pytest.mark.realdata
def test_generators_train_twice_trains_once(shared_data, tracking_uri, one_thread, capsys, tmp_path):
    from benchmark.cli import main
    from benchmark.tracking.tracker import Tracker

    argv = ["generators", "train", "vae", "--preset", "tiny", "--data-dir", str(shared_data),
            "--tracking-uri", tracking_uri, "--no-progress", "--json"]

    def train() -> dict:
        assert main(argv) == 0
        return json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    first = train()
    assert first["trained_now"] and first["run_id"] and Path(first["path"]).is_file()
    second = train()
    assert not second["trained_now"] and second["fingerprint"] == first["fingerprint"]
    tracker = Tracker(tracking_uri, suite="generators")
    runs = tracker.client.search_runs([tracker.experiment_id], "tags.kind = 'generator'")
    assert [r.info.status for r in runs] == ["FINISHED"] and runs[0].info.run_id == first["run_id"]
    assert {"loss", "recon_mse", "kl"} <= set(runs[0].data.metrics)
    artifacts = {a.path for a in tracker.client.list_artifacts(first["run_id"], "generator")}
    assert "generator/generator.pt" in artifacts
    assert tracker.client.list_artifacts(first["run_id"], "samples")
    shutil.rmtree(Path(first["folder"]))  # another machine: the FINISHED run's artifact is fetched
    third = train()
    assert not third["trained_now"] and Path(third["path"]).is_file()
    assert json.loads((Path(third["folder"]) / "identity.json").read_text())["fingerprint"] == first["fingerprint"]
    from simecg import integrity

    assert "generator/generator.pt.integrity.json" in artifacts and integrity.check_file(third["path"]) is None
    stored = Path(runs[0].info.artifact_uri.removeprefix("file://")) / "generator" / "generator.pt"
    stored.write_bytes(bytes(stored.stat().st_size))  # the stored copy damaged too: same size, other bytes
    shutil.rmtree(Path(first["folder"]))
    fourth = train()
    assert fourth["trained_now"] and integrity.check_file(fourth["path"]) is None  # trained again, not used


@pytest.mark.slow
@pytest.mark.realdata
def test_corpus_identity_follows_the_generator_not_locations(shared_data, cache, tmp_path):
    from simecg.identity import IGNORED

    base = corpus("vae", shared_data, cache, steps=3)
    identity = base.identity()  # computable without a trained generator
    assert identity["name"] == "vae" and identity["size"] == 200 and identity["seed"] == 0
    assert identity["generator"]["payload"]["generator"]["steps"] == 3
    link = tmp_path / "data"
    link.symlink_to(shared_data)
    moved = corpus("vae", link, tmp_path / "elsewhere", steps=3)
    assert moved.identity() == identity  # where data and caches live is no part of it
    assert str(shared_data) not in json.dumps(identity) and str(cache) not in json.dumps(identity)
    for changed in (corpus("vae", shared_data, cache, steps=4),
                    corpus("vae", shared_data, cache, steps=3, generator={"kl_anneal_steps": 10}),
                    corpus("vae", shared_data, cache, steps=3, generator_seed=1),
                    corpus("vae", shared_data, cache, preset="paper", steps=3),
                    corpus("gan", shared_data, cache, steps=4)):
        assert changed.identity()["generator"]["fingerprint"] != identity["generator"]["fingerprint"]
        assert not changed.is_prepared()  # identities need no trained generator
    bookkeeping = corpus("vae", shared_data, cache, steps=3, generator={"checkpoint_every": 1, "log_every": 1})
    assert bookkeeping.identity() == identity
    # the VAE is sampled from its own prior either way: the same ECGs, the same identity
    assert corpus("vae", shared_data, cache, steps=3, latent_sampling="matched").identity() == identity
    gan, matched = (corpus("gan", shared_data, cache, steps=3, latent_sampling=how) for how in ("paper", "matched"))
    assert (gan.identity()["latent"], matched.identity()["latent"]) == ("normal", "uniform")
    assert gan.identity()["generator"] == matched.identity()["generator"]  # one trained generator serves both
    assert corpus("vae", shared_data, cache, seed=1, steps=3).identity() != identity
    fields = {f for f in resolve_config("vae", "tiny").__dataclass_fields__}
    assert IGNORED["generator"] <= fields
    with pytest.raises(ConfigError, match=r"pretrain\.corpus_options\.generator\.colour"):
        corpus_options(PretrainConfig(corpus="vae", corpus_options={"generator": {"colour": 1}}))
    with pytest.raises(ConfigError, match="preset"):
        corpus_options(PretrainConfig(corpus="gan", corpus_options={"preset": "huge"}))
    options = corpus_options(PretrainConfig(corpus="gan", corpus_options={"generator.lr_d": "2e-4", "steps": "7"}))
    assert options.generator_config().lr_d == 2e-4 and options.generator_config().steps == 7


# ---- the authors' architecture and recipe (no data needed) -------------------------------------------

# Parameter shapes of the authors' modules at the paper's settings (seqlen 5000, z_dim 128, h_dim 256
# for ResNet1dDecoder03 and LinearChunkEncoder, 32 for CNN02, chunk_len 50, enc_out_dim 512), in the
# order their modules declare them, read off src/dgms/codes/models/nn_arch/{resnet,cnn,linears}.py and
# models/dgms/vae.py, and checked by building those modules (their code, outside this repository) and
# counting: decoder 1,160,345, VAE 14,544,025, discriminator 164,530,145 parameters.
DECODER_SHAPES = [
    (6400, 128), (6400,),  # fc_decode: z -> 256 channels x 25 positions (100 chunks / 4)
    (256, 128, 4), (128,), (128, 128, 3), (128,), (128,), (128, 128, 3), (128,), (128,),  # deconv1, resblock1
    (128, 64, 4), (64,), (64, 64, 3), (64,), (64,), (64, 64, 3), (64,), (64,),  # deconv2, resblock2
    (64, 64, 4), (64,), (64, 64, 3), (64,), (64,), (64, 64, 3), (64,), (64,),  # deconv3, resblock3
    (64, 64), (64,), (25, 64), (25,),  # fc_linear, fc_last: 25 samples per position x 200 positions
]
ENCODER_SHAPES = [(256, 50), (256,), (256, 256), (256,), (256, 256), (256,), (512, 25600), (512,),
                  (128, 512), (128,), (128, 512), (128,)]  # linear_emb, fc, fc2, enc_z_mean, enc_z_logvar
DISCRIMINATOR_SHAPES = [(32, 1, 16), (32,), (64, 32, 16), (64,), (128, 64, 16), (128,), (256, 128, 16), (256,),
                        (512, 320000), (512,), (1, 512), (1,)]  # conv1-4, dense (5000 / 4 x 256), clf


def _shapes(module: torch.nn.Module) -> list[tuple[int, ...]]:
    return [tuple(p.shape) for p in module.parameters()]


def test_paper_models_have_the_authors_layers_and_parameter_counts():
    with torch.device("meta"):  # 165M parameters: shapes without memory
        vae, gan = build_model(resolve_config("vae", "paper")), build_model(resolve_config("gan", "paper"))
    assert _shapes(vae.decoder) == _shapes(gan.generator) == DECODER_SHAPES
    assert _shapes(vae.encoder) == ENCODER_SHAPES
    assert _shapes(gan.discriminator) == DISCRIMINATOR_SHAPES
    count = lambda shapes: sum(int(np.prod(s)) for s in shapes)  # noqa: E731
    assert sum(p.numel() for p in vae.parameters()) == count(DECODER_SHAPES + ENCODER_SHAPES) == 14_544_025
    assert sum(p.numel() for p in gan.parameters()) == count(DECODER_SHAPES + DISCRIMINATOR_SHAPES) == 165_690_490
    tiny = build_model(resolve_config("gan", "tiny"))  # the same design, scaled down
    tiny.eval()
    with torch.no_grad():
        ecgs = tiny.generator(torch.randn(3, 128))
        assert ecgs.shape == (3, 5000) and tiny.discriminator(ecgs).shape == (3,)
        assert ((tiny.discriminator(ecgs) > 0) & (tiny.discriminator(ecgs) < 1)).all()  # a probability


def test_paper_recipe_is_the_authors_main02_setting():
    vae, gan = resolve_config("vae", "paper"), resolve_config("gan", "paper")
    for config in (vae, gan):
        assert config.batch_size == 256 and (config.steps - 1) * 256 == 100_000_000  # stops past 1e8 samples
        assert (config.mask_ratio, config.max_shift_ratio, config.lr_schedule) == (0.1, 0.25, "constant")
        assert tuple(config.betas) == (0.9, 0.999) and config.grad_clip == 0
    assert vae.lr == 1e-6 and (gan.lr_d, gan.lr_g, gan.disc_every) == (1e-4, 1e-5, 5)
    assert (vae.kl_schedule, gan.d_gradient) == ("paper", "paper")
    assert (type(vae).training_latent, type(gan).training_latent) == ("normal", "uniform")


def test_kl_weight_grows_as_the_authors_update_it():
    config = resolve_config("vae", "paper")

    def authors(steps: int) -> list[float]:  # their VAEBase._update_beta, after every batch of 256
        beta, seen, out = 0.001, 0, []
        for _ in range(steps):
            out.append(beta)
            seen += 256
            beta = min(beta + (1 - 0.001) * seen / (config.steps * 256), 1.0)
        return out

    ours = [config.kl_weight(step) for step in range(1200)]
    np.testing.assert_allclose(ours, authors(1200), rtol=1e-12, atol=0)
    assert ours[0] == 0.001 and ours[883] < 1 and ours[884] == 1.0  # ~900 steps, quadratic, not linear
    assert ours[442] < 0.3  # half-way in steps, a quarter of the way in beta
    linear = resolve_config("vae", "paper", {"kl_schedule": "linear", "kl_anneal_steps": "100"})
    assert [linear.kl_weight(s) for s in (0, 50, 100, 5000)] == pytest.approx([0.001, 0.5005, 1.0, 1.0])
    tiny = resolve_config("vae", "tiny")  # the paper's rule at the tiny length: 1 after ~sqrt(2 x steps) steps
    assert tiny.kl_weight(18) < 1 and tiny.kl_weight(20) == 1.0


def _gan_batch(step: int, batch_in_epoch: int, n: int = 8) -> TrainingBatch:
    x = torch.from_numpy(np.random.default_rng(step).standard_normal((n, 5000), dtype=np.float32))
    return TrainingBatch(x, torch.ones_like(x), step, batch_in_epoch)


def test_gan_updates_its_discriminator_on_every_fifth_batch_of_an_epoch(one_thread):
    torch.manual_seed(0)
    model = build_model(resolve_config("gan", "tiny"))
    model.train()
    optimizers = model.make_optimizers()
    changed = []
    for step, batch_in_epoch in enumerate([0, 1, 2, 3, 4, 5, 6, 0, 1]):  # a new epoch restarts the count
        before_d = [p.detach().clone() for p in model.discriminator.parameters()]
        before_g = [p.detach().clone() for p in model.generator.parameters()]
        metrics = model.train_step(_gan_batch(step, batch_in_epoch), optimizers, torch.Generator().manual_seed(step))
        moved_d = any(not torch.equal(a, p) for a, p in zip(before_d, model.discriminator.parameters(), strict=True))
        assert any(not torch.equal(a, p) for a, p in zip(before_g, model.generator.parameters(), strict=True))
        assert ("loss_d" in metrics) == moved_d and "loss_g" in metrics
        changed.append(moved_d)
    assert changed == [True, False, False, False, False, True, False, True, False]


def test_gan_discriminator_also_follows_the_generator_loss_in_paper_not_in_separate(one_thread):
    import copy

    import torch.nn.functional as F

    grads = {}
    for how in ("paper", "separate"):
        torch.manual_seed(0)
        model = build_model(resolve_config("gan", "tiny", {"d_gradient": how}))
        model.train()
        initial = copy.deepcopy(model)
        model.train_step(_gan_batch(0, 0), model.make_optimizers(), torch.Generator().manual_seed(3))
        grads[how] = [p.grad.clone() for p in model.discriminator.parameters()]
    noise = torch.Generator().manual_seed(3)  # the step's two draws: z for the discriminator, then for the generator
    torch.rand((8, 128), generator=noise)
    z_g = torch.rand((8, 128), generator=noise)
    loss_g = F.binary_cross_entropy(initial.discriminator(initial.generator(z_g)), torch.ones(8))
    from_loss_g = torch.autograd.grad(loss_g, list(initial.discriminator.parameters()))
    for paper, separate, extra in zip(grads["paper"], grads["separate"], from_loss_g, strict=True):
        torch.testing.assert_close(paper - separate, extra, rtol=1e-4, atol=1e-6)
    assert any(extra.abs().max() > 0 for extra in from_loss_g)


def test_gan_trains_on_uniform_latents(one_thread):
    torch.manual_seed(0)
    model = build_model(resolve_config("gan", "tiny"))
    seen = []
    model.generator.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    model.train_step(_gan_batch(0, 0, n=64), model.make_optimizers(), torch.Generator().manual_seed(0))
    z = torch.cat(seen)
    assert len(seen) == 2 and z.shape == (128, 128)  # one draw for the discriminator, one for the generator
    assert z.min() >= 0 and z.max() < 1 and abs(float(z.mean()) - 0.5) < 0.01 and abs(float(z.std()) - 0.2887) < 0.01


@pytest.mark.parametrize("name", ["vae", "gan"])
def test_paper_samples_normal_latents_and_matched_the_training_ones(name):
    entry = CORPORA.get(name)
    indices = np.arange(400)
    paper = entry(size=400, options=entry.Options(preset="tiny")).latents(indices)
    matched = entry(size=400, options=entry.Options(preset="tiny", latent_sampling="matched")).latents(indices)
    assert paper.shape == matched.shape == (400, 128)
    # paper: N(0, 1) for both models (for the GAN, not the U(0, 1) it was trained on)
    assert abs(paper.mean()) < 0.02 and abs(paper.std() - 1) < 0.02 and 0.48 < (paper < 0).mean() < 0.52
    if name == "vae":
        np.testing.assert_array_equal(matched, paper)  # its prior is N(0, I): matched changes nothing
    else:
        assert matched.min() >= 0 and matched.max() < 1
        assert abs(matched.mean() - 0.5) < 0.01 and abs(matched.std() - 12 ** -0.5) < 0.01
    with pytest.raises(ConfigError, match="latent_sampling='both'; known: paper, matched"):
        entry.Options(latent_sampling="both")


def test_vae_loss_ignores_the_masked_segment_and_the_shift_padding(one_thread):
    torch.manual_seed(0)
    model = build_model(resolve_config("vae", "tiny"))
    model.train()
    x = torch.randn(4, 5000)
    mask = torch.ones_like(x)
    mask[:, 1000:1500] = 0  # the masked segment
    mask[:, :300] = 0  # zeros a shift padded in
    other = x.clone()
    other[:, 1000:1500] = 50.0
    other[:, :300] = -50.0
    a, b = (model.losses(v, mask, 10, torch.Generator().manual_seed(1)) for v in (x, other))
    assert float(a["loss"].detach()) == pytest.approx(float(b["loss"].detach()), rel=1e-6)
    c = model.losses(x, torch.ones_like(x), 10, torch.Generator().manual_seed(1))
    assert float(c["recon"].detach()) > float(a["recon"].detach())  # unmasked, the same ECGs count more samples


def test_augment_masks_a_segment_and_shifts_with_zero_padding():
    n, length = 400, 5000
    x = np.tile(np.arange(1, length + 1, dtype=np.float32), (n, 1))  # a sample's value names its position
    shifted, mask = augment(x, 0.1, 0.25, np.random.default_rng(0))
    assert shifted.shape == mask.shape == (n, length) and shifted.dtype == mask.dtype == np.float32
    padded = shifted == 0
    pad = padded.sum(1)
    assert pad.max() < 1250 and pad.min() >= 0 and pad.mean() == pytest.approx(625, rel=0.1)  # int(L x U(0, .25))
    front = padded[:, 0]
    assert 0.4 < front.mean() < 0.6  # shifted right or left with equal odds
    for row in range(n):  # the record itself, moved: consecutive positions, zeros only at one end
        values = shifted[row][~padded[row]]
        assert np.all(np.diff(values) == 1) and (values[0] == 1 or values[-1] == length)
    masked = ~padded & (mask == 0)
    assert masked.sum(1).max() <= 500 and (masked.sum(1) == 500).mean() > 0.7  # int(5000 x 0.1), cut by the shift
    assert np.all(mask[padded] == 0)  # padding never counts as the record
    for row in range(n):  # the masked samples are one contiguous run of record positions
        positions = shifted[row][masked[row]]
        assert len(positions) == 0 or np.all(np.diff(positions) == 1)
    same, ones = augment(x[:3], 0.0, 0.0, np.random.default_rng(0))
    np.testing.assert_array_equal(same, x[:3])
    assert ones.min() == 1


def test_epochs_are_full_batches_of_a_seeded_permutation_and_too_few_records_are_refused(tmp_path):
    config = resolve_config("vae", "tiny")  # batch 16
    seen, positions = [], []
    for step in range(36):  # 300 records: 18 full batches per epoch, 12 records left out each epoch
        rows, within = batch_positions(config, 300, step)
        seen.append(rows)
        positions.append(within)
        np.testing.assert_array_equal(rows, batch_positions(config, 300, step)[0])  # a pure function of step
    assert positions == list(range(18)) * 2
    first, second = np.concatenate(seen[:18]), np.concatenate(seen[18:])
    assert len(set(first)) == len(set(second)) == 288 and not np.array_equal(first, second)
    data = GeneratorData({"name": "few"}, [str(i) for i in range(10)],
                         signals=np.random.default_rng(0).standard_normal((10, 5000), dtype=np.float32))
    with pytest.raises(DataError, match="holds 10 ECGs, fewer than one batch of 16"):
        train_generator(config, tmp_path / "few", progress=False, data=data)


def test_learning_rates_are_constant_in_paper_and_annealed_in_cosine():
    paper = resolve_config("gan", "tiny")
    cosine = resolve_config("gan", "tiny", {"lr_schedule": "cosine"})
    assert {paper.lr_factor(s) for s in (0, 75, 149)} == {1.0}
    assert [cosine.lr_factor(s) for s in (0, 75, 150)] == pytest.approx([1.0, 0.5, 0.0])
    model = build_model(cosine)
    optimizers = model.make_optimizers()
    set_learning_rates(optimizers, cosine.lr_factor(75))
    assert optimizers["discriminator"].param_groups[0]["lr"] == pytest.approx(0.5e-4)
    assert optimizers["generator"].param_groups[0]["lr"] == pytest.approx(0.5e-5)


@pytest.mark.parametrize(("kind", "key", "value", "expected"), [
    ("gan", "d_gradient", "both", "must be one of paper, separate"),
    ("gan", "disc_every", "0", "must be >= 1"),
    ("vae", "kl_schedule", "cosine", "must be one of paper, linear"),
    ("vae", "lr_schedule", "step", "must be one of constant, cosine"),
    ("vae", "mask_ratio", "1.5", "must be >= 0 and < 1"),
])
def test_recipe_options_are_checked_and_name_the_key(kind, key, value, expected):
    with pytest.raises(ConfigError, match=rf"pretrain\.corpus_options\.generator\.{key} {expected}"):
        resolve_config(kind, "paper", {key: value})
    with pytest.raises(ConfigError, match="chunk must be even"):
        resolve_config(kind, "tiny", {"chunk": "40"})


def _synthetic(n: int, name: str, seed: int = 0, validation: GeneratorData | None = None) -> GeneratorData:
    signals = np.random.default_rng(seed).standard_normal((n, 5000), dtype=np.float32)
    return GeneratorData({"name": name}, [f"{name}{i}" for i in range(n)], signals=signals, validation=validation)


def test_the_best_validation_weights_sample_the_corpus_and_survive_a_kill(one_thread, tmp_path, monkeypatch):
    from pretraining.generators.vae import VAE

    data = _synthetic(12, "train", validation=_synthetic(6, "val", seed=1))
    config = resolve_config("vae", "tiny", {"steps": 9, "batch_size": 4, "val_every": 8, "checkpoint_every": 3,
                                            "keep_checkpoints": 5, "log_every": 1})
    assert config.val_interval == 3  # measured once more than 8 samples have passed: after 3 batches of 4
    measured = []

    def rising(self, x, step, generator):  # the validation loss falls, then rises
        measured.append(step)
        assert x.shape == (6, 5000) and abs(float(x.mean())) < 1e-3  # the z-scored validation records
        return {3: 2.0, 6: 1.0, 9: 1.5}[step]

    monkeypatch.setattr(VAE, "validation_loss", rising)
    whole = train_generator(config, tmp_path / "whole", progress=False, data=data)
    assert measured == [3, 6, 9] and [h["val_loss"] for h in whole.history if "val_loss" in h] == [2.0, 1.0, 1.5]
    saved = read_file(whole.path)
    assert saved["extra"]["selected"] == "best_val" and saved["extra"]["selected_step"] == 6
    at_six = read_file(tmp_path / "whole" / "checkpoints" / "step-00000006.pt")["model"]
    last = read_file(tmp_path / "whole" / "checkpoints" / "step-00000009.pt")["model"]
    decoder = {k.removeprefix("decoder."): v for k, v in at_six.items() if k.startswith("decoder.")}
    assert saved["sampler"].keys() == decoder.keys()
    assert all(torch.equal(saved["sampler"][k], decoder[k]) for k in decoder)
    assert not all(torch.equal(saved["sampler"][k], last[f"decoder.{k}"]) for k in decoder)  # not the last weights
    with pytest.raises(KeyboardInterrupt):
        train_generator(config, tmp_path / "killed", _Killer(at=8), progress=False, data=data)
    resumed = train_generator(config, tmp_path / "killed", progress=False, data=data)  # from step 6's checkpoint
    again = read_file(resumed.path)
    assert again["extra"]["selected_step"] == 6 and all(torch.equal(again["sampler"][k], decoder[k]) for k in decoder)
    chosen_last = resolve_config("vae", "tiny", {"steps": 9, "batch_size": 4, "val_every": 8, "select": "last"})
    last_run = train_generator(chosen_last, tmp_path / "last", progress=False, data=data)
    assert read_file(last_run.path)["extra"]["selected"] == "last"
    assert measured == [3, 6, 9, 3, 6, 9]  # killed after 3 and 6, resumed for 9; select=last measures nothing


def test_validation_records_enter_the_identity_only_when_they_choose_the_weights():
    from pretraining.generators.train import generator_identity

    with_val, without = _synthetic(4, "t", validation=_synthetic(2, "v")), _synthetic(4, "t")
    best, last = resolve_config("gan", "tiny"), resolve_config("gan", "tiny", {"select": "last"})
    assert generator_identity(best, with_val).payload["data"]["validation"] == {"name": "v"}
    assert generator_identity(best, with_val) != generator_identity(best, without)
    assert "validation" not in generator_identity(last, with_val).payload["data"]
    assert generator_identity(last, with_val) != generator_identity(best, without)  # select is in the config


@pytest.mark.parametrize("kind", ["vae", "gan"])
def test_validation_losses_are_finite_seeded_and_leave_training_mode(kind, one_thread):
    torch.manual_seed(0)
    model = build_model(resolve_config(kind, "tiny"))
    model.train()
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((20, 5000), dtype=np.float32))
    first = model.validation_loss(x, 30, torch.Generator().manual_seed(1))
    assert np.isfinite(first) and first > 0 and model.training
    assert model.validation_loss(x, 30, torch.Generator().manual_seed(1)) == first
