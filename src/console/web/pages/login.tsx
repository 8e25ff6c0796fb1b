import { useState } from 'preact/hooks';
import { ApiError, api } from '../api';
import type { Session } from '../main';
import { ErrorBox, Logo } from '../ui';

/** Sign-in with the daemon's admin token or an API key allowed console:Login. */
export function Login(props: { onSignedIn: (s: Session) => void }) {
  const [token, setToken] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | undefined>();
  return (
    <main class="login" id="main">
      <form
        class="card"
        onSubmit={(e) => {
          e.preventDefault();
          setBusy(true);
          setError(undefined);
          api<Session>('POST', '/api/login', { token: token.trim() }).then(
            (s) => props.onSignedIn(s),
            (err: ApiError) => {
              setError(err);
              setBusy(false);
            },
          );
        }}
      >
        <h1>
          <Logo /> Kennel console
        </h1>
        <p>Sign in with the daemon's admin token, or with an API key whose policies allow <code>console:Login</code>.</p>
        <label class="field wide">
          <span class="label">Admin token or API key</span>
          <input type="password" name="token" autoComplete="current-password" required autoFocus value={token} onInput={(e) => setToken(e.currentTarget.value)} />
          <span class="hint">
            The admin token is in <code>$KENNEL_HOME/daemon/admin-token</code> (e.g. <code>cat .kennel/daemon/admin-token</code>).
          </span>
        </label>
        {error && <ErrorBox error={error} />}
        <button type="submit" class="primary" disabled={busy || token.trim() === ''}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
