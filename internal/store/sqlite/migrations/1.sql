-- Version 1: subjects, their records and token refs.
--
-- Times are microseconds since the Unix epoch, UTC. Ids compare and sort
-- as bytes (the BINARY collation). clear and sealed tell NULL from an
-- empty blob.

CREATE TABLE subjects (
	id          TEXT    NOT NULL PRIMARY KEY,
	residency   TEXT    NOT NULL,
	kek_id      TEXT    NOT NULL,
	wrapped_key BLOB    NOT NULL,
	created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE records (
	collection TEXT    NOT NULL,
	id         TEXT    NOT NULL,
	subject    TEXT    NOT NULL REFERENCES subjects (id) ON DELETE CASCADE,
	clear      BLOB,
	sealed     BLOB,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (collection, id)
) STRICT;

CREATE INDEX records_subject ON records (subject);

-- A token ref holds no token: idx is a keyed hash of the token under the
-- index key of the KEK kek_id, and sealed the token sealed under the
-- subject's data key.
CREATE TABLE token_refs (
	idx        BLOB NOT NULL,
	kek_id     TEXT NOT NULL,
	audience   TEXT NOT NULL,
	subject    TEXT NOT NULL REFERENCES subjects (id) ON DELETE CASCADE,
	collection TEXT NOT NULL,
	record     TEXT NOT NULL,
	field      TEXT NOT NULL,
	sealed     BLOB NOT NULL,
	PRIMARY KEY (idx, audience, subject, collection, record, field)
) STRICT, WITHOUT ROWID;

CREATE INDEX token_refs_record ON token_refs (collection, record);
CREATE INDEX token_refs_subject ON token_refs (subject);
