"""`tfnlp serve-check`: every serving check on an existing export, as a pass/fail table.

The model itself runs only in fresh processes that never import tfnlp (and, for portable
exports, where importing tensorflow-text is made to fail), so what passes here is what a
server with nothing but TensorFlow (+ tensorflow-text) gets.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from tfnlp.export.classification import (
    CLASSIFY_INPUTS,
    CLASSIFY_METHOD_NAME,
    CLASSIFY_SIGNATURE,
    SERVING_SIGNATURE,
)
from tfnlp.export.fresh_process import TOLERANCE, CheckResult, run_quietly, tail
from tfnlp.export.generation import (
    GENERATE_SIGNATURE,
    GENERATE_WITH_OPTIONS_SIGNATURE,
    GENERATED,
)
from tfnlp.export.model_config import MODELS_CONFIG, parse_models_config
from tfnlp.export.reference import read_reference
from tfnlp.export.verify_generator import check_generator_fresh_process
from tfnlp.export.versions import latest_version

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


def saved_model_cli_command(portable: bool) -> list[str]:
    """The `saved_model_cli` to run: the installed one for portable exports, else with text ops."""
    if portable:
        installed = Path(sys.executable).parent / "saved_model_cli"
        return [shutil.which("saved_model_cli") or str(installed)]
    return [sys.executable, "-c", SAVED_MODEL_CLI_WITH_TEXT_OPS]


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


# What each kind of export must serve: signature -> (inputs, outputs at least, method name).
EXPECTED_SIGNATURES = {
    "classifier": {
        SERVING_SIGNATURE: ({"text"}, {"probabilities", "label_id", "label"}, None),
        CLASSIFY_SIGNATURE: ({CLASSIFY_INPUTS}, {"classes", "scores"}, CLASSIFY_METHOD_NAME),
    },
    "generator": {
        SERVING_SIGNATURE: ({"text"}, {"probabilities"}, None),
        GENERATE_SIGNATURE: ({"prompt", "max_tokens", "temperature"}, GENERATED, None),
        GENERATE_WITH_OPTIONS_SIGNATURE: (
            {"prompt", "max_tokens", "temperature", "top_k", "top_p", "seed"}, GENERATED, None),
    },
}


def check_signatures(export: Path, kind: str = "classifier") -> CheckResult:
    """Every signature the kind of export promises, with its inputs (each at least `[batch]`,
    as TF-Serving's batching requires), outputs and method name."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel.FromString((export / "saved_model.pb").read_bytes())
    signatures = saved_model.meta_graphs[0].signature_def
    problems = []
    for name, (inputs, outputs, method) in EXPECTED_SIGNATURES[kind].items():
        found = signatures.get(name)
        if found is None:
            problems.append(f"no {name} signature")
            continue
        if set(found.inputs) != inputs or not outputs <= set(found.outputs):
            problems.append(f"{name} must map {sorted(inputs)} to {sorted(outputs)}")
        scalars = sorted(key for key, spec in found.inputs.items()
                         if spec.tensor_shape.unknown_rank or not spec.tensor_shape.dim)
        if scalars:
            # TF-Serving's --enable_batching refuses the whole model then.
            problems.append(f"{name} takes scalar inputs {scalars}: batching needs [batch]")
        if method is not None and found.method_name != method:
            problems.append(f"{name} method is {found.method_name!r}")
    described = ", ".join(name + (f" ({method})" if method else "")
                          for name, (_, _, method) in EXPECTED_SIGNATURES[kind].items())
    return CheckResult("signatures", not problems, "; ".join(problems) or described)


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
    result = run_quietly([sys.executable, "-c", FRESH_PROCESS_CHECK, str(export),
                   "portable" if portable else "text", str(BATCH_SIZE)], stdin=json.dumps(texts))
    name = "fresh process" + (" without tensorflow_text" if portable else "")
    if result.returncode != 0:
        return [CheckResult(name, False, tail(result.stderr))]
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


def check_saved_model_cli(export: Path, portable: bool,
                          kind: str = "classifier") -> list[CheckResult]:
    """`saved_model_cli show --all` and `saved_model_cli run --input_exprs` succeed."""
    cli = saved_model_cli_command(portable)
    show = run_quietly(cli + ["show", "--all", "--dir", str(export)])
    show_ok = show.returncode == 0 and all(
        name in show.stdout and (method is None or method in show.stdout)
        for name, (_, _, method) in EXPECTED_SIGNATURES[kind].items())
    run = run_quietly(cli + ["run", "--dir", str(export), "--tag_set", "serve", "--signature_def",
                      SERVING_SIGNATURE, "--input_exprs", "text=['what a lovely day', '']"])
    run_ok = run.returncode == 0 and "probabilities" in run.stdout
    return [
        CheckResult("saved_model_cli show", show_ok,
                    "--all lists every signature" if show_ok else tail(show.stderr)),
        CheckResult("saved_model_cli run", run_ok,
                    "--input_exprs ran serving_default" if run_ok else tail(run.stderr)),
    ]


def serve_check(model_path: str | Path) -> list[CheckResult]:
    """Runs every serving check on `saved_models/<model>` (newest version) or a version dir.

    Returns:
        One `CheckResult` per check, in table order.

    Raises:
        FileNotFoundError: no export at `model_path`.
    """
    export = latest_version(model_path).resolve()
    reference = read_reference(export)
    # Exports made before the kind was recorded are classifiers.
    kind = (reference or {}).get("kind", "classifier")
    results = [check_layout(export), check_models_config(export),
               check_signatures(export, kind)]
    if reference is None:
        results.append(CheckResult("reference outputs", False,
                                   "assets.extra/tfnlp_reference.json is missing; re-export"))
        return results
    portable = bool(reference.get("portable"))
    results.append(check_op_portability(export, portable))
    fresh_process = {"classifier": check_fresh_process,
                     "generator": check_generator_fresh_process}[kind]
    results += fresh_process(export, reference)
    results += check_saved_model_cli(export, portable, kind)
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
