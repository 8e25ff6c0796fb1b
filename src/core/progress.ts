/**
 * Services report long work through a ProgressSink; the CLI renders it as bars on a TTY, and
 * `--json` runs keep stdout clean. Services never print.
 */
export interface ProgressEvent {
  /** short name of the phase, e.g. "decode", "extract features", "train head" */
  phase: string;
  done: number;
  total: number;
  /** optional extra text such as "loss 0.42" */
  detail?: string;
}

export type ProgressSink = (e: ProgressEvent) => void;

export const silent: ProgressSink = () => {};

