"""Outcome matrices: which model got which item right (or how well), without the
completions. What learned routers train on, what routing curves are drawn from, what
``edgellm import`` replays. This package is the one home of the format.

Two layouts, CSV (with a header) or JSONL (one object a line), told apart by their
columns (edgellm.formats):

- **long**: one row per (item, model): ``item_id`` (or ``id``) and/or ``query``,
  ``model``, ``correct`` (true/false, 1/0) or ``score`` (0..1), and optionally
  ``subject``, ``task_type``, ``prompt_tokens``, ``completion_tokens``, ``ttft``,
  ``tpot`` (or ``itl``), ``e2e_latency``, ``cost_usd``. ``edgellm dataset synthesize``
  writes this layout.
- **wide**: one row per item, as RouteLLM publishes its MMLU outcomes: ``prompt``
  (or ``query``: the item's text), optionally ``item_id`` (or ``id``), ``subject`` and
  ``task_type``; every other column is a model, named by its header, its cells that
  model's outcome on the item: true/false (1/0, yes/no) or a score between 0 and 1
  (an empty cell: no outcome recorded). A column with an empty header (a
  spreadsheet's index) is not a model. Without an id column an item's id is its
  row's position (0, 1, ...).

Modules: ``matrix`` (reading both layouts, one outcome per item and model),
``outcome_set`` (``OutcomeSet``: two models' outcomes aligned per item, from a matrix
or a job's results), ``split`` (the split rule, split.json, splitting a matrix) and
``synthetic`` (a synthetic MMLU-shaped matrix, ``edgellm dataset synthesize``).
"""

from edgellm.outcomes.matrix import MatrixFile, Outcome, read_matrix
from edgellm.outcomes.outcome_set import OutcomeSet, read_results, side_outcome
from edgellm.outcomes.split import SPLIT_FILE, split_indices, split_part

__all__ = ["MatrixFile", "Outcome", "OutcomeSet", "SPLIT_FILE", "read_matrix",
           "read_results", "side_outcome", "split_indices", "split_part"]
