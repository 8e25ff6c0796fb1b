/** Formatting shared by the pages. */

export const pct = (x: number | null | undefined, digits = 1): string => (x === null || x === undefined ? '—' : `${(x * 100).toFixed(digits)}%`);

export function num(x: number | null | undefined, digits = 2): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '—';
  if (Math.abs(x) >= 1000) return Math.round(x).toLocaleString('en');
  return Number(x.toFixed(digits)).toString();
}

/** Three significant digits, for hyperparameters that span decades (a learning rate of 0.0001 stays 0.0001). */
export const sig = (x: number | null | undefined): string => (x === null || x === undefined || !Number.isFinite(x) ? '—' : String(Number(x.toPrecision(3))));

export const ms = (x: number | null | undefined): string => (x === null || x === undefined ? '—' : x < 10 ? `${x.toFixed(1)} ms` : `${Math.round(x)} ms`);

export function seconds(x: number | null | undefined): string {
  if (x === null || x === undefined) return '—';
  if (x < 1) return `${Math.round(x * 1000)} ms`;
  if (x < 60) return `${x.toFixed(1)} s`;
  const m = Math.floor(x / 60);
  return `${m} min ${Math.round(x - m * 60)} s`;
}

export function ago(iso: string | undefined, now = Date.now()): string {
  if (!iso) return '—';
  const s = Math.round((now - Date.parse(iso)) / 1000);
  if (s < 5) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

export const when = (iso: string | undefined): string => (iso ? new Date(iso).toLocaleString('en-GB', { dateStyle: 'medium', timeStyle: 'short' }) : '—');

export const plural = (n: number, word: string, many = `${word}s`): string => `${n.toLocaleString('en')} ${n === 1 ? word : many}`;
