/**
 * Entry of a DecodePool's process: decodes the images of each job it is sent (as training and
 * serving decode them: crop views, centre crops) into one answer of RGB bytes.
 */
import { serveJobs } from '../core/index.js';
import type { DecodeJob } from './decode-pool.js';
import { decodeRgb, tuneSharp } from './preprocess.js';

tuneSharp();
// an image's bytes arrive as a Uint8Array (structured clone): sharp is given a Buffer over it
const input = (image: DecodeJob['items'][number]['image']) => (typeof image === 'string' ? image : Buffer.from(image.buffer, image.byteOffset, image.byteLength));
serveJobs<DecodeJob>((job) => Promise.all(job.items.map((it) => decodeRgb(input(it.image), job.spec, it.view))));
