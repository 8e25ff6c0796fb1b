import type { ComponentChildren, JSX } from 'preact';
import { useEffect, useId, useMemo, useRef, useState } from 'preact/hooks';
import type { ApiError } from './api';

export function Page(props: { title: string; subtitle?: ComponentChildren; actions?: ComponentChildren; children: ComponentChildren }) {
  useEffect(() => {
    document.title = `${props.title} · Kennel`;
  }, [props.title]);
  return (
    <section class="page" aria-labelledby="page-title">
      <header class="page-head">
        <div>
          <h1 id="page-title" tabIndex={-1}>
            {props.title}
          </h1>
          {props.subtitle && <p class="subtitle">{props.subtitle}</p>}
        </div>
        {props.actions && <div class="actions">{props.actions}</div>}
      </header>
      {props.children}
    </section>
  );
}

export function Card(props: { title?: ComponentChildren; actions?: ComponentChildren; children: ComponentChildren; class?: string; id?: string }) {
  return (
    <section class={`card ${props.class ?? ''}`} id={props.id}>
      {(props.title || props.actions) && (
        <header class="card-head">
          {props.title && <h2>{props.title}</h2>}
          {props.actions && <div class="actions">{props.actions}</div>}
        </header>
      )}
      {props.children}
    </section>
  );
}

/** What an empty list means, and how to fill it. */
export function Empty(props: { title: string; children?: ComponentChildren }) {
  return (
    <div class="empty" role="status">
      <p class="empty-title">{props.title}</p>
      {props.children && <div class="empty-body">{props.children}</div>}
    </div>
  );
}

export function ErrorBox(props: { error: ApiError | Error; retry?: () => void }) {
  const hint = (props.error as ApiError).hint;
  return (
    <div class="error" role="alert">
      <p>
        <strong>{props.error.message}</strong>
      </p>
      {hint && <p class="hint">{hint}</p>}
      {props.retry && (
        <button type="button" onClick={props.retry}>
          Retry
        </button>
      )}
    </div>
  );
}

export function Loading(props: { label?: string }) {
  return (
    <p class="loading" role="status" aria-live="polite">
      <span class="spinner" aria-hidden="true" /> {props.label ?? 'Loading…'}
    </p>
  );
}

/** Loading, error or content of one request. */
export function Loaded<T>(props: { state: { data?: T; error?: ApiError; reload?: () => void }; children: (data: T) => ComponentChildren }) {
  const { data, error, reload } = props.state;
  if (error && data === undefined) return <ErrorBox error={error} retry={reload} />;
  if (data === undefined) return <Loading />;
  return (
    <>
      {error && <ErrorBox error={error} retry={reload} />}
      {props.children(data)}
    </>
  );
}

export type Tone = 'ok' | 'warn' | 'bad' | 'info' | 'muted';

export function Badge(props: { tone?: Tone; children: ComponentChildren; title?: string }) {
  return (
    <span class={`badge ${props.tone ?? 'muted'}`} title={props.title}>
      {props.children}
    </span>
  );
}

const STATUS_TONES: Record<string, Tone> = {
  running: 'info',
  queued: 'muted',
  completed: 'ok',
  failed: 'bad',
  cancelled: 'warn',
  stopped: 'warn',
  in_service: 'ok',
  starting: 'info',
  updating: 'info',
  scaled_to_zero: 'muted',
  ready: 'ok',
  draining: 'warn',
  active: 'ok',
  revoked: 'bad',
  expired: 'warn',
  high: 'bad',
  medium: 'warn',
  low: 'info',
};

export function Status(props: { value: string }) {
  return <Badge tone={STATUS_TONES[props.value] ?? 'muted'}>{props.value.replace(/_/g, ' ')}</Badge>;
}

export function Link(props: { to: string; children: ComponentChildren; class?: string }) {
  return (
    <a href={`#${props.to}`} class={props.class}>
      {props.children}
    </a>
  );
}

export interface Column<T> {
  key: string;
  label: string;
  render: (row: T) => ComponentChildren;
  /** the value sorted on; columns without one are not sortable */
  sort?: (row: T) => number | string | null | undefined;
  numeric?: boolean;
}

/** A table whose sortable columns sort on a click (or Enter/Space) on their header. */
export function Table<T>(props: { columns: Column<T>[]; rows: T[]; rowKey: (row: T) => string; caption: string; initialSort?: { key: string; dir: 'asc' | 'desc' }; empty?: ComponentChildren }) {
  const [sort, setSort] = useState(props.initialSort);
  const rows = useMemo(() => {
    const col = props.columns.find((c) => c.key === sort?.key);
    if (!col?.sort || !sort) return props.rows;
    const value = col.sort;
    const dir = sort.dir === 'asc' ? 1 : -1;
    return [...props.rows].sort((a, b) => {
      const x = value(a);
      const y = value(b);
      if (x === y) return 0;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : 1) * dir;
    });
  }, [props.rows, props.columns, sort]);
  if (props.rows.length === 0 && props.empty) return <>{props.empty}</>;
  return (
    <div class="table-wrap">
      <table>
        <caption class="sr-only">{props.caption}</caption>
        <thead>
          <tr>
            {props.columns.map((c) => {
              const active = sort?.key === c.key;
              const ariaSort = active ? (sort!.dir === 'asc' ? 'ascending' : 'descending') : c.sort ? 'none' : undefined;
              return (
                <th scope="col" key={c.key} aria-sort={ariaSort} class={c.numeric ? 'num' : undefined}>
                  {c.sort ? (
                    <button type="button" class="sort" onClick={() => setSort({ key: c.key, dir: active && sort!.dir === 'asc' ? 'desc' : 'asc' })}>
                      {c.label}
                      <span aria-hidden="true">{active ? (sort!.dir === 'asc' ? ' ▲' : ' ▼') : ' ↕'}</span>
                    </button>
                  ) : (
                    c.label
                  )}
                </th>
              );
            })}
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={props.rowKey(r)}>
              {props.columns.map((c) => (
                <td key={c.key} class={c.numeric ? 'num' : undefined}>
                  {c.render(r)}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** A modal dialog (the native <dialog>: focus stays inside, Escape closes it). */
export function Dialog(props: { open: boolean; title: string; onClose: () => void; children: ComponentChildren; footer?: ComponentChildren }) {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (props.open && !d.open) d.showModal();
    if (!props.open && d.open) d.close();
  }, [props.open]);
  return (
    <dialog ref={ref} aria-labelledby={titleId} onClose={props.onClose} onCancel={props.onClose}>
      <h2 id={titleId}>{props.title}</h2>
      <div class="dialog-body">{props.children}</div>
      {props.footer && <div class="dialog-foot">{props.footer}</div>}
    </dialog>
  );
}

/** A button that asks before doing something that matters, and shows what went wrong. */
export function ConfirmButton(props: {
  label: ComponentChildren;
  title: string;
  confirmLabel: string;
  danger?: boolean;
  disabled?: boolean;
  children: ComponentChildren;
  onConfirm: () => Promise<unknown>;
  class?: string;
}) {
  const [open, setOpen] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | undefined>();
  const confirm = async () => {
    setBusy(true);
    setError(undefined);
    try {
      await props.onConfirm();
      setOpen(false);
    } catch (e) {
      setError(e as ApiError);
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <button type="button" class={`${props.danger ? 'danger' : ''} ${props.class ?? ''}`} disabled={props.disabled} onClick={() => setOpen(true)}>
        {props.label}
      </button>
      <Dialog
        open={open}
        title={props.title}
        onClose={() => setOpen(false)}
        footer={
          <>
            <button type="button" onClick={() => setOpen(false)}>
              Cancel
            </button>
            <button type="button" class={props.danger ? 'danger' : 'primary'} disabled={busy} onClick={() => void confirm()}>
              {busy ? 'Working…' : props.confirmLabel}
            </button>
          </>
        }
      >
        {props.children}
        {error && <ErrorBox error={error} />}
      </Dialog>
    </>
  );
}

export function Field(props: { label: string; hint?: string; children: ComponentChildren; wide?: boolean }) {
  return (
    <label class={`field ${props.wide ? 'wide' : ''}`}>
      <span class="label">{props.label}</span>
      {props.children}
      {props.hint && <span class="hint">{props.hint}</span>}
    </label>
  );
}

/** A drop-down over `options`: plain values, or [value, label] pairs. */
export function Select(props: { name?: string; value: string; options: Array<string | [value: string, label: string]>; onChange: (value: string) => void }) {
  return (
    <select name={props.name} value={props.value} onChange={(e) => props.onChange(e.currentTarget.value)}>
      {props.options.map((o) => {
        const [value, label] = typeof o === 'string' ? [o, o] : o;
        return (
          <option key={value} value={value}>
            {label}
          </option>
        );
      })}
    </select>
  );
}

/** A form that submits through `onSubmit`, disabling itself while working and showing the error. */
export function Form(props: { onSubmit: () => Promise<unknown>; submitLabel: string; children: ComponentChildren; class?: string; busyLabel?: string }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | undefined>();
  const submit = async (e: JSX.TargetedEvent<HTMLFormElement>) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await props.onSubmit();
    } catch (err) {
      setError(err as ApiError);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class={`form ${props.class ?? ''}`} onSubmit={(e) => void submit(e)} aria-busy={busy}>
      <div class="fields">{props.children}</div>
      {error && <ErrorBox error={error} />}
      <div class="form-foot">
        <button type="submit" class="primary" disabled={busy}>
          {busy ? (props.busyLabel ?? 'Working…') : props.submitLabel}
        </button>
      </div>
    </form>
  );
}

export function Progress(props: { label: string; done: number; total: number; detail?: string }) {
  const pct = props.total > 0 ? Math.min(100, (100 * props.done) / props.total) : 0;
  return (
    <div class="progress">
      <div class="progress-label">
        <span>{props.label}</span>
        <span>
          {props.done}/{props.total}
          {props.detail ? ` · ${props.detail}` : ''}
        </span>
      </div>
      <progress max={props.total || 1} value={props.done} aria-label={`${props.label}: ${Math.round(pct)}%`} />
    </div>
  );
}

export function Tabs(props: { tabs: Array<{ id: string; label: string }>; current: string; base: string }) {
  return (
    <nav class="tabs" aria-label="Sections">
      {props.tabs.map((t) => (
        <a key={t.id} href={`#${props.base}/${t.id}`} aria-current={props.current === t.id ? 'page' : undefined}>
          {t.label}
        </a>
      ))}
    </nav>
  );
}

/** Copies text to the clipboard, saying so. */
export function CopyButton(props: { text: string; label?: string }) {
  const [done, setDone] = useState(false);
  return (
    <button
      type="button"
      class="small"
      onClick={() => {
        void navigator.clipboard?.writeText(props.text).then(() => {
          setDone(true);
          setTimeout(() => setDone(false), 1500);
        });
      }}
    >
      {done ? 'Copied' : (props.label ?? 'Copy')}
    </button>
  );
}

export function Stat(props: { label: string; value: ComponentChildren; to?: string; tone?: Tone }) {
  const body = (
    <>
      <span class="stat-value">{props.value}</span>
      <span class="stat-label">{props.label}</span>
    </>
  );
  return props.to ? (
    <a class={`stat ${props.tone ?? ''}`} href={`#${props.to}`}>
      {body}
    </a>
  ) : (
    <div class={`stat ${props.tone ?? ''}`}>{body}</div>
  );
}

/** Key facts as a definition list. */
export function Facts(props: { items: Array<[string, ComponentChildren]> }) {
  return (
    <dl class="facts">
      {props.items.map(([k, v]) => (
        <div key={k}>
          <dt>{k}</dt>
          <dd>{v ?? '—'}</dd>
        </div>
      ))}
    </dl>
  );
}

/** Kennel's paw mark (inline SVG: no emoji font needed). */
export function Logo(props: { class?: string }) {
  return (
    <svg class={props.class ?? 'logo'} viewBox="0 0 32 32" aria-hidden="true" focusable="false">
      <g fill="currentColor">
        <ellipse cx="16" cy="21.5" rx="7" ry="6" />
        <ellipse cx="7" cy="13" rx="3" ry="3.8" />
        <ellipse cx="12.5" cy="7.5" rx="3" ry="3.8" />
        <ellipse cx="19.5" cy="7.5" rx="3" ry="3.8" />
        <ellipse cx="25" cy="13" rx="3" ry="3.8" />
      </g>
    </svg>
  );
}
