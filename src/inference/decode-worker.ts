/**
 * Entry of a DecodePool's process: decodes the images of each job it is sent (as training
 * decodes them: crop views, centre crops) and writes their RGB bytes, one frame per job, to its
 * fd 3, a pipe to the pool (IPC would serialise the bytes).
 */
import { Socket } from 'node:net';
import { FRAME_HEADER, type DecodeJob, type FromDecodeWorker } from './decode-pool.js';
import { decodeRgb, tuneSharp } from './preprocess.js';

if (!process.send) throw new Error('a decode worker is started by a DecodePool, with an IPC channel');
// without the pool nobody reads the frames: exit rather than linger
process.on('disconnect', () => process.exit(0));
tuneSharp();
const frames = new Socket({ fd: 3, readable: false, writable: true });

function frame(id: number, status: 0 | 1, payload: Uint8Array): void {
  const head = Buffer.alloc(FRAME_HEADER);
  head.writeUInt32LE(id, 0);
  head.writeUInt32LE(status, 4);
  head.writeUInt32LE(payload.byteLength, 8);
  frames.write(head);
  frames.write(payload);
}

process.on('message', (job: DecodeJob) => {
  Promise.all(job.items.map((it) => decodeRgb(it.path, job.spec, it.view))).then(
    (images) => frame(job.id, 0, Buffer.concat(images)),
    (e: unknown) => frame(job.id, 1, Buffer.from(e instanceof Error ? e.message : String(e))),
  );
});
process.send({ type: 'ready' } satisfies FromDecodeWorker);
