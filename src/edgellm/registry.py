"""Lookup by alias, and the one rule for settings.

``Registry`` is the library's one registry (backends, offloaders, caching policies,
task types): an alias names one entry, a second registration of an alias is an
error, and an entry may be lazy (``"package.module:Name"``, imported on first lookup,
so that optional extras stay optional). ``check_settings`` is the one settings rule
for every class that takes settings from YAML (routers, offloaders, caching
policies, backends, the fleet module, dataset processors): the settings are the
explicit keyword parameters of ``__init__`` along the class tree, as scikit-learn
estimators have them, and any other name is an ``UnknownSetting`` with the nearest
valid name.

The example's files register with ``ClassFactory``: sedna's own under real Ianvs
(so ``ianvs -f`` finds what they register), otherwise ours, with the same API. Only
KubeEdge's sedna (a wheel inside the Ianvs source tree) is accepted: the unrelated
PyPI package of that name has no ``sedna.common``.
"""

import difflib
import importlib
import inspect
from typing import Dict, Generic, List, TypeVar, Union

T = TypeVar("T")


class RegistryError(ValueError):
    """An unknown alias, or an alias registered twice."""


class SettingError(ValueError):
    """A bad setting: ``name`` is the setting at fault (so that an error about a YAML
    file can name its key), ``problem`` what is wrong with it."""

    def __init__(self, owner, name, problem):
        self.owner, self.name, self.problem = owner, name, problem
        super().__init__(f"{owner}: {problem}")


class UnknownSetting(SettingError):
    """A setting the class does not take; ``suggestion`` is the nearest valid one."""

    def __init__(self, owner, name, known):
        self.suggestion = nearest(name, known)
        hint = f"; did you mean '{self.suggestion}'?" if self.suggestion else \
            f" (known: {', '.join(known) or 'none'})"
        super().__init__(owner, name, f"unknown setting '{name}'{hint}")


def nearest(name, known):
    """The name in ``known`` closest to ``name`` (difflib's ratio >= 0.6), or None."""
    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1, cutoff=0.6)
    return close[0] if close else None


def accepted_settings(cls):
    """The settings ``cls`` takes: the named parameters of every ``__init__`` along its
    class tree (base classes' first), and the names its ``extra_settings()`` lists (a
    class that passes some settings on to parts it builds, such as the fleet module)."""
    names = []
    for klass in reversed(cls.__mro__):
        init = vars(klass).get("__init__")
        if init is None or klass is object:
            continue
        for p in inspect.signature(init).parameters.values():
            if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) \
                    and p.name not in names:
                names.append(p.name)
    extra = getattr(cls, "extra_settings", None)
    if callable(extra):
        names += [n for n in extra() if n not in names]
    return names


def check_settings(cls, settings, owner=None):
    """Raise ``UnknownSetting`` for the first name in ``settings`` that ``cls`` does not
    take (``accepted_settings``)."""
    known = accepted_settings(cls)
    for name in settings:
        if name not in known:
            raise UnknownSetting(owner or cls.__name__, name, known)


class Registry(Generic[T]):
    """alias -> entry. ``register(alias, target)`` adds one (``target`` an object or a
    lazy ``"module:Name"``; without ``target``, a class decorator); ``get(alias)`` looks
    one up; ``create(alias, **settings)`` builds a registered class after
    ``check_settings``. ``what`` names the kind of entry in error messages."""

    def __init__(self, what):
        self.what = what
        self._entries: Dict[str, Union[T, str]] = {}

    def register(self, alias, target=None):
        if target is None:
            def decorator(obj):
                self.register(alias, obj)
                return obj
            return decorator
        current = self._entries.get(alias)
        if current is not None and current is not target and \
                not (isinstance(current, str) and current == target):
            if isinstance(current, str) and not isinstance(target, str) and \
                    current == _qualified(target):
                self._entries[alias] = target  # a lazy entry's module registering itself
                return target
            raise RegistryError(f"{self.what} alias {alias!r} is registered twice: "
                                f"{_describe(current)} and {_describe(target)}")
        self._entries[alias] = target
        return target

    def get(self, alias) -> T:
        entry = self._entries.get(alias)
        if entry is None:
            raise RegistryError(self.unknown_message(alias))
        if isinstance(entry, str):
            module, _, name = entry.partition(":")
            entry = self._entries[alias] = getattr(importlib.import_module(module), name)
        return entry

    def unknown_message(self, alias):
        hint = nearest(alias, self.names())
        return (f"unknown {self.what} {alias!r}" + (f"; did you mean '{hint}'?" if hint else "")
                + f" (known: {', '.join(self.names()) or 'none'})")

    def create(self, alias, **settings):
        cls = self.get(alias)
        check_settings(cls, settings, owner=f"{self.what} {alias}")
        return cls(**settings)

    def names(self) -> List[str]:
        return list(self._entries)

    def __contains__(self, alias):
        return alias in self._entries

    def __getitem__(self, alias) -> T:
        return self.get(alias)

    def __len__(self):
        return len(self._entries)

    def __iter__(self):
        return iter(self._entries)


def _qualified(obj):
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', repr(obj))}"


def _describe(entry):
    return entry if isinstance(entry, str) else _qualified(entry)


# -- the example's registration surface (sedna's ClassFactory API) ----------------------

try:  # pragma: no cover - exercised only where KubeEdge sedna is installed
    from sedna.common.class_factory import ClassFactory, ClassType
    SEDNA = True
except ImportError:
    SEDNA = False

    class ClassType:
        """Registry groups, spelled as sedna spells them."""

        GENERAL = "general"
        HEM = "hard_example_mining"
        CALLBACK = "post_process_callback"

    class ClassFactory:
        """sedna's ``ClassFactory`` API (its ``__registry__``: group -> alias -> class).
        Unlike sedna, where a second registration of an alias silently wins, an alias
        taken by another class or function is an error, as in ``Registry``; the same
        file imported again (a second job in one process) registers its new objects in
        place of its old ones."""

        __registry__ = {}

        @classmethod
        def register(cls, type_name=ClassType.GENERAL, alias=None):
            def wrapper(t_cls):
                return cls.register_cls(t_cls, type_name, alias)
            return wrapper

        @classmethod
        def register_cls(cls, t_cls, type_name=ClassType.GENERAL, alias=None):
            name = alias if alias is not None else t_cls.__name__
            group = cls.__registry__.setdefault(type_name, {})
            old = group.get(name)
            if old is not None and old is not t_cls and _qualified(old) != _qualified(t_cls):
                raise RegistryError(f"ClassType {type_name!r} alias {name!r} is registered "
                                    f"twice: {_qualified(old)} and {_qualified(t_cls)}")
            group[name] = t_cls
            return t_cls

        @classmethod
        def is_exists(cls, type_name, cls_name=None):
            if cls_name is None:
                return type_name in cls.__registry__
            return cls_name in cls.__registry__.get(type_name, {})

        @classmethod
        def get_cls(cls, type_name, t_cls_name=None):
            if t_cls_name is None or not cls.is_exists(type_name, t_cls_name):
                raise ValueError(f"can't find class type {type_name} class name "
                                 f"{t_cls_name} in class registry")
            return cls.__registry__[type_name][t_cls_name]


def registered_names(type_name):
    """Aliases registered with ``ClassFactory`` under ``type_name``, for error messages."""
    return sorted(ClassFactory.__registry__.get(type_name, {}))


__all__ = ["ClassFactory", "ClassType", "Registry", "RegistryError", "SEDNA", "SettingError",
           "UnknownSetting",
           "accepted_settings", "check_settings", "nearest", "registered_names"]
