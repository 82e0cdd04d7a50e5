"""`tfnlp serve`: a local endpoint that speaks TF-Serving's REST API, for development and tests.

Client code written against it works unchanged against a real `tensorflow_model_server`
(production serves with TF-Serving and the config files `tfnlp export` writes):

    POST /v1/models/<name>[/versions/<v>|/labels/<l>]:predict    row `instances` or `inputs`
    POST /v1/models/<name>[...]:classify                          `examples` (tf.Example dicts)
    GET  /v1/models/<name>[/versions/<v>]                         version status
    GET  /v1/models/<name>[/versions/<v>]/metadata                signature defs

Safe by default: it binds to 127.0.0.1, refuses bodies over `max_request_bytes` (413), takes
model names and versions only in their validated forms (a URL cannot name a path outside the
export root), loads nothing but SavedModels of complete version directories (a version appears
only once it is renamed into place), and gives each request a time-out. Built on Starlette
(routing, requests, responses) and served by uvicorn.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import threading
from pathlib import Path

import numpy as np

from tfnlp.config.schema import SAFE_NAME, VERSION_LABEL
from tfnlp.export.model_config import read_version_labels
from tfnlp.export.versions import existing_versions

# /v1/models/<name>[/versions/<v>|/labels/<l>][/metadata|:predict|:classify]
_ROUTE = re.compile(r"\A(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
                    r"(?P<rest>/metadata|:predict|:classify)?\Z")
MAX_REQUEST_BYTES = 16 * 1024 * 1024
REQUEST_TIMEOUT_SECONDS = 60.0
MAX_JSON_DEPTH = 64  # TF-Serving's inputs nest a few levels; deeper is an attack or a bug


class ServingError(Exception):
    """An error answered as TF-Serving does: `{"error": message}` with an HTTP status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class ModelRepository:
    """The SavedModels under an export root, loaded on first use and kept per version.

    Args:
        root: the export root (`saved_models/`).
    """

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self._loaded: dict[tuple[str, int], object] = {}
        self._lock = threading.Lock()

    def versions(self, name: str) -> list[int]:
        """The complete versions of `name` (an unsafe name is refused before any disk access)."""
        if not SAFE_NAME.match(name):
            raise ServingError(400, f"Malformed model name: {name!r}.")
        model_dir = self.root / name
        complete = [v for v in existing_versions(model_dir)
                    if (model_dir / str(v) / "saved_model.pb").is_file()
                    and (model_dir / str(v) / "variables" / "variables.index").is_file()]
        if not complete:
            raise ServingError(404, f"Servable not found for request: Latest({name})")
        return complete

    def resolve(self, name: str, version: str | None = None, label: str | None = None) -> int:
        """The version a request names: given, by label, or the newest."""
        versions = self.versions(name)
        if label is not None:
            labels = read_version_labels(self.root / name) if VERSION_LABEL.match(label) else {}
            if label not in labels:
                raise ServingError(404, f"Unrecognized servable version label: {label}")
            version = str(labels[label])
        if version is None:
            return versions[-1]
        if int(version) not in versions:
            raise ServingError(404, f"Servable not found for request: Specific({name}, "
                                    f"{version})")
        return int(version)

    def load(self, name: str, version: int):
        """`tf.saved_model.load` of one version (once; later requests reuse it)."""
        with self._lock:
            if (name, version) not in self._loaded:
                import tensorflow_text  # noqa: F401  (registers the text ops the graphs use)

                from tfnlp.backend import tf

                self._loaded[(name, version)] = tf.saved_model.load(
                    str(self.root / name / str(version)))
            return self._loaded[(name, version)]


def _decode(value):
    """JSON values to tensor values: {"b64": …} becomes bytes; lists and objects recurse."""
    if isinstance(value, dict) and set(value) == {"b64"}:
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (TypeError, ValueError):
            raise ServingError(400, "A {\"b64\": ...} value must be base64 text.") from None
    if isinstance(value, dict):
        return {key: _decode(v) for key, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _jsonable(value):
    """A numpy output (or one row of it) as JSON values; DT_STRING bytes as UTF-8 text."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.dtype == object:
        return [_jsonable(item) for item in value]
    return value.tolist()


def _inputs(body: dict, specs: dict) -> tuple[dict, bool]:
    """The signature's inputs from a row (`instances`) or columnar (`inputs`) body."""
    if ("instances" in body) == ("inputs" in body):
        raise ServingError(400, "JSON body must have exactly one of 'instances' or 'inputs'.")
    row = "instances" in body
    data = _decode(body["instances"] if row else body["inputs"])
    if row:
        if not isinstance(data, list) or not data:
            raise ServingError(400, "'instances' must be a non-empty list.")
        if len(specs) == 1 and not isinstance(data[0], dict):
            data = {next(iter(specs)): data}
        elif all(isinstance(d, dict) for d in data):
            data = {key: [d.get(key) for d in data] for key in specs}
        else:
            raise ServingError(400, "Each instance must be an object naming the inputs "
                                    f"{sorted(specs)}.")
    elif not isinstance(data, dict):
        data = {next(iter(specs)): data} if len(specs) == 1 else None
    if not isinstance(data, dict) or set(data) != set(specs):
        raise ServingError(400, f"The signature's inputs are {sorted(specs)}.")
    return data, row


def _depth(value, containers=(list,)) -> int:
    """How deeply `containers` nest in `value`, found without recursion (JSON nests deeper
    than Python recurses)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, containers):
            deepest = max(deepest, depth + 1)
            stack.extend((child, depth + 1)
                         for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def predict(loaded, body: dict) -> dict:
    """Runs a Predict request body on a loaded SavedModel; TF-Serving's response shape."""
    from tfnlp.backend import tf

    name = body.get("signature_name", "serving_default")
    if not isinstance(name, str) or name not in loaded.signatures:
        raise ServingError(400, f"Serving signature name: \"{name}\" not found in signature def")
    signature = loaded.signatures[name]
    specs = signature.structured_input_signature[1]
    data, row = _inputs(body, specs)
    for key, value in data.items():
        # A tensor of another rank must never reach the graph: TensorFlow does not check it
        # against the signature, and a rank-33 string tensor crashes the process (SIGSEGV).
        rank = specs[key].shape.rank
        if rank is not None and _depth(value) != rank:
            raise ServingError(400, f"Input '{key}' must have rank {rank}; received a value "
                                    f"nested {_depth(value)} deep.")
    try:
        outputs = signature(**{k: tf.constant(v, dtype=specs[k].dtype) for k, v in data.items()})
    except (tf.errors.InvalidArgumentError, ValueError, TypeError) as error:
        raise ServingError(400, str(error).strip().splitlines()[0]) from None
    arrays = {key: value.numpy() for key, value in outputs.items()}
    if not row:
        return {"outputs": {key: _jsonable(a) for key, a in arrays.items()}}
    rows = len(next(iter(arrays.values())))
    return {"predictions": [{key: _jsonable(a[i]) for key, a in arrays.items()}
                            for i in range(rows)]}


def classify(loaded, body: dict) -> dict:
    """Runs a Classify request body (`examples` of feature dicts) on the `classify` signature."""
    from tfnlp.backend import tf

    name = body.get("signature_name", "classify")
    examples = body.get("examples")
    if (not isinstance(name, str) or name not in loaded.signatures
            or not isinstance(examples, list) or not examples
            or not all(isinstance(example, dict) for example in examples)):
        raise ServingError(400, "A classify request needs a non-empty 'examples' list and a "
                                "signature with the classify method.")
    serialized = []
    for example in examples:
        features = {key: tf.train.Feature(bytes_list=tf.train.BytesList(
            value=[_utf8(value)])) for key, value in example.items()}
        serialized.append(tf.train.Example(features=tf.train.Features(
            feature=features)).SerializeToString())
    try:
        outputs = loaded.signatures[name](inputs=tf.constant(serialized))
    except (tf.errors.InvalidArgumentError, ValueError, TypeError) as error:
        raise ServingError(400, str(error).strip().splitlines()[0]) from None
    classes, scores = outputs["classes"].numpy(), outputs["scores"].numpy()
    return {"results": [[[c.decode("utf-8"), float(s)] for c, s in zip(cs, ss)]
                        for cs, ss in zip(classes, scores)]}


def _utf8(value) -> bytes:
    try:
        return str(value).encode("utf-8")
    except UnicodeEncodeError:
        raise ServingError(400, "Feature values must be valid Unicode text.") from None


def status(name: str, versions: list[int]) -> dict:
    return {"model_version_status": [
        {"version": str(v), "state": "AVAILABLE",
         "status": {"error_code": "OK", "error_message": ""}} for v in versions]}


def metadata(repository: ModelRepository, name: str, version: int) -> dict:
    """The version's signature defs, as TF-Serving's GetModelMetadata answers in JSON."""
    from google.protobuf import json_format
    from tensorflow.core.protobuf import saved_model_pb2

    path = repository.root / name / str(version) / "saved_model.pb"
    saved = saved_model_pb2.SavedModel.FromString(path.read_bytes())
    signatures = {key: json_format.MessageToDict(value)
                  for key, value in saved.meta_graphs[0].signature_def.items()}
    return {"model_spec": {"name": name, "signature_name": "", "version": str(version)},
            "metadata": {"signature_def": {"signature_def": signatures}}}


def build_app(root: str | Path, *, max_request_bytes: int = MAX_REQUEST_BYTES,
              timeout_seconds: float = REQUEST_TIMEOUT_SECONDS):
    """The Starlette application over the export root `root`."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    repository = ModelRepository(root)

    async def handle(request):
        try:
            match = _ROUTE.match(request.path_params["rest"])
            if match is None:
                raise ServingError(404, f"Malformed request: {request.url.path}")
            name, rest = match["name"], match["rest"] or ""
            version = repository.resolve(name, match["version"], match["label"])
            if request.method == "GET" and rest in ("", "/metadata"):
                if rest == "/metadata":
                    return JSONResponse(metadata(repository, name, version))
                chosen = [version] if (match["version"] or match["label"]) else \
                    repository.versions(name)[-1:]
                return JSONResponse(status(name, chosen))
            if request.method != "POST" or rest not in (":predict", ":classify"):
                raise ServingError(404, f"Malformed request: {request.method} "
                                        f"{request.url.path}")
            body = await _json_body(request, max_request_bytes)
            loaded = await run_in_threadpool(repository.load, name, version)
            run = predict if rest == ":predict" else classify
            result = await asyncio.wait_for(run_in_threadpool(run, loaded, body),
                                            timeout_seconds)
            return JSONResponse(result)
        except ServingError as error:
            # A message may quote the request, and a JSON string may hold a lone surrogate,
            # which UTF-8 cannot encode: escape it rather than fail with a 500.
            message = str(error).encode("utf-8", "backslashreplace").decode("utf-8")
            return JSONResponse({"error": message}, status_code=error.status)
        except asyncio.TimeoutError:
            return JSONResponse({"error": f"Request timed out after {timeout_seconds} s"},
                                status_code=504)

    return Starlette(routes=[Route("/v1/models/{rest:path}", handle, methods=["GET", "POST"])])


async def _json_body(request, limit: int) -> dict:
    declared = int(request.headers.get("content-length") or 0)
    if declared > limit:
        raise ServingError(413, f"Request body of {declared} bytes is over the {limit} limit.")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise ServingError(413, f"Request body is over the {limit}-byte limit.")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as error:
        raise ServingError(400, f"JSON Parse error: {error}") from None
    if not isinstance(body, dict):
        raise ServingError(400, "JSON body must be an object.")
    if _depth(body, (dict, list)) > MAX_JSON_DEPTH:
        raise ServingError(400, f"JSON body nests deeper than {MAX_JSON_DEPTH} levels.")
    return body


def serve(root: str | Path, host: str = "127.0.0.1", port: int = 8501, **options) -> None:
    """Serves `root` with uvicorn until interrupted (see `build_app` for `options`)."""
    try:
        import uvicorn
    except ImportError:
        raise ImportError("`tfnlp serve` needs Starlette and uvicorn: "
                          "pip install 'tfnlp[serve]'.") from None
    uvicorn.run(build_app(root, **options), host=host, port=port, log_level="warning")
