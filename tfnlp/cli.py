"""`tfnlp` command line: thin wrappers over the library.

Errors print one sentence and exit with a status a scheduler can act on
(`tfnlp.exit_codes`): 1 for a permanent failure, 2 for usage errors, 128 and above for a
retryable one (143: preempted by SIGTERM, after the backup); `--debug` adds the traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _train(args) -> int:
    import logging
    import os

    from tfnlp.config import load_pipeline
    from tfnlp.evaluation.side_process import prestart
    from tfnlp.training.vertex import output_locations

    # Vertex AI's AIP_CHECKPOINT_DIR / AIP_MODEL_DIR, where --run-dir / export.dir are not set.
    run_dir, overrides, notes = output_locations(args.run_dir, args.set)
    config = load_pipeline(args.pipeline, overrides)
    if not (os.environ.get("TF_CONFIG") or os.environ.get("SLURM_STEP_NODELIST")):
        prestart()  # a lone process: ready by the run's end (in a cluster, only the chief uses it)

    from tfnlp.atomic import is_remote
    from tfnlp.logs import configure_logging
    from tfnlp.tasks import get_task
    from tfnlp.training.run import train_pipeline
    from tfnlp.training.strategy import is_chief_task

    run_dir = run_dir or str(Path("runs") / config.name)
    configure_logging()  # stderr, for the line saying where TF_CONFIG came from (Slurm, ...)
    # In a cluster only the chief keeps train.log; the other tasks log to stderr only. A
    # remote run directory's train.log is kept by its local copy (`remote_run`).
    local_chief = is_chief_task() and not is_remote(run_dir)
    configure_logging(Path(run_dir) / "train.log" if local_chief else None)
    for note in notes:
        logging.getLogger("tfnlp").info("%s", note)
    result = train_pipeline(config, run_dir, export=not args.no_export)
    if not result.metrics:  # a non-chief worker: the chief reports
        return 0
    print(f"{get_task(config).headline(result.metrics)}  run {result.run_dir}"
          + (f"  export {result.export_path}" if result.export_path else ""))
    return 0


def _evaluate(args) -> int:
    from tfnlp.logs import configure_logging
    from tfnlp.tasks import get_task
    from tfnlp.training.remote_run import working_copy
    from tfnlp.training.run_directory import RunDirectory
    from tfnlp.training.trained import evaluate_run

    configure_logging()
    with working_copy(args.run_dir, "evaluate") as run:
        metrics = evaluate_run(run.local)
        task = get_task(RunDirectory(run.local).read_config())
    print(json.dumps(task.summary(metrics), indent=2))
    return 0


def _export(args) -> int:
    from tfnlp.training.remote_run import working_copy
    from tfnlp.training.trained import export_run

    if args.check and _is_export(args.run_dir):
        return _check_ops(args.run_dir)
    with working_copy(args.run_dir, "export") as run:
        path = export_run(run.local, args.export_dir, args.name, args.version)
    print(path)
    return _check_ops(path) if args.check else 0


def _ensemble(args) -> int:
    import contextlib

    from tfnlp.ensemble import ensemble_runs, headline
    from tfnlp.logs import configure_logging
    from tfnlp.training.remote_run import working_copy

    configure_logging()
    with contextlib.ExitStack() as stack:  # remote runs are read through local copies
        runs = [stack.enter_context(working_copy(run_dir, "ensemble")).local
                for run_dir in args.run_dirs]
        result = ensemble_runs(runs, args.out, weighting=args.weights,
                               export_dir=args.export_dir, out_dir=args.run_dir)
    print(f"{headline(result.metrics)}  metrics {result.out_dir / 'metrics.json'}  "
          f"export {result.export_path}")
    return 0


def _is_export(path: str) -> bool:
    from tfnlp.export import existing_versions

    return (Path(path) / "saved_model.pb").is_file() or bool(existing_versions(Path(path)))


def _check_ops(path) -> int:
    from tfnlp.export import latest_version
    from tfnlp.export.ops import check_ops

    report = check_ops(latest_version(path))
    print(report.summary())
    return 0 if report.servable else 1


def _serve_check(args) -> int:
    from tfnlp.export.verify import format_table, serve_check

    results = serve_check(args.model_dir)
    print(format_table(results))
    return 0 if all(result.passed for result in results) else 1


def _generate(args) -> int:
    import logging
    import random

    from tfnlp.generation import check_decoding_options, load_generator

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    check_decoding_options(args.max_tokens, args.temperature, args.top_k, args.top_p)
    seed = args.seed if args.seed is not None else random.randrange(2**62)
    generate = load_generator(args.run_or_export)
    (text,) = generate([args.prompt], max_tokens=args.max_tokens, temperature=args.temperature,
                       top_k=args.top_k, top_p=args.top_p, seed=seed)
    print(text)
    return 0


def _bench_lm(args) -> int:
    from tfnlp.bench.lm import run_lm_benchmark

    run_lm_benchmark(args.pipeline, args.out, previous=args.previous, overrides=args.set,
                     steps=args.steps, max_tokens=args.max_tokens,
                     batch_sizes=args.batch_sizes, policies=args.policies)
    return 0


def _predict(args) -> int:
    from tfnlp.prediction import load_predictor, predict_file

    if bool(args.texts) == bool(args.input):
        raise ValueError("`tfnlp predict` takes texts on the command line or `--input FILE` "
                         "(`-` for stdin), not both and not neither.")
    predictor = load_predictor(args.model_dir)
    if args.texts:
        for row in predictor.predict_texts(args.texts):
            print(json.dumps(row, ensure_ascii=False))
        return 0
    report = predict_file(
        predictor, args.input, args.output, input_format=args.input_format,
        output_format=args.format, text_column=args.text_column, batch_size=args.batch_size,
        on_bad_row=args.on_bad_row, progress=not args.quiet,
    )
    print(report.summary(), file=sys.stderr)
    return 0


def _compress(args) -> int:
    from tfnlp.compression.pipeline import compress_run
    from tfnlp.config import load_pipeline
    from tfnlp.logs import configure_logging
    from tfnlp.training.remote_run import working_copy

    config = load_pipeline(args.pipeline, args.set)
    out = Path(args.out)
    configure_logging(out / "compress.log")
    with working_copy(args.run_dir, "compress") as run:
        result = compress_run(config, run.local, out, source=str(args.pipeline))
    for name, entry in result["artifacts"].items():
        print(f"{name:24s} accuracy {entry['accuracy']:.4f}  gzip {entry['gzip_bytes']:>10,d} B  "
              f"batch-1 {entry['latency_ms_batch1']:.3f} ms")
    print(f"recommended: {result['recommended']}  report {out / 'compression_report.json'}")
    return 0


def _shard(args) -> int:
    from tfnlp.config.schema import DataConfig
    from tfnlp.data.loading import read_source
    from tfnlp.data.readers import read_rows
    from tfnlp.data.sharding import default_shard_name, write_shards
    from tfnlp.logs import configure_logging

    configure_logging()
    config = DataConfig(source=args.input, format=args.format, text_column=args.text_column,
                        label_column=args.label_column, weight_column=args.weight_column,
                        on_bad_row=args.on_bad_row)
    rows, report = read_source(config, read_rows)
    print(report.summary(), file=sys.stderr)
    shards = write_shards(rows, args.out, name=args.name or default_shard_name(args.input),
                          shards=args.shards, report=report)
    print(shards.summary())
    return 0


def _validate(args) -> int:
    from tfnlp.config import load_pipeline
    for pipeline in args.pipelines:
        config = load_pipeline(pipeline, args.set)
        print(f"{pipeline}: ok ({config.task}, model {config.model.name}, "
              f"data {config.data.source})")
    return 0


def _bench_train(args) -> int:
    from tfnlp.bench.train import bench_train, summary_lines
    from tfnlp.config import load_pipeline
    from tfnlp.logs import configure_logging

    config = load_pipeline(args.pipeline, args.set)
    out = Path(args.out or Path("runs") / "bench" / config.name)
    configure_logging(out / "bench_train.log")
    report = bench_train(config, out, args.runs)
    print("\n".join(summary_lines(report)))
    print(f"wrote {out / 'bench_train.json'} and {out / 'bench_train.png'}")
    return 0


def _bench_preprocess(args) -> int:
    from tfnlp.bench.preprocess import bench_preprocess, summary_lines

    out = Path(args.out)
    report = bench_preprocess(out, repeat=args.repeat, limit=args.limit)
    print("\n".join(summary_lines(report)))
    print(f"wrote {out / 'bench_preprocess.json'} and {out / 'bench_preprocess.png'}")
    return 0


def _bench_vocabulary(args) -> int:
    from tfnlp.bench.vocabulary import bench_vocabulary, summary_lines
    from tfnlp.config import load_pipeline

    config = load_pipeline(args.pipeline, args.set)
    out = Path(args.out)
    report = bench_vocabulary(config, out, repeats=tuple(args.repeats))
    print("\n".join(summary_lines(report)))
    print(f"wrote {out / 'bench_vocabulary.json'} and {out / 'bench_vocabulary.png'}")
    return 0


def _bench_predict(args) -> int:
    from tfnlp.bench.predict import bench_predict, summary_lines

    out = Path(args.out)
    report = bench_predict(args.model_dir, out, limit=args.limit, batch_size=args.batch_size)
    print("\n".join(summary_lines(report)))
    print(f"wrote {out / 'bench_predict.json'} and {out / 'bench_predict.png'}")
    return 0


def _serve(args) -> int:
    from tfnlp.rest_server import serve

    if not Path(args.export_root).is_dir():
        raise FileNotFoundError(f"{args.export_root}: no export root here; export a model "
                                "with `tfnlp train` or `tfnlp export` first.")
    print(f"serving {args.export_root} at http://{args.host}:{args.port}/v1/models/<name> "
          "(a development endpoint: production uses tensorflow_model_server)", flush=True)
    serve(args.export_root, args.host, args.port, max_request_bytes=args.max_request_bytes,
          timeout_seconds=args.timeout)
    return 0


def _bench_serve(args) -> int:
    from tfnlp.bench.serve import bench_serve, summary_lines

    out = Path(args.out)
    report = bench_serve(args.export_root, args.model, out, requests=args.requests,
                         clients=args.clients, batch=args.batch)
    print("\n".join(summary_lines(report)))
    print(f"wrote {out / 'bench_serve.json'} and {out / 'bench_serve.png'}")
    return 0


def _bench_tflite(args) -> int:
    from tfnlp.bench.tflite import bench_tflite, summary_lines

    out = Path(args.out)
    report = bench_tflite(args.model_file, out, calls=args.calls)
    print("\n".join(summary_lines(report)))
    print(f"wrote {out / 'bench_tflite.json'} and {out / 'bench_tflite.png'}")
    return 0


def _launch(args) -> int:
    from tfnlp.config import load_pipeline
    from tfnlp.training.cluster import launch_cluster

    config = load_pipeline(args.pipeline, args.set)  # fail here, not in N processes
    if args.emit or args.out:
        return _emit_launch_file(args, config.name)
    from tfnlp.training.launch_files import ENGINE_OPTIONS

    engine_only = [flag for name, (_, flag) in ENGINE_OPTIONS.items()
                   if getattr(args, name) is not None]
    if engine_only:
        raise ValueError(f"`{engine_only[0]}` goes with `--emit tfjob|slurm|vertex`; without "
                         "--emit, `tfnlp launch` runs a local cluster.")
    strategy = "parameter_server" if args.ps else "multi_worker_mirrored"
    command = [sys.executable, "-m", "tfnlp", *(["--debug"] if args.debug else []), "train",
               args.pipeline,
               "--set", *args.set, f"distribute.strategy={strategy}"]
    if args.run_dir:
        command += ["--run-dir", args.run_dir]
    if args.no_export:
        command.append("--no-export")
    return launch_cluster(command, workers=args.workers, ps=args.ps, timeout=args.timeout)


def _emit_launch_file(args, name: str) -> int:
    from tfnlp.training.launch_files import LaunchRequest, emit

    if not args.emit or not args.out:
        raise ValueError("`--emit KIND` and `--out DIR` go together: e.g. `tfnlp launch --emit "
                         "tfjob PIPELINE --image IMAGE --out launch/`.")
    if args.timeout is not None:
        raise ValueError("`--timeout` is for a local cluster; with --emit, bound the job in "
                         "its engine (e.g. #SBATCH --time, runPolicy.activeDeadlineSeconds).")
    request = LaunchRequest(
        args.pipeline, name, workers=args.workers, ps=args.ps, overrides=tuple(args.set),
        run_dir=args.run_dir, export=not args.no_export, image=args.image,
        namespace=args.namespace, volume_claim=args.volume_claim,
        backoff_limit=args.backoff_limit, machine_type=args.machine_type, region=args.region,
    )
    written = emit(args.emit, request, args.out)
    print(f"wrote {written.path}")
    print(f"submit: {written.submit}")
    return 0


def _bench_distribute(args) -> int:
    from tfnlp.bench.distribute import run_distribute_benchmark

    run_distribute_benchmark(args.pipeline, args.set, args.out)
    return 0


def _bench_parallel(args) -> int:
    from tfnlp.bench.parallel import run_parallel_benchmark

    run_parallel_benchmark(args.pipeline, args.set, args.out)
    return 0


def _version(value: str):
    return value if value == "auto" else int(value)


def _with_overrides(sub) -> None:
    sub.add_argument(
        "--set", action="extend", nargs="+", default=[], metavar="KEY.PATH=VALUE",
        help="override a pipeline value, e.g. --set train.epochs=3 (repeatable)",
    )


def _add_run_commands(commands) -> None:
    """train, evaluate, export: a pipeline's run and its export."""
    train = commands.add_parser("train", help="train, evaluate and export a pipeline")
    train.add_argument("pipeline", help="pipeline YAML file")
    _with_overrides(train)
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
    export.add_argument(
        "--check", action="store_true",
        help="list the export's ops by runtime (core / tensorflow-text / unknown); exit 1 on "
             "unknown ops. Given an export (saved_models/<name>) instead of a run, only checks",
    )
    export.set_defaults(handler=_export)

    ensemble = commands.add_parser(
        "ensemble", help="export the average of finished classifier runs as one model")
    ensemble.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                          help="two or more classifier runs with the same labels and split")
    ensemble.add_argument("--out", required=True, metavar="NAME", help="the model name")
    ensemble.add_argument("--weights", choices=("equal", "validation"), default="equal",
                          help="equal, or proportional to each run's validation accuracy")
    ensemble.add_argument("--export-dir", help="export root (default: the first run's "
                                               "export.dir)")
    ensemble.add_argument("--run-dir", help="where metrics.json goes (default "
                                            "runs/ensembles/NAME)")
    ensemble.set_defaults(handler=_ensemble)


def _add_serving_commands(commands) -> None:
    """serve-check, predict, serve: using an export."""
    serve_check = commands.add_parser(
        "serve-check", help="run every TF-Serving check on an export; exit 0 only if all pass")
    serve_check.add_argument("model_dir", help="saved_models/<name> (newest version) or a version")
    serve_check.set_defaults(handler=_serve_check)

    predict = commands.add_parser(
        "predict", help="classify texts, or a whole file of them, with an export or a run")
    predict.add_argument("model_dir", help="saved_models/<name> (newest version) or a version, "
                         "a run directory, or a compressed .tflite (or its directory)")
    predict.add_argument("texts", nargs="*", metavar="TEXT")
    predict.add_argument("--input", metavar="FILE", help="a CSV, JSONL or text file of inputs "
                         "(any tf.io.gfile path), or - for stdin; one output row per input row")
    predict.add_argument("--output", metavar="FILE", help="where the rows go (default stdout)")
    predict.add_argument("--format", choices=("jsonl", "csv"), default="jsonl",
                         help="output format (default jsonl)")
    predict.add_argument("--input-format", choices=("auto", "csv", "jsonl", "lines"),
                         default="auto", help="input format (default: from the extension)")
    predict.add_argument("--text-column", default="text",
                         help="the CSV column or JSON key with the text (default text)")
    predict.add_argument("--batch-size", type=int, default=256, help="texts per model call")
    predict.add_argument("--on-bad-row", choices=("report", "error"), default="report",
                         help="a row without text: write an error row naming its line "
                              "(default) or stop there")
    predict.add_argument("--quiet", action="store_true", help="no progress bar")
    predict.set_defaults(handler=_predict)

    serve = commands.add_parser(
        "serve", help="a local TF-Serving-compatible REST endpoint (development and tests)")
    serve.add_argument("export_root", help="the export root, e.g. saved_models")
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default loopback)")
    serve.add_argument("--port", type=int, default=8501, help="port (default 8501)")
    serve.add_argument("--max-request-bytes", type=int, default=16 * 1024 * 1024,
                       help="larger bodies get 413 (default 16 MB)")
    serve.add_argument("--timeout", type=float, default=60.0,
                       help="seconds a request may run (default 60)")
    serve.set_defaults(handler=_serve)


def _add_pipeline_commands(commands) -> None:
    """launch, compress, shard, validate, generate."""
    launch = commands.add_parser(
        "launch", help="train a pipeline on a local multi-worker or parameter-server cluster, "
                       "or write the job file for Kubeflow (TFJob), Slurm or Vertex AI")
    launch.add_argument("pipeline", help="pipeline YAML file")
    launch.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    launch.add_argument("--ps", type=int, default=0,
                        help="parameter servers; 0 = multi-worker mirrored (default)")
    _with_overrides(launch)
    launch.add_argument("--run-dir", help="run directory (default runs/<pipeline name>)")
    launch.add_argument("--no-export", action="store_true", help="skip the SavedModel export")
    launch.add_argument("--timeout", type=float, help="stop the cluster after this many seconds")
    _add_emit_options(launch)
    launch.set_defaults(handler=_launch)

    compress = commands.add_parser(
        "compress", help="prune, quantize and cluster a trained run; measure every artifact")
    compress.add_argument("pipeline", help="pipeline YAML file (its compression: section)")
    compress.add_argument("--from", dest="run_dir", required=True, metavar="RUN_DIR",
                          help="the trained run directory (runs/<name>)")
    _with_overrides(compress)
    compress.add_argument("--out", required=True, metavar="DIR",
                          help="where the artifacts and compression_report.json go")
    compress.set_defaults(handler=_compress)

    shard = commands.add_parser(
        "shard", help="write any data source as N TFRecord shards (for FILE auto-sharding)")
    shard.add_argument("input", metavar="INPUT",
                       help="a data.source: tweets, a .csv/.jsonl/.tfrecord file, or a pattern")
    shard.add_argument("--out", required=True, metavar="DIR", help="the shards' directory")
    shard.add_argument("--shards", type=int, required=True, metavar="N", help="how many files")
    shard.add_argument("--name", help="the shards' name prefix (default: the input's name)")
    shard.add_argument("--format", default="auto", choices=["auto", "csv", "jsonl", "tfrecord"])
    shard.add_argument("--text-column", help="the text column (default text; tweets: text)")
    shard.add_argument("--label-column", help="the label column (default label)")
    shard.add_argument("--weight-column", help="an optional weight column, checked as a number")
    shard.add_argument("--on-bad-row", choices=["error", "skip"],
                       help="default: error for files, skip for built-in data")
    shard.set_defaults(handler=_shard)

    validate = commands.add_parser("validate", help="check pipeline files without training")
    validate.add_argument("pipelines", nargs="+", metavar="PIPELINE")
    _with_overrides(validate)
    validate.set_defaults(handler=_validate)

    generate = commands.add_parser(
        "generate", help="continue a prompt with a language-model run or export"
    )
    generate.add_argument("run_or_export", metavar="RUN_OR_EXPORT",
                          help="runs/<name> or saved_models/<name>[/<version>]")
    generate.add_argument("--prompt", required=True, help="the text to continue ('' is fine)")
    generate.add_argument("--max-tokens", type=int, default=100, help="tokens to generate")
    generate.add_argument("--temperature", type=float, default=1.0,
                          help="0 is greedy; higher is more varied (default 1)")
    generate.add_argument("--top-k", type=int, default=0, help="sample from the k most likely "
                          "tokens (0: all)")
    generate.add_argument("--top-p", type=float, default=1.0,
                          help="sample from the smallest set with this much probability (1: all)")
    generate.add_argument("--seed", type=int, help="same seed, same text (default: random)")
    generate.set_defaults(handler=_generate)


def _add_emit_options(launch) -> None:
    """launch --emit: a job file for a cluster engine instead of a local cluster."""
    emit = launch.add_argument_group(
        "job files (--emit)", "write the file a cluster engine takes, check it, and print the "
                              "command that submits it; nothing is started")
    emit.add_argument("--emit", choices=("tfjob", "slurm", "vertex"),
                      help="Kubeflow TFJob YAML, Slurm sbatch script, or Vertex AI "
                           "CustomJobSpec JSON")
    emit.add_argument("--out", metavar="DIR", help="where the file goes (with --emit)")
    emit.add_argument("--image", help="container image with tfnlp and the pipeline (tfjob, "
                                      "vertex)")
    emit.add_argument("--namespace", help="TFJob namespace (default: default)")
    emit.add_argument("--volume-claim", metavar="PVC", help="ReadWriteMany claim the TFJob "
                      "mounts at /shared for the run and export dirs (default: tfnlp-shared)")
    emit.add_argument("--backoff-limit", type=int,
                      help="TFJob retries before it fails (default 3)")
    emit.add_argument("--machine-type", help="Vertex machine type (default n1-standard-8)")
    emit.add_argument("--region", help="Vertex region, in the submit command")


def _add_bench_commands(commands) -> None:
    """bench <name>: benchmarks that print and save JSON + PNG."""
    bench = commands.add_parser("bench", help="benchmarks: print and save JSON + PNG")
    bench_commands = bench.add_subparsers(dest="bench", required=True)
    _add_training_benchmarks(bench_commands)
    _add_serving_benchmarks(bench_commands)


def _add_training_benchmarks(bench_commands) -> None:
    """bench distribute, lm, train, preprocess, vocabulary."""
    bench_distribute = bench_commands.add_parser(
        "distribute", help="examples/s: one device vs mirrored (2 CPU replicas) vs 2 workers")
    bench_distribute.add_argument("pipeline", help="pipeline YAML file")
    _with_overrides(bench_distribute)
    bench_distribute.add_argument("--out", default="runs/bench/distribute",
                                  help="output directory (default runs/bench/distribute)")
    bench_distribute.set_defaults(handler=_bench_distribute)
    bench_parallel = bench_commands.add_parser(
        "parallel", help="data, model, hybrid and pipeline parallelism: examples/s, parameter "
                         "bytes per device, all-reduce bytes per step")
    bench_parallel.add_argument("pipeline", help="pipeline YAML file")
    _with_overrides(bench_parallel)
    bench_parallel.add_argument("--out", default="runs/bench/parallel",
                                help="output directory (default runs/bench/parallel)")
    bench_parallel.set_defaults(handler=_bench_parallel)
    bench_lm = bench_commands.add_parser(
        "lm", help="language-model tokens/s and characters/s, training and generation: the "
                   "default pipeline beside the previous default"
    )
    bench_lm.add_argument("pipeline", nargs="?", default="pipelines/tweets_lm.yaml",
                          help="the pipeline measured as `default` (default tweets_lm)")
    bench_lm.add_argument("--previous", default="pipelines/tweets_lm_char.yaml",
                          help="the pipeline measured as `previous_default` (default "
                               "tweets_lm_char, the character LSTM)")
    bench_lm.add_argument("--policies", nargs="+", default=["float32"],
                          choices=["float32", "mixed_bfloat16", "mixed_float16"],
                          help="precision policies (default float32)")
    _with_overrides(bench_lm)
    bench_lm.add_argument("--out", default="runs/bench/lm",
                          help="output directory (default runs/bench/lm)")
    bench_lm.add_argument("--steps", type=int, default=20, help="timed training steps")
    bench_lm.add_argument("--max-tokens", type=int, default=64, help="tokens generated per run")
    bench_lm.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32],
                          help="generation batch sizes")
    bench_lm.set_defaults(handler=_bench_lm)
    bench_train = bench_commands.add_parser(
        "train", help="training throughput: classic Keras vs tfnlp as shipped and per lever")
    bench_train.add_argument("pipeline", help="pipeline YAML file (lstm or bilstm)")
    _with_overrides(bench_train)
    bench_train.add_argument("--runs", nargs="+", metavar="NAME",
                             help="only these tfnlp runs (the Keras baseline always runs), "
                                  "e.g. tfnlp_default tfnlp_batch_4x; default: all")
    bench_train.add_argument("--out", help="output directory (default runs/bench/<name>)")
    bench_train.set_defaults(handler=_bench_train)
    bench_preprocess = bench_commands.add_parser(
        "preprocess", help="preprocessing MB/s: in-graph layer vs nltk vs HF tokenizers")
    bench_preprocess.add_argument("--out", default="runs/bench/preprocess",
                                  help="output directory (default runs/bench/preprocess)")
    bench_preprocess.add_argument("--repeat", type=int, default=4,
                                  help="repeat the tweets N times (default 4, ~16 MB)")
    bench_preprocess.add_argument("--limit", type=int,
                                  help="use a seeded subset of N tweets (quick runs)")
    bench_preprocess.set_defaults(handler=_bench_preprocess)
    bench_vocabulary = bench_commands.add_parser(
        "vocabulary", help="WordPiece learning seconds: tensorflow-text vs Hugging Face, 1x/4x")
    bench_vocabulary.add_argument("pipeline", nargs="?", default="pipelines/tweets_bilstm.yaml",
                                  help="pipeline whose data and preprocessing are used")
    _with_overrides(bench_vocabulary)
    bench_vocabulary.add_argument("--out", default="runs/bench/vocabulary",
                                  help="output directory (default runs/bench/vocabulary)")
    bench_vocabulary.add_argument("--repeats", type=int, nargs="+", default=[1, 4],
                                  help="sizes, as multiples of the training texts (default 1 4)")
    bench_vocabulary.set_defaults(handler=_bench_vocabulary)


def _add_serving_benchmarks(bench_commands) -> None:
    """bench predict, serve, tflite."""
    bench_predict = bench_commands.add_parser(
        "predict", help="texts/s: tfnlp predict --input vs the bare in-process model")
    bench_predict.add_argument("model_dir", help="an export, a run directory or a .tflite")
    bench_predict.add_argument("--out", default="runs/bench/predict",
                               help="output directory (default runs/bench/predict)")
    bench_predict.add_argument("--limit", type=int, help="a seeded subset of N tweets")
    bench_predict.add_argument("--batch-size", type=int, default=256, help="texts per call")
    bench_predict.set_defaults(handler=_bench_predict)
    bench_serve = bench_commands.add_parser(
        "serve", help="tfnlp serve under load on loopback: req/s, p50/p99, 0 errors asserted")
    bench_serve.add_argument("export_root", help="the export root, e.g. saved_models")
    bench_serve.add_argument("--model", required=True, help="the model name to load-test")
    bench_serve.add_argument("--requests", type=int, default=2000, help="requests per run")
    bench_serve.add_argument("--clients", type=int, default=16, help="concurrent clients")
    bench_serve.add_argument("--batch", type=int, default=8,
                             help="texts per request in the client-batching run")
    bench_serve.add_argument("--out", default="runs/bench/serve",
                             help="output directory (default runs/bench/serve)")
    bench_serve.set_defaults(handler=_bench_serve)
    bench_tflite = bench_commands.add_parser(
        "tflite", help="a .tflite on LiteRT vs tf.lite.Interpreter: batch-1 latency")
    bench_tflite.add_argument("model_file", help="a .tflite file (tfnlp compress)")
    bench_tflite.add_argument("--calls", type=int, default=200, help="timed invocations")
    bench_tflite.add_argument("--out", default="runs/bench/tflite",
                              help="output directory (default runs/bench/tflite)")
    bench_tflite.set_defaults(handler=_bench_tflite)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tfnlp", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True)
    for add in (_add_run_commands, _add_serving_commands, _add_pipeline_commands,
                _add_bench_commands):
        add(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    import traceback

    from tfnlp.exit_codes import INTERRUPTED, exit_code_for, is_retryable

    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("tfnlp: interrupted", file=sys.stderr)
        return INTERRUPTED
    except Exception as error:  # the CLI's one place that turns errors into messages
        code = exit_code_for(error)  # 1-127 permanent, >= 128 worth a retry (a scheduler's)
        if args.debug:
            traceback.print_exc()
        hint = f" (retryable: exit {code})" if is_retryable(code) else ""
        print(f"tfnlp: error: {error_message(error)}{hint}", file=sys.stderr)
        return code


def error_message(error: BaseException) -> str:
    """One line for `error`: its message's first line; when that is only a heading (as
    TensorFlow's "in user code:" before a traced function's frames), the heading and the
    message's last line, which names the error."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return repr(error)
    if len(lines) > 1 and lines[0].endswith(":"):
        return f"{lines[0]} ... {lines[-1]} (--debug shows the whole message)"
    return lines[0]


if __name__ == "__main__":
    sys.exit(main())
