"""EMER-style reasoning text for the synthetic clips: short, templated, truthful about every cue.

A description names what the face (or voice) does and, when it carries an emotion, the emotion it suggests,
in words that :func:`src.data.labels.normalize_label` maps onto that emotion. In the ``faint`` regime a
misleading non-dominant cue is described truthfully *and as faint* ("a faint smile ... a hint of happiness"),
so a keyword judge finds the wrong emotion in that segment, but the words also say which cue to discount. In
the ``conflict`` regime every cue is described from :data:`VISUAL_PLAIN` / :data:`AUDIO_PLAIN`: the same
wordings whether the display is the dominant one or a brief conflicting one, with no word of strength,
duration or verdict, so the two descriptions name two emotions and leave the label open between them. A
neutral non-dominant cue reads as calm/neutral. The ``think`` sentence names the label emotion and the modality
that carries it, and no other emotion word.
"""

from __future__ import annotations

import numpy as np

VISUAL_STRONG: dict[str, tuple[str, ...]] = {
    "happy": (
        "The cheeks lift and the lip corners pull up into a broad smile, which looks happy.",
        "A wide smile shows the teeth and the cheeks rise, a clearly joyful face.",
        "The mouth curves up in a big smile with raised cheeks, suggesting happiness.",
    ),
    "sad": (
        "The inner brows rise and the lip corners turn down, which looks sad.",
        "The brows slant up in the middle and the mouth droops, a sorrowful face.",
        "Raised inner brows and a downturned mouth suggest sadness.",
    ),
    "neutral": (
        "The face stays relaxed with level brows and a closed mouth, which looks calm.",
        "The brows and mouth stay at rest, a neutral face.",
        "Hardly any facial muscle moves; the expression is neutral.",
    ),
    "angry": (
        "The brows pull down and together and the lips press tight, which looks angry.",
        "Lowered, knitted brows, tight eyelids and pressed lips show anger.",
        "A hard frown with narrowed eyes and thin lips suggests anger.",
    ),
    "surprise": (
        "The brows shoot up, the eyes widen and the jaw drops, which looks surprised.",
        "Raised brows, wide-open eyes and an open mouth show surprise.",
        "The eyes go wide under high brows and the mouth falls open, an astonished face.",
    ),
    "disgust": (
        "The nose wrinkles and the upper lip curls up, which looks disgusted.",
        "A wrinkled nose and a raised upper lip show disgust.",
        "The face scrunches around the nose with the lip pulled up, suggesting disgust.",
    ),
    "fear": (
        "The brows rise and draw together, the eyes widen and the lips stretch sideways, which looks fearful.",
        "Wide eyes under raised, drawn brows and a stretched mouth show fear.",
        "Raised brows, staring eyes and lips pulled back suggest the person is scared.",
    ),
}

VISUAL_FAINT: dict[str, tuple[str, ...]] = {
    "happy": (
        "A faint smile tugs at the lip corners, a hint of happiness.",
        "The lip corners lift slightly, a trace of joy.",
    ),
    "sad": ("The inner brows rise a little and the mouth droops slightly, a hint of sadness.",),
    "angry": ("The brows dip slightly together, a trace of anger.", "The lips tighten a little, a hint of anger."),
    "surprise": ("The brows lift a little and the lips part, a hint of surprise.",),
    "disgust": (
        "The nose wrinkles faintly, a trace of disgust.",
        "The upper lip rises slightly, a hint of disgust.",
    ),
    "fear": ("The eyes widen a little and the lips stretch slightly, a hint of fear.",),
}

AUDIO_STRONG: dict[str, tuple[str, ...]] = {
    "happy": (
        "The voice is high and lively with a bouncy, quick rhythm, which sounds happy.",
        "A bright, rising and energetic tone sounds cheerful.",
        "The speech is fast and melodic with a wide pitch range, suggesting happiness.",
    ),
    "sad": (
        "The voice is low, quiet and slow with long pauses, which sounds sad.",
        "A soft, breathy, falling tone with slow speech sounds sorrowful.",
        "Slow, low and subdued speech suggests sadness.",
    ),
    "neutral": (
        "The voice is steady and even in pitch and pace, which sounds calm.",
        "An even, moderate tone with a regular rhythm sounds neutral.",
    ),
    "angry": (
        "The voice is loud, harsh and clipped with sharp falls, which sounds angry.",
        "Loud, rapid speech with a rough edge sounds furious.",
        "A forceful, harsh and loud tone suggests anger.",
    ),
    "surprise": (
        "The pitch leaps upward on each burst of speech, which sounds surprised.",
        "Sudden high, rising exclamations sound astonished.",
        "A sharply rising, loud voice suggests surprise.",
    ),
    "disgust": (
        "The voice is low and drawn out with a rough, falling tone, which sounds disgusted.",
        "Slow, grating speech that falls in pitch sounds repulsed.",
        "A low, creaky, dropping tone suggests disgust.",
    ),
    "fear": (
        "The voice trembles, high and fast with a breathy edge, which sounds afraid.",
        "Quick, shaky, breathy speech at a raised pitch sounds fearful.",
        "A trembling, hurried high voice suggests fear.",
    ),
}

AUDIO_FAINT: dict[str, tuple[str, ...]] = {
    "happy": ("The voice lifts slightly now and then, a hint of happiness.",),
    "sad": ("The voice drops a little and slows slightly, a hint of sadness.",),
    "angry": ("The voice gets a little louder and sharper, a trace of anger.",),
    "surprise": ("The pitch rises a little at times, a hint of surprise.",),
    "disgust": ("The tone falls slightly and roughens, a trace of disgust.",),
    "fear": ("The voice wavers slightly, a hint of fear.",),
}

# The conflict regime's descriptions: what the face or voice does and the emotion it suggests, with no word of
# strength ("broad", "clearly", "a hint of", "slightly"), of duration ("briefly", "throughout") or of verdict.
VISUAL_PLAIN: dict[str, tuple[str, ...]] = {
    "happy": (
        "The cheeks lift and the lip corners pull up, which looks happy.",
        "The lip corners rise and the cheeks bunch up, a joyful face.",
        "The mouth curves up under lifted cheeks, suggesting happiness.",
    ),
    "sad": (
        "The inner brows rise and the lip corners turn down, which looks sad.",
        "The brows slant up in the middle and the mouth turns down, a sorrowful face.",
        "Raised inner brows and downturned lip corners suggest sadness.",
    ),
    "neutral": (
        "The face rests with level brows and a closed mouth, which looks neutral.",
        "The brows and mouth are at rest, a neutral face.",
        "No facial muscle is at work; the expression is neutral.",
    ),
    "angry": (
        "The brows pull down and together and the lips press tight, which looks angry.",
        "Lowered, knitted brows, tight eyelids and pressed lips show anger.",
        "The brows draw down over narrowed eyes and thin lips, suggesting anger.",
    ),
    "surprise": (
        "The brows go up, the eyes open and the mouth falls open, which looks surprised.",
        "Lifted brows, wide-open eyes and an open mouth show surprise.",
        "The eyes open wide under high brows and the mouth falls open, an astonished face.",
    ),
    "disgust": (
        "The upper lip curls up and the skin around the nose folds, which looks disgusted.",
        "A folded nose and a raised upper lip show disgust.",
        "The skin around the nose bunches up with the upper lip pulled up, suggesting disgust.",
    ),
    "fear": (
        "The brows rise and draw together and the lips stretch sideways, which looks fearful.",
        "Staring eyes under lifted, drawn brows and a stretched mouth show fear.",
        "Lifted, drawn brows, staring eyes and lips pulled back suggest the person is scared.",
    ),
}
AUDIO_PLAIN: dict[str, tuple[str, ...]] = {
    "happy": (
        "The voice is high with a bouncy, quick rhythm, which sounds happy.",
        "A bright, rising and energetic tone sounds cheerful.",
        "The speech is quick and melodic with a wide pitch range, suggesting happiness.",
    ),
    "sad": (
        "The voice is low, quiet and slow with long pauses, which sounds sad.",
        "A soft, breathy, falling tone with slow speech sounds sorrowful.",
        "Slow, low and subdued speech suggests sadness.",
    ),
    "neutral": (
        "The voice is even in pitch and pace, which sounds neutral.",
        "A moderate tone with a regular rhythm sounds neutral.",
        "The speech keeps a level pitch and an ordinary pace, a neutral voice.",
    ),
    "angry": (
        "The voice is loud and clipped with falling ends, which sounds angry.",
        "Loud, rapid speech with a rough edge sounds furious.",
        "A loud, rough and clipped tone suggests anger.",
    ),
    "surprise": (
        "The pitch leaps upward on each burst of speech, which sounds surprised.",
        "High, rising exclamations sound astonished.",
        "A rising, loud voice with upward leaps suggests surprise.",
    ),
    "disgust": (
        "The voice is low and drawn out with a rough, falling tone, which sounds disgusted.",
        "Slow, grating speech that falls in pitch sounds repulsed.",
        "A low, creaky, dropping tone suggests disgust.",
    ),
    "fear": (
        "The voice wavers, high and fast with a breathy edge, which sounds afraid.",
        "Quick, wavering, breathy speech at a raised pitch sounds fearful.",
        "A wavering, hurried high voice suggests fear.",
    ),
}

# Words for the label in the think sentence: adjectives after "feels"/"is", nouns after "point to".
ADJECTIVES: dict[str, tuple[str, ...]] = {
    "happy": ("happy", "joyful"),
    "sad": ("sad", "sorrowful"),
    "neutral": ("neutral", "calm"),
    "angry": ("angry", "furious"),
    "surprise": ("surprised", "astonished"),
    "disgust": ("disgusted",),
    "fear": ("afraid", "fearful", "scared"),
}
NOUNS: dict[str, str] = {
    "happy": "happiness",
    "sad": "sadness",
    "neutral": "neutrality",
    "angry": "anger",
    "surprise": "surprise",
    "disgust": "disgust",
    "fear": "fear",
}
THINK: dict[str, tuple[str, ...]] = {
    "audio": (
        "The voice carries the clearest cue, so the person feels {adjective}.",
        "The vocal cues outweigh the face, so the emotion is {noun}.",
        "Going by how the voice sounds, the person is {adjective}.",
    ),
    "visual": (
        "The face carries the clearest cue, so the person feels {adjective}.",
        "The facial expression outweighs the voice, so the emotion is {noun}.",
        "Going by the facial expression, the person is {adjective}.",
    ),
    "both": (
        "Face and voice agree, so the person feels {adjective}.",
        "Both the expression and the voice point to {noun}.",
    ),
}


def _pick(options: tuple[str, ...], rng: np.random.Generator, phrasings: int | None = None) -> str:
    """One of the first ``phrasings`` options (all when None), drawn with ``rng``."""
    pool = options if phrasings is None else options[: max(1, phrasings)]
    return pool[int(rng.integers(len(pool)))]


def describe(
    modality: str,
    emotion: str,
    strength: str,
    rng: np.random.Generator,
    phrasings: int | None = None,
    regime: str = "faint",
) -> str:
    """One sentence about the ``modality`` ("visual"/"audio") cue showing ``emotion`` (``phrasings``: how many of
    the template variants to draw from; None = all).

    ``strength`` is "strong" (a full display), "faint" (a weak display of a non-neutral emotion) or "neutral"
    (no emotion shown: described as calm/neutral). In the ``conflict`` regime the wording never depends on it
    (:data:`VISUAL_PLAIN`, :data:`AUDIO_PLAIN`).
    """
    if regime == "conflict":
        plain = VISUAL_PLAIN if modality == "visual" else AUDIO_PLAIN
        return _pick(plain["neutral" if strength == "neutral" else emotion], rng, phrasings)
    strong, faint = (VISUAL_STRONG, VISUAL_FAINT) if modality == "visual" else (AUDIO_STRONG, AUDIO_FAINT)
    if strength == "neutral" or emotion == "neutral":
        return _pick(strong["neutral"], rng, phrasings)
    return _pick(strong[emotion] if strength == "strong" else faint[emotion], rng, phrasings)


def think(label: str, dominant: str, rng: np.random.Generator, phrasings: int | None = None) -> str:
    """The reasoning sentence: the label emotion and the modality that carries it."""
    template = _pick(THINK[dominant], rng, phrasings)
    return template.format(adjective=_pick(ADJECTIVES[label], rng, phrasings), noun=NOUNS[label])


def vocabulary_text() -> list[str]:
    """Every sentence the generator can write (think templates filled for every label): the tiny tokenizer's
    training text, so the words of the corpus become whole tokens.

    The conflict regime's plain wordings are left out on purpose: they reuse the words of the strong ones, and
    adding them would change the tokenizer (and so every run) of the default regime.
    """
    lines = [
        text
        for table in (VISUAL_STRONG, VISUAL_FAINT, AUDIO_STRONG, AUDIO_FAINT)
        for group in table.values()
        for text in group
    ]
    for templates in THINK.values():
        for label, adjectives in ADJECTIVES.items():
            for template in templates:
                lines.extend(template.format(adjective=adjective, noun=NOUNS[label]) for adjective in adjectives)
    return lines
