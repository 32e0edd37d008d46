"""``edgellm import | export``: the response store's way in and out."""

import os

from edgellm.cli.targets import check_target, writing
from edgellm.errors import ConfigError
from edgellm.models.importers import export_store, read_entries
from edgellm.models.store import open_store, store_path


def import_responses(args):
    check_target(store_path(args.store))
    entries = []  # every file read and checked before the store changes
    for source in args.sources:
        entries += read_entries(source, args.format, args.task_type, args.system_prompt)
    with writing(store_path(args.store)):
        store = open_store(args.store)
        written, new = store.save_many(entries)
        store.close()
    print(f"imported {written} responses into {store.path} ({new} new, "
          f"{written - new} replaced stored ones)")
    return 0


def export_responses(args):
    if not os.path.isfile(store_path(args.store)):
        raise ConfigError(store_path(args.store), "no response store here")
    check_target(args.target)  # before the store is opened: a bad target writes nothing
    store = open_store(args.store)
    try:
        with writing(args.target):
            count = export_store(store, args.target, args.model)
    finally:
        store.close()
    print(f"exported {count} responses from {store.path} to {args.target}")
    return 0
