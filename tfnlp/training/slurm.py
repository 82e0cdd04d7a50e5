"""`TF_CONFIG` from a Slurm job step, for `srun tfnlp train ...` on CPU or GPU nodes.

TensorFlow's own `SlurmClusterResolver` cannot describe CPU-only nodes (it insists on GPUs per
task; tensorflow/tensorflow#56894), so tfnlp builds the plain `TF_CONFIG` that
`TFConfigClusterResolver` reads: every task of the step is a `worker` (multi-worker mirrored),
listed in rank order, each on port `TFNLP_SLURM_PORT` (default 2222) plus its rank on its node.

Slurm numbers tasks node by node (`--distribution=block`, its default): node 0 holds ranks
0..k-1, node 1 the next ones, and so on. The address built for this task is checked against
`SLURMD_NODENAME` and `SLURM_LOCALID` where Slurm sets them, so another distribution fails
with the fix instead of training with crossed wires.

Example:
    >>> config = slurm_tf_config({
    ...     "SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "3",
    ...     "SLURM_STEP_NODELIST": "node[07-08]", "SLURM_STEP_TASKS_PER_NODE": "2,1",
    ... }, scontrol=None)
    >>> config["cluster"]["worker"]
    ['node07:2222', 'node07:2223', 'node08:2222']
    >>> config["task"]
    {'type': 'worker', 'index': 1}
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping

PORT_VARIABLE = "TFNLP_SLURM_PORT"
DEFAULT_PORT = 2222

# One range inside a bracket: "3", "01-03".
_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")
# Tasks per node: "2", "2(x3)".
_TASKS = re.compile(r"^(\d+)(?:\(x(\d+)\))?$")


def _split_top_level(text: str, variable: str) -> list[str]:
    """`text` split at the commas outside brackets."""
    parts, depth, start = [], 0, 0
    for position, char in enumerate(text):
        if char == "[":
            depth += 1
            if depth > 1:
                raise _malformed(variable, text, "nested brackets")
        elif char == "]":
            depth -= 1
            if depth < 0:
                raise _malformed(variable, text, "a ']' without its '['")
        elif char == "," and depth == 0:
            parts.append(text[start:position])
            start = position + 1
    if depth:
        raise _malformed(variable, text, "a '[' without its ']'")
    parts.append(text[start:])
    return parts


def _malformed(variable: str, value: str, why: str) -> ValueError:
    return ValueError(
        f"`{variable}` must be a Slurm node list such as 'node[1-3,5]' or 'gpu-[1-2],cpu7'. "
        f"Received: {variable}={value!r} ({why}). Run the step with srun inside an "
        "allocation, or set TF_CONFIG yourself."
    )


def _expand_brackets(name: str, variable: str, whole: str) -> list[str]:
    """Every host one node-list item names, e.g. 'a[01-02]b[1,3]' -> a01b1 a01b3 a02b1 a02b3."""
    opening = name.find("[")
    if opening < 0:
        if not name or "]" in name:
            raise _malformed(variable, whole, f"an empty or broken host name {name!r}")
        return [name]
    closing = name.index("]", opening)
    prefix, body, rest = name[:opening], name[opening + 1:closing], name[closing + 1:]
    numbers = []
    for piece in body.split(","):
        match = _RANGE.match(piece.strip())
        if not match:
            raise _malformed(variable, whole, f"{piece!r} is not a number or a range a-b")
        first, last = match.group(1), match.group(2) or match.group(1)
        if int(last) < int(first):
            raise _malformed(variable, whole, f"the range {piece!r} runs backwards")
        width = len(first)  # "01-03": zero-padded to the width of the first bound
        numbers += [f"{n:0{width}d}" for n in range(int(first), int(last) + 1)]
    tails = _expand_brackets(rest, variable, whole) if rest else [""]
    return [f"{prefix}{number}{tail}" for number in numbers for tail in tails]


def expand_nodelist(nodelist: str, variable: str = "SLURM_STEP_NODELIST") -> list[str]:
    """The host names of a compressed Slurm node list, in Slurm's order.

    Args:
        nodelist: e.g. `node[1-3,5]`, `a[01-03]`, `gpu-[1-2],cpu7`, `n1,n[3-4]`.
        variable: the variable it came from (named in errors).

    Raises:
        ValueError: a malformed list, naming `variable`.

    Example:
        >>> expand_nodelist("node[1-3,5]")
        ['node1', 'node2', 'node3', 'node5']
        >>> expand_nodelist("a[01-03]")
        ['a01', 'a02', 'a03']
        >>> expand_nodelist("gpu-[1-2],cpu7")
        ['gpu-1', 'gpu-2', 'cpu7']
        >>> expand_nodelist("n1,n[3-4]")
        ['n1', 'n3', 'n4']
    """
    text = nodelist.strip()
    if not text:
        raise _malformed(variable, nodelist, "empty")
    return [host for item in _split_top_level(text, variable)
            for host in _expand_brackets(item.strip(), variable, text)]


def expand_tasks_per_node(value: str, variable: str = "SLURM_STEP_TASKS_PER_NODE") -> list[int]:
    """Tasks on each node, in node order, from Slurm's compressed form.

    Raises:
        ValueError: a malformed value, naming `variable`.

    Example:
        >>> expand_tasks_per_node("2(x3),1")
        [2, 2, 2, 1]
        >>> expand_tasks_per_node("4")
        [4]
    """
    counts = []
    for piece in value.split(","):
        match = _TASKS.match(piece.strip())
        if not match or int(match.group(1)) < 1:
            raise ValueError(
                f"`{variable}` must be Slurm's tasks per node, e.g. '2(x3),1'. Received: "
                f"{variable}={value!r}."
            )
        counts += [int(match.group(1))] * int(match.group(2) or 1)
    return counts


def hostnames(nodelist: str, scontrol: str | None = "auto") -> list[str]:
    """The node list expanded by `scontrol show hostnames` where it is on PATH, else parsed.

    Args:
        nodelist: a compressed node list.
        scontrol: the scontrol executable; "auto" looks it up on PATH, None parses only.
    """
    scontrol = shutil.which("scontrol") if scontrol == "auto" else scontrol
    if scontrol is None:
        return expand_nodelist(nodelist)
    done = subprocess.run([scontrol, "show", "hostnames", nodelist], capture_output=True,
                          text=True, timeout=30)
    hosts = done.stdout.split()
    if done.returncode or not hosts:
        raise ValueError(
            f"`SLURM_STEP_NODELIST` could not be expanded by `{scontrol} show hostnames`. "
            f"Received: SLURM_STEP_NODELIST={nodelist!r} (exit {done.returncode}: "
            f"{done.stderr.strip()[:200]})."
        )
    return hosts


def _integer(environ: Mapping[str, str], variable: str, low: int, high: int = 2**31) -> int:
    value = environ.get(variable, "")
    if not value.strip().isdigit() or not low <= int(value) <= high:
        raise ValueError(
            f"`{variable}` must be an integer from {low} to {high}. Received: "
            f"{variable}={value!r}."
        )
    return int(value)


def slurm_tf_config(environ: Mapping[str, str] | None = None,
                    scontrol: str | None = "auto") -> dict | None:
    """The `TF_CONFIG` of this task of a multi-task Slurm step, or None outside one.

    Args:
        environ: the environment (default `os.environ`).
        scontrol: see `hostnames`.

    Returns:
        `{"cluster": {"worker": [...]}, "task": {"type": "worker", "index": SLURM_PROCID}}`,
        or None when `SLURM_PROCID` is unset or the step has one task.

    Raises:
        ValueError: a Slurm variable is missing or malformed, or the tasks were not
            distributed node by node; the message names the variable and the fix.
    """
    environ = os.environ if environ is None else environ
    declared = environ.get("SLURM_STEP_NUM_TASKS", "").strip()
    if "SLURM_PROCID" not in environ or not declared or declared in ("0", "1"):
        return None  # not in a step, or a step of one task: no cluster
    tasks = _integer(environ, "SLURM_STEP_NUM_TASKS", 2)
    rank = _integer(environ, "SLURM_PROCID", 0, tasks - 1)
    for variable in ("SLURM_STEP_NODELIST", "SLURM_STEP_TASKS_PER_NODE"):
        if not environ.get(variable, "").strip():
            raise ValueError(f"`{variable}` must be set in a Slurm step of {tasks} tasks. "
                             f"Received: {variable} unset. Start the tasks with srun.")
    hosts = hostnames(environ["SLURM_STEP_NODELIST"], scontrol)
    per_node = expand_tasks_per_node(environ["SLURM_STEP_TASKS_PER_NODE"])
    if len(per_node) != len(hosts) or sum(per_node) != tasks:
        raise ValueError(
            f"`SLURM_STEP_TASKS_PER_NODE` must give one count per node of SLURM_STEP_NODELIST, "
            f"adding up to SLURM_STEP_NUM_TASKS={tasks}. Received: "
            f"SLURM_STEP_TASKS_PER_NODE={environ['SLURM_STEP_TASKS_PER_NODE']!r} for "
            f"{len(hosts)} node(s) {hosts[:4]}."
        )
    port = _integer(environ, PORT_VARIABLE, 1, 65536 - max(per_node)) \
        if environ.get(PORT_VARIABLE) else DEFAULT_PORT
    workers = [f"{host}:{port + local}" for host, count in zip(hosts, per_node)
               for local in range(count)]
    _check_block_distribution(environ, workers[rank], port, rank)
    return {"cluster": {"worker": workers}, "task": {"type": "worker", "index": rank}}


def _check_block_distribution(environ: Mapping[str, str], address: str, port: int,
                              rank: int) -> None:
    """This task's own node and local id must be those its rank has in node-by-node order."""
    node, local = environ.get("SLURMD_NODENAME"), environ.get("SLURM_LOCALID")
    if node is None or local is None or not local.isdigit():
        return
    if address != f"{node}:{port + int(local)}":
        raise ValueError(
            f"Task {rank} runs on {node} as local task {local}, but Slurm's node-by-node order "
            f"puts rank {rank} at {address}. Start the step with `srun --distribution=block` "
            "(tfnlp lists workers in that order), or set TF_CONFIG yourself."
        )
