import { useApi } from '../api';
import { ago } from '../format';
import { Card, Empty, Facts, Loaded, Page, Stat } from '../ui';

interface Overview {
  daemon: { pid?: number; host?: string; port?: number; adminPort?: number; startedAt?: string; home?: string };
  /** the data plane's URL as this host reaches it */
  dataPlane: string;
  datasets: number;
  models: number;
  endpoints: { total: number; inService: number };
  functions: number;
  jobs: { total: number; running: number; failed: number };
  findings: { high: number; medium: number; low: number };
}

export function Overview() {
  const state = useApi<Overview>('/api/overview');
  return (
    <Page title="Overview" subtitle="Everything in this Kennel workspace, from photos to a secured prediction API.">
      <Loaded state={state}>
        {(o) => (
          <>
            <div class="stats">
              <Stat label="datasets" value={o.datasets} to="/datasets" />
              <Stat label={`jobs (${o.jobs.running} running${o.jobs.failed ? `, ${o.jobs.failed} failed` : ''})`} value={o.jobs.total} to="/jobs" tone={o.jobs.failed ? 'warn' : undefined} />
              <Stat label="models" value={o.models} to="/models" />
              <Stat label={`endpoints (${o.endpoints.inService} in service)`} value={o.endpoints.total} to="/endpoints" />
              <Stat label="functions" value={o.functions} to="/functions" />
              <Stat label={`security findings (${o.findings.high} high)`} value={o.findings.high + o.findings.medium + o.findings.low} to="/security/findings" tone={o.findings.high ? 'bad' : o.findings.medium ? 'warn' : 'ok'} />
            </div>
            {o.datasets === 0 && (
              <Card title="Get started">
                <Empty title="This workspace is empty.">
                  <p>Import photos, register a backbone and train, from the folder that holds this workspace:</p>
                  <pre>
                    <code>
                      {`kennel data import ../shared/data/breeds-mini --name breeds
kennel backbones add ../shared/models/mobilenetv2-12-int8.onnx --name mobilenetv2-12-int8
kennel train --dataset breeds --backbone mobilenetv2-12-int8`}
                    </code>
                  </pre>
                  <p>Training can also be started from the Jobs page once a dataset and a backbone exist.</p>
                </Empty>
              </Card>
            )}
            <Card title="Daemon">
              <Facts
                items={[
                  ['Workspace', <code>{o.daemon.home}</code>],
                  ['Data plane', <code>{o.dataPlane}</code>],
                  ['Admin API and console', <code>{location.origin}</code>],
                  ['Admin API description', <a href="/v1/openapi.json">OpenAPI document (/v1/openapi.json)</a>],
                  ['Process', `pid ${o.daemon.pid}, started ${ago(o.daemon.startedAt)}`],
                ]}
              />
            </Card>
          </>
        )}
      </Loaded>
    </Page>
  );
}
