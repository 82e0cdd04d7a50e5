"""In-graph text normalisation: the classic `clean_text`/`normalize_text` recipe as TF ops.

Steps, in order: repair invalid UTF-8, cap the input length, NFKC (with Unicode case folding
when lower-casing), replace URLs/@mentions/numbers with placeholder tokens, and collapse
whitespace. Everything is a TensorFlow or tensorflow-text op, so the exported SavedModel runs
exactly what training ran.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow_text as tf_text

from tfnlp.backend import tf

URL_TOKEN = "xxurl"
USER_TOKEN = "xxuser"
NUMBER_TOKEN = "xxnum"

_URL = r"(?:https?://|www\.)\S+"
_MENTION = r"@\w+"
# A standalone number, with thousands separators, decimals or times: "3", "1,000", "2.5",
# "12:30", but not the digits inside "utf8", "2.5h" or "12:30pm". RE2 has no look-around, so
# the characters on each side are captured and put back.
_NUMBER = r"(^|[^\pL\pN_])(\p{Nd}+(?:[.,:]\p{Nd}+)*)([^\pL\pN_.,:]|[.,:](?:[^\pN]|$)|$)"
# Runs of RE2 whitespace (`\s` is [\t\n\f\r ]) that are not already a single space: the
# same result as `\s+` -> " ", but a tweet's ordinary single spaces are not rewritten (3x faster).
_WHITESPACE_RUN = r" [\t\n\f\r ]+|[\t\n\f\r][\t\n\f\r ]*"
# Valid UTF-8 as `unicode_transcode` sees it (RE2 alone would accept encoded surrogates).
_VALID_UTF8 = r"(?s)[^\x{D800}-\x{DFFF}]*"
# Typographic apostrophes and quotes become ASCII so "don’t" and "don't" are one word.
_APOSTROPHES = "[\u2018\u2019\u02bc\u0060\u00b4]"


def normalize_text(texts: tf.Tensor, **options) -> tf.Tensor:
    """Normalises a string tensor of any shape.

    Args:
        texts: UTF-8 strings (invalid bytes are replaced by U+FFFD, never an error).
        **options: `normalization_steps`'s (all on by default, whitespace collapsed).

    Returns:
        A string tensor of the same shape.

    Example:
        >>> normalize_text(tf.constant(["Visit https://x.io NOW, @bob!! 2024"])).numpy()
        array([b'visit xxurl now, xxuser !! xxnum'], dtype=object)
    """
    return apply_steps(texts, normalization_steps(**options))


Step = tuple[str, Callable[[tf.Tensor], tf.Tensor]]


def apply_steps(texts: tf.Tensor, steps: list[Step]) -> tf.Tensor | tf.RaggedTensor:
    """`texts` through each step's function, in order."""
    texts = tf.convert_to_tensor(texts, dtype=tf.string)
    for _, rewrite in steps:
        texts = rewrite(texts)
    return texts


def normalization_steps(
    *,
    lowercase: bool = True,
    replace_urls: bool = True,
    replace_mentions: bool = True,
    replace_numbers: bool = True,
    max_bytes: int | None = None,
    unicode_normalization: bool = True,
    collapse_whitespace: bool = True,
) -> list[Step]:
    """`normalize_text`'s passes in order, each named (`tfnlp bench preprocess` times them).

    Args:
        lowercase: Unicode case folding (NFKC_Casefold); otherwise plain NFKC.
        replace_urls: URLs become `xxurl`.
        replace_mentions: @user handles become `xxuser`.
        replace_numbers: standalone numbers become `xxnum`.
        max_bytes: truncate longer inputs first, so a megabyte string costs what a tweet does.
        unicode_normalization: NFKC / case folding (tensorflow-text ops); False lower-cases
            with `tf.strings.lower` instead, so that only TensorFlow core ops are used.
        collapse_whitespace: end with single spaces between words and none at either end.
            False leaves runs of spaces for a splitter that skips them anyway (two passes
            fewer: the word splitter's ids are the same).

    Example:
        >>> [name for name, _ in normalization_steps(replace_numbers=False)][:4]
        ['repair_utf8', 'whitespace', 'control_characters', 'case_fold']
    """
    steps: list[Step] = []
    if max_bytes is not None:
        steps.append(("truncate", lambda t: tf.strings.substr(t, 0, max_bytes, unit="BYTE")))
    steps += [
        ("repair_utf8", repair_utf8),
        # Whitespace of any kind becomes a space; other control and format characters (NUL,
        # zero-width spaces, direction marks) are dropped: they only split or hide words.
        ("whitespace", rewriting(_WHITESPACE_RUN, " ")),
        ("control_characters", rewriting(r"[\p{Cc}\p{Cf}]+", "")),
    ]
    if unicode_normalization and lowercase:
        steps.append(("case_fold", tf_text.case_fold_utf8))
    elif unicode_normalization:
        steps.append(("nfkc", lambda t: tf_text.normalize_utf8(t, "NFKC")))
    elif lowercase:
        steps.append(("lower", lambda t: tf.strings.lower(t, encoding="utf-8")))
    steps.append(("apostrophes", rewriting(_APOSTROPHES, "'")))
    if replace_urls:
        steps.append(("urls", rewriting(_URL, f" {URL_TOKEN} ")))
    if replace_mentions:
        steps.append(("mentions", rewriting(_MENTION, f" {USER_TOKEN} ")))
    # "<3" is a heart, not a number: make it the symbol so it survives as one token.
    steps.append(("hearts", rewriting("<3+", " \u2665 ")))
    if replace_numbers:
        # Twice: a match consumes the separator the next number needs ("1 2 3").
        steps += [(f"numbers_{i}", rewriting(_NUMBER, rf"\1 {NUMBER_TOKEN} \3")) for i in (1, 2)]
    if collapse_whitespace:
        steps += [("collapse_spaces", rewriting(_WHITESPACE_RUN, " ")),
                  ("strip", tf.strings.strip)]
    return steps


def rewriting(pattern: str, rewrite: str) -> Callable[[tf.Tensor], tf.Tensor]:
    """A step function: every match of the RE2 `pattern` replaced by `rewrite`."""
    return lambda texts: tf.strings.regex_replace(texts, pattern, rewrite)


def repair_utf8(texts: tf.Tensor) -> tf.Tensor:
    r"""Replaces invalid UTF-8 (e.g. a character cut by truncation) with U+FFFD.

    Exactly `unicode_transcode(errors="replace")`, but only the invalid strings are transcoded:
    checking validity is 4x cheaper than transcoding, and almost every input is valid.

    Example:
        >>> repair_utf8(tf.constant([b"caf\xc3", b"ok"])).numpy().tolist()
        [b'caf\xef\xbf\xbd', b'ok']
    """
    flat = tf.reshape(texts, [-1])  # any shape, scalars included
    invalid = tf.where(tf.logical_not(tf.strings.regex_full_match(flat, _VALID_UTF8)))
    repaired = tf.strings.unicode_transcode(
        tf.gather_nd(flat, invalid), "UTF-8", "UTF-8", errors="replace"
    )
    return tf.reshape(tf.tensor_scatter_nd_update(flat, invalid, repaired), tf.shape(texts))
