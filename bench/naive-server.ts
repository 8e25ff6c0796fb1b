/**
 * The naive peer for bench:serve: an image classifier server as a typical tutorial writes it.
 * fastify + onnxruntime-node with default session options, the image decoded in the handler,
 * one session.run per request (batch 1), no queue bound. Started by the bench as a child
 * process: argv[2] is JSON {model, port, size, mean, std, device}; it sends {port} over IPC when
 * listening. On a GPU (device webgpu) it asks ORT for the WebGPU provider, as such a server would.
 */
import Fastify from 'fastify';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';

interface NaiveConfig {
  model: string;
  port: number;
  size: number;
  mean: [number, number, number];
  std: [number, number, number];
  device?: 'cpu' | 'webgpu';
}

const config = JSON.parse(process.argv[2]!) as NaiveConfig;
const session = await ort.InferenceSession.create(config.model, config.device === 'webgpu' ? { executionProviders: ['webgpu'] } : {});
const [inputName] = session.inputNames;
const [outputName] = session.outputNames;
const s = config.size;

const app = Fastify({ bodyLimit: 10 * 1024 * 1024 });
app.addContentTypeParser('image/jpeg', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

app.post('/predict', async (req) => {
  const pixels = await sharp(req.body as Buffer).rotate().resize(s, s, { fit: 'cover' }).removeAlpha().raw().toBuffer();
  const input = new Float32Array(3 * s * s);
  for (let i = 0; i < s * s; i++) {
    for (let c = 0; c < 3; c++) input[c * s * s + i] = (pixels[i * 3 + c]! / 255 - config.mean[c]!) / config.std[c]!;
  }
  const out = await session.run({ [inputName!]: new ort.Tensor('float32', input, [1, 3, s, s]) });
  const scores = Array.from(out[outputName!]!.data as Float32Array);
  const predictions = scores
    .map((score, index) => ({ index, score }))
    .sort((a, b) => b.score - a.score)
    .slice(0, 5);
  return { predictions };
});

await app.listen({ port: config.port, host: '127.0.0.1' });
process.send?.({ port: (app.server.address() as { port: number }).port });
process.on('disconnect', () => process.exit(0));
