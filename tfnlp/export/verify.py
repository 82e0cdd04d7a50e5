"""`tfnlp serve-check`: every serving check on an existing export, as a pass/fail table.

The model itself runs only in fresh processes that never import tfnlp (and, for portable
exports, where importing tensorflow-text is made to fail), so what passes here is what a
server with nothing but TensorFlow (+ tensorflow-text) gets.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tfnlp.export.model_config import MODELS_CONFIG, parse_models_config
from tfnlp.export.reference import read_reference
from tfnlp.export.saved_model import (
    CLASSIFY_INPUTS,
    CLASSIFY_METHOD_NAME,
    CLASSIFY_SIGNATURE,
    SERVING_SIGNATURE,
    latest_version,
)

# float32 softmax outputs of the same graph and weights: anything above this is a real skew.
TOLERANCE = 1e-5
BATCH_SIZE = 1000

# Runs in a fresh interpreter: argv = export dir, "portable" or "text", the batch size; the
# reference texts come as JSON on stdin (a 100 kB text is too long for an argument).
# No tfnlp; for portable exports `import tensorflow_text` raises ImportError first.
FRESH_PROCESS_CHECK = r"""
import json, sys
if sys.argv[2] == "portable":
    sys.modules["tensorflow_text"] = None  # any `import tensorflow_text` now fails
else:
    import tensorflow_text  # noqa: F401  (registers the text ops, as TF-Serving links them)
import tensorflow as tf

export, texts = sys.argv[1], json.loads(sys.stdin.read())
loaded = tf.saved_model.load(export)
serve = loaded.signatures["serving_default"]
out = serve(text=tf.constant(texts))
batch = serve(text=tf.constant([f"text number {i} :)" for i in range(int(sys.argv[3]))]))
long_text = " ".join(["good"] * 5000)
truncated = serve(text=tf.constant([long_text, " ".join(["good"] * 1000)]))
examples = [tf.train.Example(features=tf.train.Features(feature={"text": tf.train.Feature(
    bytes_list=tf.train.BytesList(value=[t.encode()]))})).SerializeToString() for t in texts]
classify = loaded.signatures["classify"](inputs=tf.constant(examples))
warmup = []
try:
    from tensorflow_serving.apis import prediction_log_pb2
    path = export + "/assets.extra/tf_serving_warmup_requests"
    for record in tf.data.TFRecordDataset(path):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        kind = log.WhichOneof("log_type")
        if kind == "predict_log":
            request = log.predict_log.request
            inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
            result = loaded.signatures[request.model_spec.signature_name](**inputs)
            warmup.append([kind, int(result["probabilities"].shape[0])])
        elif kind == "classify_log":
            request = log.classify_log.request
            serialized = [e.SerializeToString() for e in request.input.example_list.examples]
            result = loaded.signatures[request.model_spec.signature_name](
                inputs=tf.constant(serialized))
            warmup.append([kind, int(result["scores"].shape[0])])
except Exception as error:  # reported, not raised: the other checks still count
    warmup.append(["error", repr(error)])
print(json.dumps({
    "tfnlp_imported": "tfnlp" in sys.modules,
    "probabilities": out["probabilities"].numpy().tolist(),
    "label": [l.decode() for l in out["label"].numpy()],
    "batch_shape": batch["probabilities"].shape.as_list(),
    "truncated": truncated["probabilities"].numpy().tolist(),
    "classify_scores": classify["scores"].numpy().tolist(),
    "classify_classes": [[c.decode() for c in row] for row in classify["classes"].numpy()],
    "label_names": [l.decode() for l in loaded.label_names.numpy()],
    "warmup": warmup,
}))
"""

# `saved_model_cli` with tensorflow-text's ops registered first (stock TF-Serving links them;
# the CLI does not).
SAVED_MODEL_CLI_WITH_TEXT_OPS = (
    "import sys, tensorflow_text; sys.argv[0] = 'saved_model_cli'; "
    "from tensorflow.python.tools.saved_model_cli import main; main()"
)


@dataclass
class CheckResult:
    """One row of the serve-check table."""

    name: str
    passed: bool
    detail: str


def saved_model_cli_command(portable: bool) -> list[str]:
    """The `saved_model_cli` to run: the installed one for portable exports, else with text ops."""
    if portable:
        installed = Path(sys.executable).parent / "saved_model_cli"
        return [shutil.which("saved_model_cli") or str(installed)]
    return [sys.executable, "-c", SAVED_MODEL_CLI_WITH_TEXT_OPS]


def _quiet_env() -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("PYTHONPATH", None)  # the fresh process must not even be able to import tfnlp
    return env


def _run(command: list[str], timeout: int = 600, stdin: str | None = None):
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          env=_quiet_env(), input=stdin)


def _tail(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def check_layout(export: Path) -> CheckResult:
    """An integer version directory with saved_model.pb and variables, no leftovers visible."""
    problems = []
    if not export.name.isdigit():
        problems.append(f"version directory {export.name!r} is not an integer")
    if not (export / "saved_model.pb").is_file():
        problems.append("no saved_model.pb")
    if not (export / "variables" / "variables.index").is_file():
        problems.append("no variables/variables.index")
    return CheckResult("layout", not problems,
                       "; ".join(problems) or f"{export.parent.name}/{export.name}")


def check_models_config(export: Path) -> CheckResult:
    """`<root>/models.config` parses as TF-Serving's proto and lists this model's base path."""
    path = export.parent.parent / MODELS_CONFIG
    if not path.is_file():
        return CheckResult("models.config", False, f"{path} is missing; re-export the model")
    try:
        models = parse_models_config(path)
    except Exception as error:  # noqa: BLE001  (any parse failure is a failed check)
        return CheckResult("models.config", False, f"does not parse: {error}")
    base = models.get(export.parent.name)
    ok = base is not None and Path(base) == export.parent.resolve()
    return CheckResult("models.config", ok, f"{len(models)} model(s); this one: {base}")


def check_signatures(export: Path) -> CheckResult:
    """`serving_default` (strings → dense outputs) and `classify` in Classify API form."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel.FromString((export / "saved_model.pb").read_bytes())
    signatures = saved_model.meta_graphs[0].signature_def
    problems = []
    serve = signatures.get(SERVING_SIGNATURE)
    if serve is None or set(serve.inputs) != {"text"} or not {
            "probabilities", "label_id", "label"} <= set(serve.outputs):
        problems.append("serving_default must map `text` to probabilities, label_id, label")
    classify = signatures.get(CLASSIFY_SIGNATURE)
    if classify is None:
        problems.append("no classify signature")
    else:
        if classify.method_name != CLASSIFY_METHOD_NAME:
            problems.append(f"classify method is {classify.method_name!r}")
        if set(classify.inputs) != {CLASSIFY_INPUTS} or set(classify.outputs) != {
                "classes", "scores"}:
            problems.append("classify must map `inputs` to classes and scores")
    return CheckResult("signatures", not problems, "; ".join(problems) or
                       f"{SERVING_SIGNATURE}, {CLASSIFY_SIGNATURE} ({CLASSIFY_METHOD_NAME})")


def check_op_portability(export: Path, portable: bool) -> CheckResult:
    """Every op is TensorFlow core or tensorflow-text (core only for portable exports)."""
    from tfnlp.export.ops import TEXT, check_ops

    report = check_ops(export)
    ok = report.portable if portable else report.servable
    text_ops = report.by_provider(TEXT)
    detail = (f"{len(report.ops)} ops; tensorflow-text: {', '.join(text_ops) or 'none'}"
              + ("" if report.servable else f"; unknown: {report.by_provider('unknown')}"))
    return CheckResult("ops (portable)" if portable else "ops", ok, detail)


def check_fresh_process(export: Path, reference: dict) -> list[CheckResult]:
    """Loads the export in a fresh process (no tfnlp) and checks what it answers."""
    portable = bool(reference.get("portable"))
    texts = reference["texts"]
    result = _run([sys.executable, "-c", FRESH_PROCESS_CHECK, str(export),
                   "portable" if portable else "text", str(BATCH_SIZE)], stdin=json.dumps(texts))
    name = "fresh process" + (" without tensorflow_text" if portable else "")
    if result.returncode != 0:
        return [CheckResult(name, False, _tail(result.stderr))]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    import numpy as np

    expected = np.asarray(reference["probabilities"], dtype=np.float32)
    probabilities = np.asarray(served["probabilities"], dtype=np.float32)
    difference = (float(np.max(np.abs(probabilities - expected)))
                  if probabilities.shape == expected.shape else float("inf"))
    results = [CheckResult(
        name, difference <= TOLERANCE and not served["tfnlp_imported"],
        f"{len(texts)} texts (English, Chinese, emoji, empty, 100 kB): max |Δp| = "
        f"{difference:.1e} vs the training-time model",
    )]
    results.append(CheckResult(
        "batch of 1,000", served["batch_shape"] == [BATCH_SIZE, expected.shape[1]],
        f"probabilities shape {served['batch_shape']}"))
    truncated = np.asarray(served["truncated"], dtype=np.float32)
    results.append(CheckResult(
        "truncation", bool(np.allclose(truncated[0], truncated[1], atol=TOLERANCE)),
        "5,000 and 1,000 words give the same answer (both cut to the model's max length)"))
    scores = np.asarray(served["classify_scores"], dtype=np.float32)
    classify_ok = (scores.shape == probabilities.shape
                   and bool(np.allclose(scores, probabilities, atol=TOLERANCE))
                   and all(row == served["label_names"] for row in served["classify_classes"]))
    results.append(CheckResult("classify", classify_ok,
                               "tf.Example inputs give serving_default's probabilities"))
    warmup = served["warmup"]
    warmup_ok = bool(warmup) and all(kind != "error" and count > 0 for kind, count in warmup)
    results.append(CheckResult(
        "warm-up requests", warmup_ok,
        ", ".join(f"{kind}: {count}" for kind, count in warmup) or "no warm-up file"))
    return results


def check_saved_model_cli(export: Path, portable: bool) -> list[CheckResult]:
    """`saved_model_cli show --all` and `saved_model_cli run --input_exprs` succeed."""
    cli = saved_model_cli_command(portable)
    show = _run(cli + ["show", "--all", "--dir", str(export)])
    show_ok = show.returncode == 0 and "serving_default" in show.stdout and \
        CLASSIFY_METHOD_NAME in show.stdout
    run = _run(cli + ["run", "--dir", str(export), "--tag_set", "serve", "--signature_def",
                      SERVING_SIGNATURE, "--input_exprs", "text=['what a lovely day', '']"])
    run_ok = run.returncode == 0 and "probabilities" in run.stdout
    return [
        CheckResult("saved_model_cli show", show_ok,
                    "--all lists both signatures" if show_ok else _tail(show.stderr)),
        CheckResult("saved_model_cli run", run_ok,
                    "--input_exprs ran serving_default" if run_ok else _tail(run.stderr)),
    ]


def serve_check(model_path: str | Path) -> list[CheckResult]:
    """Runs every serving check on `saved_models/<model>` (newest version) or a version dir.

    Returns:
        One `CheckResult` per check, in table order.

    Raises:
        FileNotFoundError: no export at `model_path`.
    """
    export = latest_version(model_path).resolve()
    results = [check_layout(export), check_models_config(export), check_signatures(export)]
    reference = read_reference(export)
    if reference is None:
        results.append(CheckResult("reference outputs", False,
                                   "assets.extra/tfnlp_reference.json is missing; re-export"))
        return results
    portable = bool(reference.get("portable"))
    results.append(check_op_portability(export, portable))
    results += check_fresh_process(export, reference)
    results += check_saved_model_cli(export, portable)
    return results


def format_table(results: list[CheckResult]) -> str:
    """The results as an aligned text table with a PASS/FAIL column."""
    width = max(len(r.name) for r in results)
    rows = [f"{'check':<{width}}  result  detail", f"{'-' * width}  ------  ------"]
    rows += [f"{r.name:<{width}}  {'PASS' if r.passed else 'FAIL':<6}  {r.detail}"
             for r in results]
    passed = sum(r.passed for r in results)
    rows.append(f"{passed}/{len(results)} checks passed")
    return "\n".join(rows)
