"""Reading a user's YAML file: every problem is a one-line ``ConfigError`` naming the
file and the key (or the line, for syntax errors). Every YAML file the library reads
goes through ``load_yaml``: the benchmark's job files, the fleet's topology files, the
simulated backend's profiles and the package's own tables.

Two things YAML allows are refused, each naming the file and the line: a key given
twice in one mapping (YAML parsers keep the last one silently; the project's rule is
that a key given twice is an error), and aliases that expand the document past
``MAX_ALIAS_VALUES`` values (an "alias bomb": a few lines that expand to 10^9 strings
once something walks them, e.g. printing or copying a hyperparameter).
Blocks nested deeper than ``MAX_NESTING`` are refused before the document is composed:
the composer recurses once per level, and a libyaml built without its own nesting limit
overflows the C stack (a segfault, not an error) on a line of 100,000 "[".
"""

import io
import os

import yaml

from edgellm.errors import ConfigError

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE = "tag:yaml.org,2002:merge"  # "<<: *base" merges a mapping in: not a duplicate key
# Values that aliases may add to a document (a repeated block of settings adds a few
# hundred); past this, expanding it costs memory that no configuration needs.
MAX_ALIAS_VALUES = 100_000
MAX_NESTING = 200  # blocks inside blocks; a job file uses fewer than ten
_OPENS = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSES = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


def load_yaml(path, what):
    """Parse a YAML file; errors name the file (and the line for syntax errors, keys
    given twice and alias bombs)."""
    if os.path.isdir(path):
        raise ConfigError(path, f"a folder, not a {what} file")
    if not os.path.isfile(path):
        raise ConfigError(path, f"{what} file not found (paths resolve against the "
                                f"current directory {os.getcwd()})")
    with open(path, "rb") as handle:
        return _load(path, handle)


def load_yaml_text(text, where):
    """Parse YAML given as text (a command-line value) with the same checks as
    ``load_yaml``; errors are ConfigErrors naming ``where``."""
    return _load(where, io.BytesIO(text.encode("utf-8")))


def _load(path, handle):
    try:
        _check_nesting(path, handle)
        handle.seek(0)
        loader = _Loader(handle)
        try:
            node = loader.get_single_node()
            if node is None:  # an empty document
                return None
            _check_nodes(path, node)
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(path, f"{where}invalid YAML: {problem}") from None


def _check_nesting(path, handle):
    """Read the file's events (the parser keeps a stack, it does not recurse): a block
    nested deeper than MAX_NESTING is a ConfigError naming its line."""
    loader = _Loader(handle)
    try:
        depth = 0
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, _OPENS):
                depth += 1
                if depth > MAX_NESTING:
                    raise ConfigError(path, f"line {event.start_mark.line + 1}: blocks nested "
                                            f"more than {MAX_NESTING} deep")
            elif isinstance(event, _CLOSES):
                depth -= 1
    finally:
        loader.dispose()


def _children(node):
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return ()


def _check_nodes(path, root):
    """Walk the composed document once (aliases are shared nodes, each visited once):
    a key given twice in a mapping, an alias that refers to its own anchor, or more
    than MAX_ALIAS_VALUES values added by aliases is a ConfigError naming the line."""
    expanded = {}  # id(node) -> values it holds once every alias in it is followed
    distinct = 0
    stack = [(root, False)]  # iterative post-order: deep documents do not recurse
    open_nodes = set()
    while stack:
        node, done = stack.pop()
        if done:
            open_nodes.discard(id(node))
            size = expanded[id(node)] = 1 + sum(expanded[id(c)] for c in _children(node))
            if size - distinct > MAX_ALIAS_VALUES:  # the first block too big, named
                raise ConfigError(path, f"line {node.start_mark.line + 1}: aliases expand "
                                        f"this block to {size:,} values (at most "
                                        f"{MAX_ALIAS_VALUES:,} more than the file holds): "
                                        "write the values out")
            continue
        if id(node) in expanded:
            continue
        if id(node) in open_nodes:
            raise ConfigError(path, f"line {node.start_mark.line + 1}: an alias refers to "
                                    "the block it is in (a recursive document)")
        distinct += 1
        open_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            _check_keys(path, node)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node)
                     if id(child) not in expanded)


def _check_keys(path, node):
    seen = {}  # (tag, text) of a scalar key -> the key node that gave it first
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == _MERGE:
            continue
        first = seen.setdefault((key.tag, key.value), key)
        if first is not key:
            raise ConfigError(path, f"line {key.start_mark.line + 1}: key '{key.value}' "
                                    f"given twice (first at line {first.start_mark.line + 1})")


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
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # true/false is an int to Python, but no number to a user
        if kind is not None and (not isinstance(value, kinds) or
                                 (isinstance(value, bool) and bool not in kinds)):
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
        if value is not None and os.path.isdir(value):
            raise self.error(name, f"{value} is a folder, not a file")
        if value is not None and not os.path.isfile(value):
            raise self.error(name, f"file not found: {value} (paths resolve against the "
                                   f"current directory)")
        return value
