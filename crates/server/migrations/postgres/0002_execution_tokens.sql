-- Execution tokens (SPEC §11): the credential an agent's requests carry. Only a
-- SHA-256 of each token is stored; the token itself exists in the agent's
-- environment and nowhere else. A token is valid while it is not revoked and its
-- execution is scheduled or running.
CREATE TABLE execution_tokens (
    hash          TEXT PRIMARY KEY,
    agent_id      BIGINT NOT NULL REFERENCES agents (id),
    execution_id  BIGINT NOT NULL REFERENCES executions (id),
    created_at    BIGINT NOT NULL,
    revoked_at    BIGINT
);
CREATE INDEX execution_tokens_by_execution ON execution_tokens (execution_id);
