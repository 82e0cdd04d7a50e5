"""`generate_ids`: the decoding loop over any model with `start` / `step` (a scripted stub
here; the real models are in tests/language_model/test_models_and_generation.py)."""

import numpy as np
import pytest

from tfnlp.backend import tf
from tfnlp.models.decoding import check_decoding_options, generate_ids
from tfnlp.models.samplers import GreedySampler, RandomSampler
from tfnlp.preprocessing.lm_tokenizer import EOS_ID, PAD_ID, UNK_ID

VOCAB = 12
RUNNER_UP = 3


class ScriptedModel:
    """Peaks at `script[:, t]` at step t (greedy decoding reads the script), then `RUNNER_UP`.

    The loop asks for the logits after its last token too: scripts run one step longer.
    """

    def __init__(self, script):
        self.script = tf.constant(script, tf.int32)  # (B, T)

    def _logits(self, t):
        return tf.one_hot(self.script[:, t], VOCAB) * 10.0 + tf.one_hot(RUNNER_UP, VOCAB) * 5.0

    def start(self, prompt_ids, max_tokens):
        return self._logits(0), tf.constant(0)

    def step(self, token, t):
        return self._logits(t + 1), t + 1


class UniformModel:
    def start(self, prompt_ids, max_tokens):
        return tf.zeros([prompt_ids.nrows(), VOCAB]), ()

    def step(self, token, state):
        return tf.zeros([tf.shape(token)[0], VOCAB]), state


PROMPTS = tf.ragged.constant([[EOS_ID, 5], [EOS_ID]], dtype=tf.int32)


def test_greedy_follows_the_model_stops_at_eos_and_pads_after():
    model = ScriptedModel([[4, 5, EOS_ID, 6, 7, 8], [7, 8, 9, 10, EOS_ID, 4]])
    ids = generate_ids(model, PROMPTS, 6, GreedySampler())
    assert ids.numpy().tolist() == [[4, 5, EOS_ID, PAD_ID, PAD_ID], [7, 8, 9, 10, EOS_ID]]
    assert generate_ids(model, PROMPTS, 3, GreedySampler()).numpy().tolist() == [
        [4, 5, EOS_ID],
        [7, 8, 9],
    ]
    assert generate_ids(model, PROMPTS, 0, GreedySampler()).shape == (2, 0)


def test_padding_and_unknown_are_never_generated():
    # The script asks for [PAD] and [UNK]; the loop masks them, so greedy picks the runner-up.
    model = ScriptedModel([[PAD_ID, UNK_ID, 4, 5]] * 2)
    ids = generate_ids(model, PROMPTS, 3, GreedySampler()).numpy()
    assert ids.tolist() == [[RUNNER_UP, RUNNER_UP, 4]] * 2
    ids = generate_ids(UniformModel(), tf.ragged.constant([[EOS_ID]] * 256), 1, RandomSampler())
    assert PAD_ID not in ids.numpy() and UNK_ID not in ids.numpy()


def test_the_same_seed_gives_the_same_ids_in_graph_and_eagerly():
    prompts = tf.ragged.constant([[EOS_ID]] * 16)
    options = {"temperature": 1.0, "top_k": 0, "top_p": 1.0}
    a = generate_ids(UniformModel(), prompts, 8, options, seed=3).numpy()
    traced = tf.function(
        lambda seed: generate_ids(
            UniformModel(),
            prompts,
            tf.constant(8),
            {"temperature": tf.constant(1.0), "top_k": tf.constant(0), "top_p": tf.constant(1.0)},
            seed,
        )
    )
    np.testing.assert_array_equal(a, traced(tf.constant(3, tf.int64)).numpy())
    assert not np.array_equal(a, generate_ids(UniformModel(), prompts, 8, options, seed=4))


@pytest.mark.parametrize(
    "options, message",
    [
        (
            (-1, 1.0, 0, 1.0),
            "`max_tokens` must be a non-negative integer. Received: max_tokens=-1.",
        ),
        ((5, -0.5, 0, 1.0), "`temperature` must be 0 (greedy) or positive."),
        ((5, 1.0, -1, 1.0), "`top_k` must be 0 (off) or a positive integer. Received: top_k=-1."),
        ((5, 1.0, 0, 0.0), "`top_p` must be in (0, 1] (1 is off). Received: top_p=0.0."),
    ],
)
def test_check_decoding_options_names_the_bad_option(options, message):
    with pytest.raises(ValueError) as raised:
        check_decoding_options(*options)
    assert message in str(raised.value)
    check_decoding_options(0, 0.0, 0, 1.0)
