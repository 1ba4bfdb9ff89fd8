-- Admin browser sessions, kept on the server so that they can end: logging out deletes the
-- session's row, "log out everywhere" and a changed ADMIN_PASSWORD delete them all. A cookie
-- whose row is gone (or past expires_at) is no session, however well it is signed.
CREATE TABLE admin_sessions (
    sid_hash    bytea       PRIMARY KEY,  -- sha256 of the cookie's random id: a row is no key
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    client      text        NOT NULL      -- the address that signed in, for the log
);
CREATE INDEX admin_sessions_expires_at_idx ON admin_sessions (expires_at);

-- One row: a salted scrypt fingerprint of the ADMIN_PASSWORD the sessions were opened with.
-- A ledger starting with another password ends every session (SESSION_SECRET may stay).
CREATE TABLE admin_password_seal (
    only_row    boolean     PRIMARY KEY DEFAULT true CHECK (only_row),
    salt        bytea       NOT NULL,
    fingerprint bytea       NOT NULL,
    sealed_at   timestamptz NOT NULL
);
