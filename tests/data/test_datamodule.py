"""The training data module builds the synthetic corpus it is configured with, and reuses one made with it."""

from __future__ import annotations

from src.data.synth import ensure_corpus
from src.models.factory import ModelSpec, describe
from src.stages.runner import build_datamodule, to_dict
from tests.helpers import compose_train


def test_a_corpus_made_with_every_synth_option_is_reused_not_regenerated(tmp_path):
    # A corpus with non-default options (one wording per cue, less colour spread), as the demo's corpus stage
    # makes it; the training run that names the same options must not replace it with a default-option corpus.
    options = {"n": 14, "seed": 3, "variation": 0.2, "phrasings": 1}
    manifest = ensure_corpus(tmp_path / "corpus", workers=1, **options)
    info = manifest.with_name("corpus.json")
    made = (info.stat().st_mtime_ns, manifest.read_text())
    cfg = compose_train(
        f"data.manifest={manifest}",
        *(f"data.synth.{key}={value}" for key, value in options.items()),
        f"data.cache_dir={tmp_path / 'cache'}",
        f"runs_dir={tmp_path / 'runs'}",
    )
    datamodule = build_datamodule(cfg, describe(ModelSpec(**to_dict(cfg.model)), None))
    datamodule.prepare_data()
    datamodule.setup("fit")
    assert (info.stat().st_mtime_ns, manifest.read_text()) == made
    assert sum(len(split) for split in datamodule.splits.values()) == 14

    # other options: regenerated with exactly those (not only n and seed)
    cfg.data.synth.phrasings = 2
    build_datamodule(cfg, describe(ModelSpec(**to_dict(cfg.model)), None)).prepare_data()
    assert '"phrasings": 2' in info.read_text() and '"variation": 0.2' in info.read_text()
