-- The LLM proxy's token quota (SPEC §10): `remaining = tokens − tokens_used −
-- tokens_held` per execution, where `tokens_held` is the sum of the holds of the
-- calls in flight. A call is admitted by one conditional UPDATE of its execution's
-- row, so a burst of parallel calls can never hold more than the bundle has; the
-- CHECK repeats that rule so a bug can make a call fail, never overshoot.
ALTER TABLE executions ADD COLUMN tokens_held INTEGER NOT NULL DEFAULT 0
    CHECK (tokens_held >= 0 AND tokens_used + tokens_held <= tokens);

-- One row per proxied call, created with its hold ('held') and settled exactly
-- once: the UPDATE that settles it is conditional on status = 'held', and the
-- charge is added to executions.tokens_used in the same transaction. The table of
-- 0001 was never written to; it is replaced by this one with the hold and the
-- settlement columns and their rules.
DROP TABLE llm_calls;
CREATE TABLE llm_calls (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    execution_id        INTEGER NOT NULL REFERENCES executions (id),
    model               TEXT NOT NULL,
    -- 1 for a streamed answer.
    stream              INTEGER NOT NULL CHECK (stream IN (0, 1)),
    -- Tokens reserved at admission: the prompt (exact or bounded) + n × the output cap.
    held                INTEGER NOT NULL CHECK (held > 0),
    -- As reported by the upstream (source 'upstream') or estimated; NULL while held.
    prompt_tokens       INTEGER,
    completion_tokens   INTEGER,
    source              TEXT CHECK (source IN ('upstream', 'estimated')),
    -- What was added to executions.tokens_used: never more than the hold.
    charged             INTEGER NOT NULL DEFAULT 0 CHECK (charged >= 0 AND charged <= held),
    -- held → completed | client_closed | upstream_error | expired.
    status              TEXT NOT NULL CHECK (status IN
                        ('held', 'completed', 'client_closed', 'upstream_error', 'expired')),
    -- The status the client got (200 for a stream that started).
    http_status         INTEGER,
    latency_ms          INTEGER,
    first_token_ms      INTEGER,
    -- Time spent in the proxy itself: before the upstream was asked, and after it answered.
    overhead_us         INTEGER,
    created_at          INTEGER NOT NULL,
    settled_at          INTEGER,
    CHECK ((status = 'held') = (settled_at IS NULL))
);
CREATE INDEX llm_calls_execution ON llm_calls (execution_id, id);
-- Holds still open, for the expiry sweep and the reconciliation at start.
CREATE INDEX llm_calls_held ON llm_calls (created_at) WHERE status = 'held';
