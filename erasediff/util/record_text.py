"""Text that ends up in a record someone must be able to trust (requester, reviewer, reason, comment).

A newline in a reviewer's name writes a forged line into `audit --log`; an empty name reads "by  "; a name that
differs from the requester's by one look-alike letter (Cyrillic "а" for Latin "a") passes a string comparison. So
such text is refused when it is empty or holds a control character, and names are compared after Unicode
normalisation (NFKC, case folded), with a name that mixes scripts refused outright.
"""

import unicodedata

# Unicode categories that must never reach a record: controls (newline, tab, escape), format characters (zero-width
# joiners, bidi overrides), separators other than the plain space, unassigned and private-use code points.
REFUSED_CATEGORIES = {"Cc", "Cf", "Zl", "Zp", "Co", "Cn", "Cs"}


def record_text_problem(value: str) -> str | None:
    """Why `value` cannot go into a record (None: it can)."""
    if not value.strip():
        return "is empty"
    for ch in value:
        if unicodedata.category(ch) in REFUSED_CATEGORIES or (unicodedata.category(ch) == "Zs" and ch != " "):
            return f"holds the control or invisible character U+{ord(ch):04X}"
    return None


def _script(ch: str) -> str | None:
    """The script of a letter, from its Unicode name (LATIN, CYRILLIC, GREEK, ...); None for digits and symbols."""
    if not ch.isalpha():
        return None
    return unicodedata.name(ch, "UNKNOWN").split()[0]


def name_problem(value: str) -> str | None:
    """Why `value` cannot be a person's or account's name in a record (None: it can)."""
    if problem := record_text_problem(value):
        return problem
    scripts = {s for s in map(_script, unicodedata.normalize("NFKC", value)) if s}
    if len(scripts) > 1:
        return f"mixes scripts ({', '.join(sorted(scripts))}): a look-alike letter cannot be told apart"
    return None


def canonical_name(value: str) -> str:
    """The form two names are compared in: NFKC, case folded, outer spaces dropped."""
    return unicodedata.normalize("NFKC", value).casefold().strip()


def same_person(a: str, b: str) -> bool:
    return canonical_name(a) == canonical_name(b)
