"""Split normalised text into words, punctuation, emoticons and single CJK/Thai characters.

This is the "basic tokenizer" step before the vocabulary lookup or WordPiece: whitespace
separates words; punctuation and symbols (emoji included) become tokens of their own, except
emoticons like `:)` and `:(`, which are kept whole because they carry sentiment; scripts written
without spaces (Chinese, Japanese, Thai, ...) give one token per character, as BERT does for CJK.
"""

from __future__ import annotations

from tfnlp.backend import tf
from tfnlp.preprocessing.normalization import Step, apply_steps, rewriting

# Western emoticons, both orientations: :) :-( ;D :P =] <3 (:
_EMOTICON = r"(?:[:;=8][\-o\*']?[\)\]\(\[dpP/\\\|@3]|<3|[\)\]\(\[/\\\|][\-o\*']?[:;=])"
# Punctuation except the apostrophe (kept inside words: "don't"), and symbols (emoji included).
_PUNCTUATION = r"[^\P{P}']|\p{S}"
_NO_SPACE_SCRIPTS = (
    r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}\p{Tibetan}]"
)
# Tokens that are their own delimiters; the emoticon comes first so ":)" beats ":".
_KEPT = f"{_EMOTICON}|{_PUNCTUATION}|{_NO_SPACE_SCRIPTS}"
# Apostrophes not between word characters are quotes, not contractions.
_LEADING_APOSTROPHE = r"(^|[^\pL\pN])'+"
_TRAILING_APOSTROPHE = r"'+([^\pL\pN]|$)"


def split_words(texts: tf.Tensor) -> tf.RaggedTensor:
    """Splits a 1-D tensor of normalised strings into a ragged [batch, (words)] tensor.

    Example:
        >>> split_words(tf.constant(["so good :) 我爱你!"])).to_list()
        [[b'so', b'good', b':)', b'\xe6\x88\x91', b'\xe7\x88\xb1', b'\xe4\xbd\xa0', b'!']]
    """
    return apply_steps(texts, splitting_steps())


def splitting_steps() -> list[Step]:
    """`split_words`'s passes in order, each named (`tfnlp bench preprocess` times them).

    The input may hold runs of spaces (see `normalize_text(collapse_whitespace=False)`):
    the split on whitespace skips them, so the words are the same.
    """
    return [
        ("leading_apostrophes", rewriting(_LEADING_APOSTROPHE, r"\1 ")),
        ("trailing_apostrophes", rewriting(_TRAILING_APOSTROPHE, r" \1")),
        # Spacing out the kept tokens and splitting on whitespace gives exactly what
        # `tf_text.regex_split(delim=\s+|KEPT, keep=KEPT)` gives, 8x faster: RE2 makes one
        # rewriting pass instead of one search per token, and `\0` (no capture group) lets it
        # find the matches with its DFA.
        ("space_out_kept_tokens", rewriting(_KEPT, r" \0 ")),
        ("split", tf.strings.split),
    ]
