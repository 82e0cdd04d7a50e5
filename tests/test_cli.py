from tests.conftest import PIPELINES, run_cli


def test_validate_accepts_every_shipped_pipeline():
    result = run_cli("validate", *map(str, PIPELINES))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": ok") == len(PIPELINES)


def test_config_error_is_one_sentence_without_traceback():
    result = run_cli("validate", "pipelines/tweets_bilstm.yaml", "--set", "train.epoch=3")
    assert result.returncode == 1
    assert result.stderr.startswith("tfnlp: error: pipelines/tweets_bilstm.yaml: unknown key")
    assert "Did you mean `train.epochs`?" in result.stderr
    assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback():
    result = run_cli("--debug", "validate", "pipelines/tweets_bilstm.yaml", "--set",
                     "train.epochs=-1")
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "ConfigError" in result.stderr


def test_train_reports_a_bad_data_file_with_its_line(tmp_path):
    data = tmp_path / "mine.csv"
    data.write_text("text,label\nfine,pos\n,neg\n")
    result = run_cli("train", "pipelines/tweets_bilstm.yaml", "--set", f"data.source={data}",
                     "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 1
    assert f"{data}:3: missing text" in result.stderr
    assert "Traceback" not in result.stderr


def test_train_on_a_missing_pipeline_file_is_a_permanent_failure(tmp_path):
    result = run_cli("train", str(tmp_path / "missing.yaml"))
    assert result.returncode == 1  # 1-127: a scheduler does not retry it
    assert f"tfnlp: error: {tmp_path / 'missing.yaml'}: cannot read the pipeline file" \
        in result.stderr
    assert "retryable" not in result.stderr and "Traceback" not in result.stderr


def test_predict_on_a_missing_model_says_what_to_do(tmp_path):
    result = run_cli("predict", str(tmp_path), "hello")
    assert result.returncode == 1
    assert "no SavedModel here" in result.stderr and "tfnlp export" in result.stderr


def test_usage_errors_exit_2():
    assert run_cli("train").returncode == 2


def test_an_error_inside_a_traced_function_is_told_by_its_last_line():
    from tfnlp.backend import tf
    from tfnlp.cli import error_message

    @tf.function
    def traced(x):
        raise ValueError("`text` must be a string tensor. Received: float32.")

    try:
        traced(tf.constant(1.0))
    except ValueError as error:
        message = error_message(error)
    assert message.startswith("in user code: ... ValueError: `text` must be a string tensor.")
    assert "\n" not in message
    assert error_message(OSError("one line")) == "one line"
    assert error_message(KeyError()) == "KeyError()"
