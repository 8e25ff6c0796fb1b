import { useState } from 'preact/hooks';
import { api, useApi } from '../api';
import { ago, ms, when } from '../format';
import { Badge, Card, ConfirmButton, CopyButton, Dialog, Empty, Field, Form, Loaded, Page, Status, Table, Tabs } from '../ui';

interface Statement {
  effect: string;
  actions: string[];
  resources: string[];
}

interface Policy {
  id: string;
  principal: string;
  document: { statements: Statement[] };
  managedBy?: string;
  createdAt: string;
}

interface Key {
  keyId: string;
  principal: string;
  state: string;
  createdAt: string;
  expiresAt?: string;
  revokedAt?: string;
  lastUsedAt?: string;
}

interface Principal {
  name: string;
  kind: string;
  createdAt: string;
  keys: Key[];
  policies: Policy[];
}

interface Finding {
  severity: string;
  rule: string;
  resource: string;
  message: string;
  fix: string;
}

interface AuditEntry {
  id: number;
  ts: string;
  plane: string;
  principal?: string;
  keyId?: string;
  action: string;
  resource: string;
  status: number;
  latencyMs?: number;
}

const TABS = [
  { id: 'keys', label: 'Principals and keys' },
  { id: 'policies', label: 'Policies' },
  { id: 'findings', label: 'Audit findings' },
  { id: 'log', label: 'Audit log' },
];

const grantsOf = (text: string) =>
  text
    .split(/[\n,]/)
    .map((s) => s.trim())
    .filter(Boolean);

const statementText = (s: Statement) => `${s.effect} ${s.actions.join(', ')} on ${s.resources.join(', ')}`;

export function SecurityPage(props: { tab: string }) {
  const tab = TABS.some((t) => t.id === props.tab) ? props.tab : 'keys';
  return (
    <Page title="Security" subtitle="Who may do what: principals, API keys, policies, the security audit and the audit log.">
      <Tabs tabs={TABS} current={tab} base="/security" />
      {tab === 'keys' && <Keys />}
      {tab === 'policies' && <Policies />}
      {tab === 'findings' && <Findings />}
      {tab === 'log' && <AuditLog />}
    </Page>
  );
}

function Keys() {
  const state = useApi<{ principals: Principal[] }>('/api/security/principals');
  const [created, setCreated] = useState<{ key: string; keyId: string; principal: string; expiresAt?: string } | undefined>();
  const [form, setForm] = useState({ principal: '', kind: 'user', allow: '', expires: '90d' });
  return (
    <>
      <Card title="Create an API key">
        <Form
          submitLabel="Create key"
          onSubmit={async () => {
            const r = await api<{ key: string; keyId: string; principal: string; expiresAt?: string }>('POST', '/api/security/keys', {
              principal: form.principal.trim(),
              kind: form.kind,
              allow: grantsOf(form.allow),
              ...(form.expires.trim() ? { expires: form.expires.trim() } : {}),
            });
            setCreated(r);
            state.reload();
          }}
        >
          <Field label="Principal" hint="A new name creates the user or service">
            <input name="key-principal" required pattern="[a-z0-9][a-z0-9._\-]{0,63}" value={form.principal} onInput={(e) => setForm({ ...form, principal: e.currentTarget.value })} />
          </Field>
          <Field label="Kind">
            <select value={form.kind} onChange={(e) => setForm({ ...form, kind: e.currentTarget.value })}>
              <option value="user">user</option>
              <option value="service">service</option>
            </select>
          </Field>
          <Field label="Allow (one grant per line)" hint="ACTION:RESOURCE, e.g. endpoint:Invoke:endpoint/dogs, or console:*:* to sign in here" wide>
            <textarea name="key-allow" rows={3} value={form.allow} onInput={(e) => setForm({ ...form, allow: e.currentTarget.value })} />
          </Field>
          <Field label="Expires after" hint="e.g. 30d, 24h; empty: never (the audit flags it)">
            <input value={form.expires} onInput={(e) => setForm({ ...form, expires: e.currentTarget.value })} />
          </Field>
        </Form>
      </Card>
      <Dialog
        open={created !== undefined}
        title="Your new API key"
        onClose={() => setCreated(undefined)}
        footer={
          <button type="button" class="primary" onClick={() => setCreated(undefined)}>
            I have saved it
          </button>
        }
      >
        {created && (
          <>
            <p>
              This is the only time the key of <strong>{created.principal}</strong> is shown: Kennel keeps only its hash. Copy it now.
            </p>
            <p class="secret">
              <code id="new-key">{created.key}</code> <CopyButton text={created.key} />
            </p>
            <p class="hint">
              Key id {created.keyId}
              {created.expiresAt ? `, expires ${when(created.expiresAt)}` : ', never expires'}. Callers send it as <code>Authorization: Bearer KEY</code>.
            </p>
          </>
        )}
      </Dialog>
      <Loaded state={state}>
        {({ principals }) => (
          <Card title="Principals">
            {principals.length === 0 ? (
              <Empty title="No principals yet: create a key above." />
            ) : (
              principals.map((p) => (
                <section key={p.name} class="principal" aria-label={`Principal ${p.name}`}>
                  <h3>
                    {p.name} <Badge>{p.kind}</Badge>
                  </h3>
                  {p.policies.length > 0 && (
                    <ul class="statements">
                      {p.policies.flatMap((pol) => pol.document.statements.map((s, i) => <li key={`${pol.id}-${i}`}>{statementText(s)}</li>))}
                    </ul>
                  )}
                  {p.keys.length > 0 ? (
                    <Table
                      caption={`Keys of ${p.name}`}
                      rowKey={(k) => k.keyId}
                      rows={p.keys}
                      columns={[
                        { key: 'id', label: 'Key id', render: (k) => <code>{k.keyId}</code> },
                        { key: 'state', label: 'State', render: (k) => <Status value={k.state} /> },
                        { key: 'created', label: 'Created', render: (k) => when(k.createdAt) },
                        { key: 'expires', label: 'Expires', render: (k) => (k.expiresAt ? when(k.expiresAt) : <Badge tone="warn">never</Badge>) },
                        { key: 'used', label: 'Last used', render: (k) => (k.lastUsedAt ? ago(k.lastUsedAt) : 'never') },
                        {
                          key: 'revoke',
                          label: '',
                          render: (k) =>
                            k.state === 'active' && (
                              <ConfirmButton
                                label="Revoke"
                                class="small"
                                danger
                                title={`Revoke key ${k.keyId}?`}
                                confirmLabel="Revoke key"
                                onConfirm={async () => {
                                  await api('POST', `/api/security/keys/${k.keyId}/revoke`);
                                  state.reload();
                                }}
                              >
                                <p>
                                  Every request with this key of <strong>{p.name}</strong> fails from now on, in the running daemon too. This cannot be undone.
                                </p>
                              </ConfirmButton>
                            ),
                        },
                      ]}
                    />
                  ) : (
                    <p class="muted">{p.kind === 'role' ? 'An execution role: its function acts as it; it has no keys.' : 'No keys.'}</p>
                  )}
                </section>
              ))
            )}
          </Card>
        )}
      </Loaded>
    </>
  );
}

function Policies() {
  const state = useApi<{ principals: Principal[] }>('/api/security/principals');
  const [form, setForm] = useState({ principal: '', allow: '', deny: '' });
  return (
    <>
      <Card title="Attach a policy">
        <Form
          submitLabel="Attach policy"
          onSubmit={async () => {
            await api('POST', '/api/security/policies', { principal: form.principal.trim(), allow: grantsOf(form.allow), deny: grantsOf(form.deny) });
            setForm({ principal: '', allow: '', deny: '' });
            state.reload();
          }}
        >
          <Field label="Principal">
            <input required value={form.principal} onInput={(e) => setForm({ ...form, principal: e.currentTarget.value })} />
          </Field>
          <Field label="Allow (one grant per line)" wide>
            <textarea rows={2} value={form.allow} onInput={(e) => setForm({ ...form, allow: e.currentTarget.value })} />
          </Field>
          <Field label="Deny (one grant per line)" hint="An explicit deny wins over any allow" wide>
            <textarea rows={2} value={form.deny} onInput={(e) => setForm({ ...form, deny: e.currentTarget.value })} />
          </Field>
        </Form>
      </Card>
      <Loaded state={state}>
        {({ principals }) => {
          const policies = principals.flatMap((p) => p.policies);
          return (
            <Card title="Policies">
              <Table
                caption="Policies"
                rowKey={(p) => p.id}
                rows={policies}
                initialSort={{ key: 'principal', dir: 'asc' }}
                empty={<Empty title="No policies: nothing is allowed to anyone (default deny)." />}
                columns={[
                  { key: 'principal', label: 'Principal', sort: (p) => p.principal, render: (p) => p.principal },
                  { key: 'id', label: 'Policy', render: (p) => <code>{p.id}</code> },
                  {
                    key: 'statements',
                    label: 'Statements',
                    render: (p) => (
                      <ul class="statements">
                        {p.document.statements.map((s, i) => (
                          <li key={i} class={s.effect}>
                            {statementText(s)}
                          </li>
                        ))}
                      </ul>
                    ),
                  },
                  { key: 'managed', label: 'Managed by', render: (p) => p.managedBy ?? '—' },
                  {
                    key: 'detach',
                    label: '',
                    render: (p) =>
                      !p.managedBy && (
                        <ConfirmButton
                          label="Detach"
                          class="small"
                          danger
                          title={`Detach ${p.id} from ${p.principal}?`}
                          confirmLabel="Detach policy"
                          onConfirm={async () => {
                            await api('DELETE', `/api/security/principals/${encodeURIComponent(p.principal)}/policies/${p.id}`);
                            state.reload();
                          }}
                        >
                          <p>{p.principal} loses what this policy allowed (or denied), at once.</p>
                        </ConfirmButton>
                      ),
                  },
                ]}
              />
            </Card>
          );
        }}
      </Loaded>
    </>
  );
}

function Findings() {
  const state = useApi<{ findings: Finding[] }>('/api/security/findings');
  return (
    <Loaded state={state}>
      {({ findings }) => (
        <Card title="Security audit" actions={<button type="button" onClick={state.reload}>Run again</button>}>
          {findings.length === 0 ? (
            <Empty title="No findings: no full-access or public grants, no keys without expiry, no broadened function roles." />
          ) : (
            <ul class="findings">
              {findings.map((f, i) => (
                <li key={i}>
                  <p>
                    <Status value={f.severity} /> <strong>{f.rule}</strong> on <code>{f.resource}</code>
                  </p>
                  <p>{f.message}</p>
                  <p class="fix">
                    <code>{f.fix}</code> <CopyButton text={f.fix} label="Copy fix" />
                  </p>
                </li>
              ))}
            </ul>
          )}
        </Card>
      )}
    </Loaded>
  );
}

function AuditLog() {
  const [filters, setFilters] = useState({ principal: '', plane: '', action: '', resource: '', failed: false, limit: '200' });
  const [applied, setApplied] = useState(filters);
  const query = new URLSearchParams(Object.entries(applied).filter(([, v]) => v !== '' && v !== false).map(([k, v]) => [k, String(v)])).toString();
  const state = useApi<{ entries: AuditEntry[] }>(`/api/security/log?${query}`);
  return (
    <>
      <Card title="Filters">
        <Form
          submitLabel="Apply filters"
          onSubmit={async () => {
            if (JSON.stringify(filters) === JSON.stringify(applied)) state.reload();
            else setApplied({ ...filters });
          }}
        >
          <Field label="Principal">
            <input value={filters.principal} onInput={(e) => setFilters({ ...filters, principal: e.currentTarget.value })} />
          </Field>
          <Field label="Plane">
            <select value={filters.plane} onChange={(e) => setFilters({ ...filters, plane: e.currentTarget.value })}>
              <option value="">any</option>
              <option value="cli">cli</option>
              <option value="admin">admin</option>
              <option value="data">data</option>
              <option value="function">function</option>
            </select>
          </Field>
          <Field label="Action" hint="e.g. admin:CreateKey">
            <input value={filters.action} onInput={(e) => setFilters({ ...filters, action: e.currentTarget.value })} />
          </Field>
          <Field label="Resource" hint="e.g. endpoint/dogs">
            <input value={filters.resource} onInput={(e) => setFilters({ ...filters, resource: e.currentTarget.value })} />
          </Field>
          <Field label="Entries">
            <input type="number" min={1} max={1000} value={filters.limit} onInput={(e) => setFilters({ ...filters, limit: e.currentTarget.value })} />
          </Field>
          <label class="check">
            <input type="checkbox" checked={filters.failed} onChange={(e) => setFilters({ ...filters, failed: e.currentTarget.checked })} /> Refused or failed only
          </label>
        </Form>
      </Card>
      <Loaded state={state}>
        {({ entries }) => (
          <Card title={`Audit log (${entries.length} newest entries)`}>
            <Table
              caption="Audit log"
              rowKey={(e) => String(e.id)}
              rows={entries}
              empty={<Empty title="No entries match these filters." />}
              columns={[
                { key: 'ts', label: 'Time', sort: (e) => e.ts, render: (e) => <span title={e.ts}>{when(e.ts)}</span> },
                { key: 'plane', label: 'Plane', sort: (e) => e.plane, render: (e) => e.plane },
                { key: 'principal', label: 'Principal', sort: (e) => e.principal, render: (e) => e.principal ?? <span class="muted">none</span> },
                { key: 'key', label: 'Key', render: (e) => (e.keyId ? <code>{e.keyId}</code> : '—') },
                { key: 'action', label: 'Action', sort: (e) => e.action, render: (e) => e.action },
                { key: 'resource', label: 'Resource', sort: (e) => e.resource, render: (e) => <code class="path">{e.resource}</code> },
                { key: 'status', label: 'Status', numeric: true, sort: (e) => e.status, render: (e) => <Badge tone={e.status < 400 ? 'ok' : e.status < 500 ? 'warn' : 'bad'}>{e.status}</Badge> },
                { key: 'latency', label: 'Latency', numeric: true, render: (e) => ms(e.latencyMs) },
              ]}
            />
          </Card>
        )}
      </Loaded>
    </>
  );
}
