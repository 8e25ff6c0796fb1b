/**
 * Replica process entry: one model version in its own ORT session, fed by a dynamic batcher.
 * Its configuration is the first IPC message. Requests arrive framed on a stream (fd 4, image
 * bytes as they are); answers and control messages go over IPC. Decoding runs concurrently with
 * the running batch: on sharp's libuv pool, or on a GPU in decode worker processes.
 */
import { BatchedClassifier, Classifier, Explainer, FeatureTap, batchShapes, decodeWorkersFor, tuneSharp, type Explanation, type Prediction } from '../inference/index.js';
import { Errors, KennelError, errorMessage } from '../core/index.js';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { Socket } from 'node:net';
import { setPriority } from 'node:os';
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
  const config = await new Promise<ReplicaConfig>((resolve, reject) =>
    process.once('message', (m: ToReplica) => (m.type === 'start' ? resolve(m.config) : reject(new Error(`expected the start message, got ${m.type}`)))),
  );
  tuneSharp();
  let stopping = false;
  // inference in its own thread: this one keeps reading requests, finishing decodes and sending
  // answers while a batch runs
  // a GPU classifies more images than one process decodes: its replica decodes in worker
  // processes, as many as its share of the cores
  const decodeWorkers = decodeWorkersFor(config.device, { cores: config.threads });
  // every session of the replica runs at the endpoint's precision, so its answers agree across paths
  const sessionSettings = { device: config.device, precision: config.precision, threads: config.threads, spinning: false };
  const clf = await Classifier.load(config.onnxPath, config.card, { ...sessionSettings, thread: { maxBatch: config.batching.maxBatch }, decodeWorkers });
  void clf.threadExited?.then((reason) => {
    if (stopping) return;
    process.stderr.write(`replica: the inference thread ended (${reason})\n`);
    process.exit(1);
  });
  const classes = config.card.labels.length;
  const batchInput = clf.inputBuffer(config.batching.maxBatch);
  // A GPU session prepares its kernels for each input shape on first use (hundreds of ms for a
  // ResNet50), so on a GPU batches are padded to a few sizes, all run once before traffic
  const shapes = config.device === 'cpu' ? undefined : batchShapes(config.batching.maxBatch, config.device);
  const runSize = (n: number): number => shapes?.find((s) => s >= n) ?? n;
  checkReadiness((await clf.run(batchInput, runSize(1))).subarray(0, classes), classes);
  if (shapes) await clf.warm(batchInput, shapes);
  // loaded at normal priority (a shadow that starts in seconds, even on a busy machine), serving at its own
  if (config.background) runInBackground();

  const batched = new BatchedClassifier(clf, config.batching, { runSize, onBatch: (run) => send({ type: 'batch', ...run }) });
  // explanations run outside the batcher, in a session of their own (loaded on the first one):
  // the same graph with its last feature map as an extra output
  let explainer: Promise<Explainer> | undefined;
  const explaining = new Set<Promise<unknown>>();
  const explain = (image: Buffer, topK: number): Promise<{ predictions: Prediction[]; explanation: Explanation }> => {
    explainer ??= Explainer.load(config.onnxPath, config.card, sessionSettings);
    const p = explainer.then((e) => e.explain(image, topK));
    const settled = p.then(() => {}, () => {});
    explaining.add(settled);
    void settled.then(() => explaining.delete(settled));
    return p;
  };

  // captured requests run in a third session (loaded on the first one): the same graph with the
  // backbone's features as an extra output, one image at a time beside the batcher. A model
  // without the tensor answers them through the batcher, without features.
  let tap: Promise<FeatureTap | undefined> | undefined;
  const withFeatures = async (image: Buffer, topK: number): Promise<{ predictions: Prediction[]; explanation?: Explanation; features?: number[] }> => {
    tap ??= config.featureTensor
      ? FeatureTap.load(config.onnxPath, config.card, config.featureTensor, sessionSettings).catch((e: unknown) => {
          process.stderr.write(`replica: no features for captured requests: ${errorMessage(e)}\n`);
          return undefined;
        })
      : Promise.resolve(undefined);
    const t = await tap;
    if (!t) return { predictions: await batched.classify(image, topK) };
    const r = await t.run(image, topK);
    return { predictions: r.predictions, features: Array.from(r.features) };
  };

  // Open Inference Protocol tensors are normalised floats: a replica whose graph takes RGB bytes
  // (a GPU's) answers them with the float graph, loaded on the first one
  let floatBatched: Promise<{ clf: Classifier; batched: BatchedClassifier }> | undefined;
  const classifyTensor = (values: Buffer, topK: number): Promise<Prediction[]> => {
    if (!clf.bytesIn) return batched.classifyInput(values, topK);
    floatBatched ??= Classifier.load(config.onnxPath, config.card, { ...sessionSettings, bytesIn: false, thread: { maxBatch: config.batching.maxBatch } }).then((c) => ({ clf: c, batched: new BatchedClassifier(c, config.batching, { runSize }) }));
    return floatBatched.then((f) => f.batched.classifyInput(values, topK));
  };

  const infer = (m: InferRequest): void => {
    if (stopping) {
      send({ type: 'failed', id: m.id, status: Errors.ReplicaStopping.status, code: Errors.ReplicaStopping.code, message: 'This replica is shutting down.' });
      return;
    }
    // a tensor (the Open Inference Protocol's preprocessed input) goes straight to the batcher;
    // explanations and captured requests run beside it
    const work: Promise<{ predictions: Prediction[]; explanation?: Explanation; features?: number[] }> = m.tensor
      ? classifyTensor(m.image, m.topK).then((predictions) => ({ predictions }))
      : m.explain
        ? explain(m.image, m.topK)
        : m.features
          ? withFeatures(m.image, m.topK)
          : batched.classify(m.image, m.topK).then((predictions) => ({ predictions }));
    if (m.features && !m.explain && !m.tensor) {
      // a stopping replica waits for these as for explanations
      const settled = work.then(() => {}, () => {});
      explaining.add(settled);
      void settled.then(() => explaining.delete(settled));
    }
    work
      .then(
        ({ predictions, explanation, features }) => send({ type: 'result', id: m.id, predictions, ...(explanation ? { explanation } : {}), ...(features ? { features } : {}) }),
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
      const tensors = floatBatched?.then((f) => f.batched.idle(), () => {});
      void Promise.all([batched.idle(), tensors, ...explaining]).then(async () => {
        await clf.close();
        await floatBatched?.then((f) => f.clf.close(), () => {});
        await explainer?.then((e) => e.close(), () => {});
        await tap?.then((t) => t?.close());
        const messages = outbox;
        if (messages.length && process.connected) process.send!(messages, () => process.exit(0));
        else process.exit(0);
      });
    }
  });
  send({ type: 'ready', model: config.model, threads: config.threads });
}

/**
 * Moves every thread of this process to the lowest CPU priority: the SCHED_IDLE policy (it runs
 * only on CPU time no other thread wants; through util-linux's chrt, when it is installed) and
 * nice 19. On Linux both belong to a thread: each one that exists now (ORT's, the inference
 * worker's, libuv's) is set, and threads started later inherit their creator's.
 */
function runInBackground(): void {
  spawnSync('chrt', ['--all-tasks', '--idle', '--pid', '0', String(process.pid)], { stdio: 'ignore' });
  let tids: number[] = [0];
  try {
    tids = readdirSync('/proc/self/task').map(Number).filter((n) => n > 0);
  } catch {
    /* not Linux: the process's priority */
  }
  for (const tid of tids) {
    try {
      setPriority(tid, 19);
    } catch {
      /* a thread that ended meanwhile */
    }
  }
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
  const permanent = Errors.DeviceUnavailable.is(e);
  const message: FromReplica[] = [{ type: 'fatal', message: errorMessage(e).split('\n')[0]!, permanent }];
  if (process.connected) process.send!(message, () => process.exit(1));
  else process.exit(1);
});
