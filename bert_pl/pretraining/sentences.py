"""Sentence splitting for free text (`data=text`, hub corpora): NSP pairs and segment ends need sentence boundaries.

`data.sentence_splitter=` picks one:
- `rule` (default): the built-in rule below, for any script; no dependency.
- `line`: every non-empty line is one sentence (text that is split already).
- `pysbd` or `pysbd:<lang>` (e.g. `pysbd:ja`): the `pysbd` library's rules for that language (default `en`).
- `blingfire`: Microsoft's `blingfire` model (fast, multilingual).
- `module:function`: your own; `function(text) -> list of sentences`.

The rule: a sentence ends after a full stop, question or exclamation mark (and closing quotes or brackets after it).
After the full-width marks of Chinese and Japanese (。！？｡．) it ends right there: those scripts put no space
between sentences. After the others (. ! ? … and ؟ ۔ Arabic/Urdu, । ॥ Devanagari, ։ Armenian, ። ፧ Ethiopic,
။ Burmese, ។ Khmer, ; Greek, ...) it needs whitespace and a next character that is not a lower-case letter,
so a caseless script (Arabic, Hebrew, Hindi, ...) splits at every such mark, a cased one (Latin, Cyrillic, Greek) at
an upper-case letter, a digit or an opening quote, and "e.g. the", "3.5" and "p.m. today" stay whole. Titles and
initials ("Mr. Smith", "J. Smith") do not end a sentence, nor does a Japanese quote that closes on a full stop and
runs on with a quotative particle (「行こう。」と言った). Scripts without sentence punctuation (Thai) are not split:
the corpus readers warn with the number of documents that became one long segment.
"""
from __future__ import annotations

import functools
import importlib
import logging
import re
from typing import Callable, List

from bert_pl.errors import UserError

log = logging.getLogger(__name__)

_CLOSERS = "\"'”’)]}»」』）》〉】〕›"
_QUOTATIVE = ("と", "っ")
_WIDE_END = "。！？｡．"
_SPACED_END = ".!?…‼⁇⁈⁉؟۔।॥։።፧፨။។៕\u037e"  # U+037E: the Greek question mark
_WIDE = re.compile(f"[{_WIDE_END}]+[{re.escape(_CLOSERS)}]*")
_SPACED = re.compile(f"[{re.escape(_SPACED_END)}]+[{re.escape(_CLOSERS)}]*(?=\\s)")
# a title or an initial before the full stop: not a sentence end ("Mr. Smith", "J. R. R. Tolkien")
_NOT_AN_END = re.compile(r"(?:^|[\s(\"'“‘])(?:[A-ZА-ЯΑ-Ω]|Mr|Mrs|Ms|Dr|Prof|St|Jr|Sr|vs|Mt|Gen|Gov|Sen|Rep|Rev|Col|"
                         r"Lt|Capt|Sgt|Fig|Eq|No|Nr|Vol|pp|cf|approx|Inc|Ltd|Co|Corp|U\.S|U\.K|г|т|им|Св)\.$")
SPLITTERS = ("rule", "line", "pysbd", "blingfire")


class SentenceSplitterError(UserError, ValueError):
    pass


def split_rule(text: str) -> List[str]:
    """The built-in rule (see the module docstring); whitespace runs become one space."""
    text = " ".join(text.split())
    if not text:
        return []
    cuts = [m.end() for m in _WIDE.finditer(text)
            # 「行こう。」と彼は言った: a quote closed on a full stop and taken up by the quotative particle と/って
            if not (m.group()[-1] in _CLOSERS and text[m.end():m.end() + 1] in _QUOTATIVE)]
    for m in _SPACED.finditer(text):
        nxt = m.end() + 1  # the character after the one space
        if nxt < len(text) and not text[nxt].islower() and not _NOT_AN_END.search(text[max(0, m.start() - 12):m.end()]):
            cuts.append(m.end())
    sentences, start = [], 0
    for cut in sorted(set(cuts)):
        piece = text[start:cut].strip()
        if piece:
            sentences.append(piece)
        start = cut
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def _split_lines(text: str) -> List[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _missing(package: str, spec: str) -> SentenceSplitterError:
    return SentenceSplitterError(f"data.sentence_splitter={spec} needs `pip install {package}`; or use "
                                 f"data.sentence_splitter=rule (built in)")


@functools.lru_cache(maxsize=None)
def get_splitter(spec: str = "rule") -> Callable[[str], List[str]]:
    """`data.sentence_splitter` -> a function text -> sentences. Cached per process (loader workers build their own)."""
    spec = (spec or "rule").strip()
    if spec == "rule":
        return split_rule
    if spec == "line":
        return _split_lines
    if spec == "pysbd" or spec.startswith("pysbd:"):
        try:
            import pysbd
        except ImportError:
            raise _missing("pysbd", spec) from None
        lang = spec.partition(":")[2] or "en"
        try:
            segmenter = pysbd.Segmenter(language=lang, clean=False)
        except ValueError as e:
            raise SentenceSplitterError(f"data.sentence_splitter={spec}: {e}") from None
        return lambda text: [s.strip() for s in segmenter.segment(" ".join(text.split())) if s.strip()]
    if spec == "blingfire":
        try:
            import blingfire
        except ImportError:
            raise _missing("blingfire", spec) from None
        return lambda text: [s for s in blingfire.text_to_sentences(" ".join(text.split())).split("\n") if s.strip()]
    module, _, name = spec.partition(":")
    if not name:
        raise SentenceSplitterError(f"data.sentence_splitter={spec!r}: use one of {', '.join(SPLITTERS)}, "
                                    f"pysbd:<language>, or module:function")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise SentenceSplitterError(f"data.sentence_splitter={spec}: cannot import it ({e})") from None
    return fn


# A document of this many characters or more that comes out as one sentence was most likely not split.
UNSPLIT_CHARS = 200
_warned = set()


def warn_unsplit(docs, spec: str, what: str):
    """Pass documents through; at the end of the pass, warn once per corpus if some became one long segment
    (a script the splitter does not know): NSP then has no sentence boundaries to pair at."""
    single = total = 0
    for doc in docs:
        total += 1
        if len(doc) == 1 and len(doc[0]) >= UNSPLIT_CHARS:
            single += 1
        yield doc
    if single and (what, spec) not in _warned:
        _warned.add((what, spec))
        log.warning("%s: %d of %d documents became a single segment of %d+ characters: data.sentence_splitter=%s "
                    "found no sentence ends in them (a script without . ! ? or their forms?). Try "
                    "data.sentence_splitter=pysbd:<lang> or blingfire, or give one sentence per line "
                    "(data=google, or data.sentence_splitter=line)", what, single, total, UNSPLIT_CHARS, spec)
