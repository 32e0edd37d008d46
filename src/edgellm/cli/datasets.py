"""``edgellm dataset convert | split | synthesize``."""

from edgellm.bench.dataset_split import split_dataset
from edgellm.cli.targets import check_target, writing
from edgellm.errors import ConfigError
from edgellm.files import write_text
from edgellm.outcomes.synthetic import CLOUD_MODEL, EDGE_MODEL, generate
from edgellm.tasks.datasets import read_items, target_of, write_items


def convert(args):
    fmt, target = target_of(args.target, args.target_format)
    check_target(target, folder=fmt == "ianvs")
    items, skipped = read_items(args.source, args.source_format, args.skip_bad_rows)
    with writing(target):
        written = write_items(items, args.target, args.target_format)
    counts = {}
    for item in items:
        counts[item.code] = counts.get(item.code, 0) + 1
    print(f"wrote {written} items to {args.target} "
          f"({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})"
          + (f"; skipped {skipped} bad row{'s' if skipped != 1 else ''}" if skipped else ""))
    return 0


def split(args):
    check_target(args.out, folder=True)
    record = split_dataset(args.source, args.out, args.train_fraction, args.seed)
    written = [record["train"]["path"], record["test"]["path"]]
    if record.get("test_dataset"):
        written.append(record["test_dataset"])
    print(f"split {record['items']} items of {args.source} (train fraction "
          f"{record['train_fraction']}, seed {record['seed']}): {record['train_items']} train, "
          f"{record['test_items']} test; wrote {', '.join(written)} and split.json to {args.out}")
    return 0


def synthesize(args):
    if not args.target.endswith(".csv"):
        raise ConfigError(args.target, "expected a .csv file (the matrix is written as a "
                                       "long outcome-matrix CSV)")
    check_target(args.target)
    matrix = generate(args.items, args.seed)
    with writing(args.target):
        write_text(args.target, matrix.to_csv())
    print(f"wrote {len(matrix)} items x 2 models to {args.target}: {EDGE_MODEL} accuracy "
          f"{matrix.weak_correct.mean():.3f}, {CLOUD_MODEL} {matrix.strong_correct.mean():.3f}")
    return 0
