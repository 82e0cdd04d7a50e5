"""`tfnlp` command line: thin wrappers over the library.

Errors print one sentence and exit with status 1 (2 for usage errors); `--debug` shows the
traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _train(args) -> int:
    from tfnlp.config import load_pipeline
    from tfnlp.logs import configure_logging
    from tfnlp.training.trainer import train_pipeline

    config = load_pipeline(args.pipeline, args.set)
    run_dir = Path(args.run_dir or Path("runs") / config.name)
    configure_logging(run_dir / "train.log")
    result = train_pipeline(config, run_dir, export=not args.no_export)
    test = result.metrics["test"]
    print(f"test accuracy {test['accuracy']:.4f}  macro-F1 {test['macro_f1']:.4f}  "
          f"run {result.run_dir}" + (f"  export {result.export_path}" if result.export_path else ""))
    return 0


def _evaluate(args) -> int:
    from tfnlp.logs import configure_logging
    from tfnlp.training.trainer import evaluate_run

    configure_logging()
    metrics = evaluate_run(args.run_dir)
    print(json.dumps({"test": {k: metrics["test"][k] for k in ("accuracy", "macro_f1")},
                      "baseline": {"tfidf_logreg": {
                          k: metrics["baseline"]["tfidf_logreg"][k]
                          for k in ("accuracy", "macro_f1")}}}, indent=2))
    return 0


def _export(args) -> int:
    from tfnlp.training.trainer import export_run

    print(export_run(args.run_dir, args.export_dir, args.name, args.version))
    return 0


def _predict(args) -> int:
    from tfnlp.compression.tflite_predictor import TFLitePredictor, is_tflite_path
    from tfnlp.serving import load_exported, predict_texts

    if is_tflite_path(args.model_dir):  # a compressed .tflite (tfnlp compress)
        rows = TFLitePredictor(args.model_dir).predict_texts(args.texts)
    else:
        rows = predict_texts(load_exported(args.model_dir), args.texts)
    for row in rows:
        print(json.dumps(row, ensure_ascii=False))
    return 0


def _compress(args) -> int:
    from tfnlp.compression.pipeline import compress_run
    from tfnlp.config import load_pipeline
    from tfnlp.logs import configure_logging

    config = load_pipeline(args.pipeline, args.set)
    out = Path(args.out)
    configure_logging(out / "compress.log")
    result = compress_run(config, args.run_dir, out, source=str(args.pipeline))
    for name, entry in result["artifacts"].items():
        print(f"{name:24s} accuracy {entry['accuracy']:.4f}  gzip {entry['gzip_bytes']:>10,d} B  "
              f"batch-1 {entry['latency_ms_batch1']:.3f} ms")
    print(f"recommended: {result['recommended']}  report {out / 'compression_report.json'}")
    return 0


def _validate(args) -> int:
    from tfnlp.config import load_pipeline

    for pipeline in args.pipelines:
        config = load_pipeline(pipeline, args.set)
        print(f"{pipeline}: ok ({config.task}, model {config.model.name}, data {config.data.source})")
    return 0


def _version(value: str):
    return value if value == "auto" else int(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tfnlp", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True)

    def with_overrides(sub):
        sub.add_argument(
            "--set", action="extend", nargs="+", default=[], metavar="KEY.PATH=VALUE",
            help="override a pipeline value, e.g. --set train.epochs=3 (repeatable)",
        )

    train = commands.add_parser("train", help="train, evaluate and export a pipeline")
    train.add_argument("pipeline", help="pipeline YAML file")
    with_overrides(train)
    train.add_argument("--run-dir", help="run directory (default runs/<pipeline name>)")
    train.add_argument("--no-export", action="store_true", help="skip the SavedModel export")
    train.set_defaults(handler=_train)

    evaluate = commands.add_parser("evaluate", help="re-evaluate a run's best checkpoint")
    evaluate.add_argument("run_dir")
    evaluate.set_defaults(handler=_evaluate)

    export = commands.add_parser("export", help="export a run's best checkpoint for TF-Serving")
    export.add_argument("run_dir")
    export.add_argument("--export-dir", help="export root (default: the pipeline's export.dir)")
    export.add_argument("--name", help="model name (default: export.name or the pipeline name)")
    export.add_argument("--version", type=_version, help="'auto' or an integer")
    export.set_defaults(handler=_export)

    predict = commands.add_parser("predict", help="classify texts with an exported SavedModel")
    predict.add_argument("model_dir", help="saved_models/<name> (newest version) or a version, "
                         "or a compressed .tflite (or its directory)")
    predict.add_argument("texts", nargs="+", metavar="TEXT")
    predict.set_defaults(handler=_predict)

    compress = commands.add_parser(
        "compress", help="prune, quantize and cluster a trained run; measure every artifact")
    compress.add_argument("pipeline", help="pipeline YAML file (its compression: section)")
    compress.add_argument("--from", dest="run_dir", required=True, metavar="RUN_DIR",
                          help="the trained run directory (runs/<name>)")
    with_overrides(compress)
    compress.add_argument("--out", required=True, metavar="DIR",
                          help="where the artifacts and compression_report.json go")
    compress.set_defaults(handler=_compress)

    validate = commands.add_parser("validate", help="check pipeline files without training")
    validate.add_argument("pipelines", nargs="+", metavar="PIPELINE")
    with_overrides(validate)
    validate.set_defaults(handler=_validate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("tfnlp: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # the CLI's one place that turns errors into messages
        if args.debug:
            raise
        message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        print(f"tfnlp: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
