"""Preconditions of a synthetic corpus, measured before any training: can it produce the paper's failure?

    python -m src.analysis.synth_check DIR [--media-frames 8 --image-size 64 --audio-seconds 3] [--json OUT]

prints three figures and exits non-zero when a precondition fails:

``judge``
    The evaluation's judge (``configs/judge/keywords.yaml`` through :func:`src.evaluation.judging.judge_records`,
    whole-explanation mode, as ``python -m src.evaluate`` runs it) reads the label from every gold explanation,
    built both visual-first and audio-first with :func:`src.data.reasoning.build_target`. Must be 100%: a
    consistency figure cannot blame a model for what the judge misreads in the gold text itself.
``text``
    A bag-of-words logistic regression (:func:`fit_logistic`, multinomial, L2) trained on the two description
    segments of the training clips predicts the label of the test clips whose non-dominant modality names
    another emotion (``conflict`` or ``misleading`` cue). Passes when its accuracy is not significantly above
    50%, choosing one of the two named emotions (one-sided 95%: accuracy - 1.645 * sqrt(0.25 / n) <= 0.5),
    i.e. the words leave the label open and only the media can settle it. The faint regime fails it: its
    descriptions word the misleading cue as faint, so the text alone gives the label.
``media``
    A probe on the decoded media (the tiny model's inputs: 8 frames at 64 px and a 3 s Whisper log-mel)
    trained on the training clips predicts the dominant modality (audio / visual / both) of the test clips.
    Two logistic regressions (:func:`media_probe`): the emotion of every frame and every 0.3 s window, then
    the dominant modality from how steadily each modality shows its emotion over the clip. Passes at >= 90%:
    the towers can learn which modality carries the label.

Also required: at least 100 test clips whose non-dominant cue names another emotion (the study's power).
The media probe decodes every clip (minutes for 700 clips on a busy 2-core host; `--cache-dir` keeps them).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from src.data.manifest import Sample, read_manifest
from src.data.reasoning import build_target
from src.data.synth.corpus import INFO_NAME, MANIFEST_NAME
from src.evaluation.judging import judge_records
from src.evaluation.predictions import PredictionRecord
from src.judges.factory import build_judge

OTHER_EMOTION_CUES = ("conflict", "misleading")  # a non-dominant cue that shows another emotion than the label
MIN_CONFLICT_TEST = 100
MEDIA_TARGET = 0.9
JUDGE_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "judge" / "keywords.yaml"
_WORD_RE = re.compile(r"[a-z]+")


# --- a multinomial logistic regression (numpy in, torch L-BFGS inside; no scikit-learn at run time) ----------


class Logistic:
    """A fitted multinomial logistic regression: ``classes``, ``predict_proba`` and ``predict``."""

    def __init__(self, classes: list[str], weight: torch.Tensor, bias: torch.Tensor) -> None:
        self.classes, self.weight, self.bias = classes, weight, bias  # [D, C], [C]

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """``[M, C]`` class probabilities of ``[M, D]`` features (columns in ``classes`` order)."""
        scores = torch.as_tensor(np.asarray(features, dtype=np.float64)) @ self.weight + self.bias  # [M, C]
        return torch.softmax(scores, dim=1).numpy()

    def predict(self, features: np.ndarray) -> list[str]:
        return [self.classes[i] for i in self.predict_proba(features).argmax(axis=1).tolist()]


def fit_logistic(features: np.ndarray, targets: Sequence[str], *, c: float = 1.0, max_iter: int = 500) -> Logistic:
    """A multinomial logistic regression with scikit-learn's objective (sum of cross-entropies +
    ``0.5 / c * ||W||^2``, intercept unpenalised), fitted by L-BFGS.

    Args:
        features: ``[N, D]`` training features.
        targets: N class names.
    """
    classes = sorted(set(targets))
    x = torch.as_tensor(np.asarray(features, dtype=np.float64))  # [N, D]
    y = torch.as_tensor([classes.index(t) for t in targets])  # [N]
    weight = torch.zeros(x.shape[1], len(classes), dtype=torch.float64, requires_grad=True)  # [D, C]
    bias = torch.zeros(len(classes), dtype=torch.float64, requires_grad=True)  # [C]
    optimizer = torch.optim.LBFGS(
        [weight, bias], lr=1.0, max_iter=max_iter, tolerance_grad=1e-7, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ weight + bias, y, reduction="sum") + 0.5 / c * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return Logistic(classes, weight.detach(), bias.detach())


def standardize(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """``train`` and ``others`` scaled by the training mean and standard deviation (constant columns kept 0)."""
    mean, std = train.mean(axis=0), train.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    return [(array - mean) / std for array in (train, *others)]


# --- the three preconditions -------------------------------------------------------------------------------


def judge_gold(samples: Sequence[Sample], judge_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Share of gold explanations (both orders) in which the evaluation's judge reads the label."""
    from omegaconf import OmegaConf

    config = judge_config or OmegaConf.to_container(OmegaConf.load(JUDGE_CONFIG))
    judge = build_judge(config)
    labels = sorted({s.label for s in samples})
    figures: dict[str, Any] = {}
    for first in ("visual", "audio"):
        records = [_gold_record(sample, first) for sample in samples if sample.reasoning is not None]
        judged, _ = judge_records(records, judge, labels, mode="explanation")
        wrong = [r for r in judged if r.judged != r.label]
        figures[f"{first}_first"] = 1.0 - len(wrong) / len(judged) if judged else float("nan")
        figures[f"{first}_first_misread"] = [(r.id, r.label, r.judged) for r in wrong[:5]]
        figures["n"] = len(judged)
    return figures


def _gold_record(sample: Sample, first: str) -> PredictionRecord:
    assert sample.reasoning is not None
    completion = build_target(
        visual=sample.reasoning.visual,
        audio=sample.reasoning.audio,
        think=sample.reasoning.think,
        answer=sample.label,
        first=first,  # type: ignore[arg-type]
    )
    return PredictionRecord(
        id=sample.id,
        dataset=sample.dataset,
        label=sample.label,
        completion=completion,
        answer=sample.label,
        prediction=sample.label,
        first_segment=first,
        well_formed=True,
        num_tokens=0,
        truncated=False,
        dominant=sample.dominant,
    )


def description_words(sample: Sample) -> list[str]:
    """The two description segments as words, each tagged with its segment (``v:smile``, ``a:loud``)."""
    assert sample.reasoning is not None
    return [f"v:{word}" for word in _WORD_RE.findall((sample.reasoning.visual or "").lower())] + [
        f"a:{word}" for word in _WORD_RE.findall((sample.reasoning.audio or "").lower())
    ]


def bag_of_words(samples: Sequence[Sample], vocabulary: list[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """``[N, V]`` word counts of :func:`description_words` over ``vocabulary`` (default: every word seen)."""
    docs = [Counter(description_words(s)) for s in samples]
    vocabulary = vocabulary if vocabulary is not None else sorted({w for doc in docs for w in doc})
    index = {word: i for i, word in enumerate(vocabulary)}
    matrix = np.zeros((len(samples), len(vocabulary)))
    for row, doc in enumerate(docs):
        for word, count in doc.items():
            if word in index:
                matrix[row, index[word]] = count
    return matrix, vocabulary


def text_only(samples: Sequence[Sample]) -> dict[str, Any]:
    """Accuracy of a bag-of-words classifier of the label from the two description segments (see module doc)."""
    train = [s for s in samples if s.split == "train" and s.reasoning is not None]
    test = [s for s in samples if s.split == "test" and s.reasoning is not None]
    x_train, vocabulary = bag_of_words(train)
    x_test, _ = bag_of_words(test, vocabulary)
    predicted = fit_logistic(x_train, [s.label for s in train]).predict(x_test) if test else []
    other = [i for i, s in enumerate(test) if _cue(s) in OTHER_EMOTION_CUES]
    named = [{s.extra["synth"]["visual"]["emotion"], s.extra["synth"]["audio"]["emotion"]} for s in test]
    n = len(other)
    accuracy = sum(predicted[i] == test[i].label for i in other) / n if n else float("nan")
    return {
        "accuracy_other_emotion_cue": accuracy,
        "n_other_emotion_cue": n,
        "names_one_of_the_two": sum(predicted[i] in named[i] for i in other) / n if n else float("nan"),
        "upper_bound_of_chance": 0.5 + 1.645 * math.sqrt(0.25 / n) if n else float("nan"),
        "accuracy_all_test": sum(p == s.label for p, s in zip(predicted, test)) / len(test)
        if test
        else float("nan"),
        "n_test": len(test),
    }


def _cue(sample: Sample) -> str:
    return str(sample.extra.get("synth", {}).get("cue", ""))


def media_steps(frames: torch.Tensor, mel: torch.Tensor, windows: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """One clip's media as steps in time: ``([T, P] visual, [W, 128] audio)``.

    Args:
        frames: ``[T, 3, S, S]`` video frames -> per frame, grey-level edge strength pooled 3 x 3 (the
            expression's geometry; edges, not pixels, so skin tone and background matter less).
        mel: ``[128, F]`` Whisper log-mel -> per window of ``F // windows`` mel frames (0.3 s of a 3 s clip),
            the mean of each of the 128 bins.
    """
    grey = frames.float().mean(dim=1)  # [T, S, S]
    edges = (grey[:, :-1, 1:] - grey[:, :-1, :-1]).abs() + (grey[:, 1:, :-1] - grey[:, :-1, :-1]).abs()
    visual = F.avg_pool2d(edges.unsqueeze(1), 3).flatten(1)  # [T, P]
    width = max(1, mel.shape[1] // windows)
    audio = mel.float()[:, : width * windows].reshape(mel.shape[0], windows, width).mean(dim=2).T  # [W, 128]
    return visual.numpy(), audio.numpy()


def _step_probabilities(
    steps: np.ndarray, labels: np.ndarray, train: np.ndarray, carries: np.ndarray, *, c: float, folds: int = 5
) -> np.ndarray:
    """``[N, T, E]`` emotion probabilities of every step (frame or window) of every clip.

    A logistic regression of the clip's label from one step is trained on the steps (the first left out:
    the onset) of the training clips whose modality ``carries`` the label; training clips get the
    predictions of a model fitted without their fold (cross-fitting), the others of one fitted on all.
    """
    count, length, width = steps.shape
    out = np.zeros((count, length, len(set(labels.tolist()))))
    train_rows = np.flatnonzero(train)
    fold = np.arange(len(train_rows)) % folds

    def fit_apply(fit_rows: np.ndarray, apply_rows: np.ndarray) -> None:
        x = steps[fit_rows][:, 1:].reshape(-1, width)
        mean, std = x.mean(axis=0), np.where(x.std(axis=0) > 1e-12, x.std(axis=0), 1.0)
        model = fit_logistic((x - mean) / std, np.repeat(labels[fit_rows], length - 1).tolist(), c=c)
        flat = (steps[apply_rows].reshape(-1, width) - mean) / std
        out[apply_rows] = model.predict_proba(flat).reshape(len(apply_rows), length, -1)

    for k in range(folds):
        fit_apply(train_rows[(fold != k) & carries[train_rows]], train_rows[fold == k])
    fit_apply(train_rows[carries[train_rows]], np.flatnonzero(~train))
    return out


def _time_summary(probabilities: np.ndarray, neutral: int) -> np.ndarray:
    """``[N, T, E]`` step probabilities -> ``[N, E + 5]``: the mean over steps, and how steady the clip's top
    emotion is (its lowest and spread of probability, the share of steps it wins) and P(neutral)'s range."""
    mean = probabilities.mean(axis=1)  # [N, E]
    top = mean.argmax(axis=1)  # [N]
    top_probability = probabilities[np.arange(len(top)), :, top]  # [N, T]
    wins = (probabilities.argmax(axis=2) == top[:, None]).mean(axis=1)  # [N]
    calm = probabilities[:, :, neutral]  # [N, T]
    extra = [top_probability.min(axis=1), top_probability.std(axis=1), wins, calm.max(axis=1), calm.min(axis=1)]
    return np.concatenate([mean, np.stack(extra, axis=1)], axis=1)


def media_probe(
    samples: Sequence[Sample],
    *,
    image_size: int = 64,
    num_frames: int = 8,
    audio_seconds: int = 3,
    cache_dir: Path | None = None,
) -> dict[str, Any]:
    """Accuracy of a probe of the dominant modality from the decoded media (train -> test split).

    Two stages, each a logistic regression: per modality, the emotion of every step in time (frame, 0.3 s
    window; :func:`_step_probabilities`), then the dominant modality from both modalities' time summaries
    (:func:`_time_summary`) and how much their emotions agree. What decides dominance (a display sustained
    over the clip vs. a brief or absent one) is a matter of time, which the summaries expose to a linear model.
    """
    from src.data.media import MediaLoader

    loader = MediaLoader(
        image_size=image_size, num_frames=num_frames, audio_seconds=audio_seconds, cache_dir=cache_dir
    )
    used = [s for s in samples if s.split in ("train", "test") and s.dominant is not None]
    decoded = [media_steps(item.frames, item.mel) for item in map(loader.load, used)]
    labels = np.array([s.label for s in used])
    dominant = np.array([str(s.dominant) for s in used])
    train = np.array([s.split == "train" for s in used])
    neutral = sorted(set(labels.tolist())).index("neutral")
    summaries = []
    for index, modality in enumerate(("visual", "audio")):
        steps = np.stack([clip[index] for clip in decoded])  # [N, T, D]
        carries = (dominant == modality) | (dominant == "both")
        summaries.append(_time_summary(_step_probabilities(steps, labels, train, carries, c=0.01), neutral))
    emotions = len(set(labels.tolist()))
    agreement = (summaries[0][:, :emotions] * summaries[1][:, :emotions]).sum(
        axis=1, keepdims=True
    )  # same emotion
    features = np.concatenate([*summaries, agreement], axis=1)
    x_train, x_test = standardize(features[train], features[~train])
    predicted = fit_logistic(x_train, dominant[train].tolist(), c=1.0).predict(x_test)
    test = [s for s, t in zip(used, train) if not t]
    hits = [p == s.dominant for p, s in zip(predicted, test)]
    other = [h for h, s in zip(hits, test) if _cue(s) in OTHER_EMOTION_CUES]
    return {
        "accuracy": sum(hits) / len(hits) if hits else float("nan"),
        "n_test": len(hits),
        "accuracy_other_emotion_cue": sum(other) / len(other) if other else float("nan"),
        "n_other_emotion_cue": len(other),
        "per_dominant": {
            name: float(np.mean([h for h, s in zip(hits, test) if s.dominant == name]))
            for name in sorted({str(s.dominant) for s in test})
        },
    }


def check(
    corpus: Path,
    *,
    media: bool = True,
    image_size: int = 64,
    num_frames: int = 8,
    audio_seconds: int = 3,
    cache_dir: Path | None = None,
) -> dict[str, Any]:
    """Every figure and verdict for the corpus in folder ``corpus`` (holding manifest.jsonl and corpus.json)."""
    manifest = corpus / MANIFEST_NAME
    if not manifest.is_file():
        raise FileNotFoundError(
            f"{manifest} does not exist: expected a synthetic corpus folder (python -m src.data.synth)"
        )
    info_path = corpus / INFO_NAME
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    samples = read_manifest(manifest)
    conflict_test = sum(1 for s in samples if s.split == "test" and _cue(s) in OTHER_EMOTION_CUES)
    report: dict[str, Any] = {
        "corpus": str(corpus),
        "regime": info.get("regime", info.get("params", {}).get("regime", "faint")),
        "n": len(samples),
        "counts": info.get("counts"),
        "other_emotion_cue_test": conflict_test,
        "judge": judge_gold(samples),
        "text": text_only(samples),
    }
    if media:
        report["media"] = media_probe(
            samples, image_size=image_size, num_frames=num_frames, audio_seconds=audio_seconds, cache_dir=cache_dir
        )
    text = report["text"]
    report["passed"] = {
        "judge": report["judge"]["visual_first"] == 1.0 and report["judge"]["audio_first"] == 1.0,
        "text": text["n_other_emotion_cue"] > 0
        and text["accuracy_other_emotion_cue"] <= text["upper_bound_of_chance"],
        "power": conflict_test >= MIN_CONFLICT_TEST,
        **({"media": report["media"]["accuracy"] >= MEDIA_TARGET} if media else {}),
    }
    return report


def format_report(report: dict[str, Any]) -> str:
    """The printed figures, one line per precondition."""
    verdict = {True: "PASS", False: "FAIL"}
    passed, judge, text = report["passed"], report["judge"], report["text"]
    lines = [
        f"corpus {report['corpus']}: regime {report['regime']}, {report['n']} clips",
        f"[{verdict[passed['judge']]}] judge: reads the label from {judge['visual_first']:.1%} of gold explanations "
        f"visual-first and {judge['audio_first']:.1%} audio-first (n={judge['n']} each; keyword judge, whole "
        "explanation)",
        f"[{verdict[passed['text']]}] text: a bag-of-words classifier of the two descriptions gets "
        f"{text['accuracy_other_emotion_cue']:.1%} of the {text['n_other_emotion_cue']} test clips whose "
        f"non-dominant cue shows another emotion (chance between the two named: 50%, significance bound "
        f"{text['upper_bound_of_chance']:.1%}); names one of the two: {text['names_one_of_the_two']:.1%}; "
        f"all {text['n_test']} test clips: {text['accuracy_all_test']:.1%}",
        f"[{verdict[passed['power']]}] power: {report['other_emotion_cue_test']} test clips whose non-dominant cue "
        f"shows another emotion (need >= {MIN_CONFLICT_TEST})",
    ]
    if "media" in report:
        media = report["media"]
        lines.append(
            f"[{verdict[passed['media']]}] media: a probe on the decoded media recovers the dominant modality of "
            f"{media['accuracy']:.1%} of {media['n_test']} test clips (target >= {MEDIA_TARGET:.0%}); "
            f"{media['accuracy_other_emotion_cue']:.1%} of the {media['n_other_emotion_cue']} with another "
            "emotion in the non-dominant modality"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m src.analysis.synth_check",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("corpus", type=Path, help="a synthetic corpus folder (manifest.jsonl + corpus.json)")
    parser.add_argument("--no-media", action="store_true", help="skip the media probe (no decoding)")
    parser.add_argument("--image-size", type=int, default=64, help="frame side the probe decodes (tiny model: 64)")
    parser.add_argument("--num-frames", type=int, default=8)
    parser.add_argument("--audio-seconds", type=int, default=3)
    parser.add_argument("--cache-dir", type=Path, default=None, help="decoded-media cache (e.g. DIR/.cache)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    try:
        report = check(
            args.corpus,
            media=not args.no_media,
            image_size=args.image_size,
            num_frames=args.num_frames,
            audio_seconds=args.audio_seconds,
            cache_dir=args.cache_dir,
        )
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_report(report))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0 if all(report["passed"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
