"""Import module and metric files by url, with Ianvs' semantics.

Ianvs puts the file's folder first on sys.path and imports the file by its
basename, so the file may import its siblings. Two traps follow, which we turn
into clear errors instead of silent misbehaviour: a basename already imported
from another file (a second ``edge_model.py``, or an installed module such as
``yaml``) would quietly give the *other* module, whose registrations are not
the ones the job expects. A third: two files of one job registering the same alias
(sedna lets the last one win) is an error here, and what a job's files registered is
forgotten when the job ends, so that the next job in the same process registers its
own.
"""

import importlib
import os
import sys

from edgellm.errors import ConfigError
from edgellm.registry import ClassFactory, ClassType, RegistryError, registered_names


class ModuleLoader:
    """Loads the files of one job; ``unload()`` forgets them so a later job in
    the same process (tests, notebooks) imports its own copies afresh."""

    def __init__(self):
        self.loaded = {}  # basename -> absolute path
        self.registered = {}  # (ClassType group, alias) -> (object, url of the file)

    def load(self, url, source):
        path = os.path.abspath(url)
        folder, filename = os.path.split(path)
        name, ext = os.path.splitext(filename)
        if ext != ".py":
            raise ConfigError(source, f"url {url}: expected a .py file")
        if self.loaded.get(name) == path:
            return sys.modules[name]
        existing = sys.modules.get(name)
        if existing is not None:
            other = getattr(existing, "__file__", None) or "a built-in module"
            raise ConfigError(source, f"url {url}: its basename '{name}' is already imported "
                                      f"from {other}; Ianvs imports module files by basename, "
                                      f"so rename the file to something unique")
        sys.path.insert(0, folder)
        before = _registrations()
        try:
            module = importlib.import_module(name)
        except ConfigError:
            raise
        except RegistryError as err:
            raise ConfigError(source, f"url {url}: {err}") from None
        except Exception as err:  # user code: report it on one line, keep the cause
            raise ConfigError(source, f"url {url}: import failed: "
                                      f"{type(err).__name__}: {err}") from err
        finally:
            if sys.path and sys.path[0] == folder:
                sys.path.pop(0)
        self.loaded[name] = path
        self._note_registrations(before, url, source)
        return module

    def _note_registrations(self, before, url, source):
        for key, obj in _registrations().items():
            if before.get(key) is obj:
                continue
            earlier = self.registered.get(key)
            if earlier is not None and earlier[0] is not obj:
                raise ConfigError(source, f"url {url}: registers alias {key[1]!r} "
                                          f"(ClassType {key[0]!r}), which {earlier[1]} "
                                          f"registered already: aliases must be unique in a job")
            self.registered[key] = (obj, url)

    def resolve(self, type_name, alias, url, source, what):
        """Import ``url`` and return what it registered under ``alias``."""
        self.load(url, source)
        if not ClassFactory.is_exists(type_name, alias):
            known = ", ".join(registered_names(type_name)) or "none"
            raise ConfigError(source, f"{what} {alias!r} is not registered by {url} "
                                      f"(ClassType {type_name!r} has: {known})")
        return ClassFactory.get_cls(type_name, alias)

    def unload(self):
        for name, path in self.loaded.items():
            module = sys.modules.get(name)
            if module is not None and os.path.abspath(getattr(module, "__file__", "")) == path:
                del sys.modules[name]
        for (group, alias), (obj, _) in self.registered.items():
            entries = ClassFactory.__registry__.get(group, {})
            if entries.get(alias) is obj:
                del entries[alias]
        self.loaded.clear()
        self.registered.clear()


def _registrations():
    """(group, alias) -> object of everything registered with ClassFactory now."""
    return {(group, alias): obj for group, entries in ClassFactory.__registry__.items()
            for alias, obj in entries.items()}


def registry_group(module_type):
    """Ianvs looks routers up among HEM classes, every other module among GENERAL."""
    return ClassType.HEM if module_type == "hard_example_mining" else ClassType.GENERAL
