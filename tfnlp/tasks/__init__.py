"""Tasks: what differs between NLP problems, behind one interface (see `tfnlp.tasks.base`).

Importing this package registers every built-in task; a new task adds its module's import
here (one line) and is then found by `get_task` under its `task:` name.
"""

from tfnlp.tasks import classification, language_model  # noqa: F401  (registers the tasks)
from tfnlp.tasks.base import TASKS, Task, TrainingInputs, get_task, register_task

__all__ = ["TASKS", "Task", "TrainingInputs", "get_task", "register_task"]
