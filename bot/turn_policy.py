"""When the caller has finished: every threshold of turn taking, and the one decision made with
them, by the call's turn strategy (bot/turns.py) and by the turn study (scripts/turn_study.py).

The evidence at a pause: what Whisper wrote so far, how the words end (`cue`), Smart Turn v3's
probability that the turn is complete (scored again as the silence grows: it grows surer of a
finished sentence with every tenth of a second), a small language model's reading of whether a
statement's words end a sentence (bot/sentence_end.py: Whisper punctuates a phrase cut off by a
pause as if it were whole), and this caller's own gaps between sentences earlier in the call.
The decision: how many seconds of silence after the last word end the turn
(`TurnPolicy.end_after`); the strategy ends it once that much silence has been heard.

People leave 0.25-0.45 s between two sentences of one turn, and a question is the clearest sign
that they have finished; so a question or request ends sooner than a statement, and a statement
sooner than words that stop mid-sentence. Waiting costs no voice-to-voice time as long as the
answer's first audio is ready (bot/speculation.py): the answer is started at the first pause.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum


class Cue(Enum):
    """What the end of a transcript says about the turn."""

    ASKED = "asked"  # a question or exclamation mark: finished
    REQUEST = "request"  # a request, or a question without its mark: finished
    SAID = "said"  # a full stop after a statement: probably finished, or a first sentence
    OPENING = "opening"  # "I was wondering", "Can you tell me": the question is still to come
    TRAILING = "trailing"  # a comma, dash or ellipsis: the caller is mid-sentence
    DANGLING = "dangling"  # ends on a word few sentences end on ("and", "the", "is", "um")
    CLAUSE = "clause"  # a clause that needs another: "When I went to the park.", "What I mean."
    BARE = "bare"  # no punctuation, and nothing else tells
    # Not from the words alone: a statement the language model reads as unfinished
    # (bot/sentence_end.py), whatever Whisper punctuated ("What I don't get is.").
    UNFINISHED = "unfinished"


# Words a spoken English sentence rarely ends on, unless it is a question (which Whisper marks):
# articles, conjunctions, a few prepositions, auxiliaries, possessives and fillers.
DANGLING = frozenset(
    {
        *("a", "an", "the", "and", "or", "but", "because", "if", "when", "while", "than"),
        *("of", "to", "with", "from", "about", "into", "for"),
        *("is", "are", "was", "were", "am", "be", "can", "could", "will", "would", "should"),
        *("my", "your", "his", "her", "our", "their"),
        *("um", "uh", "er", "erm", "hmm"),
    }
)
_TRAILING = (",", ";", ":", "-", "—", "–", "…", "...")
# Openings that announce the question still to come. Said alone, with whatever punctuation
# Whisper gives them ("I was wondering." is common), the caller has not finished, whatever Smart
# Turn says (p 0.6 seen for "I was wondering", 0.96 for "Can you tell me" on synthetic voices).
PREAMBLES = (
    *("wondering", "i wonder", "my question is", "the question is", "question for you"),
    *("i have a question", "i have another question", "quick question", "let me ask you"),
    *("want to know", "wanted to know", "like to know", "to find out", "me to ask", "to ask you"),
    *("can you tell me", "could you tell me", "tell me", "let me think", "here goes"),
    *("i was thinking", "i was just thinking", "you know what", "guess what", "excuse me"),
)
# Words that open a turn without saying anything yet: said alone, more is coming ("Um, well.",
# "Hello there.", "Okay, so").
_OPENERS = frozenset(
    {"so", "um", "uh", "er", "erm", "hmm", "well", "okay", "ok", "right", "alright", "and"}
    | {"oh", "hey", "hi", "hello", "there", "yes", "yeah", "now", "like", "miss", "harper"}
)
# ... unless it is an answer to the bot's own question ("Yes.", "Okay.").
_ANSWERS = frozenset({"yes", "yeah", "okay", "ok", "right", "alright", "no"})
# How a request starts ("Please tell me how rainbows are made", "Explain why...").
_REQUESTS = (
    *("please", "tell me", "tell us", "explain", "describe", "show me", "teach me", "help me"),
    *("give me", "read me", "sing", "let's", "let us", "i'd like", "i would like"),
    *("i want to hear", "i want to learn", "can you", "could you", "would you", "will you"),
)
_WH = frozenset({"what", "why", "how", "who", "where", "which", "whose", "when"})
_AUX = frozenset(
    {"is", "are", "was", "were", "do", "does", "did", "can", "could", "will", "would"}
    | {"should", "has", "have", "may", "might", "must", "shall"}
)
# A clause's subject: after a question word it makes a clause ("what I mean"), not a question.
_SUBJECTS = frozenset(
    {"i", "you", "we", "they", "he", "she", "it", "my", "your", "our", "their", "his", "her"}
    | {"the", "a", "an", "this", "that", "these", "those", "there"}
)
# Words that open a clause which needs a main clause after it.
_SUBORDINATORS = frozenset(
    {"when", "if", "because", "although", "though", "while", "after", "before", "since"}
    | {"unless", "until", "whenever", "whereas", "once"}
)
# Reporting verbs that a sentence rarely ends on ("And then my friend asked.").
_REPORTING = frozenset({"said", "says", "asked", "asks", "told", "tells", "explained", "wondered"})
# Verbs that take a second object: "showed me" says what comes next is what was shown.
_TWO_OBJECTS = frozenset(
    {"show", "showed", "shows", "tell", "told", "give", "gave", "teach", "taught", "ask", "asked"}
    | {"bring", "brought", "send", "sent", "remind", "reminded", "promised", "bought"}
)
_OBJECTS = frozenset({"me", "us", "him", "her", "them", "you"})
# Words a time or place opens with: "Last summer on holiday..." sets a scene for what follows.
_SCENE = frozenset(
    {"last", "yesterday", "today", "tonight", "tomorrow", "this", "next", "every", "on", "in"}
    | {"at", "after", "before", "during", "once", "one"}
)
_COPULAS = frozenset({"is", "was", "are", "were"})
_SENTENCE = re.compile(r"(?<=[^.…][.!?])\s+")  # not after an ellipsis: the sentence goes on


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def _is_clause(words: list[str]) -> bool:
    """A subordinate clause said alone, a report with nothing reported, or a scene set for what
    is still to come."""
    if not words:
        return False
    if len(words) > 1 and words[-2] in _TWO_OBJECTS and words[-1] in _OBJECTS:
        return True
    if words[0] in _SCENE and len(words) <= 5 and not _SUBJECTS.intersection(words[1:]) - {"the"}:
        return True
    if words[-1] in _REPORTING or (
        words[-2:-1] and words[-2] in _REPORTING and words[-1] == "that"
    ):
        return True
    if words[0] in _SUBORDINATORS:
        # "When I went to the park I saw a duck" is whole: a second subject starts the main
        # clause. A short clause with one subject is not.
        return sum(w in _SUBJECTS - {"the", "a", "an"} for w in words[1:]) < 2 and len(words) <= 9
    if words[:2] == ["how", "come"]:  # "How come when it rains..." waits for the question
        return len(words) > 2 and words[2] in _SUBORDINATORS
    # "What I mean", "Where the sun goes": a clause. "What a day": an exclamation. "What I don't
    # get is how the moon follows us": the clause is the subject of a whole sentence.
    clause = len(words) > 1 and words[0] in _WH - {"when"} and words[1] in _SUBJECTS - {"a", "an"}
    return clause and not _COPULAS.intersection(words[2:-1])


def _is_request(words: list[str]) -> bool:
    """A request ("Tell me a story about a dragon"), or a question Whisper left unmarked ("who
    invented the light bulb", "why is the sky blue.")."""
    if len(words) < 3:
        return False
    said = " ".join(words)
    if said.startswith(_REQUESTS) or "please" in words:
        return True
    if words[0] in _WH:
        return words[1] not in _SUBJECTS or (len(words) > 2 and words[1] == "come")
    return words[0] in _AUX and words[1] in _SUBJECTS | {"anyone", "someone", "everyone"}


def cue(text: str) -> Cue:
    """Classify the end of a transcript."""
    text = text.strip().strip("\"'")
    words = _words(text)
    if (" " + " ".join(words[-5:])).endswith(tuple(f" {p}" for p in PREAMBLES)):
        return Cue.OPENING
    if words and len(words) <= 3 and _OPENERS.issuperset(words) and words[-1] not in _ANSWERS:
        return Cue.OPENING
    if not text or text.endswith(_TRAILING):
        return Cue.TRAILING
    if text.endswith(("?", "!")):
        return Cue.ASKED
    if words and words[-1] in DANGLING:
        return Cue.DANGLING
    last = _words(_SENTENCE.split(text)[-1])
    if _is_clause(last):
        return Cue.CLAUSE
    if _is_request(last):
        return Cue.REQUEST
    return Cue.SAID if text.endswith(".") else Cue.BARE


# What a caller says to show they are listening, not to take the turn ("mm-hm", "okay", "I see").
BACKCHANNELS = frozenset(
    {"mm", "mhm", "mmhm", "mm-hm", "mm-hmm", "hmm", "hm", "uh-huh", "uh", "huh", "um", "ah", "oh"}
    | {"okay", "ok", "yeah", "yep", "yes", "right", "sure", "alright", "cool", "wow", "nice"}
    | {"i", "see", "got", "it", "really", "aha", "ooh", "great", "good", "true", "uhhuh"}
)
_HUM = re.compile(r"[hmnu]+(-[hmnu]+)*")  # "mmm", "hmm-hmm", "uhm": a hum, however spelled
_BACKCHANNEL_WORDS = 4  # "oh I see", "okay yeah right": longer is not a backchannel
# Words that take the floor: a stop, a question, a correction ("Wait.", "No.", "Why?").
_TAKING_THE_FLOOR = frozenset(
    {"stop", "wait", "no", "hold", "hang", "sorry", "excuse", "hey", "pause", "quiet", "shh"}
    | {"but", "actually", "can", "could", "please", "tell"}
    | _WH
)


def backchannel_words(text: str) -> bool | None:
    """Whether words said over the bot only show the caller is listening ("Mm-hm.", "Okay, I
    see.": True), take the floor ("Wait.", "No.", a question: False), or do not say (None).
    No words at all count as listening."""
    said = re.findall(r"[a-z'-]+", text.lower())
    listening = (w.strip("-'") for w in said)
    if len(said) <= _BACKCHANNEL_WORDS and all(
        w in BACKCHANNELS or _HUM.fullmatch(w) for w in listening
    ):
        return True
    if "?" in text or _TAKING_THE_FLOOR.intersection(w.strip("-'") for w in said):
        return False
    return None


_FINISHED = (Cue.ASKED, Cue.REQUEST)
_UNFINISHED = (Cue.TRAILING, Cue.DANGLING, Cue.CLAUSE, Cue.UNFINISHED)
_READ = (Cue.SAID, Cue.BARE)  # where the language model's reading counts


@dataclass(frozen=True)
class TurnPolicy:
    """Every turn-taking threshold (built from Settings: `bot.turns.turn_policy`), and the
    decision made with them. Times are seconds of silence after the caller's last word.

    The thresholds were tuned on the tune part of the generated turn set (`make turn-study`:
    six speech engines, many voices and speeds, two-sentence turns, requests, phrases left
    unfinished over a pause, babble, music, fan noise, reverb, phone-band and quiet callers),
    and are reported on its held-out part; never on the tests' recordings.
    """

    early_secs: float = 0.03  # a pause this long starts Whisper and the verdict
    question_wait: float = 0.35  # a question, a request
    statement_wait: float = 0.4  # a statement Smart Turn agrees is finished
    unsure_wait: float = 0.6  # neither the words nor the model are sure
    unfinished_wait: float = 1.0  # words that stop mid-sentence, in a voice that sounds done
    open_wait: float = 1.5  # the caller sounds mid-sentence, or has announced a question
    said_probability: float = 0.1  # a full stop, unless the model is sure it is unfinished
    bare_probability: float = 0.3  # no punctuation
    unfinished_probability: float = 0.8  # mid-sentence words: only a sure model shortens the wait
    # A statement the language model finds less likely than this to end a sentence where the
    # words stop is mid-sentence (bot/sentence_end.py); one it finds at least this likely to end
    # is finished, whatever Smart Turn objects (it scores some finished statements in synthetic
    # voices 0.05).
    sentence_end_probability: float = 0.05
    finished_sentence_probability: float = 0.5
    # A caller's own gaps between sentences: the wait after a finished-sounding sentence is at
    # least their typical (median) recent gap plus `gap_margin`. Longer silences are pauses to
    # think, not gaps between sentences, and do not count: nor does a wait grow past the limit.
    gap_margin: float = 0.05
    gap_wait_limit: float = 0.6
    gaps_kept: int = 5  # the caller's most recent gaps that count
    # A room louder than this (other voices, music, a fan; dBFS) goes on in the silence after
    # the caller's words, where Smart Turn hears a turn still going (p 0.01-0.05 seen on
    # finished sentences in babble): its objections do not count there.
    noisy_room_db: float = -40.0
    rescore_secs: float = 0.05  # while waiting, Smart Turn scores the turn again this often
    # The caller speaks again (voice for `resume_voice_secs`: not a click) this soon after the
    # answer began: the bot stops at once, and the next answer is to the whole turn.
    resume_secs: float = 0.5
    resume_voice_secs: float = 0.06
    # The caller's voice while the bot speaks (bot/overlap.py): this much of it (or of its
    # onset) pauses the bot at once; speech that goes on this long, or words other than a
    # backchannel's, interrupt it (0: Pipecat's start, where any voice the VAD hears for its
    # start interrupts); a pause the VAD has not confirmed as speech this soon was a false
    # alarm; and the bot waits at most `overlap_wait_secs` of quiet for the overlap's
    # transcript before it goes on.
    overlap_voice_secs: float = 0.04
    backchannel_secs: float = 1.0
    false_alarm_secs: float = 0.5
    overlap_wait_secs: float = 1.0
    # Whisper writes a hum as words ("Mm-hm." as "And then they come."): an overlap of no more
    # voice than this whose words neither listen nor take the floor is taken for a backchannel.
    short_overlap_secs: float = 0.7

    def backchannel(self, text: str, voiced_secs: float) -> bool:
        """Whether what the caller said over the bot (`text`, in `voiced_secs` of voice) only
        shows they are listening: then the bot goes on."""
        said = backchannel_words(text)
        return said if said is not None else voiced_secs <= self.short_overlap_secs

    def needs_model(self, text: str) -> bool:
        """Whether Smart Turn's probability can change the verdict on `text`."""
        return cue(text) not in (*_FINISHED, Cue.OPENING)

    def reads(self, text: str) -> bool:
        """Whether the language model's reading of `text` (bot/sentence_end.py) can change the
        verdict: only where Whisper's punctuation says a statement ended, or nothing."""
        return cue(text) in _READ

    def kind(self, text: str, sentence_end: float | None = None) -> Cue:
        """How the words end: `cue`, unless the language model reads a statement as unfinished
        (`sentence_end`: its probability that a sentence ends there; None: not read)."""
        kind = cue(text)
        if kind in _READ and sentence_end is not None:
            return Cue.UNFINISHED if sentence_end < self.sentence_end_probability else kind
        return kind

    def end_after(
        self,
        text: str,
        probability: float | None,
        gaps: Sequence[float] = (),
        room_db: float | None = None,
        sentence_end: float | None = None,
    ) -> float:
        """Seconds of silence after the last word at which the turn ends, given what has been
        said, Smart Turn's latest probability (None only where `needs_model` is false), the
        caller's recent gaps between sentences, the room's noise floor (dBFS) and the language
        model's reading of the words, where known."""
        kind = self.kind(text, sentence_end)
        if kind is Cue.OPENING:
            return self.open_wait
        if kind in _FINISHED:
            wait = self.question_wait
        elif probability is None:
            raise ValueError(f"a {kind.value!r} transcript needs Smart Turn's probability")
        elif room_db is not None and room_db > self.noisy_room_db:
            return self.unfinished_wait if kind in _UNFINISHED else self.statement_wait
        elif kind in _UNFINISHED:
            sure = probability >= self.unfinished_probability
            return self.unfinished_wait if sure else self.open_wait
        else:  # SAID or BARE
            least = self.said_probability if kind is Cue.SAID else self.bare_probability
            read = sentence_end is not None and sentence_end >= self.finished_sentence_probability
            wait = self.statement_wait if read or probability >= least else self.unsure_wait
        sentence_gaps = sorted(g for g in gaps if g <= self.gap_wait_limit)
        if sentence_gaps:
            typical = sentence_gaps[len(sentence_gaps) // 2]
            wait = max(wait, min(self.gap_wait_limit, typical + self.gap_margin))
        return wait

    def may_shorten(
        self,
        text: str,
        probability: float | None,
        gaps: Sequence[float] = (),
        room_db: float | None = None,
        sentence_end: float | None = None,
    ) -> bool:
        """Whether a surer Smart Turn could still end the turn sooner than `probability` does.
        Where it could not, scoring again is not worth the CPU that the held answer's LLM and
        TTS need at that very moment."""
        if probability is None:
            return False
        evidence = (gaps, room_db, sentence_end)
        return self.end_after(text, 1.0, *evidence) < self.end_after(text, probability, *evidence)

    def may_speculate(
        self,
        text: str,
        probability: float | None,
        room_db: float | None = None,
        sentence_end: float | None = None,
    ) -> bool:
        """Worth answering before the turn is confirmed: nothing says the caller is mid-sentence
        (however long the waits are set)."""
        kind = self.kind(text, sentence_end)
        if kind is Cue.OPENING:
            return False
        noisy = room_db is not None and room_db > self.noisy_room_db
        if kind in _UNFINISHED and not noisy:
            return probability is not None and probability >= self.unfinished_probability
        return True
