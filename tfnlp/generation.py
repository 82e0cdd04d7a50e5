"""`tfnlp generate`: continue prompts with a language-model run (in-process) or its export."""

from __future__ import annotations

from pathlib import Path

from tfnlp.backend import tf
from tfnlp.export.generation import GENERATE_WITH_OPTIONS_SIGNATURE, per_prompt

# `check_decoding_options` is re-exported: `tfnlp generate` validates its flags with it.
from tfnlp.models.decoding import check_decoding_options

__all__ = ["check_decoding_options", "load_generator"]


def load_generator(run_or_export: str | Path):
    """A callable `(prompts, max_tokens, temperature, top_k, top_p, seed) -> list[str]`.

    Args:
        run_or_export: a `task: language_model` run directory (the best checkpoint is loaded
            and decoded in this process) or an export (`saved_models/<name>` or a version
            directory; its `generate_with_options` signature runs).

    Raises:
        FileNotFoundError: neither a run directory nor an export.
    """
    path = Path(run_or_export)
    if (path / "config.yaml").is_file():
        from tfnlp.training.trained import load_trained

        trained = load_trained(path)
        module = trained.task.serving_module(trained.model, trained.preprocessor)
        if GENERATE_WITH_OPTIONS_SIGNATURE not in module.signatures():
            raise ValueError(
                f"{path} is a `task: {trained.config.task}` run; `tfnlp generate` needs a "
                "`task: language_model` run or export."
            )

        def function(prompt, **options):
            # A closure over `module`: its tf.functions hold only a weak reference to it.
            return module.generate_with_options(prompt, **options)
    else:
        from tfnlp.serving import load_exported

        loaded = load_exported(path)
        if GENERATE_WITH_OPTIONS_SIGNATURE not in loaded.signatures:
            raise ValueError(
                f"{path} has no `{GENERATE_WITH_OPTIONS_SIGNATURE}` signature; it is not a "
                "language-model export (train one with `task: language_model`)."
            )
        signature = loaded.signatures[GENERATE_WITH_OPTIONS_SIGNATURE]

        def function(prompt, **options):
            return signature(prompt=prompt, **options)

    def generate(prompts, max_tokens=100, temperature=1.0, top_k=0, top_p=1.0, seed=0):
        check_decoding_options(max_tokens, temperature, top_k, top_p)
        prompts = list(prompts)
        options = per_prompt(len(prompts), max_tokens=max_tokens, temperature=temperature,
                             top_k=top_k, top_p=top_p, seed=seed)
        outputs = function(tf.constant(prompts, tf.string), **options)
        return [text.decode("utf-8", errors="replace") for text in outputs["text"].numpy()]

    return generate
