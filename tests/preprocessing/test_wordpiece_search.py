"""The few-probe walk of tensorflow-text's threshold search gives the library's vocabulary,
token for token, while learning far fewer vocabularies."""

import collections
import logging
import re

import numpy as np
import pytest
from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as lib

from tfnlp.preprocessing import wordpiece_search
from tfnlp.preprocessing.vocabulary import RESERVED_TOKENS


def zipf_words(seed: int, distinct: int = 1500) -> collections.Counter:
    """Words of 1-4 random syllables with Zipf-like counts, so pieces are shared."""
    rng = np.random.default_rng(seed)
    syllables = ["ka", "lo", "mi", "ter", "ing", "s", "ed", "un", "pre", "zo", "qua", "é"]
    counts = collections.Counter()
    for rank in range(1, distinct + 1):
        word = "".join(rng.choice(syllables, size=rng.integers(1, 5)))
        counts[word] += int(20_000 / rank ** 1.1) + 1
    return counts


@pytest.mark.parametrize(("seed", "vocab_size"), [(0, 60), (1, 150), (2, 400), (3, 2000)])
def test_the_vocabulary_is_the_librarys_token_for_token(seed, vocab_size, caplog):
    counts = zipf_words(seed)
    expected = lib.learn(list(counts.items()), vocab_size=vocab_size,
                         reserved_tokens=RESERVED_TOKENS, lower_thresh=2, max_unique_chars=2000)
    logger = logging.getLogger("tfnlp")
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger="tfnlp"):
            got = wordpiece_search.learn(counts, vocab_size=vocab_size,
                                         reserved_tokens=RESERVED_TOKENS, lower_thresh=2,
                                         max_unique_chars=2000)
    finally:
        logger.removeHandler(caplog.handler)
    assert got == expected
    passes, steps = map(int, re.search(r"(\d+) WordPiece learning passes for the library's "
                                       r"(\d+)-step", caplog.text).groups())
    # Long searches (the tweets': 4 passes for 15 steps) are where the walk pays.
    limit = steps // 2 if steps >= 10 else steps + wordpiece_search.MAX_UPWARD_PROBES
    assert passes <= limit, caplog.text


def test_the_walk_takes_the_librarys_branches_from_implied_outcomes():
    class Sizes(wordpiece_search._Probes):
        """Vocabulary size 10,000 / threshold: no learning, only the search."""

        def vocabulary(self, thresh):
            self.learned.setdefault(thresh, ["t"] * (10_000 // thresh))
            return self.learned[thresh]

    params = wordpiece_search._params(lib, vocab_size=1000, reserved_tokens=[],
                                      lower_thresh=1, max_unique_chars=10)
    probes = Sizes(lib, [], params)
    vocabulary, steps = wordpiece_search._library_search(probes, 1, 30_000)
    assert len(vocabulary) == 1000 and steps > len(probes.learned) - 1
