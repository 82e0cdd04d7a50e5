from tfnlp.backend import keras


def test_export_has_no_lambda_layers_or_pickles(tiny_run):
    files = [p for p in tiny_run.export_path.rglob("*") if p.is_file()]
    assert not [p for p in files if p.suffix in (".pkl", ".pickle", ".joblib")]
    graph = (tiny_run.export_path / "saved_model.pb").read_bytes()
    assert b"Lambda" not in graph
    assert b"PyFunc" not in graph and b"EagerPyFunc" not in graph  # no Python in the graph
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in tiny_run.model.layers)
