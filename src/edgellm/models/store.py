"""The response store: every response a real model gave, kept in one SQLite file per
workspace and shared by edge and cloud models, so that a rerun, a changed router or
another metric replays them instead of asking the model again.

A response is filed under a hash of the model identity, the sampling settings that
change outputs and the exact chat messages. It is written (and committed) as it
arrives, in WAL mode: a run killed midway keeps every answer it already had, and a
rerun continues where it stopped.

Responses imported from routing studies' outcome matrices have no messages: they are
filed under the model and the item (its query text, else its id) and found by item,
whatever the sampling settings (docs/response-store.md).
"""

import hashlib
import logging
import os
import sqlite3
import struct
import threading
import time
from dataclasses import dataclass

import orjson

from edgellm.context import current_context
from edgellm.errors import ConfigError

SCHEMA_VERSION = 1
STORE_FILE = "responses.sqlite"

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS responses (
    id INTEGER PRIMARY KEY,     -- the key's first 8 bytes: one B-tree search per lookup
    key BLOB NOT NULL,          -- hash of identity, settings and messages (or item)
    identity TEXT NOT NULL,     -- the model identity
    settings TEXT NOT NULL,     -- JSON, sorted keys: the settings that change outputs
    prompt_key BLOB,            -- hash of identity and messages: same prompt, any settings
    messages TEXT,              -- JSON chat messages; NULL for outcome-matrix items
    item_key TEXT,              -- outcome-matrix items: 'q:<hash of query>' or 'id:<id>'
    item TEXT,                  -- JSON {"id", "query"} of an outcome-matrix item
    response BLOB NOT NULL,     -- JSON response record
    created REAL NOT NULL       -- Unix time it was stored
);
CREATE INDEX IF NOT EXISTS responses_prompt ON responses (prompt_key);
CREATE INDEX IF NOT EXISTS responses_item ON responses (identity, item_key)
    WHERE item_key IS NOT NULL;
"""


class ReplayMiss(ConfigError):
    """Replay mode asked for responses the store does not have."""


@dataclass
class StoredResponse:
    """One row: what was asked (identity, settings, messages or item) and the answer."""

    identity: str
    settings: dict
    response: dict
    messages: list = None
    item: dict = None
    created: float = None


def settings_json(settings):
    return orjson.dumps(settings, option=orjson.OPT_SORT_KEYS)


def _digest(data):
    return hashlib.blake2b(data, digest_size=16).digest()


_FIRST_8_BYTES = struct.Struct(">q").unpack_from


def _row_id(key):
    """The key's first 8 bytes as SQLite's 64-bit row id."""
    return _FIRST_8_BYTES(key)[0]


def response_key(identity, settings, messages):
    return _digest(b"\0".join((identity.encode(), settings_json(settings),
                               orjson.dumps(messages))))


def prompt_key(identity, messages):
    return _digest(identity.encode() + b"\0" + orjson.dumps(messages))


def _query_key(query):
    text = query if isinstance(query, str) else orjson.dumps(query).decode()
    return "q:" + hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def item_key(item):
    """Outcome-matrix items are matched on their query text when they give one, else
    on their id (the dataset line index under edgellm's dataset processor)."""
    if item.get("query") not in (None, ""):
        return _query_key(item["query"])
    return "id:" + str(item["id"])


def _sample_item_keys(sample):
    keys = []
    if isinstance(sample, dict):
        if sample.get("query") not in (None, ""):
            keys.append(_query_key(sample["query"]))
        if sample.get("id") is not None:
            keys.append("id:" + str(sample["id"]))
    return keys


def store_path(path=None):
    """Where the store is: ``path`` when given, else the run context's store
    (``edgellm run --store``; under Ianvs env EDGELLM_STORE), else
    ``<workspace>/responses.sqlite`` of the running job (edgellm.context)."""
    context = current_context()
    chosen = path or context.store_path or os.path.join(context.workspace, STORE_FILE)
    return os.path.abspath(os.path.expanduser(str(chosen)))


_OPEN = {}


def open_store(path=None):
    """The store at ``store_path(path)``, one per process and file: worker processes
    forked by ``edgellm run --jobs`` open their own."""
    path = store_path(path)
    key = (os.getpid(), path)
    store = _OPEN.get(key)
    if store is None:
        store = _OPEN[key] = ResponseStore(path)
    return store


# An SQLite connection must not cross a fork: a child that used (or merely closed) its
# copy could corrupt the file. Close them all before forking, with their locks held
# so no thread is mid-query; each process reopens lazily, on its next use.
def _before_fork():
    for store in list(_OPEN.values()):
        store._lock.acquire()
        store._disconnect()


def _after_fork():
    for store in list(_OPEN.values()):
        store._lock.release()


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork,
                    after_in_child=_after_fork)


def _describe(settings):
    return ", ".join(f"{k}={v!r}" for k, v in sorted(settings.items())) or "no settings"


def _differences(asked, stored):
    keys = sorted(set(asked) | set(stored))
    return ", ".join(f"{k}={stored.get(k)!r} (asked {asked.get(k)!r})"
                     for k in keys if asked.get(k) != stored.get(k))


class ResponseStore:
    """One SQLite file of responses (see the module docstring). Thread-safe: API
    backends finish requests on several threads. ``close()`` may be called by each
    backend sharing the store; a later call opens the file again."""

    def __init__(self, path):
        self.path = str(path)
        self._conn = None
        self._lock = threading.RLock()
        self._warned = set()
        self._has_items = {}
        self._variables = 999  # SQLite's smallest limit on ? per statement; see _connect

    # -- the file ------------------------------------------------------------

    @property
    def connection(self):
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _connect(self):
        folder = os.path.dirname(self.path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        try:
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None,
                                   check_same_thread=False)
        except sqlite3.Error as err:
            raise ConfigError(self.path, f"cannot open the response store ({err})") from None
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            # With WAL, NORMAL loses nothing committed when the process dies (only on
            # power loss), at a fraction of FULL's cost per response.
            conn.execute("PRAGMA synchronous=NORMAL")
            # reads straight from the mapped file: a quarter off each replayed response
            conn.execute("PRAGMA mmap_size=1073741824")
            version = self._schema_version(conn)
            if hasattr(conn, "getlimit"):  # Python 3.11+
                self._variables = min(conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER), 8192)
        except sqlite3.DatabaseError as err:
            conn.close()
            raise ConfigError(self.path, f"not an edgellm response store ({err})") from None
        if version > SCHEMA_VERSION:
            conn.close()
            raise ConfigError(self.path, f"response store schema version {version} is newer "
                                         f"than this edgellm reads ({SCHEMA_VERSION}): "
                                         "upgrade edgellm")
        return conn

    @staticmethod
    def _schema_version(conn):
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "meta" not in tables:
            if tables:  # some other SQLite file
                raise sqlite3.DatabaseError(f"unexpected tables {sorted(tables)}")
            # one transaction; IF NOT EXISTS and OR IGNORE let two processes race here
            conn.executescript(f"BEGIN IMMEDIATE;{_SCHEMA}INSERT OR IGNORE INTO meta "
                               f"VALUES ('schema_version', '{SCHEMA_VERSION}');COMMIT;")
        row = conn.execute("SELECT value FROM meta WHERE name='schema_version'").fetchone()
        return int(row[0]) if row else SCHEMA_VERSION

    def close(self):
        with self._lock:
            self._disconnect()

    def _disconnect(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __len__(self):
        with self._lock:
            return self.connection.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    # -- what ChatBackend calls ------------------------------------------------

    def lookup(self, identity, settings, messages_list, samples=None):
        """The stored record for each messages (None where there is none): by exact
        key, else, for outcome-matrix items of this model, by the sample's query or id."""
        prefix = identity.encode() + b"\0" + settings_json(settings) + b"\0"
        dumps, blake2b = orjson.dumps, hashlib.blake2b  # _digest inlined: the hot path
        keys = [blake2b(prefix + dumps(m), digest_size=16).digest() for m in messages_list]
        # by row id, then checked on the full key (a row sharing only the id is a miss)
        found = dict(self._fetch("SELECT key, response FROM responses WHERE id IN ({})", (),
                                 list({_row_id(k) for k in keys})))
        loads = orjson.loads
        records = [loads(found[k]) if k in found else None for k in keys]
        if samples is not None and self._identity_has_items(identity) and None in records:
            self._lookup_items(identity, records, samples)
        return records

    def _fetch(self, sql, params, keys):
        """The rows of ``sql``, whose ``IN ({})`` is filled with ``keys`` a chunk at a
        time (after ``params``)."""
        rows = []
        with self._lock:
            conn = self.connection
            size = self._variables - len(params)
            for start in range(0, len(keys), size):
                chunk = keys[start:start + size]
                rows += conn.execute(sql.format(",".join("?" * len(chunk))), (*params, *chunk))
        return rows

    def _identity_has_items(self, identity):
        if identity not in self._has_items:
            with self._lock:
                row = self.connection.execute(
                    "SELECT 1 FROM responses WHERE identity=? AND item_key IS NOT NULL LIMIT 1",
                    (identity,)).fetchone()
            self._has_items[identity] = row is not None
        return self._has_items[identity]

    def _lookup_items(self, identity, records, samples):
        wanted = {i: _sample_item_keys(samples[i]) for i, r in enumerate(records) if r is None}
        keys = list({k for ks in wanted.values() for k in ks})
        found = dict(self._fetch("SELECT item_key, response FROM responses "
                                 "WHERE identity=? AND item_key IN ({})", (identity,), keys))
        for i, sample_keys in wanted.items():
            hit = next((found[k] for k in sample_keys if k in found), None)
            if hit is not None:
                records[i] = orjson.loads(hit)

    def save(self, identity, settings, messages, response):
        """Store one response as it arrives (committed at once). It replaces one
        stored under the same key (record mode refreshes): a key never has two rows."""
        row = self._row(StoredResponse(identity, settings, response, messages=messages))
        with self._lock:
            self.connection.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)

    def warn_other_settings(self, identity, settings, messages_list):
        """Warn, once per model and settings, when prompts that missed are stored
        under other settings: a changed temperature or max_tokens should not silently
        mean calling the model again."""
        asked = settings_json(settings)
        if (identity, asked) in self._warned:
            return
        others = self._other_settings(identity, settings, messages_list)
        if others:
            self._warned.add((identity, asked))
            log.warning("response store %s: %d prompts for model %r missed under %s; %s",
                        self.path, len(messages_list), identity, _describe(settings),
                        self._other_settings_text(settings, others))

    def _other_settings(self, identity, settings, messages_list):
        """[(stored settings, prompts)], most prompts first, of the prompts in
        ``messages_list`` stored under settings other than ``settings``."""
        keys = list({prompt_key(identity, m) for m in messages_list})
        # the column is TEXT: a bytes parameter would never equal it (SQLite orders
        # every BLOB after every TEXT), and the asked settings would count as others
        asked = settings_json(settings).decode()
        counts = {}
        for stored, n in self._fetch("SELECT settings, COUNT(DISTINCT prompt_key) FROM "
                                     "responses WHERE settings != ? AND prompt_key IN ({}) "
                                     "GROUP BY settings", (asked,), keys):
            counts[stored] = counts.get(stored, 0) + n
        return [(orjson.loads(stored), n)
                for stored, n in sorted(counts.items(), key=lambda kv: -kv[1])]

    @staticmethod
    def _other_settings_text(asked, others):
        shown = "; ".join(f"{n} under {_differences(asked, stored)}" for stored, n in others[:3])
        more = f"; and under {len(others) - 3} more settings" if len(others) > 3 else ""
        return f"stored under other settings: {shown}{more}"

    def replay_miss(self, identity, settings, messages_list):
        """The error replay mode raises for ``messages_list``, which the store lacks."""
        others = self._other_settings(identity, settings, messages_list)
        hint = f"; {self._other_settings_text(settings, others)}" if others else ""
        return ReplayMiss(self.path, f"replay found no stored response for {len(messages_list)} "
                                     f"prompts of model {identity!r} under "
                                     f"{_describe(settings)}{hint}. Record them first "
                                     "(store_mode auto or record) or import them "
                                     "(edgellm import)")

    # -- import and export -----------------------------------------------------

    @staticmethod
    def _row(entry):
        settings = entry.settings or {}
        created = time.time() if entry.created is None else float(entry.created)
        response = orjson.dumps(entry.response)
        if entry.messages is not None:
            key = response_key(entry.identity, settings, entry.messages)
            return (_row_id(key), key, entry.identity, settings_json(settings).decode(),
                    prompt_key(entry.identity, entry.messages),
                    orjson.dumps(entry.messages).decode(), None, None, response, created)
        item = item_key(entry.item)
        key = _digest(f"{entry.identity}\0item\0{item}".encode())
        return (_row_id(key), key, entry.identity, settings_json(settings).decode(), None, None,
                item, orjson.dumps(entry.item).decode(), response, created)

    def save_many(self, entries):
        """Store ``StoredResponse`` entries in one transaction, replacing what is
        stored under the same keys (an import brings the newer file). Returns
        (entries written, of which new)."""
        rows = [self._row(e) for e in entries]
        with self._lock:
            conn = self.connection
            conn.execute("BEGIN IMMEDIATE")
            try:
                before = conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
                conn.executemany(
                    "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
                after = conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self._has_items.clear()
        return len(rows), after - before

    def entries(self, identity=None):
        """Every stored response, oldest first (optionally of one model)."""
        sql = "SELECT identity, settings, messages, item, response, created FROM responses"
        params = ()
        if identity is not None:
            sql, params = sql + " WHERE identity=?", (identity,)
        with self._lock:
            rows = self.connection.execute(sql + " ORDER BY created, id", params).fetchall()
        loads = orjson.loads
        for identity_, settings, messages, item, response, created in rows:
            yield StoredResponse(identity_, loads(settings), loads(response),
                                 messages=None if messages is None else loads(messages),
                                 item=None if item is None else loads(item), created=created)
