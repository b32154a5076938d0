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
။ Burmese, ។ Khmer, ; after Greek, ...) it needs whitespace, then (past opening quotes and brackets) a letter or
digit that is not lower case: a caseless script (Arabic, Hebrew, Hindi, ...) splits at every such mark, a cased one
(Latin, Cyrillic, Greek) before an upper-case letter or a digit, and "e.g. the", "3.5", "p.m. — later", "i.e. $10"
stay whole. Titles ("Mr. Smith") and chains of initials ("J. R. R. Tolkien") do not end a sentence; a Japanese quote
that closes on a full stop and runs on with a quotative particle (「行こう。」と言った) does not either. Languages
with ordinals or abbreviations written with a full stop before capitals (German "am 3. Oktober", "z. B.") are
better served by `pysbd:de`. Scripts without sentence punctuation (Thai) are not split:
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
_OPENERS = "\"'“‘([{«「『（《〈【〔‹¿¡"
_QUOTATIVE = ("と", "っ")
_WIDE_END = "。！？｡．"
_SPACED_END = ".!?…‼⁇⁈⁉؟۔।॥։።፧፨။។៕;\u037e"  # ; only after Greek (its question mark; U+037E is NFC ;)
_ANY_END = re.compile(f"[{_WIDE_END}{re.escape(_SPACED_END)}]")
# a match starts only where a run of marks starts: "a....b" is one try, not one per dot (quadratic)
_WIDE = re.compile(f"(?<![{_WIDE_END}])[{_WIDE_END}]+[{re.escape(_CLOSERS)}]*")
_SPACED = re.compile(f"(?<![{re.escape(_SPACED_END)}])[{re.escape(_SPACED_END)}]+[{re.escape(_CLOSERS)}]*(?=\\s)")
# titles before a full stop that does not end a sentence ("Mr. Smith"); words that also end sentences (Inc., No.,
# U.S.) are not here
_TITLE = re.compile(r"(?:^|[\s(\"'“‘])(?:Mr|Mrs|Ms|Dr|Prof|St|Mt|Gen|Gov|Sen|Rep|Rev|Col|Lt|Capt|Sgt|Fig|Eq|vs|cf|"
                    r"Nr|Vol|pp|г|гг|т|им|Св)\.$")
SPLITTERS = ("rule", "line", "pysbd", "blingfire")


class SentenceSplitterError(UserError, ValueError):
    pass


def _is_initial(word: str) -> bool:
    return len(word) == 2 and word[1] == "." and word[0].isupper()


def _ends_at(text: str, m: "re.Match") -> bool:
    """A spaced mark ends a sentence unless what follows is lower case (after opening quotes/brackets), not a
    letter or digit (a dash, $, an emoticon), or the mark closes a title or one of a chain of initials."""
    i = m.end() + 1  # the character after the one space
    while i < len(text) and text[i] in _OPENERS:
        i += 1
    if i >= len(text) or not text[i].isalnum() or text[i].islower():
        return False
    mark = m.group()[0]
    if mark == ";":  # the Greek question mark, never the Latin semicolon
        before = text[m.start() - 1] if m.start() else ""
        return "\u0370" <= before <= "\u03ff" or "\u1f00" <= before <= "\u1fff"  # a Greek letter before it
    if mark != ".":
        return True
    if _TITLE.search(text[max(0, m.start() - 8):m.start() + 1]):
        return False
    word = text[:m.start() + 1].rsplit(" ", 1)[-1]
    if _is_initial(word):  # "J. R. R. Tolkien": an initial next to another one; "World War I. Then": an end
        before = text[:m.start() + 1 - len(word)].rstrip().rsplit(" ", 1)[-1]
        after = text[m.end() + 1:].split(" ", 1)[0]
        return not (_is_initial(before) or _is_initial(after))
    return True


def split_rule(text: str) -> List[str]:
    """The built-in rule (see the module docstring); whitespace runs become one space."""
    text = " ".join(text.split())
    if not text:
        return []
    if not _ANY_END.search(text):
        return [text]
    cuts = [m.end() for m in _WIDE.finditer(text)
            # 「行こう。」と彼は言った: a quote closed on a full stop and taken up by the quotative particle と/って;
            # ３．５, ｗｗｗ．ｅｘａｍｐｌｅ: a full-width dot inside a number or a name
            if not (m.group()[-1] in _CLOSERS and text[m.end():m.end() + 1] in _QUOTATIVE)
            and not (m.group() in "．｡" and text[m.end():m.end() + 1].isalnum())]
    cuts += [m.end() for m in _SPACED.finditer(text) if _ends_at(text, m)]
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


def version_of(spec: str) -> str:
    """What else a cache built with this splitter depends on: the library's version, your module's file."""
    spec = (spec or "rule").strip()
    if spec in ("rule", "line"):
        return spec
    import importlib.metadata
    import importlib.util
    import os

    name = spec.partition(":")[0]
    try:
        return f"{spec}|{importlib.metadata.version(name)}"
    except importlib.metadata.PackageNotFoundError:  # a module of yours: keyed by its file
        found = importlib.util.find_spec(name)
        path = getattr(found, "origin", None) if found else None
        return f"{spec}|{os.stat(path).st_mtime_ns if path and os.path.exists(path) else ''}"


# A document of this many characters or more that comes out as one sentence was most likely not split.
UNSPLIT_CHARS = 200
EARLY_DOCS = 1000  # after this many documents, warn at once if most of them were not split
_warned = set()


def warn_unsplit(docs, spec: str, what: str):
    """Pass documents through; warn once per corpus if documents became one long segment (a script the splitter
    does not know): NSP then has no sentence boundaries to pair at. Said after the first EARLY_DOCS documents if
    most of them were (a long or streaming corpus), else at the end of the pass."""
    single = total = 0
    for doc in docs:
        total += 1
        if len(doc) == 1 and len(doc[0]) >= UNSPLIT_CHARS:
            single += 1
        if total == EARLY_DOCS and single * 2 >= total:
            _warn(single, total, spec, what, " (so far)")
        yield doc
    if single:
        _warn(single, total, spec, what, "")


def _warn(single: int, total: int, spec: str, what: str, so_far: str) -> None:
    if (what, spec) in _warned:
        return
    _warned.add((what, spec))
    log.warning("%s: %d of %d documents%s became a single segment of %d+ characters: data.sentence_splitter=%s "
                "found no sentence ends in them (a script without . ! ? or their forms?). Try "
                "data.sentence_splitter=pysbd:<lang> or blingfire, or give one sentence per line "
                "(data=google, or data.sentence_splitter=line)", what, single, total, so_far, UNSPLIT_CHARS, spec)
