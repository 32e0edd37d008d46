"""What a response costs in USD, from the price table (prices.yaml) or settings."""

import os
from dataclasses import dataclass
from functools import lru_cache

from edgellm.yaml_file import load_yaml

PRICES_PATH = os.path.join(os.path.dirname(__file__), "prices.yaml")


@dataclass(frozen=True)
class Price:
    """USD per million input and output tokens, and USD per hour of edge time."""

    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0
    cost_per_hour: float = 0.0

    def cost(self, prompt_tokens, completion_tokens, seconds=0.0):
        return (prompt_tokens * self.input_per_mtok + completion_tokens * self.output_per_mtok) \
            / 1e6 + (seconds or 0.0) * self.cost_per_hour / 3600.0


@lru_cache(maxsize=None)
def _table(path):
    return (load_yaml(path, "price table") or {}).get("models", {})


def price_for(model, prices_path=None, **overrides):
    """The price of ``model``: its prices.yaml entry (matched on the full name or the
    part after the last '/'), with non-None ``overrides`` applied; free when unlisted."""
    table = _table(prices_path or PRICES_PATH)
    name = str(model)
    entry = table.get(name) or table.get(name.rsplit("/", 1)[-1]) or {}
    merged = {**entry, **{k: v for k, v in overrides.items() if v is not None}}
    return Price(**{k: float(v) for k, v in merged.items()})
