"""tensorflow-text's WordPiece learner, reaching its own answer in a few probes instead of ~14.

The learner binary-searches a count threshold. Each probe learns a whole vocabulary (four
passes over every distinct word, in Python: ~4.5 s on the tweets), and the search starts
from the largest word count (30,607 on the tweets), so most of its ~14 probes land on
thresholds far above the answer (4 there). The vocabulary shrinks as the threshold grows, so
once one probe at threshold `t` gave too few tokens, every probe above `t` would too, and
once one gave too many, every probe below it would too.

`learn` walks the library's search path step by step, but learns a vocabulary only where
the outcome is not implied by a probe already made. It first probes where the word counts
predict the target size and steps up (sized by the sizes seen) until a probe gives too few
tokens, so the long run of high thresholds is skipped. Where the vocabulary size falls as the
threshold rises (every case measured), the result is the library's, token for token; tested
against `wordpiece_tokenizer_learner_lib.learn` itself.
"""

from __future__ import annotations

import collections
import inspect
import logging
import math

logger = logging.getLogger("tfnlp")

TOO_MANY, FITS, TOO_FEW = "too many", "fits", "too few"
MAX_UPWARD_PROBES = 3


class _Probes:
    """Vocabularies learned at given thresholds, and outcomes implied by them."""

    def __init__(self, lib, words, params):
        self.lib, self.words, self.params = lib, words, params
        self.learned: dict[int, list[str]] = {}

    def vocabulary(self, thresh: int) -> list[str]:
        if thresh not in self.learned:
            self.learned[thresh] = self.lib.learn_with_thresh(self.words, thresh, self.params)
        return self.learned[thresh]

    def judge(self, size: int) -> str:
        """The library's test: at most `vocab_size`, and within the slack below it."""
        target, slack = self.params.vocab_size, max(self.params.slack_ratio, 0) * \
            self.params.vocab_size
        if size > target:
            return TOO_MANY
        return FITS if target - size <= slack else TOO_FEW

    def outcome(self, thresh: int) -> str:
        for known, vocabulary in self.learned.items():
            judged = self.judge(len(vocabulary))
            if judged == TOO_FEW and known <= thresh or judged == TOO_MANY and known >= thresh:
                return judged
        return self.judge(len(self.vocabulary(thresh)))


def _library():
    from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as lib

    return lib


def _params(lib, **given):
    """`lib.Params` with `lib.learn`'s own defaults for everything not given."""
    defaults = {name: p.default for name, p in inspect.signature(lib.learn).parameters.items()
                if p.default is not inspect.Parameter.empty}
    return lib.Params(**{name: given.get(name, defaults.get(name)) for name in lib.Params._fields})


def _first_guess(words, vocab_size: int) -> int:
    """The count of the `vocab_size`-th most frequent word: a threshold at or below the
    answer, since the vocabulary holds pieces and characters beside the words."""
    counts = sorted((count for _, count in words), reverse=True)
    return counts[min(vocab_size, len(counts)) - 1] if counts else 1


def learn(word_counts: collections.Counter, *, vocab_size: int, reserved_tokens: list[str],
          lower_thresh: int, max_unique_chars: int) -> list[str]:
    """What `wordpiece_tokenizer_learner_lib.learn` returns for these arguments (its other
    parameters at their defaults), with far fewer vocabularies learned on the way."""
    lib = _library()
    params = _params(lib, vocab_size=vocab_size, reserved_tokens=reserved_tokens,
                     lower_thresh=lower_thresh, max_unique_chars=max_unique_chars)
    pairs = list(word_counts.items())
    upper, lower = lib.get_search_threshs(pairs, params.upper_thresh, params.lower_thresh)
    all_counts = lib.get_input_words(pairs, params.reserved_tokens, params.max_token_length)
    words = lib.filter_input_words(
        all_counts, lib.get_allowed_chars(all_counts, params.max_unique_chars),
        params.max_input_tokens)
    probes = _Probes(lib, words, params)
    _probe_upwards(probes, max(lower, min(upper, _first_guess(words, vocab_size))), upper)
    vocabulary, steps = _library_search(probes, lower, upper)
    logger.info("vocabulary: %d WordPiece learning passes for the library's %d-step search",
                len(probes.learned), steps)
    return vocabulary


def _probe_upwards(probes: _Probes, guess: int, upper: int) -> None:
    """Probes from `guess` upwards until a threshold gives too few tokens (or fits), so
    every higher step of the library's path is known without learning.

    Each step assumes size ~ threshold ** -slope, the slope measured from the last two
    probes (1 at first), and aims 10 % past the target so that it lands just above it. At
    most `MAX_UPWARD_PROBES`: where the library's own search is short (a small vocabulary
    fits at a high threshold), these are the walk's only extra cost.
    """
    seen: list[tuple[int, int]] = []
    while guess < upper and len(seen) < MAX_UPWARD_PROBES:
        size = len(probes.vocabulary(guess))
        if probes.judge(size) != TOO_MANY:
            return
        seen.append((guess, size))
        slope = 1.0
        if len(seen) > 1:
            (low, low_size), (high, high_size) = seen[-2:]
            slope = max(0.2, math.log(low_size / high_size) / math.log(high / low))
        step = (size / probes.params.vocab_size) ** (1 / slope) * 1.1
        guess = min(upper, max(guess + 1, math.ceil(guess * step)))


def _library_search(probes: _Probes, lower: int, upper: int) -> tuple[list[str], int]:
    """`learn_binary_search`'s path, with `probes` answering each step; (vocabulary, steps)."""
    steps = 0
    while True:
        steps += 1
        thresh = (upper + lower) // 2
        outcome = probes.outcome(thresh)
        if outcome == FITS or lower >= upper or thresh <= 1:
            return probes.vocabulary(thresh), steps
        if outcome == TOO_MANY:
            lower = thresh + 1
        else:
            upper = thresh - 1
