-- The world's totals after each cycle, for the console's economy charts (SPEC §12):
-- population and credits in agents' hands, held, minted and burned over time. One
-- row per cycle, written in the transaction that records the cycle's prices, so a
-- row always describes a state the ledger was in.
CREATE TABLE world_history (
    cycle           BIGINT PRIMARY KEY,
    agents_alive    BIGINT NOT NULL,
    agents_dead     BIGINT NOT NULL,
    agent_balances  BIGINT NOT NULL,
    agent_held      BIGINT NOT NULL,
    minted          BIGINT NOT NULL,
    burned          BIGINT NOT NULL,
    recorded_at     BIGINT NOT NULL
);

-- The console's agent table counts each agent's children.
CREATE INDEX agents_parent ON agents (parent_id);

-- An agent's page lists its latest prompts.
CREATE INDEX prompts_agent ON prompts (agent_id, id);
