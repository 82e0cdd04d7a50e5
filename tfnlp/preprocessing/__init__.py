"""In-graph text preprocessing: normalisation, pre-tokenization, vocabularies, tokenizer layers."""

from tfnlp.preprocessing.base import NormalizingTokenizer
from tfnlp.preprocessing.layer import TextPreprocessor
from tfnlp.preprocessing.lm_tokenizer import LanguageModelTokenizer
from tfnlp.preprocessing.normalization import normalize_text
from tfnlp.preprocessing.pretokenization import split_words
from tfnlp.preprocessing.stopwords import load_stopwords
from tfnlp.preprocessing.vocabulary import RESERVED_TOKENS, count_words, learn_vocabulary

__all__ = [
    "RESERVED_TOKENS",
    "LanguageModelTokenizer",
    "NormalizingTokenizer",
    "TextPreprocessor",
    "count_words",
    "learn_vocabulary",
    "load_stopwords",
    "normalize_text",
    "split_words",
]
