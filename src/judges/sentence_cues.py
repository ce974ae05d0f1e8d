"""Hand-written cue phrases per emotion concept, the raw material of :mod:`src.judges.sentences`.

Each list is split in two: the first tuple feeds the train sentences, the second only the held-out test
sentences. ``{pos}`` is replaced by the subject's possessive pronoun. Worry is folded into ``anxiety`` (EMER's
``worried`` is the same concept in :mod:`src.data.labels`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cues:
    """(train, test) phrase lists of one concept."""

    visual: tuple[tuple[str, ...], tuple[str, ...]]  # verb phrases: "{subject} smiles broadly"
    audio: tuple[tuple[str, ...], tuple[str, ...]]  # verb phrases: "the voice is bright and lively"
    adjectives: tuple[tuple[str, ...], tuple[str, ...]]
    nouns: tuple[tuple[str, ...], tuple[str, ...]]


CUES: dict[str, Cues] = {
    "happy": Cues(
        visual=(
            (
                "smiles broadly",
                "breaks into a wide grin",
                "has crinkled eyes and raised cheeks",
                "laughs with {pos} head thrown back",
                "beams at the person opposite",
                "claps {pos} hands cheerfully",
                "shows a bright, open smile",
                "has the corners of {pos} mouth turned up",
                "nods along with a grin",
                "giggles and covers {pos} mouth",
            ),
            (
                "grins from ear to ear",
                "has sparkling, smiling eyes",
                "chuckles and leans back comfortably",
                "throws {pos} arms up in celebration",
            ),
        ),
        audio=(
            (
                "is bright and lively",
                "rings with laughter",
                "sounds cheerful and upbeat",
                "rises in a playful, sing-song way",
                "carries warm chuckles",
                "is light and bubbly",
            ),
            ("bounces with energy and laughter", "sounds warm and amused", "is full of giggles"),
        ),
        adjectives=(("happy", "joyful", "delighted", "cheerful", "pleased"), ("elated", "glad", "overjoyed")),
        nouns=(("happiness", "joy"), ("delight",)),
    ),
    "sad": Cues(
        visual=(
            (
                "has tears rolling down {pos} cheeks",
                "looks down with drooping shoulders",
                "wipes {pos} eyes",
                "has a trembling lower lip and downcast eyes",
                "sobs quietly",
                "stares at the floor with a heavy expression",
                "has the inner corners of {pos} eyebrows raised and lips pulled down",
                "hunches over and hides {pos} face",
                "has red, teary eyes",
                "sits motionless with a sorrowful look",
            ),
            (
                "cries silently",
                "lets {pos} head hang low",
                "has a mournful, distant gaze",
                "covers {pos} face and weeps",
            ),
        ),
        audio=(
            (
                "is low and slow, breaking into sobs",
                "cracks with sorrow",
                "sounds heavy and mournful",
                "fades into a long sigh",
                "is quiet and choked with tears",
                "trails off weakly",
            ),
            ("is muffled by crying", "drops to a sorrowful whisper", "wavers as if holding back tears"),
        ),
        adjectives=(("sad", "unhappy", "sorrowful", "upset", "heartbroken"), ("miserable", "depressed", "gloomy")),
        nouns=(("sadness", "sorrow"), ("grief",)),
    ),
    "neutral": Cues(
        visual=(
            (
                "has a relaxed, expressionless face",
                "looks straight ahead with a blank expression",
                "sits still with relaxed brows",
                "shows no particular expression",
                "keeps a composed, steady face",
                "glances around casually",
                "has an even, neutral gaze",
                "listens without visible reaction",
                "nods politely with a flat expression",
                "stands calmly with {pos} arms at {pos} sides",
            ),
            (
                "keeps a straight, unreadable face",
                "looks on impassively",
                "has a calm, ordinary look",
                "watches quietly without expression",
            ),
        ),
        audio=(
            (
                "is even and steady",
                "stays flat and matter-of-fact",
                "is calm and conversational",
                "keeps a monotone pace",
                "sounds ordinary and unhurried",
                "stays at a normal volume without emphasis",
            ),
            ("is level and plain", "sounds relaxed and factual", "is measured and emotionless"),
        ),
        adjectives=(
            ("neutral", "calm", "composed", "indifferent", "unemotional"),
            ("impassive", "emotionless", "unmoved"),
        ),
        nouns=(("neutrality", "calm"), ("composure",)),
    ),
    "angry": Cues(
        visual=(
            (
                "glares with furrowed brows",
                "clenches {pos} jaw",
                "scowls at the other person",
                "points an accusing finger",
                "slams {pos} hand on the table",
                "has narrowed eyes and tight lips",
                "bares {pos} teeth",
                "frowns deeply with lowered brows",
                "shakes {pos} fist",
                "leans forward aggressively",
            ),
            (
                "stares fiercely with flared nostrils",
                "has a red face and pressed lips",
                "jabs {pos} finger in the air",
                "storms across the room",
            ),
        ),
        audio=(
            (
                "is loud and harsh",
                "rises into a shout",
                "sounds sharp and hostile",
                "snaps with irritation",
                "is tense and forceful",
                "yells the words",
            ),
            ("booms with rage", "bites out each word", "roars at the listener"),
        ),
        adjectives=(("angry", "furious", "irritated", "annoyed", "mad"), ("enraged", "livid", "outraged")),
        nouns=(("anger", "rage"), ("fury",)),
    ),
    "surprise": Cues(
        visual=(
            (
                "raises {pos} eyebrows high",
                "opens {pos} eyes wide",
                "drops {pos} jaw",
                "gasps with an open mouth",
                "freezes mid-motion and stares",
                "pulls {pos} head back in astonishment",
                "has wide eyes and raised brows",
                "covers {pos} open mouth with a hand",
                "blinks rapidly in disbelief",
                "jerks upright at the news",
            ),
            (
                "stares with mouth agape",
                "does a double take",
                "has eyebrows shooting up",
                "leans in with widened eyes",
            ),
        ),
        audio=(
            (
                "jumps up in pitch with a sudden gasp",
                "exclaims 'oh!' abruptly",
                "rises sharply in disbelief",
                "bursts out with a startled cry",
                "is sudden and high-pitched",
                "asks 'really?' incredulously",
            ),
            (
                "breaks into an astonished 'what?'",
                "catches with a sharp intake of breath",
                "shoots up in a startled exclamation",
            ),
        ),
        adjectives=(
            ("surprised", "astonished", "amazed", "shocked", "startled"),
            ("stunned", "astounded", "taken aback"),
        ),
        nouns=(("surprise", "astonishment"), ("amazement",)),
    ),
    "disgust": Cues(
        visual=(
            (
                "wrinkles {pos} nose",
                "curls {pos} upper lip",
                "turns {pos} face away in revulsion",
                "pushes the plate away",
                "grimaces and pulls back",
                "narrows {pos} eyes and raises {pos} upper lip",
                "holds {pos} nose",
                "sticks out {pos} tongue in distaste",
                "looks at the object with a sour face",
                "recoils with a twisted mouth",
            ),
            (
                "scrunches {pos} face in distaste",
                "gags and turns away",
                "looks queasy and pulls a face",
                "shudders while looking at the food",
            ),
        ),
        audio=(
            (
                "says 'ugh' with distaste",
                "sounds revolted",
                "makes a gagging sound",
                "drips with revulsion",
                "lets out a disgusted 'eww'",
                "is thick with distaste",
            ),
            ("groans 'yuck'", "sounds nauseated", "spits out the words in revulsion"),
        ),
        adjectives=(
            ("disgusted", "revolted", "repulsed", "sickened", "grossed out"),
            ("nauseated", "queasy", "repelled"),
        ),
        nouns=(("disgust", "revulsion"), ("distaste",)),
    ),
    "fear": Cues(
        visual=(
            (
                "backs away with wide eyes",
                "trembles and hugs {pos} body",
                "has stretched lips and raised brows",
                "cowers in the corner",
                "flinches and shields {pos} face",
                "freezes with terror in {pos} eyes",
                "shakes and grips the wall",
                "has a pale face and frozen posture",
                "hides behind the door",
                "stares at the threat, frozen",
            ),
            (
                "shrinks back in terror",
                "clutches {pos} chest in panic",
                "has a face frozen in horror",
                "huddles and shivers",
            ),
        ),
        audio=(
            (
                "trembles and breaks",
                "is shaky and breathless",
                "rises to a terrified scream",
                "whispers in panic",
                "quivers with dread",
                "gasps for air in panic",
            ),
            ("shrieks in terror", "stammers out a plea for help", "is high and trembling with fright"),
        ),
        adjectives=(
            ("afraid", "scared", "frightened", "terrified", "fearful"),
            ("petrified", "horrified", "panicked"),
        ),
        nouns=(("fear", "terror"), ("dread",)),
    ),
    "contempt": Cues(
        visual=(
            (
                "smirks with one corner of {pos} mouth",
                "rolls {pos} eyes",
                "looks down {pos} nose at the other person",
                "sneers dismissively",
                "tilts {pos} head back with a scornful look",
                "gives a one-sided, mocking smile",
                "turns away with a dismissive wave",
                "raises one eyebrow disdainfully",
                "crosses {pos} arms and scoffs",
                "eyes the other person with disdain",
            ),
            (
                "curls one lip in scorn",
                "gives a condescending half-smile",
                "snorts and looks away derisively",
                "looks the other person up and down",
            ),
        ),
        audio=(
            (
                "drips with sarcasm",
                "is mocking and condescending",
                "scoffs at the question",
                "sounds dismissive and superior",
                "lets out a derisive snort",
                "is cold and belittling",
            ),
            ("sneers each word", "is laced with scorn", "mocks the other speaker"),
        ),
        adjectives=(
            ("contemptuous", "scornful", "disdainful", "dismissive", "condescending"),
            ("derisive", "sneering", "haughty"),
        ),
        nouns=(("contempt", "scorn"), ("disdain",)),
    ),
    "anxiety": Cues(
        visual=(
            (
                "fidgets with {pos} hands",
                "bites {pos} lip",
                "glances around restlessly",
                "wrings {pos} hands",
                "shifts {pos} weight from foot to foot",
                "avoids eye contact",
                "has a tense face and furrowed brow",
                "taps {pos} foot repeatedly",
                "checks {pos} phone over and over",
                "rubs {pos} neck uneasily",
            ),
            (
                "picks at {pos} fingernails",
                "paces back and forth",
                "keeps adjusting {pos} collar",
                "has darting eyes and tight shoulders",
            ),
        ),
        audio=(
            (
                "stammers and hesitates",
                "is rushed and uneasy",
                "sounds tense and worried",
                "keeps trailing off with nervous pauses",
                "is strained and jittery",
                "asks the same question again and again",
            ),
            ("stutters over the words", "breaks into a nervous, shaky laugh", "speeds up with worry"),
        ),
        adjectives=(("anxious", "nervous", "worried", "uneasy", "tense"), ("apprehensive", "jittery", "on edge")),
        nouns=(("anxiety", "worry"), ("nervousness",)),
    ),
    "helplessness": Cues(
        visual=(
            (
                "slumps with {pos} arms hanging limp",
                "throws up {pos} hands in defeat",
                "stares blankly, giving up",
                "sinks to the floor",
                "holds {pos} head in {pos} hands",
                "looks around with a lost expression",
                "lets {pos} shoulders drop in resignation",
                "shakes {pos} head with empty eyes",
                "sits motionless, overwhelmed",
                "spreads {pos} palms as if nothing can be done",
            ),
            (
                "collapses into a chair, defeated",
                "stares at the ceiling in resignation",
                "gives a limp shrug",
                "buries {pos} face, at a loss",
            ),
        ),
        audio=(
            (
                "pleads 'what can I do?'",
                "is weak and resigned",
                "trails off in defeat",
                "sounds hopeless and exhausted",
                "repeats 'I can't' quietly",
                "is flat with resignation",
            ),
            (
                "begs for help with no strength left",
                "murmurs that nothing will change",
                "sounds powerless and drained",
            ),
        ),
        adjectives=(
            ("helpless", "powerless", "hopeless", "defeated", "resigned"),
            ("desperate", "overwhelmed", "lost"),
        ),
        nouns=(("helplessness", "despair"), ("powerlessness",)),
    ),
    "disappointment": Cues(
        visual=(
            (
                "lets {pos} smile fade",
                "looks down and shakes {pos} head",
                "sighs and lowers {pos} gaze",
                "has a deflated expression",
                "purses {pos} lips and looks away",
                "drops the letter with a downcast look",
                "slowly closes the gift box",
                "stares at the result with a sinking face",
                "exhales and slumps slightly",
                "gives a weak, forced smile",
            ),
            (
                "stares at the floor after the result",
                "lowers the trophy with a sigh",
                "has drooping eyebrows after the news",
                "frowns at the empty box",
            ),
        ),
        audio=(
            (
                "drops with a sigh of 'oh, well'",
                "sounds let down",
                "says 'I expected more' quietly",
                "is flat and deflated",
                "trails off with a disappointed sigh",
                "mutters 'never mind'",
            ),
            ("sinks after the announcement", "murmurs 'that's it?'", "sounds dismayed"),
        ),
        adjectives=(
            ("disappointed", "let down", "dismayed", "disheartened", "crestfallen"),
            ("deflated", "discouraged", "disillusioned"),
        ),
        nouns=(("disappointment", "letdown"), ("dismay",)),
    ),
}

# Free-form sentences in none of the templates: a check on wording the templates never produce.
HANDWRITTEN: dict[str, tuple[str, ...]] = {
    "happy": (
        "Her whole face lights up when she hears the news.",
        "He can't stop laughing at his friend's joke.",
        "The girl hugs her mother and spins around with a big grin.",
        "His tone is warm and he chuckles between sentences, clearly enjoying himself.",
        "Everyone at the table is smiling and the man raises his glass happily.",
        "The lilt in her voice shows she is in a great mood.",
    ),
    "sad": (
        "She turns away so nobody sees her crying.",
        "His shoulders shake as he reads the letter, eyes wet.",
        "The old woman sits alone by the window looking lost in sorrow.",
        "Her words come out slowly, heavy and broken by sniffles.",
        "He stares at the photograph and his lip quivers as tears fall.",
        "The child whimpers quietly after losing her toy.",
    ),
    "neutral": (
        "The man reads the instructions aloud in an ordinary tone.",
        "She answers the question plainly without any visible feeling.",
        "His face stays still while he describes the weather.",
        "The presenter speaks at a steady pace with no emphasis.",
        "The woman sits at the desk and types, her expression unchanged.",
        "He explains the route in a flat, businesslike manner.",
    ),
    "angry": (
        "He kicks the chair and shouts that he has had enough.",
        "Her eyes narrow and she spits the words through gritted teeth.",
        "The man's face turns red as he pounds the counter.",
        "She storms out and slams the door behind her.",
        "His voice thunders across the room, demanding an answer.",
        "The driver honks repeatedly and yells at the car in front.",
    ),
    "surprise": (
        "Her mouth falls open when the lights come on and everyone jumps out.",
        "He nearly drops his cup, eyes popping at the sight.",
        "She lets out a little 'oh!' and steps back, stunned by the gift.",
        "The man blinks twice, unable to believe what he just heard.",
        "His eyebrows shoot up and he exclaims that he never expected this.",
        "The girl squeals in sudden astonishment at the magic trick.",
    ),
    "disgust": (
        "She pinches her nose and pushes the spoiled milk away.",
        "He spits the food out and makes a face.",
        "The woman shudders at the slimy thing on the floor.",
        "His lip curls as he picks up the dirty sock with two fingers.",
        "She gags at the smell coming from the bin.",
        "He says 'gross' and turns away from the rotten fruit.",
    ),
    "fear": (
        "She freezes as the footsteps come closer in the dark.",
        "He screams and runs from the growling dog.",
        "Her hands shake so badly she drops the keys.",
        "The boy hides under the blanket, breathing fast.",
        "His voice cracks as he begs the stranger not to hurt him.",
        "She clings to the railing, white-faced, staring at the drop below.",
    ),
    "contempt": (
        "He smirks and says the plan is beneath him.",
        "She looks him up and down and lets out a mocking laugh.",
        "The man waves the idea away as if it were ridiculous.",
        "Her reply is icy and full of sarcasm.",
        "He snorts and calls the others amateurs.",
        "She raises an eyebrow and scoffs at his excuse.",
    ),
    "anxiety": (
        "He keeps checking the clock and tapping his pen before the interview.",
        "She chews her nails while waiting for the test results.",
        "His words tumble out too fast and he keeps losing his place.",
        "The woman paces the hallway, glancing at her phone every few seconds.",
        "She asks again whether the door is locked, her voice tight.",
        "He wipes his sweaty palms on his trousers and avoids looking up.",
    ),
    "helplessness": (
        "She drops into the chair and says there is nothing left to try.",
        "He spreads his arms and admits he cannot fix it.",
        "The man stares at the flood water, unable to do anything.",
        "Her voice is faint as she asks who could possibly help now.",
        "He sits on the curb with his head in his hands, out of options.",
        "She keeps repeating that it is no use.",
    ),
    "disappointment": (
        "His face falls when he sees his name is not on the list.",
        "She opens the envelope, reads it, and quietly puts it down with a sigh.",
        "He had hoped for more and his voice drops as he says so.",
        "The girl's excitement drains away when the trip is cancelled.",
        "She mutters that it was not what she had expected at all.",
        "He forces a smile after losing the match, but his eyes say otherwise.",
    ),
}
