"""Stop-word lists for the optional stop-word removal step (Python side, read once)."""

from __future__ import annotations

from pathlib import Path


def load_stopwords(path: str | None = None, language: str = "english") -> list[str]:
    r"""Reads stop words from a file (one per line) or from nltk's `stopwords` corpus.

    Args:
        path: a file with one stop word per line (read lower-cased, de-duplicated).
        language: the nltk corpus language when no file is given.

    Returns:
        The sorted stop words.

    Raises:
        FileNotFoundError: `path` does not exist.
        LookupError: no file was given and nltk's stopwords corpus is not installed, with the
            commands that install it.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> with tempfile.TemporaryDirectory() as directory:
        ...     path = Path(directory) / "stop.txt"
        ...     _ = path.write_text("The\nis\n\n a \n")
        ...     load_stopwords(str(path))
        ['a', 'is', 'the']
    """
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise FileNotFoundError(
                f"{file}: no such stop-word file. Check `preprocessing.stopwords_file`."
            )
        words = file.read_text(encoding="utf-8").split()
        return sorted({w.strip().lower() for w in words if w.strip()})
    try:
        from nltk.corpus import stopwords

        return sorted(set(stopwords.words(language)))
    except LookupError:
        raise LookupError(
            "nltk's stopwords corpus is not installed. Install it with "
            "`python -m nltk.downloader stopwords` (needs internet), or set "
            "`preprocessing.stopwords_file` to a file with one stop word per line."
        ) from None
