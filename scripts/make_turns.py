"""The turn set: callers' turns, spoken and degraded many ways, for testing when a bot should answer.

    python scripts/make_turns.py [--out .cache/turns]

Each turn has a shape: a question; a request without a question mark; a statement; two
sentences with a short gap between them; a sentence cut off mid-way at a word boundary, a long
pause, then the rest of the same utterance (the voice keeps its mid-sentence tune, as a person
pausing to think does); or a preamble, a long pause and the question. A bot should answer every
turn, but only once the caller has finished: never in a gap between a turn's pieces.

The turns come in three parts, no two with a sentence in common: `tune`, to tune the turn policy
on; `dev`, to check it on speech it was not tuned on, in voices it never heard (festival's, and
flite's rms and slt); and `held-out`, kept apart until the policy is settled, to check it once
more, in voices or at speeds that neither of the others has (espeak-ng's en-us+m2, +m6 and +m8
and en-gb+f4, flite's kal16). Most are clean; the rest have babble, music or fan noise under
them at 10 or 15 dB SNR, a reverberant room, a telephone line or a distant microphone
(`scripts/speech.py`).

Writes one 16 kHz mono WAV per turn and `turns.json`: each turn's description, its text, and
where in its file the speech ends and each inner gap lies (measured on the clean speech, before
any degradation), so that a bot's audio can be told apart as a cut-in or a late answer.
Deterministic: the same files every run; a file already there is kept if made from the same
description.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import wave
import zlib
from dataclasses import asdict, dataclass, field
from difflib import SequenceMatcher
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts import speech  # noqa: E402
from scripts.speech import ENGINES, RATE, Voice, _trim  # noqa: E402

OUT = ROOT / ".cache" / "turns"
PAUSE_SECS = 0.75  # the mid-sentence pause a listener must wait through
LEAD_SECS, TAIL_SECS = 0.3, 0.5
# Babble, music and a fan are there before the caller speaks (in a call, during the greeting)
# and go on after their words, while the bot decides and answers.
NOISY_LEAD_SECS, NOISY_TAIL_SECS = 2.0, 2.5
PEAK = 0.5  # -6 dBFS
SHAPES = ("question", "request", "statement", "two-sentence", "unfinished", "opening")
GAP_SECS = {"two-sentence": (0.25, 0.55), "unfinished": (0.6, 0.9), "opening": (0.6, 0.9)}
NOISES = ("babble", "music", "fan")
MEASURED = ("speech_end_secs", "gaps_secs")


@dataclass(frozen=True)
class TurnSpec:
    name: str
    part: str  # tune | dev | held-out
    shape: str  # one of SHAPES
    pieces: tuple[str, ...]  # spoken in order, `gaps` apart
    gaps: tuple[float, ...]  # seconds of silence between consecutive pieces
    engine: str  # a key of speech.ENGINES
    voice: str
    speed: float  # espeak: words per minute; the others: relative
    condition: str = "clean"  # clean | babble | music | fan | reverb | phone | quiet
    snr_db: float | None = None  # babble, music and fan: their level under the speech
    tags: tuple[str, ...] = field(default=())

    @property
    def text(self) -> str:
        return " ".join(self.pieces)


# Per part and shape: (name, piece, ...). Two-sentence turns go round statement + question,
# question + statement, statement + request and question + question.
SENTENCES = {
    "tune": {
        "question": [
            ("volcanoes", "How do volcanoes erupt?"),
            ("whales", "Why do whales sing to each other?"),
            ("snowflakes", "How are snowflakes made?"),
            ("owls", "Why do owls stay awake at night?"),
            ("rainbow-colours", "How many colours are in a rainbow?"),
            ("butterflies", "Where do butterflies go when it rains?"),
            ("stale-bread", "Why does bread go stale?"),
            ("hiccups", "What gives us hiccups?"),
            ("giraffe-tall", "How tall can a giraffe grow?"),
            ("ice-cream", "Why does ice cream melt so fast?"),
        ],
        "request": [
            ("rainbows", "Please tell me how rainbows are made."),
            ("brave-mouse", "Tell me a story about a brave mouse."),
            ("sharks", "I'd like to hear about sharks."),
            ("salty-sea", "Explain why the sea is salty."),
            ("rain-song", "Sing me a song about the rain."),
            ("clock-riddle", "Give me a riddle about a clock."),
            ("count-down", "Count backwards from ten for me, please."),
            ("penguin-facts", "I want to learn some facts about penguins."),
            ("spell-dinosaur", "Help me spell the word dinosaur."),
            ("brush-teeth", "Please explain to my daughter why we brush our teeth."),
        ],
        "statement": [
            ("brother-seven", "My brother is seven."),
            ("first-tooth", "I lost my first tooth today."),
            ("rabbit", "We have a rabbit called Snowball."),
            ("grandma-sea", "My grandma lives by the sea."),
            ("rocket-picture", "I drew a picture of a rocket."),
            ("birthday", "It is my birthday on Friday."),
            ("swimming", "I learned to swim this summer."),
            ("homework-done", "I finished all my homework."),
            ("pancakes", "We made pancakes for breakfast."),
            ("son-trains", "My son loves anything to do with trains."),
        ],
        "two-sentence": [
            ("kittens", "My cat had kittens last night.", "How do I look after them?"),
            ("wobbly-tooth", "Is it okay that my tooth wobbles?", "Mine has been loose all week."),
            ("ladybird", "I found a ladybird in the garden.", "Tell me what ladybirds eat."),
            ("clouds", "Why are clouds white?", "And why do they turn grey before it rains?"),
            ("flamingos", "We went to the zoo today.", "Why do flamingos stand on one leg?"),
            ("piano", "What is the easiest song to play on the piano?", "I just started lessons."),
            ("snail", "My brother found a snail.", "Please tell me how snails get their shells."),
            ("planets", "How many planets are there?", "Which one is the biggest?"),
            ("astronaut", "I want to be an astronaut.", "What do astronauts eat in space?"),
            ("cake-icing", "We are baking a cake today.", "Give me a fun idea for the icing."),
        ],
        "unfinished": [
            ("moon-car", "What I don't get is", "how the moon follows our car."),
            ("huge-dog", "When I went to the park", "I saw a huge dog."),
            ("spaghetti", "My favourite food is", "spaghetti with meatballs."),
            ("sister-toys", "So the thing is", "my sister keeps taking my toys."),
            ("stars-far", "Can you tell me", "how far away the stars are?"),
            ("camping", "Last summer on holiday", "we went camping in the woods."),
            ("owl-lesson", "In science class today", "we learned about owls."),
            ("snow-melts", "I have always wanted to know", "why snow melts in your hand."),
            ("dinosaurs-whales", "Do you think that", "dinosaurs were bigger than whales?"),
            ("fishing", "On Saturday my grandpa", "is taking me fishing at the lake."),
        ],
        "opening": [
            ("cats-purr", "I was wondering,", "why do cats purr?"),
            ("birds-winter", "Okay, so,", "how do birds know where to fly in winter?"),
            ("fastest-animal", "I have a question for you.", "What is the fastest animal?"),
            ("eyebrows", "Um, let me think.", "Why do we have eyebrows?"),
            ("fireflies", "Hey there,", "how do fireflies glow?"),
            ("parrots", "My mum wanted me to ask,", "how long do parrots live?"),
            ("wet-grass", "So, um,", "why is the grass wet in the morning?"),
            ("crabs-sideways", "Quick question,", "how do crabs walk sideways?"),
            ("inside-earth", "Alright, here goes.", "What is inside the earth?"),
            ("onions", "Hmm, you know what,", "why do onions make you cry?"),
        ],
    },
    "dev": {
        "question": [
            ("bubbles", "Why are soap bubbles round?"),
            ("earthquakes", "What causes an earthquake?"),
            ("zebras", "Why do zebras have stripes?"),
            ("yawning", "Why do we yawn when we are tired?"),
            ("shell-sea", "Can you hear the sea inside a shell?"),
            ("ant-strong", "How strong is an ant?"),
            ("lightning", "Where does lightning come from?"),
            ("camel-humps", "What do camels keep in their humps?"),
        ],
        "request": [
            ("sleepy-pirate", "Tell me a story about a sleepy pirate."),
            ("submarines", "Please explain how submarines dive."),
            ("banana-joke", "Tell me a joke about a banana."),
            ("kangaroos", "I'd love to know more about kangaroos."),
            ("rhyme-cat", "Give me three words that rhyme with cat."),
            ("seasons", "Explain why we have seasons."),
            ("puppy-poem", "Make up a short poem about my puppy."),
            ("tides", "Please teach my son about the tides."),
        ],
        "statement": [
            ("baby-sister", "My little sister is a baby."),
            ("bike", "I can ride my bike with no training wheels."),
            ("hamster", "Our hamster escaped last night."),
            ("sandcastle", "I built a sandcastle at the beach."),
            ("dad-cook", "My dad is a very good cook."),
            ("rainy-school", "It rained all day at school."),
            ("favourite-colour", "Green is my favourite colour."),
            ("goal", "I scored a goal in football."),
        ],
        "two-sentence": [
            ("goldfish", "Our goldfish looks sad.", "What can I do to cheer it up?"),
            ("rainforest", "Can you help with my school project?", "It is about the rainforest."),
            ("tadpoles", "I saw a frog in the pond.", "Tell me how tadpoles turn into frogs."),
            ("dark-night", "Why is it dark at night?", "Where does the sun go?"),
            ("times-tables", "I have a maths test tomorrow.", "How can I learn my times tables?"),
            ("puppy-name", "What should I call my new puppy?", "She is small and fluffy."),
            ("mummies", "We visited a museum today.", "Please tell me something about mummies."),
            ("bees-winter", "Do bees sleep?", "And where do they go in winter?"),
        ],
        "unfinished": [
            ("tiny-horse", "If I could have any animal", "I would pick a tiny horse."),
            ("robots", "The best thing about robots is", "that they never get tired."),
            ("cartwheel", "Yesterday my cousin showed me", "how to do a cartwheel."),
            ("ice-floats", "What I really want to know is", "how ice floats on water."),
            ("toast-honey", "This morning for breakfast", "I had toast with honey."),
            ("penguin-knees", "Do you happen to know if", "penguins have knees?"),
            ("carrots", "My mum always says that", "carrots help you see in the dark."),
            ("crabs-seaside", "When we go to the seaside", "I like to look for crabs."),
        ],
        "opening": [
            ("leaves-fall", "Right, so,", "why do leaves fall off trees?"),
            ("worms", "Excuse me,", "how do worms breathe?"),
            ("cloud-heavy", "My dad and I were wondering,", "how heavy is a cloud?"),
            ("dreams", "Um, well,", "why do we dream?"),
            ("koalas", "Hello there,", "what do koalas eat?"),
            ("rainbow-end", "I have another question.", "Where do rainbows end?"),
            ("dogs-colours", "I was just thinking,", "can dogs see colours?"),
            ("earth-old", "Our teacher asked us to find out,", "how old is the earth?"),
        ],
    },
    "held-out": {
        "question": [
            ("octopus-hearts", "How many hearts does an octopus have?"),
            ("sneezing", "Why do we sneeze when we have a cold?"),
            ("bats-dark", "How do bats fly in the dark?"),
            ("popcorn", "What makes popcorn jump in the pan?"),
            ("snake-skin", "Why do snakes change their skin?"),
            ("elephant-trunks", "What do elephants use their trunks for?"),
            ("magnets", "How do magnets stick to the fridge?"),
            ("goosebumps", "Why do we get goosebumps?"),
        ],
        "request": [
            ("runaway-kite", "Tell me a story about a kite that flew away."),
            ("pyramids", "Please explain how the pyramids were built."),
            ("duck-joke", "Tell me a silly joke about a duck."),
            ("tongue-twister", "Say a tongue twister for me."),
            ("recycling", "Please tell my kids why we recycle."),
            ("brown-dog", "I'd like a story about a little brown dog."),
            ("blue-yellow", "Explain what happens when you mix blue and yellow."),
            ("hedgehogs", "I want to know everything about hedgehogs."),
        ],
        "statement": [
            ("grandad-farm", "My grandad has a farm with lots of cows."),
            ("snowman", "We made a snowman after school."),
            ("violin", "I play the violin at school."),
            ("twins", "My cousins are twins."),
            ("broken-arm", "I broke my arm when I fell off the slide."),
            ("whole-book", "I read a whole book by myself."),
            ("shy-daughter", "My daughter is a bit shy today."),
            ("new-school", "Tomorrow is my first day at a new school."),
        ],
        "two-sentence": [
            ("sunflower", "I planted a sunflower seed.", "How long will it take to grow?"),
            ("glasses", "Why do some people need glasses?", "My teacher wears them."),
            ("chess", "My dad is teaching me chess.", "Give me a tip for winning."),
            ("deep-sea", "What lives at the bottom of the sea?", "Is it very dark down there?"),
            ("skating", "I went skating for the first time.", "Why do I keep falling over?"),
            ("tall-tree", "What is the tallest tree?", "We saw a huge one in the park."),
            ("bird-feeder", "We put up a bird feeder.", "Tell me which birds might visit."),
            ("waves", "Where do waves come from?", "And why are some so big?"),
        ],
        "unfinished": [
            ("garden-fox", "Last night in our garden", "we saw a fox."),
            ("drums", "The thing I like most about music", "is playing the drums."),
            ("mirror", "I don't understand how", "mirrors can show my face."),
            ("chocolate-cake", "Every Sunday my grandma", "bakes a chocolate cake."),
            ("museum-trip", "Next week our class is visiting", "the science museum."),
            ("fire-engines", "When I grow up I want to drive", "fire engines like my aunt."),
            ("snoring", "Could you explain why", "people snore when they sleep?"),
            ("pizza-night", "On Friday nights we always", "have pizza and watch a film."),
        ],
        "opening": [
            ("ears-pop", "Sorry to bother you,", "why do my ears pop on a plane?"),
            ("belly-buttons", "This might sound silly, but", "why do we have belly buttons?"),
            ("shadows", "I noticed something funny today.", "Why are shadows long in the evening?"),
            ("tigers", "Before I forget,", "do tigers like water?"),
            ("tummy-rumble", "Teacher, teacher,", "why does my tummy rumble?"),
            ("snail-worm", "My friend and I made a bet.", "Which is faster, a snail or a worm?"),
            ("grey-hair", "Ooh, this is a tricky one.", "Why does hair turn grey?"),
            ("bouncy-balls", "My little brother keeps asking me,", "why do balls bounce?"),
        ],
    },
}
# The callers' voices, taken in turn (a count prime to the shapes', so each shape gets them
# all). Festival's voices and flite's rms and slt are not heard in tune, and no voice is heard
# at the same speed in two parts.
VOICES: dict[str, list[Voice]] = {
    "tune": [
        ("espeak", "en-us", 165),
        ("piper", "joe", 1.0),
        ("flite", "kal", 1.0),
        ("hibari", "heart", 1.0),
        ("espeak", "en-gb", 150),
        ("flite", "awb", 0.95),
        ("piper", "joe", 0.85),
        ("espeak", "en-us+f3", 185),
        ("hibari", "heart", 1.15),
        ("flite", "kal", 1.2),
        ("espeak", "en-us+m7", 145),
    ],
    "dev": [
        ("festival", "kal_diphone", 1.0),
        ("flite", "rms", 1.0),
        ("espeak", "en-gb-x-rp", 170),
        ("festival", "cmu_us_slt_arctic_hts", 0.9),
        ("piper", "joe", 1.15),
        ("flite", "slt", 0.9),
        ("hibari", "heart", 0.85),
        ("espeak", "en-us+m3", 135),
        ("festival", "cmu_us_slt_arctic_hts", 1.15),
        ("piper", "joe", 0.75),
        ("espeak", "en-029", 145),
        ("hibari", "heart", 1.3),
        ("flite", "slt", 1.1),
    ],
    "held-out": [
        ("espeak", "en-us+m8", 140),
        ("festival", "kal_diphone", 0.9),
        ("piper", "joe", 0.95),
        ("flite", "kal16", 1.0),
        ("hibari", "heart", 1.05),
        ("espeak", "en-gb+f4", 140),
        ("festival", "cmu_us_slt_arctic_hts", 1.05),
        ("flite", "rms", 0.85),
        ("espeak", "en-us+m2", 140),
        ("piper", "joe", 1.25),
        ("hibari", "heart", 0.75),
        ("espeak", "en-us+m6", 140),
        ("flite", "awb", 1.15),
    ],
}
# The babble's talkers: three of these, of engines other than the caller's.
TALKERS: dict[str, list[Voice]] = {
    "tune": [
        ("espeak", "en-us+m1", 175),
        ("espeak", "en-gb+f2", 160),
        ("flite", "awb", 1.05),
        ("piper", "joe", 1.1),
        ("hibari", "heart", 0.95),
    ],
    "dev": [
        ("espeak", "en-us+f2", 170),
        ("flite", "rms", 1.1),
        ("festival", "kal_diphone", 1.05),
        ("piper", "joe", 0.9),
        ("hibari", "heart", 1.1),
    ],
    "held-out": [
        ("espeak", "en-us+m4", 165),
        ("flite", "slt", 1.0),
        ("festival", "kal_diphone", 1.1),
        ("piper", "joe", 1.05),
        ("hibari", "heart", 0.9),
    ],
}
# Each part has every degradation twice, on three turns of each shape spread over its
# sentences. A degradation meets two shapes in each part, and all six over the three parts.
DEGRADATIONS: list[tuple[str, float | None]] = [
    ("babble", 10.0),
    ("music", 15.0),
    ("fan", 10.0),
    ("reverb", None),
    ("babble", 15.0),
    ("phone", None),
    ("music", 10.0),
    ("quiet", None),
    ("fan", 15.0),
]
SHIFT = {"tune": 0, "dev": 1, "held-out": 2}


def _gap(name: str, index: int, shape: str) -> float:
    low, high = GAP_SECS[shape]
    return round(random.Random(f"{name}/{index}").uniform(low, high), 2)


def _part(part: str) -> list[TurnSpec]:
    """The part's turns, shapes interleaved, each with its voice and condition."""
    sentences = SENTENCES[part]
    rows = [
        (shape, i, sentences[shape][i])
        for i in range(max(map(len, sentences.values())))
        for shape in SHAPES
        if i < len(sentences[shape])
    ]
    rounds = DEGRADATIONS * 2
    per_shape = len(rounds) // len(SHAPES)
    degraded = {}
    for k, how in enumerate(rounds):
        shape = SHAPES[(k + SHIFT[part]) % len(SHAPES)]
        row = int((k // len(SHAPES) + 0.5) * len(sentences[shape]) / per_shape)
        degraded[shape, row] = how
    turns = []
    for i, (shape, row, (name, *pieces)) in enumerate(rows):
        engine, voice, speed = VOICES[part][i % len(VOICES[part])]
        condition, snr_db = degraded.get((shape, row), ("clean", None))
        marks = (("paused", shape in ("unfinished", "opening")), ("noisy", condition in NOISES))
        turns.append(
            TurnSpec(
                name=name,
                part=part,
                shape=shape,
                pieces=tuple(pieces),
                gaps=tuple(_gap(name, k, shape) for k in range(len(pieces) - 1)),
                engine=engine,
                voice=voice,
                speed=speed,
                condition=condition,
                snr_db=snr_db,
                tags=tuple(tag for tag, marked in marks if marked),
            )
        )
    return turns


TURNS = _part("tune") + _part("dev") + _part("held-out")

_whisper = None


def _whisper_model():
    global _whisper
    if _whisper is None:
        from faster_whisper import WhisperModel

        from bot.models import bundled_whisper_path

        _whisper = WhisperModel(bundled_whisper_path(), device="cpu", compute_type="int8")
    return _whisper


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def _heard(audio: np.ndarray) -> list[str]:
    """The words Whisper hears in `audio` said between short silences."""
    pad = np.zeros(RATE // 4, np.float32)
    clip = np.concatenate([pad, audio, pad])
    segments, _ = _whisper_model().transcribe(clip, language="en", temperature=0)
    return _words(" ".join(s.text for s in segments))


def _cut(audio: np.ndarray, turn: TurnSpec) -> int:
    """Where to cut `audio`, the turn's two pieces said in one go: a quiet point between the last
    word of the first piece and the first word of the second.

    Whisper's word timestamps place that boundary only to within a short word, so the quietest
    dips around it are tried in turn: the first after which Whisper hears the first piece end
    with its last word and the second begin with its first (as written, or as Whisper heard them
    in the whole) is taken."""
    segments, _ = _whisper_model().transcribe(
        audio, language="en", word_timestamps=True, temperature=0
    )
    words = [w for s in segments for w in s.words]
    heard = [" ".join(_words(w.word)) for w in words]
    said, keep = _words(turn.text), len(_words(turn.pieces[0]))
    matcher = SequenceMatcher(None, said, heard, autojunk=False)
    where = {b.a + k: b.b + k for b in matcher.get_matching_blocks() for k in range(b.size)}
    voice = f"{turn.engine} {turn.voice} {turn.speed}"
    if keep - 1 in where and where.get(keep) == where[keep - 1] + 1:
        before = where[keep - 1]
    elif len(heard) == len(said):
        # A word misheard (which differs between CPUs: int8 kernels), none lost or added: the
        # boundary is still after the first piece's last word.
        before = keep - 1
    else:
        raise SystemExit(f"{turn.name} ({voice}): Whisper heard {' '.join(heard)!r}, no cut")
    first = int(words[before].end * RATE)
    last = max(first, int(words[before + 1].start * RATE))
    level = np.convolve(np.abs(audio), np.ones(160) / 160, "same")
    step = RATE // 100
    low, high = max(step, first - RATE // 4), min(len(audio) - step, last + RATE * 3 // 20)
    dips = [i for i in range(low, high, step) if level[i] <= min(level[i - step], level[i + step])]
    ends = {said[keep - 1], heard[before].split()[-1]}
    begins = {said[keep], heard[before + 1].split()[0]}
    for at in sorted(dips, key=lambda i: level[i]):
        if set(_heard(audio[:at])[-1:]) & ends and set(_heard(audio[at:])[:1]) & begins:
            return at
    raise SystemExit(f"{turn.name} ({voice}): no cut where Whisper hears {ends} | {begins}")


def _pieces(turn: TurnSpec) -> list[np.ndarray]:
    say = ENGINES[turn.engine]
    if turn.shape != "unfinished":
        return [_trim(say(piece, turn.voice, turn.speed)) for piece in turn.pieces]
    # Said whole, so that the voice is mid-sentence where it stops.
    whole = _trim(say(turn.text, turn.voice, turn.speed))
    at = _cut(whole, turn)
    return [_trim(whole[:at]), _trim(whole[at:])]


def margins(turn: TurnSpec) -> tuple[float, float]:
    """Seconds before and after the turn's words."""
    return (
        (NOISY_LEAD_SECS, NOISY_TAIL_SECS) if turn.condition in NOISES else (LEAD_SECS, TAIL_SECS)
    )


def spoken(turn: TurnSpec) -> tuple[np.ndarray, list[int]]:
    """The turn's clean clip, its peak at -6 dBFS: the pieces with their gaps between them, after
    its `margins` of silence; and one sample inside each gap."""
    lead, tail = margins(turn)
    clip: list[np.ndarray] = [np.zeros(int(lead * RATE), np.float32)]
    inside = []
    for i, piece in enumerate(_pieces(turn)):
        if i:
            gap = int(turn.gaps[i - 1] * RATE)
            inside.append(sum(map(len, clip)) + gap // 2)
            clip.append(np.zeros(gap, np.float32))
        clip.append(piece)
    clip.append(np.zeros(int(tail * RATE), np.float32))
    audio = np.concatenate(clip)
    return (audio * PEAK / (np.abs(audio).max() + 1e-9)).astype(np.float32), inside


def timing(clean: np.ndarray, inside: list[int]) -> dict:
    """Where the speech ends, and where each gap around the samples `inside` begins and ends,
    in seconds from the start of the clean clip."""
    # Below VOICED: a piece is trimmed at the engine's own level, which the peak may lower.
    loud = np.flatnonzero(np.abs(clean) > speech.VOICED / 2)
    gaps = []
    for sample in inside:
        after = int(np.searchsorted(loud, sample))
        gaps.append([round((loud[after - 1] + 1) / RATE, 3), round(loud[after] / RATE, 3)])
    return {"speech_end_secs": round((loud[-1] + 1) / RATE, 3), "gaps_secs": gaps}


def degrade(turn: TurnSpec, clean: np.ndarray, seed: int) -> np.ndarray:
    """`clean` as the turn's condition has it."""
    if turn.condition == "babble":
        pool = [v for v in TALKERS[turn.part] if v[0] != turn.engine]
        chosen = np.random.default_rng(seed).choice(len(pool), 3, replace=False)
        return speech.babble(clean, seed, turn.snr_db, [pool[i] for i in chosen])
    if turn.condition in ("music", "fan"):
        return getattr(speech, turn.condition)(clean, seed, turn.snr_db)
    if turn.condition in ("reverb", "phone", "quiet"):
        return getattr(speech, turn.condition)(clean, seed)
    return clean


def render(turn: TurnSpec, seed: int) -> tuple[np.ndarray, dict]:
    """The turn's audio as its file has it, and the timing facts of its speech."""
    clean, inside = spoken(turn)
    return np.clip(degrade(turn, clean, seed), -1, 1), timing(clean, inside)


def write_wav(path: Path, audio: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes((audio * 32767).astype("<i2").tobytes())


def seed_of(turn: TurnSpec) -> int:
    """The turn's seed, from its name: a turn's noise does not change when others are added."""
    return zlib.crc32(turn.name.encode())


def make(out: Path = OUT, names: list[str] | None = None) -> list[dict]:
    """Write the turns' WAVs (all, or those `names`) and the manifest; returns it. A WAV already
    there is kept if the manifest says it was made from the same description."""
    unknown = set(names or ()) - {t.name for t in TURNS}
    if unknown:
        raise SystemExit(f"no turn named {', '.join(sorted(unknown))}")
    out.mkdir(parents=True, exist_ok=True)
    listed = out / "turns.json"
    before = {t["name"]: t for t in json.loads(listed.read_text())} if listed.exists() else {}
    manifest = []
    for turn in TURNS:
        if names and turn.name not in names:
            continue
        path = out / f"{turn.name}.wav"
        described = {**asdict(turn), "text": turn.text, "margins_secs": margins(turn)}
        entry = json.loads(json.dumps({**described, "file": path.name}))
        old = before.get(turn.name, {})
        measured = {key: old[key] for key in MEASURED if key in old}
        if path.exists() and len(measured) == len(MEASURED) and old == entry | measured:
            manifest.append(old)
            continue
        audio, facts = render(turn, seed_of(turn))
        write_wav(path, audio)
        manifest.append(entry | facts)
    # The folder's manifest lists every turn made there, these and earlier ones.
    made = {**before, **{t["name"]: t for t in manifest}}
    listed.write_text(json.dumps([made[t.name] for t in TURNS if t.name in made], indent=2))
    return manifest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    manifest = make(args.out)
    print(f"{len(manifest)} turns in {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
