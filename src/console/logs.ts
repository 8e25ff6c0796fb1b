import type { LogLine } from './api-types.js';

/** pino's numeric levels; fatal is shown as error */
const LEVELS: Record<number, LogLine['level']> = { 10: 'debug', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'error' };
/** record fields that are not worth a column in a log view */
const HIDDEN = new Set(['time', 'level', 'msg', 'pid', 'hostname', 'replica']);
const MAX_TEXT = 500;

/**
 * What must never be shown, whatever a log line carries: API keys (kn_<id>_<secret>: the public
 * id stays), bearer and basic credentials, SigV4 signatures, and values of fields named like a
 * secret. The daemon's own secrets (the admin token) are replaced wherever they appear.
 */
const SECRET_PATTERNS: Array<[RegExp, string]> = [
  [/kn_([0-9a-f]{16})_[A-Za-z0-9_-]+/g, 'kn_$1_[redacted]'],
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/gi, '$1 [redacted]'],
  [/(Signature=)[0-9a-f]+/gi, '$1[redacted]'],
  [/("?(?:authorization|cookie|x-api-key|token|secret|password|passwd|api[_-]?key|access[_-]?key|session|csrf)"?\s*[:=]\s*)("(?:[^"\\]|\\.)*"|[^\s,}]+)/gi, '$1"[redacted]"'],
];

export function redact(text: string, secrets: readonly string[] = []): string {
  let out = text;
  for (const s of secrets) if (s.length >= 8) out = out.split(s).join('[redacted]');
  for (const [re, to] of SECRET_PATTERNS) out = out.replace(re, to);
  return out;
}

export interface LogBookOptions {
  /** lines kept per source (the daemon, each replica), default 300 */
  keep?: number;
  /** replicas remembered (the oldest is forgotten first), default 64 */
  maxReplicas?: number;
  /** strings to blank out wherever they appear (the admin token) */
  secrets?: readonly string[];
}

/**
 * The daemon's recent log lines in memory, for the console's logs view: a bounded ring per
 * source, the daemon (every line) and each replica (lines logged with its id: its own output,
 * its start and exit). It is a pino destination (`write` takes one JSON record per line), so it
 * sits next to stdout in a multistream; lines are redacted as they are stored.
 */
export class LogBook {
  readonly keep: number;
  private readonly maxReplicas: number;
  private readonly daemon: LogLine[] = [];
  private readonly replicas = new Map<string, LogLine[]>();
  private secrets: readonly string[];

  constructor(o: LogBookOptions = {}) {
    this.keep = o.keep ?? 300;
    this.maxReplicas = o.maxReplicas ?? 64;
    this.secrets = o.secrets ?? [];
  }

  /** Secrets known only once the daemon has read them (the admin token). */
  addSecrets(...secrets: string[]): void {
    this.secrets = [...this.secrets, ...secrets];
  }

  write(chunk: string): void {
    for (const raw of chunk.split('\n')) {
      if (!raw) continue;
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(raw) as Record<string, unknown>;
      } catch {
        rec = { time: Date.now(), level: 30, msg: raw };
      }
      const fields = Object.entries(rec)
        .filter(([k]) => !HIDDEN.has(k))
        .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
      const text = redact([String(rec.msg ?? ''), ...fields].join(' ').trim(), this.secrets);
      const line: LogLine = { t: typeof rec.time === 'number' ? rec.time : Date.now(), level: LEVELS[Number(rec.level)] ?? 'info', text: text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT)}…` : text };
      push(this.daemon, line, this.keep);
      if (typeof rec.replica === 'string') this.replicaLines(rec.replica, line);
    }
  }

  /** The daemon's lines, oldest first. */
  daemonLines(): LogLine[] {
    return [...this.daemon];
  }

  /** A replica's lines, oldest first (empty for one that never logged). */
  linesOf(replica: string): LogLine[] {
    return [...(this.replicas.get(replica) ?? [])];
  }

  private replicaLines(id: string, line: LogLine): void {
    let ring = this.replicas.get(id);
    if (!ring) {
      if (this.replicas.size >= this.maxReplicas) this.replicas.delete(this.replicas.keys().next().value!);
      this.replicas.set(id, (ring = []));
    }
    push(ring, line, this.keep);
  }
}

function push(ring: LogLine[], line: LogLine, keep: number): void {
  ring.push(line);
  if (ring.length > keep) ring.splice(0, ring.length - keep);
}
