//! The schema, as an ordered list of migrations.
//!
//! Why a list and not one `CREATE TABLE` script: a node upgraded in place must bring an
//! old file forward step by step, and a step that has run must never run again. Each
//! entry is applied once, in its own transaction together with the bump of
//! `schema_version`, so a crash mid-migration leaves the file at the previous version.
//! Entries are append-only: never edit one that has shipped; add the next.

/// `PRAGMA application_id` of an Aurora node file: "AUR1" in ASCII.
pub const APPLICATION_ID: i32 = 0x4155_5231;

/// `(version, SQL)`, in increasing version order, starting at 1.
pub const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        // The node's identity: which node owns this file, and the last incarnation it
        // announced (NULL until the first `PersistItem::Incarnation`). One row, id = 1.
        "CREATE TABLE identity (
            id          INTEGER PRIMARY KEY CHECK (id = 1),
            node_id     INTEGER NOT NULL,
            incarnation INTEGER
        ) STRICT;",
    ),
    (
        2,
        // Replicated state: the latest entry under each key (`PersistItem::Entry`),
        // both in the core's own byte form, and the highest sequence number this
        // node used for its own writes (`PersistItem::OwnSeq`).
        "CREATE TABLE entries (
            key   BLOB PRIMARY KEY,
            entry BLOB NOT NULL
        ) STRICT, WITHOUT ROWID;
        ALTER TABLE identity ADD COLUMN own_seq INTEGER NOT NULL DEFAULT 0;",
    ),
    (
        3,
        // The highest failover epoch this node has seen or granted
        // (`PersistItem::Epoch`); 0 until the first election.
        "ALTER TABLE identity ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;",
    ),
    (
        4,
        // The failover voter roster this node follows (`PersistItem::Roster`), in
        // the core's byte form; NULL until it hears of one.
        "ALTER TABLE identity ADD COLUMN roster BLOB;",
    ),
    (
        5,
        // This data directory's storage life (`Store::life`, the node key's): recorded once,
        // when the file is first opened by a build that knows lives, so a node whose
        // disk is lost comes back as a new life. NULL until then. And the node
        // id -> life bindings this node recorded (`PersistItem::Binding`).
        "ALTER TABLE identity ADD COLUMN life INTEGER;
        CREATE TABLE bindings (
            node_id INTEGER PRIMARY KEY,
            life    INTEGER NOT NULL
        ) STRICT;",
    ),
    (
        6,
        // Point-in-time history (`super::history`): when each stored entry became this
        // node's version (`entries.since_ms`, local wall ms; NULL for rows older than
        // this migration, which count from `history_meta.since_ms`), and every record
        // version this node has replaced or removed since, with the interval it was
        // current (`since_ms <= t < until_ms`). Pruned after the tombstone TTL.
        // `history_meta`: from when history is complete (`since_ms`), up to when it
        // was pruned (`pruned_ms`), and a commit time floor (`clock_ms`, so a
        // wall clock stepping back cannot make two versions of a key overlap).
        // The trigger moves a replaced record version into `history` inside SQLite (no
        // extra statement per write from the driver); `x'00'` is the first byte of an
        // encoded `Key::Record` (postcard's variant index), so usage counters, rewritten
        // on every flush, are not kept. Removals are moved by `Store::apply`.
        // `history_gaps`: when the node was not running (from its last commit or clean
        // stop to its next start): its copy then was not kept current, so those times
        // are refused rather than answered with a stale state; `stopped_ms`: when the
        // node last stopped cleanly, 0 while it runs (a stopped node's file is not kept
        // current either).
        "ALTER TABLE entries ADD COLUMN since_ms INTEGER;
        CREATE TABLE history (
            key      BLOB NOT NULL,
            entry    BLOB NOT NULL,
            since_ms INTEGER NOT NULL,
            until_ms INTEGER NOT NULL
        ) STRICT;
        CREATE INDEX history_until ON history (until_ms);
        CREATE TABLE history_meta (
            id        INTEGER PRIMARY KEY CHECK (id = 1),
            since_ms  INTEGER NOT NULL,
            pruned_ms INTEGER NOT NULL,
            clock_ms  INTEGER NOT NULL,
            stopped_ms INTEGER NOT NULL DEFAULT 0
        ) STRICT;
        INSERT INTO history_meta (id, since_ms, pruned_ms, clock_ms) VALUES (1,
            CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER), 0, 0);
        CREATE TABLE history_gaps (
            from_ms INTEGER NOT NULL,
            to_ms   INTEGER NOT NULL
        ) STRICT;
        CREATE TRIGGER history_on_replace AFTER UPDATE OF entry ON entries
        WHEN substr(OLD.key, 1, 1) = x'00' AND OLD.entry IS NOT NEW.entry
        BEGIN
            INSERT INTO history (key, entry, since_ms, until_ms) VALUES (OLD.key, OLD.entry,
                coalesce(OLD.since_ms, (SELECT since_ms FROM history_meta)), NEW.since_ms);
        END;",
    ),
    (
        7,
        // Entries hold a record as the schema's bytes, length-prefixed, no longer the
        // typed record in place (the core became record-agnostic): every row of
        // `entries` and `history` is re-encoded in Rust, in this migration's
        // transaction, by `super::reencode` (nothing to do in SQL).
        "-- entries re-encoded by store::reencode",
    ),
    (
        8,
        // Quota leases (`aurora_core::quota`): the keeper's fence, the highest grantor
        // epoch it answered a collection of (`PersistItem::QuotaFence`, 0 until the
        // first), and its copy of the grant ledger, one row per quota key and holder
        // session (`PersistItem::QuotaEntry`), both in the core's byte form.
        "ALTER TABLE identity ADD COLUMN quota_fence INTEGER NOT NULL DEFAULT 0;
        CREATE TABLE quota_ledger (
            key   BLOB PRIMARY KEY,
            entry BLOB NOT NULL
        ) STRICT, WITHOUT ROWID;",
    ),
];
