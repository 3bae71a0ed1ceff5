//! Versioned, forward-only schema migrations of the SQLite backend (DESIGN §4: "one
//! schema, migrations versioned in the repo").
//!
//! `MIGRATIONS[i]` upgrades the schema from version `i` to version `i + 1`. The version
//! reached is stored in the one-row table `schema_version`. Entries are never edited or
//! reordered once released: a change to the schema is a new entry at the end.

/// The ordered migrations; the schema version of a fully migrated database is
/// `MIGRATIONS.len()`.
pub const MIGRATIONS: &[&str] = &[
    // Version 1: documents, mail metadata, change log, usage counters.
    r#"
    -- Named store-wide counters: `docs_generation` (DESIGN §4: caches of other processes
    -- notice document changes) and `uid_validity` (last UIDVALIDITY handed out).
    CREATE TABLE counters (
        name  TEXT PRIMARY KEY NOT NULL,
        value INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO counters (name, value) VALUES ('docs_generation', 0), ('uid_validity', 0);

    -- Directory objects and settings as typed JSON documents.
    CREATE TABLE docs (
        kind    TEXT NOT NULL,
        key     TEXT NOT NULL,
        parent  TEXT NOT NULL DEFAULT '',
        version INTEGER NOT NULL,
        body    TEXT NOT NULL,
        PRIMARY KEY (kind, key)
    ) WITHOUT ROWID;
    CREATE INDEX docs_by_parent ON docs (kind, parent, key);

    -- Per-account modseq and quota usage, kept incrementally (DESIGN §2).
    CREATE TABLE account_state (
        account        TEXT PRIMARY KEY NOT NULL,
        highest_modseq INTEGER NOT NULL DEFAULT 0,
        bytes          INTEGER NOT NULL DEFAULT 0,
        messages       INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;

    -- AUTOINCREMENT: a folder id is never reused, so change-log rows of a deleted folder
    -- never point at a newer one.
    CREATE TABLE folders (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        account        TEXT NOT NULL,
        name           TEXT NOT NULL,
        kind           TEXT NOT NULL,
        uid_validity   INTEGER NOT NULL,
        uid_next       INTEGER NOT NULL,
        messages       INTEGER NOT NULL DEFAULT 0,
        unseen         INTEGER NOT NULL DEFAULT 0,
        bytes          INTEGER NOT NULL DEFAULT 0,
        highest_modseq INTEGER NOT NULL DEFAULT 0,
        UNIQUE (account, name)
    );

    -- `flags` is a JSON array of sorted, distinct flags; `seen` caches whether `\Seen` is
    -- among them so the unseen counter can be kept without parsing.
    CREATE TABLE messages (
        folder        INTEGER NOT NULL REFERENCES folders (id) ON DELETE CASCADE,
        uid           INTEGER NOT NULL,
        blob          TEXT NOT NULL,
        size          INTEGER NOT NULL,
        flags         TEXT NOT NULL,
        seen          INTEGER NOT NULL,
        internal_date INTEGER NOT NULL,
        modseq        INTEGER NOT NULL,
        PRIMARY KEY (folder, uid)
    ) WITHOUT ROWID;
    -- Blob reference counts are a query on this index.
    CREATE INDEX messages_by_blob ON messages (blob);

    -- One change log per account (DESIGN §2). No foreign key on `folder`: the rows of a
    -- deleted folder stay.
    CREATE TABLE changes (
        account TEXT NOT NULL,
        modseq  INTEGER NOT NULL,
        folder  INTEGER NOT NULL,
        uid     INTEGER NOT NULL,
        kind    TEXT NOT NULL,
        PRIMARY KEY (account, modseq)
    ) WITHOUT ROWID;
    "#,
    // Version 2: the outbound queue (DESIGN §3: rows in the MetaStore plus blobs).
    r#"
    CREATE TABLE queue (
        id           TEXT PRIMARY KEY NOT NULL,
        sender       TEXT NOT NULL,
        envid        TEXT,
        ret          TEXT,
        size         INTEGER NOT NULL,
        blob         TEXT NOT NULL,
        created      INTEGER NOT NULL,
        next_attempt INTEGER NOT NULL
    ) WITHOUT ROWID;
    -- Blob reference counts include queued messages.
    CREATE INDEX queue_by_blob ON queue (blob);
    CREATE INDEX queue_by_next_attempt ON queue (next_attempt, id);

    -- Per-recipient state; `idx` keeps envelope order.
    CREATE TABLE queue_rcpt (
        queue_id   TEXT NOT NULL REFERENCES queue (id) ON DELETE CASCADE,
        idx        INTEGER NOT NULL,
        address    TEXT NOT NULL,
        notify     TEXT,
        orcpt      TEXT,
        route      TEXT,
        state      TEXT NOT NULL,
        attempts   INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        PRIMARY KEY (queue_id, idx)
    ) WITHOUT ROWID;
    "#,
    // Version 3: queue leases (DESIGN §4: queue items are claimed with leases) and the
    // "delay warning sent" mark (RFC 3464 action=delayed is sent once per message).
    r#"
    ALTER TABLE queue ADD COLUMN lease_until INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE queue ADD COLUMN warned INTEGER NOT NULL DEFAULT 0;
    "#,
    // Version 4: the rows of one folder changed after a modseq
    // (`MetaStore::list_messages_changed_since`), read by every IMAP session on each
    // change to its selected folder (RFC 9051 §7.4-§7.5, RFC 7162 §3.2.5.1) without
    // scanning the folder.
    r#"
    CREATE INDEX messages_by_modseq ON messages (folder, modseq);
    "#,
    // Version 5: retention (guide §7.4, §7.5). `added_at` is when the row was created, i.e.
    // when the message entered its folder (delivery, APPEND, COPY, MOVE, restore): the age
    // the clean-out measures. Existing rows take their INTERNALDATE. `tombstones` keeps
    // expunged messages recoverable while the domain's retention lasts; each row holds a
    // reference on its blob.
    r#"
    ALTER TABLE messages ADD COLUMN added_at INTEGER NOT NULL DEFAULT 0;
    UPDATE messages SET added_at = internal_date;
    CREATE INDEX messages_by_added_at ON messages (folder, added_at);

    CREATE TABLE tombstones (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        account       TEXT NOT NULL,
        folder_name   TEXT NOT NULL,
        blob          TEXT NOT NULL,
        size          INTEGER NOT NULL,
        flags         TEXT NOT NULL,
        internal_date INTEGER NOT NULL,
        expunged_at   INTEGER NOT NULL
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
