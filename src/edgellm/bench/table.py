"""The printed leaderboard: narrow enough for the terminal by default, Ianvs' full
table with ``--wide``.

The narrow table fits ``width`` columns (the terminal's, 120 when the output is not
a terminal): the title sits above it, wrapped, with its SIMULATED label; then rank,
algorithm, the settings that tell rows apart, and the selected metrics under short
headers, the sort_by metrics first. What does not fit is named under the table, as
are the short headers, the settings every row shares and long values (urls, paths,
model ids), which become ``[1]``, ``[2]`` in the cells.
"""

import textwrap
from dataclasses import dataclass, field

from prettytable import PrettyTable

from edgellm.bench.rank import configuration_columns
from edgellm.metrics.catalog import short_name

DEFAULT_WIDTH = 120
MIN_WIDTH = 60
LONG_VALUE = 24  # a shortened setting longer than this goes to the legend
SIMULATED_LABEL = "SIMULATED models: figures come from model profiles, not real inference"
MODULE_NAMES = {"edgemodel": "edge", "cloudmodel": "cloud", "hard_example_mining": "router",
                "dataset_processor": "data"}
_TRAILING = ("simulated", "time", "url")


@dataclass
class TableView:
    """What to print: ``rows`` (dicts, rank order), the selected ``header`` (Ianvs'
    columns), its ``metrics``, the ``sort_metrics``, each row's simulated flag,
    ``intervals`` {metric: [Interval or None per row]} for the ``±`` columns and
    ``notes``: lines printed under the table."""

    job: str
    rows: list
    header: list
    metrics: list
    sort_metrics: list = field(default_factory=list)
    simulated: list = field(default_factory=list)
    intervals: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def title(self):
        title = f"edgellm leaderboard: {self.job}"
        flags = [bool(f) for f in self.simulated]
        if flags and all(flags):
            title += f" ({SIMULATED_LABEL})"
        elif any(flags):
            title += f" (rows marked SIM: {SIMULATED_LABEL})"
        return title


def render(view, width=None, wide=False):
    """The table and its notes as one string."""
    notes = [*view.notes, *filter(None, [unseen_differences(view)])]
    if wide:
        return "\n".join([_wide(view), *notes])
    narrow = _Narrow(view, max(MIN_WIDTH, width or DEFAULT_WIDTH))
    return "\n".join([narrow.render(), *(line for note in notes
                                          for line in narrow.wrap(note))])


def unseen_differences(view):
    """A line naming the rows that the selected columns cannot tell apart (each row is
    a configuration of its own: they differ in a setting rank.selected_dataitem leaves
    out), with those settings; "" when every row shows what makes it its own."""
    shown = [c for c in view.header if c not in view.metrics and c not in _TRAILING]
    groups = {}  # what the row shows -> [(its number, the row)]
    for number, row in enumerate(view.rows, 1):
        groups.setdefault(tuple(row.get(c, "") for c in shown), []).append((number, row))
    alike = [group for group in groups.values() if len(group) > 1]
    if not alike:
        return ""
    differ = []
    for group in alike:
        rows = [row for _, row in group]
        differ += [c for c in configuration_columns(list(rows[0]), view.metrics)
                   if c not in shown and c not in differ
                   and len({r.get(c, "") for r in rows}) > 1]
    which = "; ".join("rows " + ", ".join(str(n) for n, _ in group) for group in alike)
    return (f"{which}: alike in every selected column; they differ in "
            f"{', '.join(differ) or 'settings the rank file does not hold'} "
            f"(rank.selected_dataitem leaves it out)")


def _wide(view):
    """Ianvs' print_table: every selected column, the title inside the frame."""
    table = PrettyTable(["rank", *view.header])
    for i, row in enumerate(view.rows, 1):
        table.add_row([i, *(row.get(c, "") for c in view.header)])
    table.title = view.title()
    return table.get_string()


@dataclass
class _Column:
    header: str
    cells: list
    priority: int  # lower: dropped later
    full: str = ""  # the name a legend gives a short header


def _decimals(cells):
    return max((len(c.split(".", 1)[1]) for c in cells if "." in c and "e" not in c),
               default=0)


class _Narrow:
    def __init__(self, view, width):
        self.view, self.width = view, width
        self.refs = {}  # long value -> [n]
        self.legend = []

    def render(self):
        columns = self._columns()
        shown = list(columns)
        dropped = []
        while len(shown) > 2 and self._width(shown) > self.width:
            victim = max(shown[2:], key=lambda c: (c.priority, shown.index(c)))
            shown.remove(victim)
            dropped.append(victim.full or victim.header)
        lines = textwrap.wrap(self.view.title(), self.width, subsequent_indent="  ")
        lines.append(self._table(shown))
        abbreviations = [f"{c.header} = {c.full}" for c in shown
                         if c.full and c.full != c.header]
        if abbreviations:
            lines += self.wrap("columns: " + ", ".join(abbreviations))
        lines += [line for text in self.legend for line in self.wrap(text)]
        if self.refs:
            lines += [line for value, ref in self.refs.items()
                      for line in self.wrap(f"{ref} {value}")]
        hidden = list(dict.fromkeys(dropped + ["time", "url"]))
        lines += self.wrap(f"not shown (--wide shows every selected column): "
                            f"{', '.join(hidden)}")
        return "\n".join(lines)

    def wrap(self, text):
        return textwrap.wrap(text, self.width, subsequent_indent="  ",
                             break_long_words=False, break_on_hyphens=False) or [""]

    # -- columns --------------------------------------------------------------------

    def _columns(self):
        view, rows = self.view, self.view.rows
        columns = [_Column("#", [str(i) for i in range(1, len(rows) + 1)], 0),
                   _Column("algorithm", [r.get("algorithm", "") for r in rows], 0)]
        settings = [c for c in view.header if c not in ("algorithm", *view.metrics, *_TRAILING)]
        varying, same = [], []
        for name in settings:
            values = [r.get(name, "") for r in rows]
            (varying if len(set(values)) > 1 else same).append(name)
        if same and rows:
            self.legend.append("every row: " + ", ".join(
                f"{name}={self._short_value(rows[0].get(name, ''))}" for name in same))
        hp_names = [_setting(n)[1] for n in settings]  # "model" of edge and cloud: say which
        for name in varying:
            module, hp = _setting(name)
            header = hp if hp and hp_names.count(hp) == 1 else \
                " ".join(p for p in (MODULE_NAMES.get(module, module), hp) if p)
            # a module's alias goes with the algorithm: dropped before the settings
            columns.append(_Column(header, [self._short_value(r.get(name, "")) for r in rows],
                                   3 if not hp else 1, name))
        flags = [bool(f) for f in view.simulated]
        if any(flags) and not all(flags):
            columns.append(_Column("SIM", ["SIM" if f else "" for f in flags], 1,
                                   "simulated models"))
        metrics = [m for m in view.sort_metrics if m in view.metrics] + \
                  [m for m in view.metrics if m not in view.sort_metrics]
        for rank, metric in enumerate(metrics):
            cells = [r.get(metric, "") for r in rows]
            # a metric whose interval was asked for is the last a narrow table drops
            priority = 0 if metric in view.intervals else 1 if rank == 0 else 2
            columns.append(_Column(short_name(metric), cells, priority, metric))
            if metric in view.intervals:
                digits = _decimals(cells)
                columns.append(_Column(f"{short_name(metric)}±", [
                    "" if i is None else f"{i.half_width:.{digits}f}"
                    for i in view.intervals[metric]], priority,
                    f"half the 95 % interval of {metric}"))
        return columns

    def _short_value(self, value):
        value = short_setting(value)
        if len(value) <= LONG_VALUE and "://" not in value:
            return value
        if value not in self.refs:
            self.refs[value] = f"[{len(self.refs) + 1}]"
        return self.refs[value]

    # -- drawing --------------------------------------------------------------------

    @staticmethod
    def _table(columns):
        table = PrettyTable()
        names = []
        for column in columns:
            name = column.header
            while name in names:  # prettytable's field names must differ
                name += "'"
            names.append(name)
            table.add_column(name, column.cells)
        for name, column in zip(names, columns):  # numbers to the right, words to the left
            table.align[name] = "r" if all(_numeric(c) for c in column.cells) else "l"
        return table.get_string()

    def _width(self, columns):
        return sum(max(len(c.header), *(len(x) for x in c.cells), 0) + 3
                   for c in columns) + 1


def _setting(column):
    """(module type, hyperparameter or '') of a rank column."""
    for module in MODULE_NAMES:
        if column == module:
            return module, ""
        if column.startswith(module + "-"):
            return module, column[len(module) + 1:]
    return column, ""



def _numeric(text):
    try:
        float(text or 0)
        return True
    except ValueError:
        return False


def short_setting(value):
    """A setting as a narrow table or a label shows it: the last part of a path or an
    org/model id (a url stays whole)."""
    value = str(value)
    if "://" not in value and "/" in value.strip("/"):
        value = value.rstrip("/").rsplit("/", 1)[-1]
    return value
