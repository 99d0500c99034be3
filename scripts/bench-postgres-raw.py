#!/usr/bin/env python3
"""Raw PostgreSQL insert benchmark for the hub's record store, without the hub: how many
ratings per second can be stored durably (fsync=on, synchronous_commit=on, one COMMIT per
group-commit transaction) into the PostgreSQL store's own `records` and `batches` tables,
and with which way of sending the rows.

Every transaction has the hub's group-commit shape: TX_RECORDS records in batches of BATCH
records (one origin and sequence per batch), and
  1. INSERT INTO batches ... ON CONFLICT DO NOTHING RETURNING origin, sequence  (new batches)
  2. the records of the new batches into records, ... ON CONFLICT (id) DO NOTHING RETURNING id
     (only the ids returned are new: only those may raise alerts)
  3. UPDATE batches SET stored_records = ... (from the ids returned)
  4. COMMIT (an ACK may go to the agent only after it)
Steps 1 and 3 are the same statements (UNNEST) in every strategy; step 2 is what differs:
  a       multi-row INSERT ... VALUES (...),(...) ... ON CONFLICT (id) DO NOTHING RETURNING id,
          chunked under the 65,535-parameter limit of the protocol
  b       INSERT ... SELECT * FROM UNNEST($1::uuid[], $2::uuid[], ...) ON CONFLICT (id) DO
          NOTHING RETURNING id (one array parameter per column)
  c       binary COPY into a session's temporary staging table (LIKE records, ON COMMIT
          DELETE ROWS), then INSERT INTO records SELECT ... FROM it ON CONFLICT (id) DO
          NOTHING RETURNING id
  d       binary COPY straight into records: no duplicate check, so not a valid hub
          strategy; the ceiling, for reference
  b_pk, c_pk   b and c with only the primary key (the four secondary indexes of records
          dropped for the run): what those indexes cost
  b_flat, c_flat, d_flat   b, c and d into an unpartitioned copy of records (same columns
          and indexes): what partition routing costs (not in `all`)

The tables are made in their own PostgreSQL schema (--pg-schema, default fm_bench_raw,
dropped and made anew at start and dropped at the end unless --keep): the DDL of batches and
records below is copied from PostgresSchema.swift's migration v1 (--schema-swift PATH runs
that file's whole v1 migration instead, and a copy found in the repository is compared with
the one here, with a warning when they differ). Records are partitioned by RANGE on the
UUIDv7 id, one partition per month (records_y2026m12 ...) for the current month and the two
after, plus the DEFAULT partition. Tables are truncated (and a CHECKPOINT is asked for)
between strategies.

The rows look like real ones: UUIDv7 ids in capture-time order, from --agents agents per
client (each agent's batches hold its own records, so consecutive batches overlap in
time), sequence increasing per origin, NPS scores 0-10 (negative when <= 6), 200 sites,
a comment on 10% of rows. All rows are made before the clock starts, and by default also
encoded (binary COPY streams, binary arrays, flat parameter lists): the hub is compiled
Swift, and Python encoding values one by one would measure Python rather than the server.
--encode-in-loop puts that encoding (in Python) inside each transaction. The returned ids
are decoded and counted per batch inside the clock, as the hub must.

Printed per strategy: rows/s (all clients, first start to last end), transaction latency
(p50, p99), CPU seconds of the client processes, of their server backends (read from
/proc, so only when the server runs on this machine) and of everything else on the machine
(PostgreSQL's background processes, and whatever else runs here: a busy machine skews the
figures, so look at that column), WAL bytes per row, checkpoints and autovacuum/autoanalyze
runs on the benchmark's tables during the run.

--dup-check: the correctness mode. Per strategy (a, b, c and their variants), half the
batches are stored, then the other half is sent as new batches in which 10% of each batch's
records are already stored ones, with a record repeated in two batches of the same transaction and
some batches re-sent under their old key; it asserts that RETURNING reports exactly the new
batches and exactly the records never stored before (each once), that stored_records of
every batch is right and that the tables hold each record once. Exits 1 on any mismatch.

Needs psycopg 3. Without it the script makes a venv (like scripts/check-docker.sh:
${PG_BENCH_VENV:-${TMPDIR:-/tmp}/feedbackmesh-pgbench}, psycopg[binary] pinned) and runs
itself from there; --no-install only says what is missing.

The server: --url, else FEEDBACK_TEST_POSTGRES_URL (password from
FEEDBACK_TEST_POSTGRES_PASSWORD or PGPASSWORD), e.g. one from scripts/lib/postgres.sh:

    . scripts/lib/postgres.sh; d="$(mktemp -d)"; pg_start "$d"
    python3 scripts/bench-postgres-raw.py                         # all, 1 client, 400,000 rows each
    python3 scripts/bench-postgres-raw.py --clients 2 --tx-records 2000 --strategy b,c
    python3 scripts/bench-postgres-raw.py --strategy b,c --repeat 3   # interleaved, medians
    python3 scripts/bench-postgres-raw.py --dup-check --records 100000
    pg_stop "$d"; rm -rf "$d"

Bounded: each strategy stops after --records rows or --max-seconds (default 120 s), which
comes first; --statement-timeout (default 60 s) bounds each statement on the server.
"""
import argparse
import datetime
import itertools
import json
import multiprocessing
import os
import random
import re
import struct
import subprocess
import sys
import tempfile
import time
import uuid

PSYCOPG_PIN = "psycopg[binary]==3.3.9"


def ensure_psycopg():
    try:
        import psycopg  # noqa: F401
        return
    except ImportError:
        pass
    venv = os.environ.get("PG_BENCH_VENV") or os.path.join(tempfile.gettempdir(), "feedbackmesh-pgbench")
    python = os.path.join(venv, "bin", "python")
    inside = os.path.realpath(sys.prefix) == os.path.realpath(venv)
    how = (f"psycopg 3 is needed and is not installed for {sys.executable}.\n"
           f"  Install it with:  pip install '{PSYCOPG_PIN}'\n"
           f"  or in a venv:     python3 -m venv {venv} && {venv}/bin/pip install '{PSYCOPG_PIN}'\n"
           f"  (without --no-install this script makes that venv itself)")
    if inside or "--no-install" in sys.argv:
        sys.exit(f"bench-postgres-raw.py: {how}")
    if not os.path.exists(python) or subprocess.run([python, "-c", "import psycopg"], capture_output=True).returncode != 0:
        print(f"bench-postgres-raw.py: psycopg missing: installing {PSYCOPG_PIN} into the venv {venv}", file=sys.stderr)
        try:
            subprocess.run([sys.executable, "-m", "venv", venv], check=True)
            subprocess.run([python, "-m", "pip", "install", "-q", PSYCOPG_PIN], check=True)
        except (subprocess.CalledProcessError, OSError) as error:
            sys.exit(f"bench-postgres-raw.py: could not make the venv ({error}).\n{how}")
    os.execv(python, [python, os.path.abspath(__file__)] + sys.argv[1:])


ensure_psycopg()
import psycopg  # noqa: E402
import psycopg.adapt  # noqa: E402
import psycopg.types.array  # noqa: E402
import psycopg.types.bool  # noqa: E402
import psycopg.types.string  # noqa: E402
import psycopg.types.uuid  # noqa: E402

# --- Schema (copied from PostgresSchema.swift, migration v1) ------------------------------

BATCHES_DDL = """
CREATE TABLE batches (
    origin uuid NOT NULL,
    sequence bigint NOT NULL,
    record_count integer NOT NULL,
    stored_records integer NOT NULL,
    received_at bigint NOT NULL,
    PRIMARY KEY (origin, sequence)
);
CREATE INDEX batches_by_origin_received ON batches (origin, received_at);
"""

RECORDS_DDL = """
CREATE TABLE records (
    id uuid NOT NULL,
    origin uuid NOT NULL,
    sequence bigint NOT NULL,
    source smallint NOT NULL,
    scale smallint NOT NULL,
    score smallint NOT NULL,
    negative boolean NOT NULL,
    occurred_at bigint NOT NULL,
    captured_at bigint NOT NULL,
    stored_at bigint NOT NULL,
    site text NOT NULL,
    channel text NOT NULL,
    subject text NOT NULL,
    topic text NOT NULL,
    survey text NOT NULL,
    customer text NOT NULL,
    comment text NOT NULL,
    attributes text NOT NULL,
    PRIMARY KEY (id)
) PARTITION BY RANGE (id);
CREATE TABLE records_default PARTITION OF records DEFAULT;
"""

# The four secondary indexes of records (dropped for the *_pk strategies).
RECORDS_INDEXES = [
    ("records_by_time", "(occurred_at)"),
    ("records_by_site", "(site, occurred_at)"),
    ("records_by_subject", "(subject, occurred_at)"),
    ("records_by_score", "(scale, score, occurred_at)"),
]

COLUMNS = ["id", "origin", "sequence", "source", "scale", "score", "negative", "occurred_at", "captured_at",
           "stored_at", "site", "channel", "subject", "topic", "survey", "customer", "comment", "attributes"]
TYPES = ["uuid", "uuid", "int8", "int2", "int2", "int2", "bool", "int8", "int8",
         "int8", "text", "text", "text", "text", "text", "text", "text", "text"]
COLS = ", ".join(COLUMNS)
MAX_PARAMS = 65535


def index_ddl(table, prefix="records"):
    return "\n".join(f"CREATE INDEX {name.replace('records', prefix, 1)} ON {table} {cols};" for name, cols in RECORDS_INDEXES)


def flat_ddl():
    body = RECORDS_DDL.split("CREATE TABLE records (", 1)[1].split(") PARTITION BY", 1)[0]
    return f"CREATE TABLE records_flat ({body});\n" + index_ddl("records_flat", "records_flat")


def swift_v1_sql(path):
    """The SQL of migration "v1" in a PostgresSchema.swift: a Swift multi-line string literal
    whose lines lose the indentation of its closing delimiter."""
    text = open(path, encoding="utf-8").read()
    match = re.search(r'"v1"\s*,\s*"""\n(.*?)\n([ \t]*)"""', text, re.S)
    if not match:
        raise SystemExit(f"bench-postgres-raw.py: no migration \"v1\" string literal in {path}")
    indent = match.group(2)
    return "\n".join(line[len(indent):] if line.startswith(indent) else line.lstrip() for line in match.group(1).split("\n"))


def normalized_statements(sql_text, tables):
    """The CREATE TABLE/INDEX statements of these tables, without comments and with single
    spaces, for comparing two copies of the DDL."""
    text = re.sub(r"--[^\n]*", "", sql_text)
    statements = [" ".join(s.split()) for s in text.split(";")]
    keep = []
    for s in statements:
        m = re.match(r"CREATE TABLE (\w+)", s) or re.match(r"CREATE INDEX \w+ ON (\w+)", s)
        if m and (m.group(1) in tables or any(m.group(1).startswith(t + "_") for t in tables if t == "records")):
            keep.append(s)
    return keep


def check_ddl_drift(path):
    ours = normalized_statements(BATCHES_DDL + RECORDS_DDL + index_ddl("records"), {"batches", "records"})
    theirs = normalized_statements(swift_v1_sql(path), {"batches", "records"})
    if sorted(ours) != sorted(theirs):
        print(f"bench-postgres-raw.py: WARNING: the batches/records DDL in this script differs from {path}:", file=sys.stderr)
        for s in sorted(set(theirs) - set(ours)):
            print(f"    only there: {s}", file=sys.stderr)
        for s in sorted(set(ours) - set(theirs)):
            print(f"    only here:  {s}", file=sys.stderr)
        return False
    return True


def month_start(year, month):
    return datetime.datetime(year, month, 1, tzinfo=datetime.timezone.utc)


def next_month(year, month):
    return (year + 1, 1) if month == 12 else (year, month + 1)


def bound_uuid(moment):
    """The partition bound of a moment: its ms timestamp in 48 bits big-endian, then zeros."""
    ms = int(moment.timestamp() * 1000)
    return str(uuid.UUID(bytes=ms.to_bytes(6, "big") + bytes(10)))


def partition_ddl(now, months=3):
    out = []
    y, m = now.year, now.month
    for _ in range(months):
        ny, nm = next_month(y, m)
        out.append(f"CREATE TABLE records_y{y:04d}m{m:02d} PARTITION OF records FOR VALUES FROM "
                   f"('{bound_uuid(month_start(y, m))}') TO ('{bound_uuid(month_start(ny, nm))}');")
        y, m = ny, nm
    return "\n".join(out)


# --- Data --------------------------------------------------------------------------------

COMMENTS = ["Great service", "Too long a wait", "Friendly staff", "Queue was slow", "Very helpful",
            "Could be cleaner", "Fast and easy", "Nobody at the desk", "Loved it", "Card reader broken",
            "Will come back", "Prices went up", "Quick checkout", "Rude cashier", "All good"]
SITES = [f"branch-{i:03d}" for i in range(1, 201)]
SUBJECTS = [f"till-{i}" for i in range(1, 9)]
NPS_WEIGHTS = [2, 1, 1, 1, 2, 3, 4, 8, 15, 25, 38]


class Batch:
    __slots__ = ("origin", "sequence", "received_at", "rows")

    def __init__(self, origin, sequence, received_at, rows):
        self.origin, self.sequence, self.received_at, self.rows = origin, sequence, received_at, rows

    @property
    def key(self):
        return (self.origin, self.sequence)


def uuid7(ms, rng):
    bits = rng.getrandbits(74)
    value = (ms << 80) | (0x7 << 76) | ((bits >> 62) << 64) | (0b10 << 62) | (bits & ((1 << 62) - 1))
    return uuid.UUID(int=value)


def generate(client, count, batch_size, agents, seed, start_ms, rate=4000):
    """count records from `agents` agents of this client, in batches of batch_size records of
    one agent each, in the order the batches would arrive (the batch's last capture time).
    Record i is captured at start_ms + i / rate s (rate ratings per second in all)."""
    rng = random.Random(seed * 1000 + client)
    origins = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(agents)]
    scores = rng.choices(range(11), weights=NPS_WEIGHTS, k=count)
    pending = [[] for _ in range(agents)]
    sequence = [0] * agents
    batches = []

    def close(agent, last_ms):
        sequence[agent] += 1
        seq = sequence[agent]
        rows = [(r[0], origins[agent], seq) + r[1:] for r in pending[agent]]
        batches.append(Batch(origins[agent], seq, last_ms + rng.randint(5, 50), rows))
        pending[agent] = []

    for i in range(count):
        agent = rng.randrange(agents)
        captured = start_ms + (i * 1000) // rate
        occurred = captured - rng.randint(0, 500)
        score = scores[i]
        comment = rng.choice(COMMENTS) if rng.random() < 0.10 else ""
        pending[agent].append((uuid7(captured, rng), rng.randint(1, 5), 1, score, score <= 6, occurred, captured,
                               captured + rng.randint(20, 200), rng.choice(SITES), "kiosk", rng.choice(SUBJECTS),
                               "", "nps-2026", "", comment, "{}"))
        if len(pending[agent]) == batch_size:
            close(agent, captured)
    for agent in range(agents):
        if pending[agent]:
            close(agent, start_ms + (count * 1000) // rate)
    return batches


def transactions(batches, batches_per_tx):
    return [batches[i:i + batches_per_tx] for i in range(0, len(batches), batches_per_tx)]


# --- Statements ---------------------------------------------------------------------------

# $n placeholders: the statements go through psycopg's RawCursor, which sends the text as it
# is (its %s form is parsed in Python on every call once a query is over 4 KiB, which would
# make the client, not the server, the bottleneck of (a)).
SQL_BATCHES = ("INSERT INTO batches (origin, sequence, record_count, stored_records, received_at) "
               "SELECT o, s, n, 0, r FROM UNNEST($1::uuid[], $2::int8[], $3::int4[], $4::int8[]) AS u(o, s, n, r) "
               "ON CONFLICT DO NOTHING RETURNING origin, sequence")
SQL_STORED = ("UPDATE batches AS b SET stored_records = u.n "
              "FROM UNNEST($1::uuid[], $2::int8[], $3::int4[]) AS u(o, s, n) "
              "WHERE b.origin = u.o AND b.sequence = u.s")
SQL_STAGE = "CREATE TEMP TABLE IF NOT EXISTS records_stage (LIKE records) ON COMMIT DELETE ROWS"

STRATEGIES = {
    # name: (method, table, secondary indexes)
    "a": ("values", "records", True),
    "b": ("unnest", "records", True),
    "c": ("stage", "records", True),
    "d": ("copy", "records", True),
    "b_pk": ("unnest", "records", False),
    "c_pk": ("stage", "records", False),
    "b_flat": ("unnest", "records_flat", True),
    "c_flat": ("stage", "records_flat", True),
    "d_flat": ("copy", "records_flat", True),
}
ALL = ["a", "b", "c", "d", "b_pk", "c_pk"]


# --- Encoding -----------------------------------------------------------------------------
# The rows are encoded into PostgreSQL's binary formats by these functions (COPY's stream,
# one binary array per column), by default before the clock starts: the hub is compiled
# Swift, and Python encoding rows one value at a time would measure Python, not the server.
# --encode-in-loop encodes inside each transaction instead. (a) sends Python values that
# psycopg dumps in C inside the clock; its flat parameter lists are made beforehand.

OIDS = {"uuid": 2950, "int8": 20, "int2": 21, "int4": 23, "bool": 16, "text": 25}
FIXED = {"int8": ("iq", 8), "int4": ("ii", 4), "int2": ("ih", 2)}
_i4 = struct.Struct(">i").pack
_i2 = struct.Struct(">h").pack
_UUID_LEN, _TRUE, _FALSE = _i4(16), _i4(1) + b"\x01", _i4(1) + b"\x00"
_COPY_HEAD = b"PGCOPY\n\xff\r\n\0" + bytes(8)
_COPY_TAIL = b"\xff\xff"


def array_bytes(typ, values):
    """A one-dimensional array without nulls in PostgreSQL's binary format."""
    head = struct.pack(">iiIii", 1, 0, OIDS[typ], len(values), 1)
    if typ in FIXED:
        fmt, size = FIXED[typ]
        return head + struct.pack(">" + fmt * len(values), *[x for v in values for x in (size, v)])
    if typ == "bool":
        return head + b"".join(_TRUE if v else _FALSE for v in values)
    if typ == "uuid":
        return head + b"".join(_UUID_LEN + v.bytes for v in values)
    return head + b"".join(_i4(len(b)) + b for b in (v.encode() for v in values))


def _field_encoder(typ):
    if typ in FIXED:
        pack = struct.Struct(">" + FIXED[typ][0]).pack
        size = FIXED[typ][1]
        return lambda v: pack(size, v)
    if typ == "bool":
        return lambda v: _TRUE if v else _FALSE
    if typ == "uuid":
        return lambda v: _UUID_LEN + v.bytes
    return lambda v: _i4(len(b := v.encode())) + b


_FIELDS = [_field_encoder(t) for t in TYPES]
_ROW_HEAD = _i2(len(COLUMNS))


def copy_bytes(rows):
    """A whole binary COPY stream (signature, rows, trailer)."""
    out = [_COPY_HEAD]
    for row in rows:
        out.append(_ROW_HEAD + b"".join([f(v) for f, v in zip(_FIELDS, row)]))
    out.append(_COPY_TAIL)
    return b"".join(out)


class Raw:
    """Bytes already in a parameter's binary format; sent with type 0 (unspecified), so the
    server takes the type from the statement's cast ($1::uuid[])."""
    __slots__ = ("data",)

    def __init__(self, data):
        self.data = data


class RawBinaryDumper(psycopg.adapt.Dumper):
    format = psycopg.pq.Format.BINARY
    oid = 0

    def dump(self, obj):
        return obj.data


# --- One group-commit transaction ---------------------------------------------------------

class Inserter:
    def __init__(self, conn, method, table):
        self.conn, self.method, self.table = conn, method, table
        self.cur = psycopg.RawCursor(conn)
        self.values_sql = {}
        self.chunk = MAX_PARAMS // len(COLUMNS)
        self.unnest_sql = (f"INSERT INTO {table} ({COLS}) SELECT * FROM UNNEST("
                           + ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(TYPES)) + ") ON CONFLICT (id) DO NOTHING RETURNING id")
        self.stage_sql = (f"INSERT INTO {table} ({COLS}) SELECT {COLS} FROM records_stage "
                          "ON CONFLICT (id) DO NOTHING RETURNING id")
        if method == "stage":
            self.cur.execute(SQL_STAGE)
            conn.commit()

    def _values(self, n):
        q = self.values_sql.get(n)
        if q is None:
            w = len(COLUMNS)
            rows = ("(" + ", ".join(f"${r * w + i + 1}" for i in range(w)) + ")" for r in range(n))
            q = f"INSERT INTO {self.table} ({COLS}) VALUES " + ", ".join(rows) + " ON CONFLICT (id) DO NOTHING RETURNING id"
            self.values_sql[n] = q
        return q

    def encode(self, rows):
        """What insert() sends for these rows."""
        if self.method == "values":
            return [list(itertools.chain.from_iterable(rows[i:i + self.chunk])) for i in range(0, len(rows), self.chunk)]
        if self.method == "unnest":
            return [Raw(array_bytes(t, c)) for t, c in zip(TYPES, zip(*rows))]
        return copy_bytes(rows)

    def _copy(self, target, data):
        with self.cur.copy(f"COPY {target} ({COLS}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(data)

    def insert(self, payload):
        """Inserts encoded rows; returns the ids reported new (None for the plain COPY)."""
        cur = self.cur
        if self.method == "values":
            new = []
            for params in payload:
                cur.execute(self._values(len(params) // len(COLUMNS)), params)
                new.extend(r[0] for r in cur.fetchall())
            return new
        if self.method == "unnest":
            cur.execute(self.unnest_sql, payload)
            return [r[0] for r in cur.fetchall()]
        if self.method == "stage":
            self._copy("records_stage", payload)
            cur.execute(self.stage_sql)
            return [r[0] for r in cur.fetchall()]
        self._copy(self.table, payload)
        return None

    def commit_tx(self, batches, payload=None):
        """One group commit; payload: the encoded rows of all these batches, used when they
        all turn out new. Returns (keys of the batches stored as new, ids reported new,
        {batch key: stored_records})."""
        cur = self.cur
        cur.execute(SQL_BATCHES, ([b.origin for b in batches], [b.sequence for b in batches],
                                  [len(b.rows) for b in batches], [b.received_at for b in batches]))
        new_keys = {(o, s) for o, s in cur.fetchall()}
        fresh = [b for b in batches if b.key in new_keys]
        counts = {}
        ids = []
        if fresh:
            if payload is None or len(fresh) != len(batches):
                payload = self.encode([r for b in fresh for r in b.rows])
            ids = self.insert(payload)
            if ids is None:
                counts = {b.key: len(b.rows) for b in fresh}
                ids = []
            else:
                # The first batch (in statement order) holding an id is the one it counts for.
                owner = {}
                for b in fresh:
                    for r in b.rows:
                        owner.setdefault(r[0], b.key)
                counts = {b.key: 0 for b in fresh}
                for i in ids:
                    counts[owner[i]] += 1
            keys = list(counts)
            cur.execute(SQL_STORED, ([k[0] for k in keys], [k[1] for k in keys], [counts[k] for k in keys]))
        self.conn.commit()
        return new_keys, ids, counts


# --- Workers -----------------------------------------------------------------------------

BINARY_DUMPERS = [(str, psycopg.types.string.StrBinaryDumper), (uuid.UUID, psycopg.types.uuid.UUIDBinaryDumper),
                  (bool, psycopg.types.bool.BoolBinaryDumper), (list, psycopg.types.array.ListBinaryDumper)]


def connect(args):
    kwargs = {}
    password = os.environ.get("FEEDBACK_TEST_POSTGRES_PASSWORD")
    if password and "password" not in args.url and not re.search(r"://[^/@]*:[^/@]*@", args.url):
        kwargs["password"] = password
    conn = psycopg.connect(args.url, connect_timeout=15, application_name="bench-postgres-raw", **kwargs)
    # Parameters in binary, as a hub's driver would send them: psycopg's default for str
    # (and so text[]) is the text format, escaped in Python, slower here than on the server.
    for cls, dumper in BINARY_DUMPERS:
        conn.adapters.register_dumper(cls, dumper)
    conn.adapters.register_dumper(Raw, RawBinaryDumper)
    conn.execute(f"SET search_path TO {args.pg_schema}")
    conn.execute("SET synchronous_commit TO on")
    conn.execute(f"SET statement_timeout TO {int(args.statement_timeout * 1000)}")
    conn.commit()
    return conn


def proc_cpu(pid):
    """CPU seconds (user + system) of a process on this machine, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def machine_busy():
    """CPU seconds this machine has spent busy (all processes, all cores) since boot."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")  # less idle and iowait
    except (OSError, ValueError, IndexError):
        return None


class CheckFailed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


class Clock:
    """Wall time and CPU time of this client and of its server backend, from the moment all
    clients are ready."""

    def __init__(self, barrier, backend):
        self.barrier, self.backend = barrier, backend

    def start(self):
        self.barrier.wait()
        self.t0, self.cpu0, self.server0 = time.monotonic(), time.process_time(), proc_cpu(self.backend)
        self.busy0 = machine_busy()
        return self.t0

    def stop(self):
        self.t1, self.cpu1, self.server1 = time.monotonic(), time.process_time(), proc_cpu(self.backend)
        self.busy1 = machine_busy()
        return self.t1


def run_timed(inserter, txs, deadline_s, clock, encode_in_loop):
    latencies = []
    rows = 0
    payloads = [None if encode_in_loop else inserter.encode([r for b in tx for r in b.rows]) for tx in txs]
    t0 = clock.start()
    for tx, payload in zip(txs, payloads):
        s = time.monotonic()
        new_keys, ids, counts = inserter.commit_tx(tx, payload)
        latencies.append(time.monotonic() - s)
        want = sum(len(b.rows) for b in tx)
        check(len(new_keys) == len(tx), f"{len(tx) - len(new_keys)} batches of a fresh transaction reported as duplicates")
        if inserter.method != "copy":
            check(len(ids) == want, f"RETURNING reported {len(ids)} new records of {want} fresh ones")
        rows += want
        if time.monotonic() - t0 >= deadline_s:
            break
    return t0, clock.stop(), rows, latencies


def dup_plan(batches, batches_per_tx, rng):
    """The duplicate check's input: the first half of the batches as they are, then the
    second half as new batches of which 10% of the records are replaced by already-stored
    ones, one record repeated in two batches of each transaction, and every fourth
    transaction also re-sending a stored batch under its old key."""
    half = len(batches) // 2
    first, second = batches[:half], batches[half:]
    stored_rows = [r for b in first for r in b.rows]
    phase2 = []
    for b in second:
        rows = list(b.rows)
        for j in rng.sample(range(len(rows)), max(1, len(rows) // 10)):
            old = rng.choice(stored_rows)
            rows[j] = old[:1] + (b.origin, b.sequence) + old[3:]
        phase2.append(Batch(b.origin, b.sequence, b.received_at, rows))
    txs2 = transactions(phase2, batches_per_tx)
    for n, tx in enumerate(txs2):
        if len(tx) >= 2 and len(tx[0].rows) >= 2:
            # The first new record of tx[0] is also the last record of tx[-1].
            dup = tx[0].rows[-1]
            last = tx[-1]
            last.rows = last.rows[:-1] + [dup[:1] + (last.origin, last.sequence) + dup[3:]]
        if n % 4 == 0:
            tx.append(rng.choice(first))
    return transactions(first, batches_per_tx), txs2


def run_dup_check(inserter, batches, batches_per_tx, seed, client, clock):
    """Returns (t0, t1, rows offered, latencies, expected {batch key: stored_records})."""
    rng = random.Random(seed * 7919 + client)
    txs1, txs2 = dup_plan(batches, batches_per_tx, rng)
    stored_ids = set()
    stored_batches = {}
    latencies = []
    rows = 0
    t0 = clock.start()
    for phase, txs in ((1, txs1), (2, txs2)):
        for n, tx in enumerate(txs):
            s = time.monotonic()
            new_keys, ids, counts = inserter.commit_tx(tx)
            latencies.append(time.monotonic() - s)
            rows += sum(len(b.rows) for b in tx)
            where = f"phase {phase} transaction {n}"
            want_keys = {b.key for b in tx if b.key not in stored_batches}
            check(new_keys == want_keys, f"{where}: batches reported new {len(new_keys)}, expected {len(want_keys)}"
                  f" (wrongly new: {len(new_keys - want_keys)}, wrongly duplicate: {len(want_keys - new_keys)})")
            want_ids, want_counts = set(), {}
            for b in tx:
                if b.key not in want_keys:
                    continue
                want_counts[b.key] = 0
                for r in b.rows:
                    if r[0] not in stored_ids and r[0] not in want_ids:
                        want_ids.add(r[0])
                        want_counts[b.key] += 1
            check(len(ids) == len(set(ids)), f"{where}: RETURNING reported {len(ids) - len(set(ids))} ids twice")
            got = set(ids)
            check(got == want_ids, f"{where}: RETURNING reported {len(got)} new records, expected {len(want_ids)}"
                  f" ({len(got - want_ids)} already stored reported new, {len(want_ids - got)} new ones missing)")
            if phase == 2:
                check(len(want_ids) < sum(len(b.rows) for b in tx if b.key in want_keys),
                      f"{where}: the plan holds no duplicate records")
            check(counts == want_counts, f"{where}: stored_records per batch differ from the expected ones")
            stored_ids |= want_ids
            stored_batches.update(want_counts)
    return t0, clock.stop(), rows, latencies, stored_batches, len(stored_ids)


def worker(client, args, pipe, barrier):
    try:
        # Make a month boundary in the ids impossible unless the run starts near one.
        start_ms = int(time.time() * 1000) - 600_000
        now = datetime.datetime.now(datetime.timezone.utc)
        start_ms = max(start_ms, int(month_start(now.year, now.month).timestamp() * 1000) + 1000)
        per_client = args.records // args.clients + (1 if client < args.records % args.clients else 0)
        batches = generate(client, per_client, args.batch, args.agents, args.seed, start_ms)
        batches_per_tx = max(1, args.tx_records // args.batch)
        txs = transactions(batches, batches_per_tx)
        conn = connect(args)
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        conn.commit()
        pipe.send(("ready", sum(len(b.rows) for b in batches)))
        inserters = {}
        while True:
            command = pipe.recv()
            if command[0] == "stop":
                break
            _, name = command
            method, table, _ = STRATEGIES[name]
            key = (method, table)
            if key not in inserters:
                inserters[key] = Inserter(conn, method, table)
            inserter = inserters[key]
            clock = Clock(barrier, backend)
            try:
                if args.dup_check:
                    t0, t1, rows, lat, expected, unique = run_dup_check(inserter, batches, batches_per_tx, args.seed, client, clock)
                else:
                    t0, t1, rows, lat = run_timed(inserter, txs, args.max_seconds, clock, args.encode_in_loop)
                    expected, unique = None, rows
            except CheckFailed as failure:
                conn.rollback()
                pipe.send(("failed", str(failure)))
                continue
            pipe.send(("done", {
                "t0": t0, "t1": t1, "rows": rows, "unique": unique, "latencies": lat,
                "client_cpu": clock.cpu1 - clock.cpu0,
                "server_cpu": None if clock.server0 is None or clock.server1 is None else clock.server1 - clock.server0,
                "machine_busy": None if clock.busy0 is None or clock.busy1 is None else clock.busy1 - clock.busy0,
                "expected_batches": None if expected is None else
                    [(str(k[0]), k[1], v) for k, v in expected.items()],
            }))
        conn.close()
    except Exception as error:  # reported to the parent, which fails the run
        import traceback
        barrier.abort()  # no other client waits for this one for ever
        pipe.send(("error", f"{type(error).__name__}: {error}\n{traceback.format_exc()}"))


# --- Parent ------------------------------------------------------------------------------

def percentile(values, p):
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def admin_setup(args, strategies):
    conn = connect_admin(args)
    with conn.cursor() as cur:
        cur.execute(f"DROP SCHEMA IF EXISTS {args.pg_schema} CASCADE")
        cur.execute(f"CREATE SCHEMA {args.pg_schema}")
        cur.execute(f"SET search_path TO {args.pg_schema}")
        if args.schema_swift:
            cur.execute(swift_v1_sql(args.schema_swift))
        else:
            cur.execute(BATCHES_DDL + RECORDS_DDL + index_ddl("records"))
        cur.execute(partition_ddl(datetime.datetime.now(datetime.timezone.utc)))
        if any(STRATEGIES[s][1] == "records_flat" for s in strategies):
            cur.execute(flat_ddl())
    conn.commit()
    return conn


def connect_admin(args):
    conn = None
    try:
        ns = argparse.Namespace(**vars(args))
        ns.pg_schema = "public"
        conn = connect(ns)
    except psycopg.Error as error:
        sys.exit(f"bench-postgres-raw.py: cannot connect to {redact(args.url)}: {error}")
    return conn


def redact(url):
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


def server_info(conn):
    names = ["server_version", "fsync", "synchronous_commit", "wal_level", "full_page_writes", "shared_buffers",
             "max_wal_size", "wal_compression", "checkpoint_timeout", "jit"]
    info = {}
    with conn.cursor() as cur:
        for n in names:
            cur.execute("SELECT current_setting(%s)", (n,))
            info[n] = cur.fetchone()[0]
    conn.commit()
    return info


def wal_lsn(conn):
    value = conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()[0]
    conn.commit()
    return int(value)


def autovacuums(conn, schema):
    value = conn.execute("SELECT coalesce(sum(autovacuum_count + autoanalyze_count), 0) FROM pg_stat_user_tables "
                         "WHERE schemaname = %s", (schema,)).fetchone()[0]
    conn.commit()
    return int(value)


def checkpoints(conn):
    value = conn.execute("SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter").fetchone()[0]
    conn.commit()
    return int(value)


def prepare_tables(conn, args, name, note):
    method, table, indexed = STRATEGIES[name]
    s = args.pg_schema
    with conn.cursor() as cur:
        cur.execute(f"TRUNCATE {s}.records, {s}.batches" + (f", {s}.records_flat" if table == "records_flat" else ""))
        for index, cols in RECORDS_INDEXES:
            if table != "records":
                continue
            if indexed:
                cur.execute(f"CREATE INDEX IF NOT EXISTS {index} ON {s}.records {cols}")
            else:
                cur.execute(f"DROP INDEX IF EXISTS {s}.{index}")
    conn.commit()
    try:
        conn.execute("CHECKPOINT")
        conn.commit()
    except psycopg.Error:
        conn.rollback()
        if not note.get("checkpoint"):
            note["checkpoint"] = True
            print("bench-postgres-raw.py: note: this role may not CHECKPOINT (needs pg_checkpoint or superuser);"
                  " strategies start without one", file=sys.stderr)


def verify_tables(conn, args, name, results, dup_check):
    """The rows stored must be exactly the ones sent (or, in the duplicate check, the unique
    ones), and batches.stored_records must add up."""
    table = STRATEGIES[name][1]
    s = args.pg_schema
    unique = sum(r["unique"] for r in results)
    count = conn.execute(f"SELECT count(*), count(DISTINCT id) FROM {s}.{table}").fetchone()
    stored = conn.execute(f"SELECT coalesce(sum(stored_records), 0), count(*) FROM {s}.batches").fetchone()[0]
    conn.commit()
    check(count[0] == count[1], f"{name}: {table} holds {count[0] - count[1]} duplicate ids")
    check(count[0] == unique, f"{name}: {table} holds {count[0]} records, expected {unique}")
    check(stored == unique, f"{name}: batches.stored_records adds up to {stored}, expected {unique}")
    if dup_check:
        want = {(o, q): v for r in results for o, q, v in r["expected_batches"]}
        got = {(str(o), q): v for o, q, v in conn.execute(f"SELECT origin, sequence, stored_records FROM {s}.batches")}
        conn.commit()
        check(got == want, f"{name}: batches.stored_records differ from the expected ones"
              f" ({sum(1 for k in want if got.get(k) != want[k])} of {len(want)} batches)")
    parts = conn.execute(f"SELECT tableoid::regclass::text, count(*) FROM {s}.{table} GROUP BY 1 ORDER BY 1").fetchall()
    conn.commit()
    return parts


def summarize(results):
    """Per strategy: the median rows/s of its runs, their range and the server's CPU per row."""
    out = {}
    for name in dict.fromkeys(r["strategy"] for r in results if r.get("rows_per_s")):
        runs = [r for r in results if r["strategy"] == name and r.get("rows_per_s")]
        rates = sorted(r["rows_per_s"] for r in runs)
        cpu = sorted(r["server_cpu_s"] / r["rows"] * 1e6 for r in runs if r["server_cpu_s"] is not None)
        out[name] = {"method": runs[0]["method"], "runs": len(runs), "rows_per_s": rates[len(rates) // 2],
                     "min": rates[0], "max": rates[-1],
                     "server_us_per_row": round(cpu[len(cpu) // 2], 1) if cpu else None,
                     "exactly_once": runs[0]["method"] != "copy" and runs[0]["secondary_indexes"]
                     and runs[0]["table"] == "records"}
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("FEEDBACK_TEST_POSTGRES_URL", ""),
                        help="libpq URL (default $FEEDBACK_TEST_POSTGRES_URL; password from $FEEDBACK_TEST_POSTGRES_PASSWORD or $PGPASSWORD)")
    parser.add_argument("--records", type=int, default=400_000, help="records per strategy, over all clients (400000)")
    parser.add_argument("--batch", type=int, default=500, help="records per batch (500)")
    parser.add_argument("--tx-records", type=int, default=10_000, help="records per transaction (10000)")
    parser.add_argument("--clients", type=int, default=1, help="concurrent clients, each a process with its own connection (1)")
    parser.add_argument("--agents", type=int, default=50, help="agents (origins) per client (50)")
    parser.add_argument("--strategy", default="all",
                        help="all (= a,b,c,d,b_pk,c_pk), or a comma list of all and: " + ", ".join(STRATEGIES))
    parser.add_argument("--dup-check", action="store_true", help="the duplicate check instead of the plain timing")
    parser.add_argument("--encode-in-loop", action="store_true",
                        help="encode the rows (in Python) inside each transaction, not before the clock starts")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--max-seconds", type=float, default=120, help="stop a strategy after this long (120)")
    parser.add_argument("--statement-timeout", type=float, default=60, help="server statement_timeout in seconds (60)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run the strategies this many times, interleaved (a,b,a,b...), and give medians (1)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pg-schema", default="fm_bench_raw", help="PostgreSQL schema to work in (dropped first!)")
    parser.add_argument("--schema-swift", help="run the whole v1 migration of this PostgresSchema.swift instead of the copied DDL")
    parser.add_argument("--keep", action="store_true", help="keep the schema at the end")
    parser.add_argument("--no-install", action="store_true", help="do not make a venv when psycopg is missing")
    args = parser.parse_args()

    if not args.url:
        parser.error("no server: give --url or set FEEDBACK_TEST_POSTGRES_URL (scripts/lib/postgres.sh's pg_start does)")
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", args.pg_schema):
        parser.error("--pg-schema must be a plain lower-case identifier")
    if args.records < 1 or args.repeat < 1 or args.batch < 1 or args.tx_records < 1 or args.clients < 1 or args.agents < 1:
        parser.error("--records, --repeat, --batch, --tx-records, --clients and --agents must be positive")
    strategies = []
    for s in (s.strip() for s in args.strategy.split(",")):
        for t in (ALL if s == "all" else [s] if s else []):
            if t not in strategies:
                strategies.append(t)
    for s in strategies:
        if s not in STRATEGIES:
            parser.error(f"unknown strategy {s!r}: choose from all, " + ", ".join(STRATEGIES))
    if args.dup_check:
        skipped = [s for s in strategies if STRATEGIES[s][0] == "copy"]
        strategies = [s for s in strategies if STRATEGIES[s][0] != "copy"]
        if skipped and not args.json:
            print(f"duplicate check: skipping {', '.join(skipped)} (plain COPY has no duplicate check)")
        if not strategies:
            parser.error("--dup-check needs a strategy with a duplicate check (a, b, c or a variant)")

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    drift = None
    swift = args.schema_swift or next(iter(sorted(
        os.path.join(d, f) for d, _, fs in os.walk(os.path.join(root, "Sources")) for f in fs if f == "PostgresSchema.swift")), None)
    if swift:
        drift = {"file": swift, "same": check_ddl_drift(swift)}

    conn = admin_setup(args, strategies)
    info = server_info(conn)
    conn.close()  # no connection of ours crosses the fork

    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(args.clients, timeout=900)
    pipes, procs = [], []
    for client in range(args.clients):
        mine, theirs = context.Pipe()
        proc = context.Process(target=worker, args=(client, args, theirs, barrier), daemon=True)
        proc.start()
        pipes.append(mine)
        procs.append(proc)

    def receive(pipe, what):
        message = pipe.recv()
        if message[0] == "error":
            raise SystemExit(f"bench-postgres-raw.py: a client failed while {what}:\n{message[1]}")
        return message

    failures = []
    results = []
    try:
        generated = sum(receive(p, "making its rows")[1] for p in pipes)
        conn = connect(args)
        info["psycopg"] = psycopg.__version__
        info["libpq"] = psycopg.pq.version()
        info["psycopg_impl"] = psycopg.pq.__impl__
        if not args.json:
            print(f"server {redact(args.url)}: PostgreSQL {info['server_version']}, fsync={info['fsync']}, "
                  f"synchronous_commit={info['synchronous_commit']}, shared_buffers={info['shared_buffers']}, "
                  f"max_wal_size={info['max_wal_size']}; psycopg {info['psycopg']} ({info['psycopg_impl']}, libpq {info['libpq']})")
            print(f"{'duplicate check' if args.dup_check else 'timing'}: {generated} records per strategy in batches of "
                  f"{args.batch}, {max(1, args.tx_records // args.batch) * args.batch} per transaction, "
                  f"{args.clients} client(s), {args.agents} agents each")
            if drift and not drift["same"]:
                print(f"WARNING: the DDL here differs from {drift['file']} (see above)")
        note = {}
        for name in strategies * args.repeat:
            prepare_tables(conn, args, name, note)
            wal0, ckpt0, av0 = wal_lsn(conn), checkpoints(conn), autovacuums(conn, args.pg_schema)
            for p in pipes:
                p.send(("run", name))
            outcome = [receive(p, f"running {name}") for p in pipes]
            wal1, ckpt1, av1 = wal_lsn(conn), checkpoints(conn), autovacuums(conn, args.pg_schema)
            bad = [m[1] for m in outcome if m[0] == "failed"]
            if bad:
                failures.append(f"{name}: " + "; ".join(bad))
                barrier.reset()
                result = {"strategy": name, "failed": bad}
                results.append(result)
                if not args.json:
                    print(f"{name:7s} FAILED: {'; '.join(bad)}")
                continue
            runs = [m[1] for m in outcome]
            try:
                parts = verify_tables(conn, args, name, runs, args.dup_check)
            except CheckFailed as failure:
                failures.append(str(failure))
                parts = []
                if not args.json:
                    print(f"{name:7s} FAILED: {failure}")
            t0, t1 = min(r["t0"] for r in runs), max(r["t1"] for r in runs)
            rows = sum(r["rows"] for r in runs)
            lat = [x for r in runs for x in r["latencies"]]
            server = [r["server_cpu"] for r in runs]
            result = {
                "strategy": name, "method": STRATEGIES[name][0], "table": STRATEGIES[name][1],
                "secondary_indexes": STRATEGIES[name][2], "clients": args.clients, "batch": args.batch,
                "tx_records": max(1, args.tx_records // args.batch) * args.batch,
                "rows": rows, "unique_rows": sum(r["unique"] for r in runs), "seconds": round(t1 - t0, 3),
                "rows_per_s": round(rows / (t1 - t0)) if t1 > t0 else None,
                "transactions": len(lat),
                "tx_ms_p50": round(percentile(lat, 50) * 1000, 1), "tx_ms_p99": round(percentile(lat, 99) * 1000, 1),
                "tx_ms_max": round(max(lat) * 1000, 1) if lat else None,
                "client_cpu_s": round(sum(r["client_cpu"] for r in runs), 2),
                "server_cpu_s": None if None in server else round(sum(server), 2),
                # Busy CPU of the whole machine during the run less that of the clients and their
                # backends: PostgreSQL's own background processes (WAL writer, checkpointer,
                # autovacuum) and anything else running here, which skews the figures.
                "other_cpu_s": None if None in server or runs[0]["machine_busy"] is None else
                    round(runs[0]["machine_busy"] - sum(server) - sum(r["client_cpu"] for r in runs), 2),
                "wal_bytes_per_row": round((wal1 - wal0) / rows) if rows else None,
                "checkpoints": ckpt1 - ckpt0, "autovacuums": av1 - av0,
                "partitions": {p.rsplit(".", 1)[-1]: int(n) for p, n in parts} if parts else None,
                "dup_check": "passed" if args.dup_check and not any(name in f for f in failures) else None,
            }
            results.append(result)
            if not args.json:
                if not note.get("header"):
                    note["header"] = True
                    print(f"{'strategy':9s} {'rows':>8s} {'s':>7s} {'rows/s':>8s} {'tx':>4s} {'tx p50 ms':>9s} {'p99 ms':>7s} "
                          f"{'client cpu':>10s} {'server cpu':>10s} {'other cpu':>9s} {'WAL B/row':>9s} {'ckpts':>5s} {'autovac':>7s}")
                sc = "-" if result["server_cpu_s"] is None else f"{result['server_cpu_s']:.1f}"
                oc = "-" if result["other_cpu_s"] is None else f"{result['other_cpu_s']:.1f}"
                print(f"{name:9s} {rows:8d} {result['seconds']:7.2f} {result['rows_per_s']:8d} {len(lat):4d} "
                      f"{result['tx_ms_p50']:9.1f} {result['tx_ms_p99']:7.1f} {result['client_cpu_s']:10.1f} {sc:>10s} {oc:>9s} "
                      f"{result['wal_bytes_per_row']:9d} {result['checkpoints']:5d} {result['autovacuums']:7d}"
                      + ("   duplicate check passed" if result["dup_check"] else ""), flush=True)
        for p in pipes:
            p.send(("stop",))
        for proc in procs:
            proc.join(30)
        if not args.keep:
            conn.execute(f"DROP SCHEMA IF EXISTS {args.pg_schema} CASCADE")
            conn.commit()
        conn.close()
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
    if args.json:
        print(json.dumps({"server": info, "schema_drift": drift, "records": args.records, "batch": args.batch,
                          "tx_records": args.tx_records, "clients": args.clients, "agents": args.agents,
                          "dup_check": args.dup_check, "repeat": args.repeat, "results": results,
                          "summary": summarize(results), "failures": failures}, indent=2))
    elif not failures:
        summary = summarize(results)
        if args.repeat > 1:
            print(f"median of {args.repeat} runs (min-max):")
            for name, r in summary.items():
                print(f"  {name:9s} {r['rows_per_s']:8d} rows/s ({r['min']}-{r['max']}), "
                      f"server CPU {r['server_us_per_row']} us/row")
        valid = [(n, r) for n, r in summary.items() if r["exactly_once"]]
        if len(valid) > 1:
            valid.sort(key=lambda nr: -nr[1]["rows_per_s"])
            (best, b), (runner, r) = valid[0], valid[1]
            print(f"fastest with exactly-once: {best} ({b['method']}), "
                  f"{b['rows_per_s'] / r['rows_per_s']:.2f}x {runner} ({r['method']})"
                  + (" (medians)" if args.repeat > 1 else ""))
    if failures:
        print("bench-postgres-raw.py: FAILED:\n  " + "\n  ".join(failures), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
