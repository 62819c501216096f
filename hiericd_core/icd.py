"""ICD-10-CM code table: normalisation, validation, descriptions, hierarchy.

The table is the CMS ICD-10-CM tabular list shipped offline by the
``simple-icd-10-cm`` package. Codes are normalised before any lookup:
surrounding and inner whitespace removed, upper case, the dot put back
(``d2271`` → ``D22.71``).

Status of a normalised code:

* ``billable`` — a leaf of the tabular list (what a coder should assign);
* ``category`` — a valid category or subcategory with children (not billable);
* ``incomplete`` — a valid code cut short after placeholder ``X``s, as the
  Spanish CIE-10-ES gold of CodiEsp writes injuries without their 7th
  character (``T81.4XX``; ``T81.4XXA`` is the billable code);
* ``unknown`` — not in ICD-10-CM (a typo, or a code of another edition).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

with warnings.catch_warnings():
    # the package imports pkg_resources, which warns on import
    warnings.simplefilter("ignore")
    import simple_icd_10_cm as _cm

Status = Literal["billable", "category", "incomplete", "unknown"]

# ICD-10-CM: a letter, a digit, a digit or letter, then up to four more after
# the dot. (ICD-10-PCS codes such as BW03ZZZ do not match and stay as written.)
_CODE_CHARS = re.compile(r"^[A-Z][0-9][0-9A-Z](\.?[0-9A-Z]{1,4})?$")


@dataclass(frozen=True)
class CodeInfo:
    """What the tabular list says about one code."""

    code: str
    description: str
    status: Status
    chapter: str
    chapter_title: str
    block: str
    block_title: str
    category: str


class CodeError(ValueError):
    """A code that cannot be used (unknown, or not billable where required)."""


def normalize(code: str) -> str:
    """Return ``code`` in canonical form: no whitespace, upper case, dotted.

    Args:
        code: a code as typed by a coder, e.g. ``" d2271 "`` or ``"C50.911"``.

    Returns:
        The canonical spelling (``"D22.71"``). Strings that do not look like
        an ICD-10 code are returned stripped and upper-cased, unchanged
        otherwise, so that the caller can report them as written.
    """
    compact = re.sub(r"\s+", "", code).upper()
    if not _CODE_CHARS.match(compact):
        return compact
    bare = compact.replace(".", "")
    return bare if len(bare) <= 3 else f"{bare[:3]}.{bare[3:]}"


# What a coder's note is cut into: runs of letters, digits and dots.
_TOKEN = re.compile(r"[A-Za-z0-9.]+")
_MAX_PIECES = 4  # "N43 . 40" is three pieces of one code; a code has at most 8 characters


def read_code(text: str, *, first: bool = False) -> str:
    """Return the one code in a coder's note, normalised.

    Coders add words after the code ("C50.911 per path"); those are let be. A
    note without any code yields its normalised whole text, which the caller
    reports as unknown.

    Args:
        text: the note (or label, attribute value, normalization entry).
        first: take the first code of a note that lists several for show
            (the adjudication queue's ``conflict: coder1 C50.912 vs coder2
            C50.911``), without the checks below.

    Raises:
        CodeError: the note holds two or more codes (``"N43.40 N45.1"``), or
            one code cut by a space (``"N43 .40"``), which reading only its
            first piece would turn into another code (``N43``).
    """
    tokens = _TOKEN.findall(text)
    codes = [code for code in map(normalize, tokens) if status(code) != "unknown"]
    if first:
        return codes[0] if codes else normalize(text)
    if len(codes) > 1:
        raise CodeError(f"{text.strip()!r} holds {len(codes)} codes ({', '.join(codes)}); "
                        "give each code its own annotation")
    for size in range(2, _MAX_PIECES + 1):
        for start in range(len(tokens) - size + 1):
            joined = normalize("".join(tokens[start:start + size]))
            if status(joined) != "unknown":
                raise CodeError(f"{text.strip()!r} looks like the code {joined} cut by a space; "
                                "write it without spaces")
    return codes[0] if codes else normalize(text)


def status(code: str) -> Status:
    """Return the status of ``code`` (normalised first)."""
    canonical = normalize(code)
    if not _CODE_CHARS.match(canonical):
        return "unknown"
    if not _cm.is_valid_item(canonical):
        stem = canonical.rstrip("X").rstrip(".")
        if stem != canonical and _cm.is_valid_item(stem) and _cm.is_category_or_subcategory(stem):
            return "incomplete"
        return "unknown"
    if not _cm.is_category_or_subcategory(canonical):
        return "unknown"  # a chapter or block name, not a code
    return "billable" if _cm.is_leaf(canonical) else "category"


@lru_cache(maxsize=65536)
def lookup(code: str) -> CodeInfo | None:
    """Return the :class:`CodeInfo` of ``code``, or ``None`` when unknown."""
    canonical = normalize(code)
    kind = status(canonical)
    if kind == "unknown":
        return None
    known = canonical.rstrip("X").rstrip(".") if kind == "incomplete" else canonical
    ancestors = _cm.get_ancestors(known)
    chapter = ancestors[-1]
    # The innermost block is the first ancestor that is a block; a block can
    # share its name with a category ("C50"), so ask which role it plays.
    blocks = [a for a in ancestors if _cm.is_block(a) and (not _cm.is_category(a) or ancestors.count(a) > 1)]
    block = blocks[0] if blocks else chapter
    categories = [a for a in [known, *ancestors] if _cm.is_category(a)]
    return CodeInfo(
        code=canonical,
        description=_cm.get_description(known),
        status=kind,
        chapter=chapter,
        chapter_title=_cm.get_description(chapter),
        block=block,
        block_title=_cm.get_description(block),
        category=categories[-1] if categories else canonical[:3],
    )


def check(code: str, *, require_billable: bool = False) -> CodeInfo:
    """Return the :class:`CodeInfo` of ``code`` or raise :class:`CodeError`.

    Args:
        code: the code as written.
        require_billable: refuse categories that have children.

    Raises:
        CodeError: with a message saying what is wrong and what to do.
    """
    info = lookup(code)
    if info is None:
        raise CodeError(f"unknown ICD-10-CM code {code.strip()!r}")
    if require_billable and info.status == "incomplete":
        raise CodeError(f"{info.code} lacks its 7th character; add it (e.g. {info.code}A)")
    if require_billable and info.status != "billable":
        children = ", ".join(_cm.get_children(info.code)[:4])
        raise CodeError(
            f"{info.code} is a category, not a billable code; use one of its children ({children}, …)"
        )
    return info


def parent(code: str) -> str | None:
    """Return the parent category of ``code`` (``None`` for a 3-character category)."""
    canonical = normalize(code)
    if status(canonical) == "unknown":
        return None
    up = _cm.get_parent(canonical)
    return up if up and _cm.is_category_or_subcategory(up) and up != canonical else None


def siblings(code: str) -> list[str]:
    """Return the billable codes that share ``code``'s parent, ``code`` excluded.

    Siblings are what coders confuse: the same finding at another site or on
    the other side (``C50.911`` right breast vs ``C50.912`` left breast).
    """
    up = parent(code)
    if up is None:
        return []
    canonical = normalize(code)
    return [c for c in _cm.get_children(up) if c != canonical and _cm.is_leaf(c)]


def billable_codes(chapters: Iterable[str] | None = None) -> list[str]:
    """Return every billable code, optionally only of the given chapters (``"2"``)."""
    wanted = None if chapters is None else set(chapters)
    return [c for c in _all_leaves() if wanted is None or _chapter_of(c) in wanted]


@lru_cache(maxsize=1)
def _all_leaves() -> tuple[str, ...]:
    return tuple(
        c for c in _cm.get_all_codes(with_dots=True) if _cm.is_leaf(c) and _cm.is_category_or_subcategory(c)
    )


@lru_cache(maxsize=65536)
def _chapter_of(code: str) -> str:
    return _cm.get_ancestors(code)[-1]
