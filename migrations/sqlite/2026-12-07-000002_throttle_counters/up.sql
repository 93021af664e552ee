-- Failed logins, reset requests and the other abuse limits, counted once
-- for every instance on this database (docs/login-throttling.md). One row
-- per limit and key: `scope` names the limit, `key` what it counts (a
-- username, an address, a digest); rows past their window are pruned.
CREATE TABLE throttle_counters (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    count INTEGER NOT NULL,
    window_start TIMESTAMP NOT NULL,
    locked_until TIMESTAMP,
    PRIMARY KEY (scope, key)
);
