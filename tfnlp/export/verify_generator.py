"""serve-check for language-model exports: the generate signatures in a fresh process.

The process imports TensorFlow and tensorflow-text only (as TF-Serving links them), runs the
next-token signature on the check prompts, the seeded `generate_with_options` twice, the plain
`generate`, and replays the warm-up requests. Its answers are compared with the reference the
training-time module recorded at export, which is what `tfnlp generate RUN_DIR` computes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from tfnlp.export.fresh_process import TOLERANCE, CheckResult, run_quietly, tail

# argv = export dir; stdin = the reference's prompts and options as JSON.
FRESH_PROCESS_GENERATOR_CHECK = r"""
import json, sys
import tensorflow_text  # noqa: F401  (registers the text ops, as TF-Serving links them)
import tensorflow as tf

export, given = sys.argv[1], json.loads(sys.stdin.read())
loaded = tf.saved_model.load(export)
prompts, o, n = tf.constant(given["texts"]), given["options"], len(given["texts"])
probabilities = loaded.signatures["serving_default"](text=prompts)["probabilities"]
dtypes = dict(max_tokens=tf.int32, temperature=tf.float32, top_k=tf.int32, top_p=tf.float32,
              seed=tf.int64)
options = {k: tf.fill([n], tf.constant(o[k], dtypes[k])) for k in dtypes}  # [batch] each
first = loaded.signatures["generate_with_options"](prompt=prompts, **options)
second = loaded.signatures["generate_with_options"](prompt=prompts, **options)
# The first prompt alone: a row's text must not depend on the rest of the batch.
alone = loaded.signatures["generate_with_options"](
    prompt=prompts[:1], **{k: v[:1] for k, v in options.items()})
plain = loaded.signatures["generate"](prompt=prompts, max_tokens=tf.fill([n], 5),
                                      temperature=tf.ones([n]))
warmup = []
try:
    from tensorflow_serving.apis import prediction_log_pb2
    path = export + "/assets.extra/tf_serving_warmup_requests"
    for record in tf.data.TFRecordDataset(path):
        request = prediction_log_pb2.PredictionLog.FromString(record.numpy()).predict_log.request
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        result = loaded.signatures[request.model_spec.signature_name](**inputs)
        warmup.append([request.model_spec.signature_name,
                       int(next(iter(result.values())).shape[0])])
except Exception as error:  # reported, not raised: the other checks still count
    warmup.append(["error", repr(error)])
print(json.dumps({
    "tfnlp_imported": "tfnlp" in sys.modules,
    "probabilities": probabilities.numpy().tolist(),
    "generated": [t.decode("utf-8", "replace") for t in first["text"].numpy()],
    "same_seed_same_ids": first["token_ids"].numpy().tolist()
                          == second["token_ids"].numpy().tolist(),
    "alone": alone["text"].numpy()[0].decode("utf-8", "replace"),
    "plain_tokens": plain["num_tokens"].numpy().tolist(),
    "warmup": warmup,
}))
"""


def check_generator_fresh_process(export: Path, reference: dict) -> list[CheckResult]:
    """Loads a language-model export in a fresh process (no tfnlp) and checks its answers."""
    given = {"texts": reference["texts"], "options": reference["options"]}
    result = run_quietly([sys.executable, "-c", FRESH_PROCESS_GENERATOR_CHECK, str(export)],
                         stdin=json.dumps(given))
    if result.returncode != 0:
        return [CheckResult("fresh process", False, tail(result.stderr))]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    expected = np.asarray(reference["probabilities"], dtype=np.float32)
    probabilities = np.asarray(served["probabilities"], dtype=np.float32)
    difference = (float(np.max(np.abs(probabilities - expected)))
                  if probabilities.shape == expected.shape else float("inf"))
    o = reference["options"]
    plain = served["plain_tokens"]
    warmup = served["warmup"]
    warmup_ok = bool(warmup) and all(kind != "error" and count > 0 for kind, count in warmup)
    return [
        CheckResult("fresh process", difference <= TOLERANCE and not served["tfnlp_imported"],
                    f"{len(expected)} prompts: next-token max |Δp| = {difference:.1e} vs the "
                    "training-time model"),
        CheckResult("same seed, same text",
                    served["same_seed_same_ids"] and served["generated"] == reference["generated"]
                    and served["alone"] == reference["generated"][0],
                    f"seed {o['seed']}, {o['max_tokens']} tokens, temperature {o['temperature']}, "
                    f"top_p {o['top_p']}: the text `tfnlp generate` wrote at export, in a batch "
                    "and alone"),
        CheckResult("generate", len(plain) == len(expected) and all(0 <= n <= 5 for n in plain),
                    f"unseeded sampling, tokens per prompt {plain}"),
        CheckResult("warm-up requests", warmup_ok,
                    ", ".join(f"{kind}: {count}" for kind, count in warmup) or "no warm-up file"),
    ]
