"""The emotion lexicon of the keyword judge: emotion words, behavioural cues, and negation.

Three tiers of evidence, each a regular-expression fragment matched on whole words of lower-cased text:

- emotion words (weight :data:`EMOTION_WEIGHT`): every surface form :func:`src.data.labels.emotion_forms` knows
  for the concept (so the judge and the answer normalisation agree), plus the extra forms listed here;
- cues (weight :data:`CUE_WEIGHT`): behaviour that explanations cite as evidence ("smiles", "trembling voice");
- shared cues: behaviour that points to more than one emotion ("frown" is angry or sad); the weight is split
  with the more typical reading first, so a lone frown reads as angry and "a frown and tears" as sad.

Negation: a hit preceded, within :data:`NEGATION_WINDOW` words of the same clause, by a negator ("no", "not",
"without", "doesn't", ...) is dropped, so "there is no sign of anger" expresses no anger. The judge does not
invert a negated emotion ("not happy" is not read as sad).
"""

from __future__ import annotations

EMOTION_WEIGHT = 2.0
CUE_WEIGHT = 1.0
NEGATION_WINDOW = 4
"""How many words before a hit are searched for a negator (enough for "no trace of a smile")."""

NEGATORS: frozenset[str] = frozenset(
    {"no", "not", "never", "without", "nor", "neither", "hardly", "barely", "lack", "lacks", "lacking", "devoid"}
)
# Words and punctuation that end the scope of a negation: "not angry, but sad" keeps the sadness.
CLAUSE_BREAK = r"[,;:()]|\b(?:but|yet|although|though|however|while|whereas|instead|then)\b"

# Surface forms from labels.py that describe a scene more than they name an emotion: read as cues, or ignored.
FORMS_AS_CUES: frozenset[str] = frozenset({"calm"})
FORMS_IGNORED: frozenset[str] = frozenset({"none"})

# Extra ways of naming each emotion outright (beyond labels.py's forms).
EMOTION_WORDS: dict[str, tuple[str, ...]] = {
    "happy": (
        r"happily",
        r"joy(?:ous|ously|fully)?",
        r"elated",
        r"thrilled",
        r"amused",
        r"overjoyed",
        r"jubilant",
        r"gleeful(?:ly)?",
        r"ecstatic",
        r"in high spirits",
        r"delight",
    ),
    "sad": (r"sadly", r"sorrow(?:fully)?", r"heartbroken", r"miserable", r"mourn(?:s|ed|ing|ful|fully)?"),
    "neutral": (r"unemotional", r"emotionless", r"expressionless", r"impassive(?:ly)?"),
    "angry": (r"angrily", r"furious(?:ly)?", r"enraged", r"livid", r"outrage(?:d)?", r"irate", r"infuriated"),
    "surprise": (r"surpris(?:e|es|ed|ing|ingly)", r"astonish(?:ed|ing|ment)", r"amaz(?:ed|ing|ement)", r"stunned"),
    "disgust": (r"disgust(?:ed|ing|ingly)?", r"revolt(?:ed|ing)", r"repuls(?:ed|ive|ion)", r"sicken(?:ed|ing)"),
    "fear": (r"terrif(?:ied|ying)", r"horrif(?:ied|ying)", r"petrified", r"panic(?:s|ked|king|ky)?", r"dread"),
    "contempt": (r"contemptuous(?:ly)?", r"scornful(?:ly)?", r"disdainful(?:ly)?"),
    "anxiety": (r"anxious(?:ly)?", r"nervous(?:ly)?", r"apprehensive(?:ly)?", r"jittery", r"uneasy", r"unease"),
    "worried": (r"worr(?:y|ies|ied|ying|iedly)", r"troubled"),
    "helplessness": (r"helpless(?:ly)?", r"hopeless(?:ly|ness)?", r"despair(?:ing)?"),
    "disappointment": (r"disappoint(?:ed|ing|ingly|ment)?", r"crestfallen", r"dismay(?:ed)?"),
}

# Behaviour an explanation cites as evidence of one emotion.
CUES: dict[str, tuple[str, ...]] = {
    "happy": (
        r"cheerfully",
        r"corners of (?:his |her |their |the )?mouth (?:turn|turned|turning|lift|lifted) up",
        r"crinkl(?:e|es|ed|ing)",
        r"raised cheeks",
        r"bubbly",
        r"clap(?:s|ped|ping)?",
        r"smil(?:e|es|ed|ing)",
        r"grin(?:s|ned|ning)?",
        r"laugh(?:s|ed|ing|ter)?",
        r"giggl(?:e|es|ed|ing)",
        r"chuckl(?:e|es|ed|ing)",
        r"beam(?:s|ed|ing)?",
        r"cheer(?:s|ed|ing)?",
        r"upbeat",
        r"playful(?:ly)?",
        r"light-?hearted",
        r"lively",
    ),
    "sad": (
        r"wip(?:e|es|ed|ing) (?:his |her |their )?eyes",
        r"droop(?:s|ed|ing|y)?",
        r"hunch(?:es|ed|ing)?",
        r"(?:lips|mouth) pulled down",
        r"cr(?:y|ies|ied|ying)",
        r"tears?",
        r"tearful(?:ly)?",
        r"teary(?:-eyed)?",
        r"sob(?:s|bed|bing)?",
        r"weep(?:s|ing)?",
        r"wept",
        r"downcast",
        r"gloom(?:y|ily)?",
        r"melancholy",
        r"somber",
        r"sombre",
        r"dejected(?:ly)?",
        r"forlorn",
        r"choked up",
    ),
    "neutral": (
        r"no particular expression",
        r"without (?:any |visible )?(?:reaction|emotion|expression)",
        r"steady",
        r"unhurried",
        r"casual(?:ly)?",
        r"calmly",
        r"normal volume",
        r"composed",
        r"blank (?:expression|face|stare|look)",
        r"flat (?:tone|voice|delivery)",
        r"monoton(?:e|ous)",
        r"even (?:tone|voice)",
        r"steady (?:tone|voice)",
        r"matter-of-fact(?:ly)?",
        r"poker face",
        r"relaxed",
    ),
    "angry": (
        r"irritation",
        r"annoyance",
        r"forceful(?:ly)?",
        r"scowl(?:s|ed|ing)?",
        r"glar(?:e|es|ed|ing)",
        r"shout(?:s|ed|ing)?",
        r"yell(?:s|ed|ing)?",
        r"clench(?:es|ed|ing)?",
        r"harsh(?:ly)?",
        r"hostil(?:e|ity)",
        r"fum(?:es|ing)",
        r"seething",
        r"bark(?:s|ed|ing)",
        r"stern(?:ly)?",
        r"aggressive(?:ly)?",
        r"frustrat(?:ed|ion|ing)",
        r"gritt(?:ed|ing)",
        r"slam(?:s|med|ming)?",
    ),
    "surprise": (
        r"incredulous(?:ly)?",
        r"sudden(?:ly)?",
        r"gasp(?:s|ed|ing)?",
        r"jaw drop(?:s|ped|ping)?",
        r"open-mouthed",
        r"agape",
        r"unexpected(?:ly)?",
        r"in disbelief",
        r"exclaim(?:s|ed|ing)?",
        r"raised (?:eye)?brows",
        r"(?:eye)?brows (?:shoot|shot) up",
        r"wow",
    ),
    "disgust": (
        r"gag(?:s|ged|ging)?",
        r"(?:wrinkl|scrunch)(?:es|ed|ing) (?:his |her |their |the )?nose",
        r"nose (?:wrinkl|scrunch)(?:es|ed|ing)",
        r"grimac(?:e|es|ed|ing)",
        r"gross",
        r"nause(?:a|ated|ating|ous)",
        r"yuck",
        r"eww*",
        r"distaste",
        r"vile",
    ),
    "fear": (
        r"shak(?:e|es|ing|y|ily)",
        r"shook",
        r"shiver(?:s|ed|ing)?",
        r"quiver(?:s|ed|ing)?",
        r"terror",
        r"horror",
        r"flinch(?:es|ed|ing)?",
        r"cower(?:s|ed|ing)?",
        r"back(?:s|ed|ing)? away",
        r"alarm(?:ed)?",
        r"threatened",
    ),
    "contempt": (
        r"belittl(?:e|es|ed|ing)",
        r"sneer(?:s|ed|ing)?",
        r"smirk(?:s|ed|ing)?",
        r"roll(?:s|ed|ing)? (?:his |her |their )?eyes",
        r"eye-?roll(?:s|ing)?",
        r"scoff(?:s|ed|ing)?",
        r"mock(?:s|ed|ing|ingly)?",
        r"sarcas(?:m|tic|tically)",
        r"condescend(?:s|ed|ing|ingly)?",
        r"dismissive(?:ly)?",
        r"derisi(?:on|ve|vely)",
    ),
    "anxiety": (
        r"fidget(?:s|ed|ing|y)?",
        r"restless(?:ly|ness)?",
        r"tense(?:ly)?",
        r"tension",
        r"stammer(?:s|ed|ing)?",
        r"stutter(?:s|ed|ing)?",
        r"hesita(?:nt|ntly|tes|ted|ting|tion)",
        r"bit(?:es|ing)? (?:his |her |their )?(?:lip|lips|nails)",
        r"on edge",
        r"avoid(?:s|ed|ing)? eye contact",
        r"dart(?:s|ed|ing)",
        r"sweat(?:s|ed|ing|y)?",
    ),
    "worried": (r"concern",),
    "helplessness": (
        r"defeat",
        r"what can i do",
        r"powerless(?:ly|ness)?",
        r"defeated",
        r"resign(?:ed|ation)",
        r"g(?:ive|ives|ave|iving) up",
        r"at a loss",
        r"overwhelmed",
        r"desperat(?:e|ely|ion)",
    ),
    "disappointment": (
        r"letdown",
        r"expected more",
        r"never mind",
        r"oh,? well",
        r"let down",
        r"deflated",
        r"regret(?:s|ted|ting|ful|fully)?",
    ),
}

# Behaviour with two readings: {cue: {concept: weight}}, the more typical reading weighted higher.
SHARED_CUES: dict[str, dict[str, float]] = {
    r"frown(?:s|ed|ing)?": {"angry": 0.6, "sad": 0.4},
    r"furrow(?:s|ed|ing)?": {"angry": 0.6, "worried": 0.4},
    r"scream(?:s|ed|ing)?": {"fear": 0.6, "angry": 0.4},
    r"widen(?:s|ed|ing)?|wide-eyed|wide eyes": {"surprise": 0.6, "fear": 0.4},
    r"recoil(?:s|ed|ing)?": {"fear": 0.6, "disgust": 0.4},
    r"curl(?:s|ed|ing)? (?:his |her |their |the )?(?:upper )?lip|lip curl(?:s|ed|ing)?": {
        "disgust": 0.6,
        "contempt": 0.4,
    },
    r"trembl(?:e|es|ed|ing|y)": {"fear": 0.6, "anxiety": 0.4},
    r"sigh(?:s|ed|ing)?": {"sad": 0.6, "disappointment": 0.4},
    r"slump(?:s|ed|ing)?": {"sad": 0.6, "helplessness": 0.4},
    r"rais(?:es|ed|ing) (?:his |her |their )?voice": {"angry": 0.6, "fear": 0.4},
}
