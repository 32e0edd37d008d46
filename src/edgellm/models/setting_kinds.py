"""The kind of value each backend setting takes: a number, a whole number, text, a
flag, a mapping. A backend declares ``SETTING_KINDS`` (setting -> kind) beside its
``__init__``; ``check_kinds`` checks them along the class tree before the first test
case (edgellm.models.check_backend), so that ``seed: "abc"`` or ``max_tokens: "lots"``
stops the run with one line naming the file and key instead of failing every test
case that uses it. A setting whose ``__init__`` default is None may be null.
"""

import inspect
import math
from dataclasses import dataclass, replace

from edgellm.registry import SettingError


@dataclass(frozen=True)
class Kind:
    what: str                    # as an error says it: "a whole number"
    types: tuple
    low: float = None            # the least value allowed
    above: float = None          # values must be greater than this
    high: float = None           # the greatest value allowed
    nullable: bool = False       # null is allowed whatever the default

    def problem(self, value):
        """What ``value`` must be and is not ("a whole number >= 1"), or None."""
        if (isinstance(value, bool) and bool not in self.types) or \
                not isinstance(value, self.types) or \
                (isinstance(value, list) and not all(isinstance(v, str) for v in value)):
            return self.what
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                return f"{self.what}, a finite one"
            if self.low is not None and value < self.low:
                return f"{self.what} >= {self.low:g}"
            if self.above is not None and value <= self.above:
                return f"{self.what} > {self.above:g}"
            if self.high is not None and value > self.high:
                return f"{self.what} <= {self.high:g}"
        return None


NUMBER = Kind("a number", (int, float))
WHOLE = Kind("a whole number", (int,))
TEXT = Kind("text", (str,))
TEXTS = Kind("text or a list of texts", (str, list))
FLAG = Kind("true or false", (bool,))
MAPPING = Kind("a mapping", (dict,))


def at_least(kind, low):
    return replace(kind, low=low)


def above(kind, bound):
    return replace(kind, above=bound)


def at_most(kind, high):
    return replace(kind, high=high)


def nullable(kind):
    return replace(kind, nullable=True)


def kinds_of(cls):
    """setting -> Kind, from the ``SETTING_KINDS`` along the class tree (a subclass's
    own win)."""
    kinds = {}
    for klass in reversed(cls.__mro__):
        kinds.update(vars(klass).get("SETTING_KINDS", {}))
    return kinds


def _defaults(cls):
    defaults = {}
    for klass in reversed(cls.__mro__):
        init = vars(klass).get("__init__")
        if init is not None and inspect.isfunction(init):
            defaults.update((name, p.default)
                            for name, p in inspect.signature(init).parameters.items()
                            if p.default is not p.empty)
    return defaults


def check_kinds(cls, params, owner):
    """Raise ``SettingError`` naming the first setting of ``params`` that is not of the
    kind ``cls`` declares for it."""
    kinds, defaults = kinds_of(cls), None
    for name, value in params.items():
        kind = kinds.get(name)
        if kind is None:
            continue
        if value is None:
            if defaults is None:
                defaults = _defaults(cls)
            if kind.nullable or (name in defaults and defaults[name] is None):
                continue
        must = kind.what if value is None else kind.problem(value)
        if must:
            # a value given for a key may be the key itself: never echo it
            shown = "null" if value is None else "a value not shown" if "key" in name \
                else f"{type(value).__name__} {_short(value)}"
            raise SettingError(owner, name, f"{name} must be {must}, got {shown}")


def _short(value):
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
