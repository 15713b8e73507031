-- Version 1: subjects, their records and token refs.
--
-- The SQL runs on PostgreSQL and on CockroachDB. Subject ids compare and
-- sort as bytes: on PostgreSQL the collation clauses in block comments are
-- uncommented; CockroachDB sorts strings as bytes already and rejects the
-- clause on columns, so there they stay comments.

CREATE TABLE IF NOT EXISTS subjects (
	id          TEXT /*COLLATE "C"*/ NOT NULL PRIMARY KEY,
	residency   TEXT        NOT NULL,
	kek_id      TEXT        NOT NULL,
	wrapped_key BYTEA       NOT NULL,
	created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS records (
	collection TEXT        NOT NULL,
	id         TEXT        NOT NULL,
	subject    TEXT /*COLLATE "C"*/ NOT NULL REFERENCES subjects (id) ON DELETE CASCADE,
	clear      BYTEA,
	sealed     BYTEA,
	updated_at TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (collection, id)
);

CREATE INDEX IF NOT EXISTS records_subject ON records (subject);

-- A token ref holds no token: idx is a keyed hash of the token under the
-- index key of the KEK kek_id, and sealed the token sealed under the
-- subject's data key.
CREATE TABLE IF NOT EXISTS token_refs (
	idx        BYTEA NOT NULL,
	kek_id     TEXT  NOT NULL,
	audience   TEXT  NOT NULL,
	subject    TEXT /*COLLATE "C"*/ NOT NULL REFERENCES subjects (id) ON DELETE CASCADE,
	collection TEXT  NOT NULL,
	record     TEXT  NOT NULL,
	field      TEXT  NOT NULL,
	sealed     BYTEA NOT NULL,
	PRIMARY KEY (idx, audience, subject, collection, record, field)
);

CREATE INDEX IF NOT EXISTS token_refs_record ON token_refs (collection, record);
CREATE INDEX IF NOT EXISTS token_refs_subject ON token_refs (subject);
