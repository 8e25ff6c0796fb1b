/**
 * Schema migrations, applied in order; never edit a released entry, append a new one.
 */
export const migrations: string[] = [
  // 1: datasets, backbones, feature cache, jobs, model registry
  `
  CREATE TABLE datasets (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
  );
  CREATE TABLE dataset_versions (
    id INTEGER PRIMARY KEY,
    dataset_id INTEGER NOT NULL REFERENCES datasets(id),
    version INTEGER NOT NULL,
    manifest_sha TEXT NOT NULL,
    source TEXT NOT NULL,
    classes TEXT NOT NULL,          -- JSON array of display names, index = class id
    report TEXT NOT NULL,           -- JSON: counts, skipped files, leakage, imbalance
    created_at TEXT NOT NULL,
    UNIQUE (dataset_id, version)
  );
  CREATE TABLE backbones (
    id TEXT PRIMARY KEY,            -- catalog id or user-given name
    source TEXT NOT NULL,           -- 'catalog' | 'local'
    model_sha TEXT NOT NULL,        -- the original ONNX file
    extractor_sha TEXT NOT NULL,    -- pruned graph whose output is the pooled feature vector
    spec TEXT NOT NULL,             -- JSON: input name/size/layout, normalisation, feature tensor and dim
    created_at TEXT NOT NULL
  );
  CREATE TABLE feature_chunks (
    cache_key TEXT NOT NULL,        -- hash of (dataset version, backbone, preprocessing, view)
    chunk INTEGER NOT NULL,
    artifact_sha TEXT NOT NULL,
    rows INTEGER NOT NULL,
    PRIMARY KEY (cache_key, chunk)
  );
  CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,             -- 'train' | 'tune' | ...
    status TEXT NOT NULL,           -- queued | running | completed | failed | cancelled
    params TEXT NOT NULL,
    result TEXT,
    error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
  );
  CREATE TABLE models (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
  );
  CREATE TABLE model_versions (
    id INTEGER PRIMARY KEY,
    model_id INTEGER NOT NULL REFERENCES models(id),
    version INTEGER NOT NULL,
    onnx_sha TEXT NOT NULL,
    card TEXT NOT NULL,             -- JSON: labels, preprocessing, metrics, lineage
    created_at TEXT NOT NULL,
    UNIQUE (model_id, version)
  );
  CREATE TABLE model_tags (
    model_id INTEGER NOT NULL REFERENCES models(id),
    tag TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (model_id, tag)
  );
  `,
  // 2: serving endpoints (config and desired replicas per variant) and their event log
  `
  CREATE TABLE endpoints (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,             -- JSON: variants (resolved NAME@VERSION, weight), scaling, batching
    desired TEXT NOT NULL,          -- JSON: variant -> replicas wanted, kept across daemon restarts
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
  );
  CREATE TABLE endpoint_events (
    id INTEGER PRIMARY KEY,
    endpoint TEXT NOT NULL,
    kind TEXT NOT NULL,             -- scale_out | scale_in | rollout_* | replica_* | created | updated
    message TEXT NOT NULL,
    detail TEXT NOT NULL,           -- JSON
    created_at TEXT NOT NULL
  );
  CREATE INDEX endpoint_events_by_endpoint ON endpoint_events (endpoint, id);
  `,
];
