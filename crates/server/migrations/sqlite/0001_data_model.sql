-- agora's data model (SPEC §3, §13). One file per backend, kept identical but for
-- the identity column syntax and type names.
--
-- Schema choices:
-- * Money is integer micro-credits (BIGINT) everywhere; no float holds a balance.
-- * Times are BIGINT microseconds since the Unix epoch so that one query text
--   serves SQLite and PostgreSQL without timestamp type differences.
-- * Bundles are stored in base units (cpu milliseconds, MB, tokens, attention in
--   millionths) as in agora-core, so clearing reads integers.
-- * CHECK constraints repeat the ledger rules as a last line of defence: a bug in
--   the application can make a money operation fail, never make it wrong.

CREATE TABLE agents (
    id                     INTEGER PRIMARY KEY AUTOINCREMENT,
    status                 TEXT NOT NULL DEFAULT 'alive' CHECK (status IN ('alive', 'dead')),
    death_reason           TEXT,
    death_at               INTEGER,
    parent_id              INTEGER REFERENCES agents (id),
    -- JSON array of ancestor ids, nearest first: [parent, grandparent, ...].
    lineage                TEXT NOT NULL DEFAULT '[]',
    workspace              TEXT NOT NULL,
    execution_count        INTEGER NOT NULL DEFAULT 0,
    total_credits_earned   INTEGER NOT NULL DEFAULT 0,
    total_credits_spent    INTEGER NOT NULL DEFAULT 0,
    created_at             INTEGER NOT NULL,
    last_execution_at      INTEGER
);

-- Accounts: 'mint' and 'burn' are the two system accounts (ids 1 and 2, inserted
-- first without explicit ids so PostgreSQL's identity sequence stays in step); every
-- agent has exactly one 'agent' account.
CREATE TABLE accounts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL CHECK (kind IN ('mint', 'burn', 'agent')),
    agent_id    INTEGER UNIQUE REFERENCES agents (id),
    balance     INTEGER NOT NULL DEFAULT 0,
    held        INTEGER NOT NULL DEFAULT 0,
    CHECK ((kind = 'agent') = (agent_id IS NOT NULL)),
    CHECK (held >= 0),
    CHECK (kind <> 'agent' OR (balance >= 0 AND held <= balance)),
    CHECK (kind <> 'burn' OR balance >= 0),
    CHECK (kind <> 'mint' OR balance <= 0)
);
INSERT INTO accounts (kind) VALUES ('mint');
INSERT INTO accounts (kind) VALUES ('burn');

-- Holds reserve an agent's credits until posted (becoming a transfer) or voided.
CREATE TABLE holds (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id   INTEGER NOT NULL REFERENCES accounts (id),
    amount       INTEGER NOT NULL CHECK (amount > 0),
    -- The kind of the transfer a post records.
    kind         TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'posted', 'voided')),
    created_at   INTEGER NOT NULL,
    settled_at   INTEGER
);
CREATE INDEX holds_pending ON holds (account_id) WHERE status = 'pending';

CREATE TABLE transfers (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    debit_account     INTEGER NOT NULL REFERENCES accounts (id),
    credit_account    INTEGER NOT NULL REFERENCES accounts (id),
    amount            INTEGER NOT NULL CHECK (amount > 0),
    kind              TEXT NOT NULL,
    memo              TEXT NOT NULL DEFAULT '',
    -- A hold is posted by at most one transfer: the unique index makes a double
    -- post impossible even if the application tried.
    hold_id           INTEGER UNIQUE REFERENCES holds (id),
    bid_id            INTEGER,
    execution_id      INTEGER,
    prompt_id         INTEGER,
    idempotency_key   TEXT,
    created_at        INTEGER NOT NULL,
    CHECK (debit_account <> credit_account)
);
CREATE INDEX transfers_debit ON transfers (debit_account, id);
CREATE INDEX transfers_credit ON transfers (credit_account, id);
-- Idempotency keys are scoped to the paying account.
CREATE UNIQUE INDEX transfers_idempotency ON transfers (debit_account, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- One market per resource. Quantities in base units, prices in µcr per displayed unit.
CREATE TABLE markets (
    resource       TEXT PRIMARY KEY,
    capacity       INTEGER NOT NULL CHECK (capacity >= 0),
    -- Held by running executions (the memory pool); 0 for per-cycle resources.
    in_use         INTEGER NOT NULL DEFAULT 0 CHECK (in_use >= 0),
    price          INTEGER NOT NULL CHECK (price >= 0),
    min_price      INTEGER NOT NULL,
    max_price      INTEGER NOT NULL,
    utilisation    REAL NOT NULL DEFAULT 0,
    updated_cycle  INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE market_history (
    cycle        INTEGER NOT NULL,
    resource     TEXT NOT NULL,
    capacity     INTEGER NOT NULL,
    allocated    INTEGER NOT NULL,
    utilisation  REAL NOT NULL,
    price        INTEGER NOT NULL,
    recorded_at  INTEGER NOT NULL,
    PRIMARY KEY (cycle, resource)
);

CREATE TABLE bids (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    payer_id         INTEGER NOT NULL REFERENCES agents (id),
    beneficiary_id   INTEGER NOT NULL REFERENCES agents (id),
    cpu_millis       INTEGER NOT NULL,
    memory_mb        INTEGER NOT NULL,
    tokens           INTEGER NOT NULL,
    attention_ppm    INTEGER NOT NULL,
    wall_millis      INTEGER,
    amount           INTEGER NOT NULL CHECK (amount > 0),
    hold_id          INTEGER NOT NULL REFERENCES holds (id),
    status           TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'won', 'withdrawn', 'expired', 'rejected')),
    placed_at        INTEGER NOT NULL,
    placed_cycle     INTEGER NOT NULL,
    expiry_cycle     INTEGER NOT NULL,
    decided_at       INTEGER,
    won_cycle        INTEGER,
    execution_id     INTEGER,
    reason           TEXT
);
CREATE INDEX bids_pending ON bids (status, amount);
CREATE INDEX bids_payer ON bids (payer_id, status);
CREATE INDEX bids_beneficiary ON bids (beneficiary_id, status);

CREATE TABLE executions (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id            INTEGER NOT NULL REFERENCES agents (id),
    bid_id              INTEGER NOT NULL UNIQUE REFERENCES bids (id),
    cpu_millis          INTEGER NOT NULL,
    memory_mb           INTEGER NOT NULL,
    tokens              INTEGER NOT NULL,
    attention_ppm       INTEGER NOT NULL,
    wall_millis         INTEGER,
    cycle               INTEGER NOT NULL,
    status              TEXT NOT NULL DEFAULT 'scheduled' CHECK (status IN
                        ('scheduled', 'running', 'succeeded', 'failed', 'timed_out',
                         'oom_killed', 'cpu_exceeded', 'lost')),
    exit_code           INTEGER,
    termination_reason  TEXT,
    created_at          INTEGER NOT NULL,
    started_at          INTEGER,
    ended_at            INTEGER,
    tokens_used         INTEGER NOT NULL DEFAULT 0,
    cpu_used_millis     INTEGER,
    peak_memory_mb      INTEGER,
    sandbox_backend     TEXT,
    container_id        TEXT,
    log_path            TEXT
);
CREATE INDEX executions_agent ON executions (agent_id, id);
CREATE INDEX executions_status ON executions (status);

CREATE TABLE prompts (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id       INTEGER NOT NULL REFERENCES agents (id),
    execution_id   INTEGER NOT NULL UNIQUE REFERENCES executions (id),
    content        TEXT NOT NULL,
    bid_amount     INTEGER NOT NULL CHECK (bid_amount > 0),
    hold_id        INTEGER NOT NULL REFERENCES holds (id),
    status         TEXT NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'active', 'responded', 'expired')),
    submitted_at   INTEGER NOT NULL,
    activated_at   INTEGER,
    decided_at     INTEGER
);
CREATE INDEX prompts_status ON prompts (status, bid_amount);
-- Exactly one prompt is active at a time (attention supply 1.0).
CREATE UNIQUE INDEX prompts_one_active ON prompts (status) WHERE status = 'active';

CREATE TABLE responses (
    prompt_id        INTEGER PRIMARY KEY REFERENCES prompts (id),
    interesting      INTEGER NOT NULL CHECK (interesting BETWEEN 0 AND 10),
    useful           INTEGER NOT NULL CHECK (useful BETWEEN 0 AND 10),
    understandable   INTEGER NOT NULL CHECK (understandable BETWEEN 0 AND 10),
    reason           TEXT NOT NULL DEFAULT '',
    credits_awarded  INTEGER NOT NULL,
    rated_at         INTEGER NOT NULL
);

CREATE TABLE messages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    from_agent  INTEGER NOT NULL REFERENCES agents (id),
    to_agent    INTEGER NOT NULL REFERENCES agents (id),
    content     TEXT NOT NULL,
    sent_at     INTEGER NOT NULL,
    read_at     INTEGER
);
CREATE INDEX messages_inbox ON messages (to_agent, read_at);

CREATE TABLE llm_calls (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    execution_id        INTEGER NOT NULL REFERENCES executions (id),
    model               TEXT NOT NULL,
    prompt_tokens       INTEGER NOT NULL DEFAULT 0,
    completion_tokens   INTEGER NOT NULL DEFAULT 0,
    -- 'upstream' when the upstream reported usage, 'estimated' otherwise.
    source              TEXT NOT NULL,
    charged             INTEGER NOT NULL DEFAULT 0,
    status              TEXT NOT NULL,
    latency_ms          INTEGER,
    first_token_ms      INTEGER,
    overhead_us         INTEGER,
    created_at          INTEGER NOT NULL
);
CREATE INDEX llm_calls_execution ON llm_calls (execution_id);

-- Append-only event log (§13). `id` orders events; readers page with ?after=id.
CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    cycle       INTEGER,
    source      TEXT NOT NULL,
    type        TEXT NOT NULL,
    agent_id    INTEGER,
    data        TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_agent ON events (agent_id, id);

-- Small key/value facts about the world: current cycle, paused, bootstrapped.
CREATE TABLE system_state (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
