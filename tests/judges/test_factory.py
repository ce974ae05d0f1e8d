"""build_judge and the judge configs: every configs/judge/*.yaml builds (the hf one on a tiny saved model)."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from src.judges import build_judge
from src.judges.embedding import EmbeddingJudge
from src.judges.hf import HFJudge
from src.judges.keywords import KeywordJudge
from src.judges.openai import OpenAIJudge
from tests.judges.tiny_classifier import build_classifier

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "judge"


def test_default_is_the_keyword_judge():
    assert isinstance(build_judge(None), KeywordJudge)
    assert isinstance(build_judge({"name": "keywords"}), KeywordJudge)


def test_unknown_backend_and_option_are_named():
    with pytest.raises(
        ValueError, match=r"judge.name='embeding' is not a judge backend. Did you mean 'embedding'\?"
    ):
        build_judge({"name": "embeding"})
    with pytest.raises(
        ValueError, match=r"judge.topk is not an option of the keywords judge; it accepts: top_k, related"
    ):
        build_judge({"name": "keywords", "topk": 2})


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_judge_config_opens_with_a_comment_and_command(path):
    text = path.read_text()
    assert text.startswith("#") and "python -m src." in text.split("\nname:")[0]
    assert OmegaConf.load(path).name == path.stem


def test_keywords_config_builds():
    judge = build_judge(OmegaConf.load(CONFIGS / "keywords.yaml"))
    assert (judge.top_k, judge.related) == (2, True)


def test_hf_config_builds_on_a_saved_model(tmp_path):
    config = OmegaConf.load(CONFIGS / "hf.yaml")
    config.path = str(build_classifier(tmp_path))
    judge = build_judge(config)
    assert isinstance(judge, HFJudge) and judge.multi_label and judge.threshold == 0.1 and judge.top_k == 2
    assert judge.classify(["joy"], ["happy", "sad"]) == ["happy"]


def test_hf_config_with_a_label_map_from_yaml(tmp_path):
    config = OmegaConf.merge(
        OmegaConf.load(CONFIGS / "hf.yaml"),
        {"path": str(build_classifier(tmp_path)), "label_map": {"admiration": "happy"}},
    )
    assert build_judge(config).classify(["admiration", "joy"], ["happy"]) == ["happy", None]


def test_openai_config_builds_with_the_key_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    config = OmegaConf.load(CONFIGS / "openai.yaml")
    config.cache_path = str(tmp_path / "cache.sqlite")
    judge = build_judge(config)
    assert isinstance(judge, OpenAIJudge) and judge.model == "gpt-4.1-mini"
    assert "sk-from-env" not in repr(judge)


@pytest.mark.slow
def test_embedding_config_builds():
    judge = build_judge(OmegaConf.load(CONFIGS / "embedding.yaml"))
    assert isinstance(judge, EmbeddingJudge) and judge.top_k == 2
