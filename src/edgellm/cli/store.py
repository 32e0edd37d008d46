"""``edgellm import | export``: the response store's way in and out."""

import os

from edgellm.bench.config import read_job
from edgellm.cli.targets import check_target, writing
from edgellm.errors import ConfigError
from edgellm.models.importers import export_store, read_entries
from edgellm.models.store import STORE_FILE, open_store, store_path


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
    chosen = args.store
    if args.file and not chosen:  # the job's own store: <its workspace>/responses.sqlite
        chosen = os.path.join(read_job(args.file).workspace, STORE_FILE)
    if not os.path.isfile(store_path(chosen)):
        raise ConfigError(store_path(chosen), "no response store here")
    check_target(args.target)  # before the store is opened: a bad target writes nothing
    store = open_store(chosen)
    try:
        with writing(args.target):
            count = export_store(store, args.target, args.model)
    finally:
        store.close()
    print(f"exported {count} responses from {store.path} to {args.target}")
    return 0
