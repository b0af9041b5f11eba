-- The transparency log: leaves (canonical JSON of captures, evidence links
-- and custody events, appended in the transaction that records them) and
-- signed checkpoints of the tree.

CREATE TABLE log_leaf (
    idx         BIGINT PRIMARY KEY,
    kind        TEXT NOT NULL,
    object_id   TEXT NOT NULL,
    data        TEXT NOT NULL,
    leaf_hash   TEXT NOT NULL,
    appended_at TEXT NOT NULL
);
CREATE INDEX log_leaf_by_object ON log_leaf (kind, object_id);

CREATE TABLE checkpoint (
    tree_size  BIGINT PRIMARY KEY,
    root       TEXT NOT NULL,
    note       TEXT NOT NULL,
    created_at TEXT NOT NULL
);
