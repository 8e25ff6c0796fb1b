import { pino } from 'pino';
import { createFunction } from '../../src/functions/index.ts';
import { createAwsKey, type Actor } from '../../src/security/index.ts';
import { startDaemon, type Daemon } from '../../src/server/index.ts';
import type { Workspace } from '../../src/store/index.ts';
import { tmpHome } from '../helpers/paths.ts';
import { workspaceWithModel } from '../serving/fixtures.ts';

export const by: Actor = { principal: 'local:test', plane: 'cli' };
/** ImageNet class of the shared beagle photo (the shared MobileNetV2 is an ImageNet classifier) */
export const BEAGLE = 162;

export interface AwsKennel {
  home: string;
  ws: Workspace;
  daemon: Daemon;
  /** the data plane, e.g. http://127.0.0.1:PORT: the `endpoint` / `endpoint_url` of AWS clients */
  url: string;
  /** an AWS key pair allowed to invoke endpoint dogs and every function */
  credentials: { accessKeyId: string; secretAccessKey: string };
  close(): Promise<void>;
}

/**
 * A daemon as the seeds' clients would meet it: endpoint "dogs" (the shared MobileNetV2 in two
 * variants, primary and canary) and the built-in "classify" function in front of it.
 */
export async function startAwsKennel(): Promise<AwsKennel> {
  const home = tmpHome();
  const ws = await workspaceWithModel(home, 'mnet', 'imagenet');
  const daemon = await startDaemon({ home, port: 0, adminPort: 0, log: pino({ level: 'silent' }) });
  await daemon.runtime.create({ name: 'dogs', variants: [{ name: 'primary', model: 'mnet' }, { name: 'canary', model: 'mnet' }], instances: 1 });
  await createFunction(ws, 'classify', { endpoint: 'dogs' }, by);
  const { accessKeyId, secretAccessKey } = createAwsKey(ws, 'seed-app', { allow: ['endpoint:Invoke:endpoint/dogs', 'function:Invoke:function/*'], ratePerSecond: 1000 }, by);
  return {
    home,
    ws,
    daemon,
    url: `http://127.0.0.1:${daemon.state.port}`,
    credentials: { accessKeyId, secretAccessKey },
    async close() {
      await daemon.close();
      ws.close();
    },
  };
}
