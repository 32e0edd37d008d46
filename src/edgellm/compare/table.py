"""``edgellm compare``'s output: a block per metric for people (one line per
configuration: each run's value and interval, each difference from the first run
with its interval and p-value), or JSON for machines."""

import math

SIGNIFICANT = 0.05


def _decimals(values):
    digits = 0
    for value in values:
        if value is None:
            continue
        text = repr(float(value))
        if "e" in text:
            return 6
        digits = max(digits, len(text.split(".", 1)[1].rstrip("0")))
    return min(digits, 6)


def _number(value, digits, sign=False):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    value = round(value, digits) + 0.0  # -0.0004 is 0.000, not -0.000
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def _span(low, high, digits):
    if low is None:
        return ""
    return f"[{_number(low, digits)}, {_number(high, digits)}]"


def _p(delta):
    if delta is None or delta.p_value is None or math.isnan(delta.p_value):
        return ""
    text = _p_value(delta.p_value)
    if delta.mcnemar is not None:
        text += f" McN {_p_value(delta.mcnemar.p_value)}"
    if min(delta.p_value, delta.mcnemar.p_value if delta.mcnemar else 1) < SIGNIFICANT:
        text += " *"
    return text


def _p_value(p):
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _align(lines):
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return ["  " + "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                             for i, (cell, w) in enumerate(zip(line, widths))).rstrip()
            for line in lines]


def render_text(result):
    labels = [s.label for s in result.sources]
    first = labels[0]
    paired = {d.paired for c in result.configurations for row in c.metrics.values()
              for d in row.deltas if d is not None and d.p_value is not None}
    how = "paired on the same queries" if paired == {True} else \
        "unpaired (different queries)" if paired == {False} else "paired where on the same queries"
    lines = [f"edgellm compare: {len(result.configurations)} configuration"
             f"{'s' * (len(result.configurations) != 1)} in every run; "
             f"{100 * result.level:g} % intervals from {result.resamples} bootstrap resamples "
             f"(seed {result.seed})"]
    lines += [f"  {s.describe()}" for s in result.sources]
    lines.append(f"  differences {', '.join(f'{x}-{first}' for x in labels[1:])}: {how}; p: "
                 f"bootstrap, McN: McNemar's exact test (0/1 metrics); * p < {SIGNIFICANT}")
    for metric in result.metrics:
        rows = [c.metrics[metric] for c in result.configurations]
        digits = _decimals([v for r in rows for v in r.values])
        header = ["configuration", *labels]
        for label in labels[1:]:
            header += [f"{label}-{first}", f"p ({label})"]
        table = [header]
        for config, row in zip(result.configurations, rows):
            cells = [config.label]
            for value, interval in zip(row.values, row.intervals):
                span = _span(interval.low, interval.high, digits) if interval else ""
                cells.append(f"{_number(value, digits)} {span}".strip())
            for delta in row.deltas:
                if delta is None:
                    cells += ["-", ""]
                    continue
                cells.append(f"{_number(delta.value, digits, sign=True)} "
                             f"{_span(delta.low, delta.high, digits)}".strip())
                cells.append(_p(delta))
            table.append(cells)
        lines += ["", metric, *_align(table)]
    if result.unmatched:
        lines.append("")
        lines += [f"only in {label}: {', '.join(names)}"
                  for label, names in result.unmatched.items()]
    if result.notes:
        lines.append("")
        lines += result.notes
    return "\n".join(lines)


def _bounds(interval):
    return None if interval is None else [interval.low, interval.high]


def _nan_none(value):
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def to_json(result):
    """A plain dict (json.dumps-able)."""
    labels = [s.label for s in result.sources]
    configurations = []
    for config in result.configurations:
        metrics = {}
        for name, row in config.metrics.items():
            deltas = []
            for label, delta in zip(labels[1:], row.deltas):
                if delta is None:
                    deltas.append(None)
                    continue
                entry = {"run": label, "against": labels[0], "difference": delta.value,
                         "low": delta.low, "high": delta.high,
                         "p_value": _nan_none(delta.p_value), "paired": delta.paired}
                if delta.mcnemar is not None:
                    m = delta.mcnemar
                    entry["mcnemar"] = {"p_value": m.p_value, "first_only": m.first_only,
                                        "second_only": m.second_only}
                deltas.append(entry)
            metrics[name] = {"values": row.values,
                             "intervals": [_bounds(i) for i in row.intervals],
                             "differences": deltas}
        configurations.append({"label": config.label, "configuration": config.configuration,
                               "metrics": metrics})
    return {"runs": [{"label": s.label, "path": s.path, "rank_file": s.where,
                      "configurations": len(s.rows)} for s in result.sources],
            "level": result.level, "resamples": result.resamples, "seed": result.seed,
            "method": "Poisson bootstrap, paired where runs share their queries; "
                      "McNemar's exact test for 0/1 metrics",
            "metrics": result.metrics, "configurations": configurations,
            "only_in": result.unmatched, "notes": result.notes}
