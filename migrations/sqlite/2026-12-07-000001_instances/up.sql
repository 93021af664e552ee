-- Every running `keyward serve` announces itself here and refreshes its row
-- every few seconds; `keyward check` lists the live ones (docs/instances.md).
CREATE TABLE instances (
    id TEXT PRIMARY KEY NOT NULL,
    started_at TIMESTAMP NOT NULL,
    seen_at TIMESTAMP NOT NULL,
    address TEXT NOT NULL,
    host TEXT NOT NULL,
    pid BIGINT NOT NULL,
    version TEXT NOT NULL
);
