"""Which rows of different runs are the same configuration: the same algorithm,
modules and hyperparameters (every configuration column with a value; a column one
run lacks counts as empty, so a job that gained a hyperparameter still matches on the
others' values)."""

from dataclasses import dataclass

from edgellm.bench.table import MODULE_NAMES, short_setting


def configuration_key(row, columns):
    return frozenset((c, row.get(c, "")) for c in columns if row.get(c, "") != "")


@dataclass
class Match:
    """One configuration and its row in each source (None where a source lacks it)."""

    key: frozenset
    rows: list
    label: str = ""


def match_rows(sources):
    """(matches present in every source, {source label: labels of its unmatched rows}).
    Sources of one row each are compared as they are, whatever their configurations."""
    if all(len(s.rows) == 1 for s in sources):
        rows = [s.rows[0] for s in sources]
        match = Match(configuration_key(rows[0], sources[0].key_columns), rows)
        alone = [Match(match.key, [r]) for r in rows]
        _label(alone, sources)
        match.label = " | ".join(dict.fromkeys(m.label for m in alone))
        return [match], {}
    keyed = [{configuration_key(r, s.key_columns): r for r in s.rows} for s in sources]
    first = sources[0]
    order = [configuration_key(r, first.key_columns) for r in first.rows]
    matches = [Match(k, [rows[k] for rows in keyed]) for k in order
               if all(k in rows for rows in keyed)]
    _label(matches + [Match(k, [rows[k]]) for rows in keyed for k in rows], sources)
    matched = {m.key for m in matches}
    unmatched = {}
    for source, rows in zip(sources, keyed):
        left = [Match(k, [r]) for k, r in rows.items() if k not in matched]
        if left:
            _label(left, sources)
            unmatched[source.label] = [m.label for m in left]
    return matches, unmatched


def _label(matches, sources):
    """``algorithm (the settings that tell its configurations here apart)``."""
    columns = [c for s in sources for c in s.key_columns if c not in ("algorithm", "paradigm")]
    columns = list(dict.fromkeys(columns))
    by_algorithm = {}
    for m in matches:
        by_algorithm.setdefault(m.rows[0].get("algorithm", "?"), []).append(m.rows[0])
    for m in matches:
        row = m.rows[0]
        algorithm = row.get("algorithm", "?")
        siblings = by_algorithm[algorithm]
        varying = [c for c in columns if len({r.get(c, "") for r in siblings}) > 1]
        models = [c for c in varying if c.endswith("-model")]
        parts = []
        for column in varying:
            value = short_setting(row.get(column, "")) or "-"
            name = column.split("-", 1)[1] if "-" in column else column
            # a model id speaks for itself when it is the only model that varies
            parts.append(value if column in models and len(models) == 1 else f"{name}={value}")
        m.label = algorithm + (f" ({', '.join(parts)})" if parts else "")


def differing_settings(rows, columns):
    """The configuration columns whose values differ between ``rows``, for the line
    that says two compared cases are not the same configuration."""
    names = [c for c in columns if len({r.get(c, "") for r in rows}) > 1]
    return [f"{MODULE_NAMES.get(c, c)}: " + " / ".join(short_setting(r.get(c, "")) or "-"
                                                       for r in rows) for c in names]
