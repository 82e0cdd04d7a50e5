"""Deterministic, seeded train/validation/test splits."""

from __future__ import annotations

from dataclasses import dataclass

from tfnlp.data.records import DataError, LabelledTexts


@dataclass
class Splits:
    """The train, validation and test examples (disjoint)."""

    train: LabelledTexts
    validation: LabelledTexts
    test: LabelledTexts

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "validation": len(self.validation),
                "test": len(self.test)}


def split_examples(
    examples: LabelledTexts,
    *,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    stratify: bool = True,
    seed: int = 42,
) -> Splits:
    """Splits examples into train/validation/test, stratified by label when asked.

    The same examples, fractions and seed always give the same split.

    Raises:
        DataError: the fractions leave no training data, or a class is too small to stratify.

    Example:
        >>> examples = LabelledTexts([f"text {i}" for i in range(20)], ["a", "b"] * 10)
        >>> split_examples(examples, validation_fraction=0.2, test_fraction=0.2, seed=0).sizes()
        {'train': 12, 'validation': 4, 'test': 4}
    """
    from sklearn.model_selection import train_test_split

    if validation_fraction + test_fraction >= 1.0:
        raise DataError(
            "`data.validation_fraction` + `data.test_fraction` must be below 1. Received: "
            f"{validation_fraction} + {test_fraction}."
        )
    indices = list(range(len(examples)))
    labels = examples.labels if stratify else None

    def cut(ids, fraction, label_of):
        if fraction == 0:
            return ids, []
        try:
            return train_test_split(
                ids, test_size=fraction, random_state=seed,
                stratify=[label_of[i] for i in ids] if label_of else None,
            )
        except ValueError as error:
            raise DataError(
                f"Cannot split {len(ids)} examples ({error}). Use more data (`data.limit`) or "
                "set `data.stratify: false`."
            ) from None

    label_of = dict(enumerate(labels)) if labels else None
    rest, test = cut(indices, test_fraction, label_of)
    train, validation = cut(rest, validation_fraction / (1.0 - test_fraction), label_of)
    return Splits(examples.take(train), examples.take(validation), examples.take(test))
