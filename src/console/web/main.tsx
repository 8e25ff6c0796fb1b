import { render, type ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, onSessionLost, setCsrf } from './api';
import { ComparePage } from './pages/compare';
import { DatasetPage, DatasetsPage } from './pages/datasets';
import { EndpointPage, EndpointsPage } from './pages/endpoints';
import { FunctionPage, FunctionsPage } from './pages/functions';
import { JobPage, JobsPage } from './pages/jobs';
import { Login } from './pages/login';
import { ModelPage, ModelsPage } from './pages/models';
import { Overview } from './pages/overview';
import { SecurityPage } from './pages/security';
import { TryIt } from './pages/tryit';
import { ErrorBox, Loading, Logo } from './ui';

export interface Session {
  principal: string;
  keyId?: string;
  owner: boolean;
  csrf?: string;
}

const NAV: Array<{ to: string; label: string }> = [
  { to: '/', label: 'Overview' },
  { to: '/datasets', label: 'Datasets' },
  { to: '/jobs', label: 'Jobs' },
  { to: '/models', label: 'Models' },
  { to: '/endpoints', label: 'Endpoints' },
  { to: '/functions', label: 'Functions' },
  { to: '/security', label: 'Security' },
  { to: '/try', label: 'Try it' },
];

function currentPath(): string {
  return decodeURI(location.hash.replace(/^#/, '')) || '/';
}

function useHashPath(): string {
  const [path, setPath] = useState(currentPath);
  useEffect(() => {
    const on = () => setPath(currentPath());
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return path;
}

/** The page for a path (#/models/dogs/2 and so on). */
function route(path: string): ComponentChildren {
  const [, section, a, b] = path.split('/').map((p) => decodeURIComponent(p));
  switch (section) {
    case '':
      return <Overview />;
    case 'datasets':
      return a ? <DatasetPage name={a} version={b ? Number(b) : undefined} /> : <DatasetsPage />;
    case 'jobs':
      return a ? <JobPage id={a} /> : <JobsPage />;
    case 'compare':
      return <ComparePage refs={(a ?? '').split(',').filter(Boolean)} />;
    case 'models':
      return a ? <ModelPage name={a} version={b ? Number(b) : undefined} /> : <ModelsPage />;
    case 'endpoints':
      return a ? <EndpointPage name={a} /> : <EndpointsPage />;
    case 'functions':
      return a ? <FunctionPage name={a} /> : <FunctionsPage />;
    case 'security':
      return <SecurityPage tab={a ?? 'keys'} />;
    case 'try':
      return <TryIt endpoint={a} />;
    default:
      return <ErrorBox error={new Error(`There is no page ${path}.`)} />;
  }
}

function Shell(props: { session: Session; onSignOut: () => void }) {
  const path = useHashPath();
  const section = `/${path.split('/')[1] ?? ''}`;
  const [menu, setMenu] = useState(false);
  useEffect(() => {
    setMenu(false);
    // move focus to the new page's heading, so keyboard and screen-reader users land on it
    requestAnimationFrame(() => document.getElementById('page-title')?.focus({ preventScroll: true }));
  }, [path]);
  return (
    <div class="shell">
      <a class="skip" href="#main" onClick={(e) => (e.preventDefault(), document.getElementById('main')?.focus())}>
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href="#/">
          <Logo /> Kennel
        </a>
        <button type="button" class="menu-toggle" aria-expanded={menu} aria-controls="nav" onClick={() => setMenu(!menu)}>
          Menu
        </button>
        <div class="who">
          <span title={props.session.keyId ? `key ${props.session.keyId}` : 'admin token'}>{props.session.principal}</span>
          <button type="button" class="small" onClick={props.onSignOut}>
            Sign out
          </button>
        </div>
      </header>
      <nav id="nav" class={menu ? 'open' : undefined} aria-label="Console">
        <ul>
          {NAV.map((n) => (
            <li key={n.to}>
              <a href={`#${n.to}`} aria-current={section === n.to ? 'page' : undefined}>
                {n.label}
              </a>
            </li>
          ))}
        </ul>
      </nav>
      <main id="main" tabIndex={-1}>
        {route(path)}
      </main>
    </div>
  );
}

function App() {
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const [error, setError] = useState<ApiError | undefined>();
  const load = () => {
    setError(undefined);
    api<Session>('GET', '/api/session').then(
      (s) => {
        setCsrf(s.csrf);
        setSession(s);
      },
      (e: ApiError) => (e.status === 401 ? setSession(null) : setError(e)),
    );
  };
  useEffect(() => {
    load();
    return onSessionLost(() => {
      setCsrf(undefined);
      setSession(null);
    });
  }, []);
  if (error) return <ErrorBox error={error} retry={load} />;
  if (session === undefined) return <Loading label="Connecting to the Kennel daemon…" />;
  if (session === null)
    return (
      <Login
        onSignedIn={(s) => {
          setCsrf(s.csrf);
          setSession(s);
        }}
      />
    );
  return (
    <Shell
      session={session}
      onSignOut={() => {
        void api('POST', '/api/logout').finally(() => {
          setCsrf(undefined);
          setSession(null);
        });
      }}
    />
  );
}

render(<App />, document.getElementById('app')!);
