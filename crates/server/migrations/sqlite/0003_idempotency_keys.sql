-- Idempotency keys of money-moving requests whose effect is more than one
-- transfer (SPEC §4): placing a bid, spawning, sending a message, creating an
-- agent. The first outcome is recorded in the same transaction as the effect; a
-- retry with the same key finds it and moves nothing. (Transfers and grants keep
-- their key on the transfer row itself.) The primary key makes concurrent twins
-- impossible: the loser retries and replays the winner's outcome.
CREATE TABLE idempotency_keys (
    -- The caller: an agent id, or 0 for the operator.
    scope        INTEGER NOT NULL,
    key          TEXT NOT NULL,
    -- What the key was used for, e.g. 'place_bid'.
    operation    TEXT NOT NULL,
    -- A digest of the request; the same key with another request is refused.
    fingerprint  TEXT NOT NULL,
    -- JSON: the ids the first request produced.
    outcome      TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
);
