/**
 * Replica process entry: one model version in its own ORT session, fed by a dynamic batcher.
 * Requests arrive framed on a stream (fd 4, image bytes as they are); answers and control
 * messages go over IPC. Decoding runs on sharp's libuv pool, concurrently with the running batch.
 */
import { KennelError, errorMessage } from '../core/errors.js';
// extract.js directly (as classifier.ts does), not the training index: a replica starts on
// every scale-out, and the index pulls in all of training (about 0.7 s more to import)
import { tuneSharp } from '../training/extract.js';
import { DynamicBatcher } from './batcher.js';
import { Classifier, type Prediction } from './classifier.js';
import { Socket } from 'node:net';
import { REQUEST_FD, RequestReader, type FromReplica, type InferRequest, type ReplicaConfig, type ToReplica } from './protocol.js';

// answers leave in one IPC message per event-loop turn: a batch of 16 is one write, not 16
let outbox: FromReplica[] = [];
const send = (m: FromReplica): void => {
  if (outbox.push(m) === 1) setImmediate(flush);
};
function flush(): void {
  const messages = outbox;
  outbox = [];
  if (process.connected) process.send!(messages);
}

async function main(): Promise<void> {
  if (!process.send) throw new Error('a replica is started by the Kennel daemon, with an IPC channel');
  // without the router there is nobody to answer: exit rather than linger as an orphan
  process.on('disconnect', () => process.exit(0));
  const config = JSON.parse(process.argv[2] ?? '') as ReplicaConfig;
  tuneSharp();
  const clf = await Classifier.load(config.onnxPath, config.card, { device: config.device, threads: config.threads, spinning: false });
  const imageSize = 3 * config.card.preprocess.size ** 2;
  const classes = config.card.labels.length;
  checkReadiness(await clf.run(new Float32Array(imageSize), 1), classes);

  const batchInput = new Float32Array(config.batching.maxBatch * imageSize);
  // per-request input buffers are reused (600 KB each at 224x224): less garbage, fewer GC pauses
  const spare: Float32Array[] = [];
  const batcher = new DynamicBatcher<{ input: Float32Array; topK: number }, Prediction[]>(config.batching, async (items) => {
    items.forEach((it, i) => {
      batchInput.set(it.input, i * imageSize);
      spare.push(it.input);
    });
    const started = performance.now();
    const probs = await clf.run(batchInput, items.length);
    send({ type: 'batch', size: items.length, ms: performance.now() - started });
    return items.map((it, i) => clf.topK(probs, i, it.topK));
  });

  let stopping = false;
  const infer = (m: InferRequest): void => {
    if (stopping) {
      send({ type: 'failed', id: m.id, status: 503, code: 'replica_stopping', message: 'This replica is shutting down.' });
      return;
    }
    batcher
      .submit(async () => {
        const input = spare.pop() ?? new Float32Array(imageSize);
        try {
          await clf.preprocess(m.image, input, 0);
        } catch (e) {
          spare.push(input);
          throw e;
        }
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
  };
  const reader = new RequestReader();
  new Socket({ fd: REQUEST_FD, readable: true, writable: false }).on('data', (chunk: Buffer) => {
    for (const r of reader.push(chunk)) infer(r);
  });
  process.on('message', (m: ToReplica) => {
    if (m.type === 'ping') send({ type: 'pong', id: m.id });
    else if (m.type === 'stop') {
      stopping = true;
      void batcher.idle().then(async () => {
        await clf.close();
        const messages = outbox;
        if (messages.length && process.connected) process.send!(messages, () => process.exit(0));
        else process.exit(0);
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
  const message: FromReplica[] = [{ type: 'fatal', message: errorMessage(e).split('\n')[0]! }];
  if (process.connected) process.send!(message, () => process.exit(1));
  else process.exit(1);
});
