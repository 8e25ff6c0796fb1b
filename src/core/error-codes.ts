import { errorCode, type KennelError } from './errors.js';

/**
 * The error catalogue: every code a KennelError carries, defined once with its HTTP status (and a
 * default hint where one is generic), in the spirit of fastify's lib/errors.js. Construct errors
 * by name (`throw Errors.NotFound('Model dogs was not found.', 'List them with kennel models list.')`)
 * and compare them by identity (`Errors.NotFound.is(e)`, `e.kind === Errors.NotFound`), never by
 * their code string. A third argument overrides the status only where it comes from elsewhere
 * (noted below). Nothing outside this file and errors.ts writes `new KennelError(`
 * (test/foundation/errors.test.ts checks).
 */

// 400
export const BadRequest = errorCode('bad_request', 400);
export const BadUrl = errorCode('bad_url', 400);
export const EmptyBody = errorCode('empty_body', 400);
export const IncompleteSignature = errorCode('incomplete_signature', 400);
export const InvalidBase64 = errorCode('invalid_base64', 400);
export const InvalidJson = errorCode('invalid_json', 400);
export const InvalidPolicy = errorCode('invalid_policy', 400);
export const InvalidArtifactsUrl = errorCode('invalid_artifacts_url', 400, 'Give an S3 URL such as s3://bucket/prefix (--artifacts or KENNEL_ARTIFACTS), or leave it unset for the workspace folder.');
export const InvalidQueueUrl = errorCode('invalid_queue_url', 400, 'Give a Redis URL such as redis://host:6379 (--queue or KENNEL_QUEUE).');
export const InvalidRequest = errorCode('invalid_request', 400); // a 4xx of fastify's own keeps its status
export const MissingHost = errorCode('missing_host', 400);
export const NotAWorkspace = errorCode('not_a_workspace', 400);
export const UnknownVariant = errorCode('unknown_variant', 400);
export const UrlRefused = errorCode('url_refused', 400);

// 401
export const Unauthorized = errorCode('unauthorized', 401);

// 403
export const Csrf = errorCode('csrf', 403);
export const Forbidden = errorCode('forbidden', 403);
export const InvalidSignature = errorCode('invalid_signature', 403);
export const UnrecognizedClient = errorCode('unrecognized_client', 403);

// 404
export const NotFound = errorCode('not_found', 404);

// 406
export const NotAcceptable = errorCode('not_acceptable', 406);

// 408
export const RequestTimeout = errorCode('request_timeout', 408);

// 409
export const Conflict = errorCode('conflict', 409);

// 413
export const TooLarge = errorCode('too_large', 413);

// 414
export const UriTooLong = errorCode('uri_too_long', 414);

// 415
export const UnsupportedImage = errorCode('unsupported_image', 415);
export const UnsupportedMediaType = errorCode('unsupported_media_type', 415);

// 417
export const ExpectationFailed = errorCode('expectation_failed', 417);

// 421
export const MisdirectedRequest = errorCode('misdirected_request', 421);

// 422
export const ArtifactCorrupt = errorCode('artifact_corrupt', 422);
export const ArtifactMissing = errorCode('artifact_missing', 422);
export const BadImage = errorCode('bad_image', 422);
export const ChecksumMismatch = errorCode('checksum_mismatch', 422);
export const DeviceUnavailable = errorCode('device_unavailable', 422);
export const InvalidTask = errorCode('invalid_task', 422);
export const RolloutFailed = errorCode('rollout_failed', 422);
export const TaskPoisoned = errorCode('task_poisoned', 422); // PoisonedTaskError
export const UnknownTaskType = errorCode('unknown_task_type', 422);
export const UrlContent = errorCode('url_content', 422);
export const UrlUnavailable = errorCode('url_unavailable', 422);

// 429
export const Throttled = errorCode('throttled', 429); // ThrottledError
export const TooManyConnections = errorCode('too_many_connections', 429);

// 431
export const HeadersTooLarge = errorCode('headers_too_large', 431);

// 499
export const Cancelled = errorCode('cancelled', 499);

// 500
export const DaemonFailed = errorCode('daemon_failed', 500); // 504 where the daemon did not answer in time
export const Internal = errorCode('internal', 500);
export const MasterKeyExposed = errorCode('master_key_exposed', 500);
export const MasterKeyInvalid = errorCode('master_key_invalid', 500);
export const PermissionDenied = errorCode('permission_denied', 500);
export const ReadOnly = errorCode('read_only', 500);
export const SealedSecretInvalid = errorCode('sealed_secret_invalid', 500);
export const WorkerStartFailed = errorCode('worker_start_failed', 500);
export const WorkspaceMismatch = errorCode('workspace_mismatch', 500);

// 502
export const DownloadFailed = errorCode('download_failed', 502);
export const FunctionError = errorCode('function_error', 502);
export const FunctionOutOfMemory = errorCode('function_out_of_memory', 502);
export const HttpError = errorCode('http_error', 502); // always the status the daemon answered
export const ReplicaFailed = errorCode('replica_failed', 502);

// 503
export const ArtifactStoreUnavailable = errorCode('artifact_store_unavailable', 503);
export const AuditUnavailable = errorCode('audit_unavailable', 503); // AuditUnavailableError
export const DaemonNotRunning = errorCode('daemon_not_running', 503);
export const DaemonUnreachable = errorCode('daemon_unreachable', 503);
export const EndpointStopping = errorCode('endpoint_stopping', 503);
export const NoReplica = errorCode('no_replica', 503);
export const NotRunning = errorCode('not_running', 503);
export const Overloaded = errorCode('overloaded', 503);
export const QueueUnavailable = errorCode('queue_unavailable', 503);
export const ReplicaStopping = errorCode('replica_stopping', 503); // sent by a replica process as code and status
export const StartFailed = errorCode('start_failed', 503); // 422 where a rollout's replicas failed to load the model
export const TooManyOpenFiles = errorCode('too_many_open_files', 503);

// 504
export const FunctionTimeout = errorCode('function_timeout', 504);
export const NotReady = errorCode('not_ready', 504);
export const Timeout = errorCode('timeout', 504);
export const UrlTimeout = errorCode('url_timeout', 504);

// 507
export const DiskFull = errorCode('disk_full', 507, 'Then run the same command again; work finished so far is kept.');

/** `${what} was not found.` (404): the one wording of a missing thing. */
export const notFound = (what: string, hint?: string): KennelError => NotFound(`${what} was not found.`, hint);
