//! Versioned, forward-only schema migrations of the PostgreSQL backend (DESIGN §4: "one
//! schema, migrations versioned in the repo").
//!
//! `MIGRATIONS[i]` upgrades the schema from version `i` to version `i + 1`; the versions
//! applied are rows of the table `schema_version`. Entries are never edited or reordered
//! once released: a change to the schema is a new entry at the end.
//!
//! The tables and their meaning mirror the SQLite schema ([`crate::sqlite::migrations`],
//! versions 1–3 folded into one entry, since this backend started after them). PostgreSQL
//! types: every integer is `BIGINT` (u32 UIDs and u64 modseqs are range-checked when
//! read), booleans are `BOOLEAN`, document bodies and flag lists are JSON in `TEXT` (the
//! exact text serde_json wrote, as in SQLite; `JSONB` would refuse `\u0000` in strings
//! that SQLite accepts). Keys and names are `COLLATE "C"`: byte order and byte equality,
//! as SQLite's default BINARY collation, whatever the database's locale.

/// The ordered migrations; the schema version of a fully migrated database is
/// `MIGRATIONS.len()`.
pub const MIGRATIONS: &[&str] = &[
    // Version 1: documents, mail metadata, change log, usage counters, the outbound queue
    // with leases.
    r#"
    -- Named store-wide counters: `docs_generation` (DESIGN §4: caches of other nodes notice
    -- document changes) and `uid_validity` (last UIDVALIDITY handed out).
    CREATE TABLE counters (
        name  TEXT COLLATE "C" PRIMARY KEY,
        value BIGINT NOT NULL
    );
    INSERT INTO counters (name, value) VALUES ('docs_generation', 0), ('uid_validity', 0);

    -- Directory objects and settings as typed JSON documents.
    CREATE TABLE docs (
        kind    TEXT COLLATE "C" NOT NULL,
        key     TEXT COLLATE "C" NOT NULL,
        parent  TEXT COLLATE "C" NOT NULL DEFAULT '',
        version BIGINT NOT NULL,
        body    TEXT NOT NULL,
        PRIMARY KEY (kind, key)
    );
    CREATE INDEX docs_by_parent ON docs (kind, parent, key);

    -- Per-account modseq and quota usage, kept incrementally (DESIGN §2). The row is also
    -- the per-account lock that orders modseq assignment across nodes.
    CREATE TABLE account_state (
        account        TEXT COLLATE "C" PRIMARY KEY,
        highest_modseq BIGINT NOT NULL DEFAULT 0,
        bytes          BIGINT NOT NULL DEFAULT 0,
        messages       BIGINT NOT NULL DEFAULT 0
    );

    -- BIGSERIAL: sequence values are never handed out twice (even after a rollback), so a
    -- folder id is never reused and change-log rows of a deleted folder never point at a
    -- newer one.
    CREATE TABLE folders (
        id             BIGSERIAL PRIMARY KEY,
        account        TEXT COLLATE "C" NOT NULL,
        name           TEXT COLLATE "C" NOT NULL,
        kind           TEXT NOT NULL,
        uid_validity   BIGINT NOT NULL,
        uid_next       BIGINT NOT NULL,
        messages       BIGINT NOT NULL DEFAULT 0,
        unseen         BIGINT NOT NULL DEFAULT 0,
        bytes          BIGINT NOT NULL DEFAULT 0,
        highest_modseq BIGINT NOT NULL DEFAULT 0,
        UNIQUE (account, name)
    );

    -- `flags` is a JSON array of sorted, distinct flags; `seen` caches whether `\Seen` is
    -- among them so the unseen counter can be kept without parsing.
    CREATE TABLE messages (
        folder        BIGINT NOT NULL REFERENCES folders (id) ON DELETE CASCADE,
        uid           BIGINT NOT NULL,
        blob          TEXT COLLATE "C" NOT NULL,
        size          BIGINT NOT NULL,
        flags         TEXT NOT NULL,
        seen          BOOLEAN NOT NULL,
        internal_date BIGINT NOT NULL,
        modseq        BIGINT NOT NULL,
        PRIMARY KEY (folder, uid)
    );
    -- Blob reference counts are a query on this index.
    CREATE INDEX messages_by_blob ON messages (blob);

    -- One change log per account (DESIGN §2). No foreign key on `folder`: the rows of a
    -- deleted folder stay.
    CREATE TABLE changes (
        account TEXT COLLATE "C" NOT NULL,
        modseq  BIGINT NOT NULL,
        folder  BIGINT NOT NULL,
        uid     BIGINT NOT NULL,
        kind    TEXT NOT NULL,
        PRIMARY KEY (account, modseq)
    );

    -- The outbound queue (DESIGN §3: rows in the MetaStore plus blobs). `lease_until`
    -- (Unix seconds) is the claim lease of DESIGN §4; `warned` marks that the delay warning
    -- (RFC 3464 action=delayed) was sent.
    CREATE TABLE queue (
        id           TEXT COLLATE "C" PRIMARY KEY,
        sender       TEXT NOT NULL,
        envid        TEXT,
        ret          TEXT,
        size         BIGINT NOT NULL,
        blob         TEXT COLLATE "C" NOT NULL,
        created      BIGINT NOT NULL,
        next_attempt BIGINT NOT NULL,
        lease_until  BIGINT NOT NULL DEFAULT 0,
        warned       BOOLEAN NOT NULL DEFAULT FALSE
    );
    -- Blob reference counts include queued messages.
    CREATE INDEX queue_by_blob ON queue (blob);
    CREATE INDEX queue_by_next_attempt ON queue (next_attempt, id);

    -- Per-recipient state; `idx` keeps envelope order.
    CREATE TABLE queue_rcpt (
        queue_id   TEXT COLLATE "C" NOT NULL REFERENCES queue (id) ON DELETE CASCADE,
        idx        BIGINT NOT NULL,
        address    TEXT NOT NULL,
        notify     TEXT,
        orcpt      TEXT,
        route      TEXT,
        state      TEXT NOT NULL,
        attempts   BIGINT NOT NULL DEFAULT 0,
        last_error TEXT,
        PRIMARY KEY (queue_id, idx)
    );
    "#,
    // Version 2: message bytes in the database (DESIGN §4: "BlobStore: files under the data
    // directory (default) or PostgreSQL"), so every node of a cluster reads the same bodies
    // (see `postgres/blob.rs`). `stored_at` (the database's Unix seconds) is set on every
    // put, also of bytes already present, so orphan collection can leave alone what another
    // node is still ingesting. BYTEA's default EXTENDED storage keeps large values out of
    // line (TOAST) and compressed.
    r#"
    CREATE TABLE blobs (
        id        TEXT COLLATE "C" PRIMARY KEY,
        size      BIGINT NOT NULL,
        stored_at BIGINT NOT NULL,
        bytes     BYTEA NOT NULL
    );
    CREATE INDEX blobs_by_stored_at ON blobs (stored_at);
    "#,
    // Version 3: the rows of one folder changed after a modseq
    // (`MetaStore::list_messages_changed_since`), read by every IMAP session on each
    // change to its selected folder (RFC 9051 §7.4-§7.5, RFC 7162 §3.2.5.1) without
    // scanning the folder.
    r#"
    CREATE INDEX messages_by_modseq ON messages (folder, modseq);
    "#,
    // Version 4: retention (guide §7.4, §7.5), as SQLite version 5. `added_at` is when the
    // row was created, i.e. when the message entered its folder: the age the clean-out
    // measures; existing rows take their INTERNALDATE. `tombstones` keeps expunged
    // messages recoverable while the domain's retention lasts; each row holds a reference
    // on its blob.
    r#"
    ALTER TABLE messages ADD COLUMN added_at BIGINT NOT NULL DEFAULT 0;
    UPDATE messages SET added_at = internal_date;
    CREATE INDEX messages_by_added_at ON messages (folder, added_at);

    CREATE TABLE tombstones (
        id            BIGSERIAL PRIMARY KEY,
        account       TEXT COLLATE "C" NOT NULL,
        folder_name   TEXT COLLATE "C" NOT NULL,
        blob          TEXT COLLATE "C" NOT NULL,
        size          BIGINT NOT NULL,
        flags         TEXT NOT NULL,
        internal_date BIGINT NOT NULL,
        expunged_at   BIGINT NOT NULL
    );
    CREATE INDEX tombstones_by_account ON tombstones (account, expunged_at);
    CREATE INDEX tombstones_by_blob ON tombstones (blob);
    "#,
];

/// The schema version this build creates and understands.
pub fn latest_version() -> u32 {
    // The list is a handful of entries; the conversion cannot truncate in practice.
    u32::try_from(MIGRATIONS.len()).unwrap_or(u32::MAX)
}
