"""Reading a user's YAML file: every problem is a one-line ``ConfigError`` naming the
file and the key (or the line, for syntax errors). Shared by the benchmark's job
files and the fleet's topology files."""

import os

import yaml

from edgellm.errors import ConfigError

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(path, what):
    """Parse a YAML file; errors name the file (and the line for syntax errors)."""
    if not os.path.isfile(path):
        raise ConfigError(path, f"{what} file not found (paths resolve against the "
                                f"current directory {os.getcwd()})")
    try:
        with open(path, "rb") as handle:
            data = yaml.load(handle, Loader=_Loader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(path, f"{where}invalid YAML: {problem}") from None
    return data


class YamlSection:
    """A mapping read from ``path`` at ``prefix``; lookups name the full key on error."""

    def __init__(self, path, prefix, data):
        self.path, self.prefix = path, prefix
        if not isinstance(data, dict):
            raise ConfigError(path, f"key '{prefix}': expected a mapping, got "
                                    f"{type(data).__name__}")
        self.data = data

    def key(self, name):
        return f"{self.prefix}.{name}" if self.prefix else name

    def error(self, name, message):
        return ConfigError(self.path, f"key '{self.key(name)}': {message}")

    def get(self, name, kind=None, default=None, required=False):
        if name not in self.data or self.data[name] is None:
            if required:
                raise self.error(name, "missing")
            return default
        value = self.data[name]
        if kind is not None and not isinstance(value, kind):
            kinds = kind if isinstance(kind, tuple) else (kind,)
            raise self.error(name, f"expected {' or '.join(k.__name__ for k in kinds)}, "
                                   f"got {type(value).__name__} {value!r}")
        return value

    def sections(self, name):
        """The mappings of the non-empty list under ``name``, each as a section."""
        values = self.get(name, list, required=True)
        if not values:
            raise self.error(name, "empty list")
        return [YamlSection(self.path, self.key(f"{name}[{i}]"), v) for i, v in enumerate(values)]

    def section(self, name, required=True):
        value = self.get(name, required=required)
        return None if value is None else YamlSection(self.path, self.key(name), value)

    def file(self, name, required=True):
        value = self.get(name, str, required=required)
        if value is not None and not os.path.isfile(value):
            raise self.error(name, f"file not found: {value} (paths resolve against the "
                                   f"current directory)")
        return value
