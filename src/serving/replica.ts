/**
 * Replica process entry: one model version in its own ORT session, fed by a dynamic batcher.
 * The router talks to it over IPC (advanced serialization, so image bytes stay bytes). Decoding
 * runs on sharp's libuv pool, concurrently with the batch that is running.
 */
import { KennelError, errorMessage } from '../core/errors.js';
import { tuneSharp } from '../training/index.js';
import { DynamicBatcher } from './batcher.js';
import { Classifier, type Prediction } from './classifier.js';
import type { FromReplica, ReplicaConfig, ToReplica } from './protocol.js';

const send = (m: FromReplica): void => {
  if (process.connected) process.send!(m);
};

async function main(): Promise<void> {
  if (!process.send) throw new Error('a replica is started by the Kennel daemon, with an IPC channel');
  // without the router there is nobody to answer: exit rather than linger as an orphan
  process.on('disconnect', () => process.exit(0));
  const config = JSON.parse(process.argv[2] ?? '') as ReplicaConfig;
  tuneSharp();
  const clf = await Classifier.load(config.onnxPath, config.card, { device: config.device, threads: config.threads });
  const imageSize = 3 * config.card.preprocess.size ** 2;
  const classes = config.card.labels.length;
  checkReadiness(await clf.run(new Float32Array(imageSize), 1), classes);

  const batchInput = new Float32Array(config.batching.maxBatch * imageSize);
  const batcher = new DynamicBatcher<{ input: Float32Array; topK: number }, Prediction[]>(config.batching, async (items) => {
    items.forEach((it, i) => batchInput.set(it.input, i * imageSize));
    const started = performance.now();
    const probs = await clf.run(batchInput, items.length);
    send({ type: 'batch', size: items.length, ms: performance.now() - started });
    return items.map((it, i) => clf.topK(probs, i, it.topK));
  });

  let stopping = false;
  process.on('message', (m: ToReplica) => {
    if (m.type === 'infer') {
      if (stopping) {
        send({ type: 'failed', id: m.id, status: 503, code: 'replica_stopping', message: 'This replica is shutting down.' });
        return;
      }
      const image = Buffer.from(m.image.buffer, m.image.byteOffset, m.image.byteLength);
      batcher
        .submit(async () => {
          const input = new Float32Array(imageSize);
          await clf.preprocess(image, input, 0);
          return { input, topK: m.topK };
        })
        .then(
          (predictions) => send({ type: 'result', id: m.id, predictions }),
          (e: unknown) => {
            if (e instanceof KennelError) send({ type: 'failed', id: m.id, status: e.status, code: e.code, message: e.message, hint: e.hint });
            else {
              process.stderr.write(`request ${m.requestId}: ${errorMessage(e)}\n`);
              send({ type: 'failed', id: m.id, status: 500, code: 'inference_failed', message: 'The model failed on this request.' });
            }
          },
        );
    } else if (m.type === 'ping') {
      send({ type: 'pong', id: m.id });
    } else if (m.type === 'stop') {
      stopping = true;
      void batcher.idle().then(async () => {
        await clf.close();
        process.exit(0);
      });
    }
  });
  send({ type: 'ready', model: config.model, threads: config.threads });
}

/** The readiness check: the model must load and turn an image into a probability row. */
function checkReadiness(probs: Float32Array, classes: number): void {
  let sum = 0;
  for (const p of probs) sum += p;
  if (probs.length !== classes || !Number.isFinite(sum) || Math.abs(sum - 1) > 1e-2) {
    throw new Error(`readiness check failed: the model returned ${probs.length} scores summing to ${sum} for ${classes} labels`);
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`replica failed to start: ${errorMessage(e)}\n`);
  const message: FromReplica = { type: 'fatal', message: errorMessage(e).split('\n')[0]! };
  if (process.connected) process.send!(message, () => process.exit(1));
  else process.exit(1);
});
