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
  // 3: access control (principals, hashed API keys, policies, settings), the append-only audit
  // log, and function definitions
  `
  CREATE TABLE principals (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,             -- user | service | role (a function's execution role) | anonymous
    created_at TEXT NOT NULL
  );
  CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,            -- public key id: keys read kn_<id>_<secret>
    principal TEXT NOT NULL REFERENCES principals(name) ON DELETE CASCADE,
    secret_sha256 TEXT NOT NULL,    -- the secret itself is shown once and never stored
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT,
    last_used_at TEXT,
    rotated_from TEXT,
    rate_per_second REAL,           -- NULL: the workspace default
    burst INTEGER
  );
  CREATE INDEX api_keys_by_principal ON api_keys (principal);
  CREATE TABLE policies (
    id TEXT PRIMARY KEY,
    principal TEXT NOT NULL REFERENCES principals(name) ON DELETE CASCADE,
    document TEXT NOT NULL,         -- JSON: {"statements": [{"effect", "actions", "resources"}]}
    managed_by TEXT,                -- function:NAME for an execution role's own policy
    created_at TEXT NOT NULL
  );
  CREATE INDEX policies_by_principal ON policies (principal);
  CREATE TABLE security_settings (
    key TEXT PRIMARY KEY,           -- cors | rate_limit
    value TEXT NOT NULL             -- JSON
  );
  CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    ts TEXT NOT NULL,
    plane TEXT NOT NULL,            -- cli | admin | data | function
    principal TEXT,                 -- NULL when the caller was not authenticated
    key_id TEXT,
    action TEXT NOT NULL,
    resource TEXT NOT NULL,
    status INTEGER NOT NULL,
    latency_ms REAL,
    request_id TEXT,
    detail TEXT                     -- JSON; never secrets or image bytes
  );
  CREATE INDEX audit_log_by_principal ON audit_log (principal, id);
  CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
  CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
  CREATE TABLE functions (
    name TEXT PRIMARY KEY,
    endpoint TEXT NOT NULL,
    handler TEXT NOT NULL,          -- builtin:classify | module
    handler_sha TEXT,               -- the bundled handler module (artifact)
    handler_source TEXT,            -- the file it was bundled from, for display
    role TEXT NOT NULL REFERENCES principals(name),
    reserved_concurrency INTEGER,   -- NULL: unreserved
    provisioned_concurrency INTEGER NOT NULL,
    timeout_ms INTEGER NOT NULL,
    memory_mb INTEGER NOT NULL,
    route TEXT UNIQUE,              -- HTTP API mapping, e.g. /v1/classify
    revision INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
  );
  `,
  // 4: tuning trials (params written before a trial runs, its result when it finishes) and the
  // coordinator sessions of each tuning job (who runs it now, so a resume cannot run it twice)
  `
  CREATE TABLE tune_trials (
    job TEXT NOT NULL REFERENCES jobs(id),
    trial INTEGER NOT NULL,         -- 1-based, in suggestion order
    params TEXT NOT NULL,           -- JSON: hyperparameter name -> value
    status TEXT NOT NULL,           -- queued | running | completed | stopped | failed
    objective REAL,
    epochs INTEGER,
    best_epoch INTEGER,
    seconds REAL,
    curve TEXT,                     -- JSON: the objective after each epoch (early stopping, charts)
    history TEXT,                   -- JSON: per-epoch losses and accuracies
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (job, trial)
  );
  CREATE TABLE tune_sessions (
    id INTEGER PRIMARY KEY,
    job TEXT NOT NULL REFERENCES jobs(id),
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at TEXT NOT NULL
  );
  CREATE INDEX tune_sessions_by_job ON tune_sessions (job, id);
  `,
  // 5: AWS access keys (SigV4) live beside API keys: id AKIA..., and the secret itself, sealed
  // with the workspace master key (verifying a signature needs it; secret_sha256 is kept too)
  `
  ALTER TABLE api_keys ADD COLUMN secret_sealed TEXT; -- NULL for Kennel API keys
  `,
  // 6: the durable queue of asynchronous (Event) function invocations, with each function's
  // retry settings (Lambda's MaximumEventAgeInSeconds and MaximumRetryAttempts). Payloads live in
  // their own table so status updates never rewrite a multi-megabyte row.
  `
  ALTER TABLE functions ADD COLUMN max_event_age_s INTEGER NOT NULL DEFAULT 21600;
  ALTER TABLE functions ADD COLUMN max_retries INTEGER NOT NULL DEFAULT 2;
  CREATE TABLE function_events (
    seq INTEGER PRIMARY KEY,        -- arrival order
    id TEXT NOT NULL UNIQUE,        -- shown by kennel functions events; --replay/--purge take it
    function TEXT NOT NULL,
    request_id TEXT NOT NULL,       -- of the 202, and the handler's context.requestId on every attempt
    status TEXT NOT NULL,           -- queued | running | failed
    bytes INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,   -- runs started (throttled tries are not runs)
    throttles INTEGER NOT NULL DEFAULT 0,  -- tries refused for concurrency or a system error
    received_at INTEGER NOT NULL,   -- epoch ms; the event's age counts from here (and from a replay)
    next_attempt_at INTEGER NOT NULL,      -- epoch ms
    last_error TEXT,
    failed_at INTEGER               -- epoch ms, when it went to the failure list
  );
  CREATE INDEX function_events_due ON function_events (status, next_attempt_at);
  CREATE INDEX function_events_by_function ON function_events (function, status);
  CREATE TABLE function_event_payloads (
    seq INTEGER PRIMARY KEY REFERENCES function_events(seq) ON DELETE CASCADE,
    payload BLOB NOT NULL           -- the event as JSON, at most the data plane's body limit
  );
  `,
  // 7: the process that runs a job (host name and pid), so kennel jobs cancel can reach it and
  // tell a job whose process died from one still running
  `
  ALTER TABLE jobs ADD COLUMN host TEXT;
  ALTER TABLE jobs ADD COLUMN pid INTEGER;
  `,
  // 8: the highest version a model ever had, so a deleted version's number is never given to
  // another model version (an endpoint or a lineage record naming NAME@V must not change meaning)
  `
  ALTER TABLE models ADD COLUMN last_version INTEGER NOT NULL DEFAULT 0;
  UPDATE models SET last_version = (SELECT COALESCE(MAX(version), 0) FROM model_versions WHERE model_id = models.id);
  `,
  // 9: endpoints' asynchronous inference requests (InvokeEndpointAsync): the durable queue of
  // src/store/queue.ts, like function_events, keeping completed requests a while for their status
  // and the artifact of their answer
  `
  CREATE TABLE endpoint_requests (
    seq INTEGER PRIMARY KEY,        -- arrival order
    id TEXT NOT NULL UNIQUE,        -- the InferenceId
    endpoint TEXT NOT NULL,
    request_id TEXT NOT NULL,       -- of the 202
    status TEXT NOT NULL,           -- queued | running | completed | failed
    bytes INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    throttles INTEGER NOT NULL DEFAULT 0,
    received_at INTEGER NOT NULL,   -- epoch ms
    next_attempt_at INTEGER NOT NULL,
    last_error TEXT,
    failed_at INTEGER,
    input TEXT NOT NULL,            -- the InputLocation
    output TEXT,                    -- sha256 of the answer's artifact, once completed
    completed_at INTEGER,
    notify TEXT                     -- URL told of the completion or failure (POST, safe-fetcher rules)
  );
  CREATE INDEX endpoint_requests_due ON endpoint_requests (status, next_attempt_at);
  CREATE INDEX endpoint_requests_by_endpoint ON endpoint_requests (endpoint, status);
  CREATE TABLE endpoint_request_payloads (
    seq INTEGER PRIMARY KEY REFERENCES endpoint_requests(seq) ON DELETE CASCADE,
    payload BLOB NOT NULL           -- the request as JSON (input location, topK)
  );
  `,
  // 10: shadow variants: each mirrored request's two answers (bounded per endpoint, the newest
  // kept) and per shadow model the requests mirrored and dropped (the shadow was full)
  `
  CREATE TABLE shadow_results (
    id INTEGER PRIMARY KEY,
    endpoint TEXT NOT NULL,
    shadow_model TEXT NOT NULL,     -- NAME@VERSION
    primary_model TEXT NOT NULL,
    at INTEGER NOT NULL,            -- epoch ms
    primary_label TEXT,             -- top-1, NULL when it failed
    primary_score REAL,
    primary_ms REAL NOT NULL,
    primary_error TEXT,             -- error code
    shadow_label TEXT,
    shadow_score REAL,
    shadow_ms REAL NOT NULL,
    shadow_error TEXT
  );
  CREATE INDEX shadow_results_by_endpoint ON shadow_results (endpoint, id);
  CREATE TABLE shadow_counts (
    endpoint TEXT NOT NULL,
    shadow_model TEXT NOT NULL,
    mirrored INTEGER NOT NULL DEFAULT 0,
    dropped INTEGER NOT NULL DEFAULT 0,
    since TEXT NOT NULL,
    PRIMARY KEY (endpoint, shadow_model)
  );
  `,
  // 11: data capture and drift: a sample of each endpoint's requests (image hash, a 64-number
  // projection of its backbone features, top-1 and confidence, variant, latency; the image only
  // with --capture-images), bounded per endpoint and kept for the retention days; and every drift
  // check's result, for charts and alerts
  `
  CREATE TABLE captures (
    id INTEGER PRIMARY KEY,
    endpoint TEXT NOT NULL,
    model TEXT NOT NULL,            -- NAME@VERSION that answered
    variant TEXT NOT NULL,
    at INTEGER NOT NULL,            -- epoch ms
    sha256 TEXT NOT NULL,           -- of the image bytes
    label TEXT NOT NULL,            -- top-1
    score REAL NOT NULL,            -- its probability
    latency_ms REAL NOT NULL,
    features BLOB,                  -- float32 x 64: the endpoint's fixed random projection of the backbone features
    image BLOB                      -- only with --capture-images
  );
  CREATE INDEX captures_by_endpoint ON captures (endpoint, id);
  CREATE INDEX captures_by_time ON captures (endpoint, at);
  CREATE TABLE drift_results (
    id INTEGER PRIMARY KEY,
    endpoint TEXT NOT NULL,
    model TEXT NOT NULL,
    at INTEGER NOT NULL,            -- epoch ms
    captures INTEGER NOT NULL,
    mmd2 REAL NOT NULL,
    threshold REAL NOT NULL,
    p_value REAL NOT NULL,
    drifted INTEGER NOT NULL,
    class_shift REAL NOT NULL,
    mean_confidence REAL NOT NULL,
    detail TEXT NOT NULL            -- the whole result as JSON
  );
  CREATE INDEX drift_results_by_endpoint ON drift_results (endpoint, id);
  `,
  // 12: an asynchronous request's own maximum age (X-Amzn-SageMaker-RequestTTLSeconds; null: the daemon's)
  `
  ALTER TABLE endpoint_requests ADD COLUMN max_age_ms INTEGER;
  `,
];
