import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { Errors, kennelVersion } from '../core/index.js';
import type { ServedVariant, ServingRuntime } from '../serving/index.js';
import { inferItems, INPUT_DATATYPES, MAX_IMAGES_PER_REQUEST, modelInputShape, type OipInferRequest, type OipTensor } from './oip-tensors.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** an Open Inference Protocol route: errors are {"error": "..."} as the protocol says */
    oip?: boolean;
  }
}

export interface OipRoutesOptions {
  runtime: ServingRuntime;
  maxImageBytes: number;
  /** the infer route's body limit: tensors as JSON numbers are larger than base64 images */
  bodyLimit: number;
}

/** The name the platform field gives an ONNX model (as Triton names it). */
const PLATFORM = 'onnxruntime_onnx';
/** The output tensor with the top-1 label of each image, beside the model's probabilities. */
export const LABEL_OUTPUT = 'label';

type Params = { name: string; version?: string };

const endpointName = { type: 'string', maxLength: 63 } as const;
const versionName = { type: 'string', pattern: '^[0-9]{1,9}$' } as const;
const modelParams = { type: 'object', properties: { name: endpointName }, required: ['name'] } as const;
const versionParams = { type: 'object', properties: { name: endpointName, version: versionName }, required: ['name', 'version'] } as const;

const tensorSchema = {
  type: 'object',
  required: ['name', 'shape', 'datatype', 'data'],
  properties: {
    name: { type: 'string', maxLength: 256 },
    shape: { type: 'array', maxItems: 8, items: { type: 'integer', minimum: 0 } },
    datatype: { type: 'string', maxLength: 16 },
    parameters: { type: 'object' },
    data: {},
  },
} as const;

const inferBody = {
  type: 'object',
  required: ['inputs'],
  properties: {
    id: { type: 'string', maxLength: 256 },
    parameters: { type: 'object' },
    inputs: { type: 'array', minItems: 1, maxItems: 16, items: tensorSchema },
    outputs: { type: 'array', maxItems: 16, items: { type: 'object', required: ['name'], properties: { name: { type: 'string', maxLength: 256 }, parameters: { type: 'object' } } } },
  },
} as const;

/** The model version number of "NAME@VERSION". */
const versionOf = (model: string): string => model.slice(model.lastIndexOf('@') + 1);

/** Only the known endpoint's access rule: the same as its invocations route (endpoint:Invoke on endpoint/NAME). */
const invokeAuth = { action: 'endpoint:Invoke', resource: (req: FastifyRequest) => `endpoint/${(req.params as Params).name}` };

/**
 * The Open Inference Protocol (KServe V2, REST) on the data plane, for KServe, Triton and
 * TorchServe clients. A model is an endpoint; its versions are the model versions its variants
 * serve. Requests run through the endpoint's router and replicas like POST
 * /endpoints/NAME/invocations (same keys, policies, rate limits, audit, batching), one image per
 * replica request, so a batch of N images is batched with the endpoint's other traffic.
 *
 * - GET /v2, /v2/health/live, /v2/health/ready: public, like /healthz;
 * - GET /v2/models/NAME[/versions/V], .../ready, POST .../infer: endpoint:Invoke on endpoint/NAME.
 */
export const oipRoutes: FastifyPluginAsync<OipRoutesOptions> = async (app, opts) => {
  const { runtime } = opts;

  /** The variants a request is about: all of the endpoint's, or those serving model version V (404 if none). */
  const variantsOf = (p: Params): ServedVariant[] => {
    const all = runtime.served(p.name);
    if (p.version === undefined) return all;
    const some = all.filter((v) => versionOf(v.model) === p.version);
    if (some.length === 0) throw Errors.NotFound(`Endpoint ${p.name} serves no model version ${p.version}.`, `It serves ${[...new Set(all.map((v) => versionOf(v.model)))].join(', ')}: see GET /v2/models/${p.name}.`);
    return some;
  };

  const metadata = (p: Params) => {
    const variants = variantsOf(p);
    const { card } = variants[0]!;
    return {
      name: p.name,
      versions: [...new Set(runtime.served(p.name).map((v) => versionOf(v.model)))],
      platform: PLATFORM,
      inputs: [{ name: card.inputName, datatype: 'FP32', shape: modelInputShape(card.preprocess) }],
      outputs: [
        { name: card.outputName, datatype: 'FP32', shape: [-1, card.labels.length] },
        { name: LABEL_OUTPUT, datatype: 'BYTES', shape: [-1] },
      ],
      // Kennel's extension: what the input also takes, and what the probabilities' columns are
      parameters: {
        models: variants.map((v) => v.model),
        input_datatypes: INPUT_DATATYPES,
        input_size: card.preprocess.size,
        max_batch_size: MAX_IMAGES_PER_REQUEST,
        labels: card.labels,
      },
    };
  };

  const ready = (p: Params, reply: import('fastify').FastifyReply) => {
    const ok = variantsOf(p).some((v) => v.ready);
    return reply.code(ok ? 200 : 503).send({ name: p.name, ready: ok });
  };

  const infer = async (req: FastifyRequest<{ Params: Params; Body: OipInferRequest }>) => {
    const variants = variantsOf(req.params);
    const target = runtime.router.route(req.params.name, req.params.version === undefined ? undefined : variants[0]!.variant);
    req.invocation = { endpoint: target.endpoint, variant: target.variant.name };
    const { card } = variants.find((v) => v.variant === target.variant.name)!;
    const wanted = req.body.outputs?.map((o) => o.name) ?? [card.outputName, LABEL_OUTPUT];
    const unknown = wanted.find((n) => n !== card.outputName && n !== LABEL_OUTPUT);
    if (unknown !== undefined) throw Errors.InvalidRequest(`The model has no output "${unknown.slice(0, 100)}".`, `Its outputs: ${card.outputName}, ${LABEL_OUTPUT}.`);
    const items = inferItems(req.body, card.preprocess, opts.maxImageBytes);
    // every class in label order (topK 0), one replica request per image: the replica's batcher batches them
    const results = await Promise.all(items.map((it, i) => runtime.router.invoke(target, it.bytes, { topK: 0, requestId: `${req.id}/${i}`, tensor: it.tensor })));
    const outputs: OipTensor[] = [];
    for (const name of wanted) {
      if (name === card.outputName) outputs.push({ name, datatype: 'FP32', shape: [items.length, card.labels.length], data: results.flatMap((r) => r.predictions.map((p) => p.score)) });
      else outputs.push({ name, datatype: 'BYTES', shape: [items.length], data: results.map((r) => best(r.predictions)) });
    }
    return { model_name: req.params.name, model_version: versionOf(results[0]!.model), id: req.body.id ?? req.id, parameters: { variant: target.variant.name }, outputs };
  };

  app.get('/v2', { config: { auth: 'public', oip: true } }, async () => ({ name: 'kennel', version: kennelVersion(), extensions: [] }));
  app.get('/v2/health/live', { config: { auth: 'public', oip: true } }, async () => ({ live: true }));
  app.get('/v2/health/ready', { config: { auth: 'public', oip: true } }, async (_req, reply) => {
    const ok = runtime.list().every((e) => runtime.served(e.name).some((v) => v.ready));
    return reply.code(ok ? 200 : 503).send({ ready: ok });
  });
  const config = { auth: invokeAuth, oip: true };
  app.get<{ Params: Params }>('/v2/models/:name', { config, schema: { params: modelParams } }, async (req) => metadata(req.params));
  app.get<{ Params: Params }>('/v2/models/:name/versions/:version', { config, schema: { params: versionParams } }, async (req) => metadata(req.params));
  app.get<{ Params: Params }>('/v2/models/:name/ready', { config, schema: { params: modelParams } }, async (req, reply) => ready(req.params, reply));
  app.get<{ Params: Params }>('/v2/models/:name/versions/:version/ready', { config, schema: { params: versionParams } }, async (req, reply) => ready(req.params, reply));
  const inferOptions = (params: typeof modelParams | typeof versionParams) => ({ config, bodyLimit: opts.bodyLimit, schema: { params, body: inferBody } });
  app.post<{ Params: Params; Body: OipInferRequest }>('/v2/models/:name/infer', inferOptions(modelParams), infer);
  app.post<{ Params: Params; Body: OipInferRequest }>('/v2/models/:name/versions/:version/infer', inferOptions(versionParams), infer);
};

/** The label of the highest probability (ties: the lower index, as top-k breaks them). */
function best(row: Array<{ label: string; score: number }>): string {
  let b = 0;
  for (let i = 1; i < row.length; i++) if (row[i]!.score > row[b]!.score) b = i;
  return row[b]!.label;
}
