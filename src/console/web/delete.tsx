import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { ApiError, api } from './api';
import { Dialog, ErrorBox } from './ui';

/**
 * Delete with a confirmation dialog. The first try is the plain delete; a guard's refusal (409)
 * is shown with its message and hint, and where the CLI allows --force (`forceable`) the dialog
 * then offers "Delete anyway" (the same call with ?force=1).
 */
export function DeleteButton(props: { what: string; path: string; forceable?: boolean; onDeleted: () => void; children?: ComponentChildren }) {
  const [open, setOpen] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | undefined>();
  const run = async (force: boolean) => {
    setBusy(true);
    setError(undefined);
    try {
      await api('DELETE', `${props.path}${force ? '?force=1' : ''}`);
      setOpen(false);
      props.onDeleted();
    } catch (e) {
      setError(e as ApiError);
    } finally {
      setBusy(false);
    }
  };
  const refused = error?.status === 409;
  return (
    <>
      <button type="button" class="danger" onClick={() => (setError(undefined), setOpen(true))}>
        Delete
      </button>
      <Dialog
        open={open}
        title={`Delete ${props.what}?`}
        onClose={() => setOpen(false)}
        footer={
          <>
            <button type="button" onClick={() => setOpen(false)}>
              Cancel
            </button>
            {refused && props.forceable ? (
              <button type="button" class="danger" disabled={busy} onClick={() => void run(true)}>
                {busy ? 'Working…' : 'Delete anyway'}
              </button>
            ) : (
              <button type="button" class="danger" disabled={busy || refused} onClick={() => void run(false)}>
                {busy ? 'Working…' : 'Delete'}
              </button>
            )}
          </>
        }
      >
        {props.children}
        <p class="hint">Files only it used are freed at once (as kennel gc would). This cannot be undone.</p>
        {error && <ErrorBox error={error} />}
      </Dialog>
    </>
  );
}
