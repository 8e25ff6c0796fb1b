import { existsSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';
import * as ort from 'onnxruntime-node';
import { inferInputLayout, type InputOverrides } from '../backbones/index.js';
import { inputShape, NORMALIZATIONS, type PreprocessSpec } from '../inference/index.js';
import { errorMessage, Errors } from '../core/index.js';
import { GraphBuilder, OnnxModel } from '../onnx/index.js';
import { sha256, type Workspace } from '../store/index.js';
import { checkModelName, registerModel, type ModelCard, type ModelVersion } from './service.js';

export interface ImportOptions extends InputOverrides {
  /** registered model name; default: the file name without extension */
  name?: string;
  /** one label per class, in output order */
  labels: string[];
  /** resize the shorter side to size / cropFraction, then centre-crop; default 0.875 */
  cropFraction?: number;
}

export interface ImportResult {
  model: ModelVersion;
  /** what the original output held, and whether a Softmax node was appended */
  output: 'probabilities' | 'logits';
  softmaxAppended: boolean;
}

const IMPORTED_PROBABILITIES = 'kennel_probabilities';

/** Reads a labels file: one label per line, blank lines at the end ignored. */
export function readLabels(file: string): string[] {
  if (!existsSync(file)) throw Errors.InvalidRequest(`${file} does not exist.`, 'Pass a text file with one class label per line, in the order of the model outputs.');
  const lines = readFileSync(file, 'utf8').replace(/^\uFEFF/, '').split(/\r?\n/);
  while (lines.length && lines.at(-1)!.trim() === '') lines.pop();
  const labels = lines.map((l) => l.trim());
  if (labels.length === 0) throw Errors.InvalidRequest(`${file} has no labels.`, 'Write one class label per line, in the order of the model outputs.');
  const blank = labels.findIndex((l) => l === '');
  if (blank >= 0) throw Errors.InvalidRequest(`Line ${blank + 1} of ${file} is blank.`, 'Every class needs a label: write one per line with no blank lines in between.');
  return labels;
}

/**
 * Registers a classifier trained elsewhere (e.g. a PyTorch model saved with torch.onnx.export) so
 * it deploys like a Kennel-trained one. The model is checked by running it: its output must have
 * one score per label; logits get a Softmax node appended so every registered model outputs
 * probabilities; a fixed batch dimension of 1 is made symbolic so endpoints can batch.
 */
export async function importModel(ws: Workspace, file: string, opts: ImportOptions): Promise<ImportResult> {
  const name = opts.name ?? basename(file).replace(/\.onnx$/i, '').replace(/[^A-Za-z0-9._-]/g, '-');
  checkModelName(name);
  const { bytes, model } = OnnxModel.readFile(file, 'import the .onnx file');
  const inputs = model.dataInputs;
  if (inputs.length !== 1) throw Errors.InvalidRequest(`${file} has ${inputs.length} inputs; an image classifier has one.`, 'Export the model with a single image input.');
  const input = inputs[0]!;
  const detected = inferInputLayout(model);
  const norm = NORMALIZATIONS[opts.normalize ?? (detected.layout === 'NHWC' ? 'tf127' : 'imagenet')];
  const preprocess: PreprocessSpec = {
    size: opts.inputSize ?? detected.size ?? 224,
    cropFraction: opts.cropFraction ?? 0.875,
    layout: opts.layout ?? detected.layout,
    scale: opts.scale ?? norm.scale,
    mean: opts.mean ?? [...norm.mean],
    std: opts.std ?? [...norm.std],
  };

  // endpoints batch requests: a batch dimension fixed at 1 by the exporter becomes symbolic
  model.inputs = model.inputs.map((i) => (i === input && i.shape ? { ...i, shape: ['batch', ...i.shape.slice(1)] } : i));
  model.outputs = model.outputs.map((o) => (o.shape ? { ...o, shape: ['batch', ...o.shape.slice(1)] } : o));
  model.valueInfo = [];

  const probe = await probeOutputs(model.serialize(), input.name, preprocess);
  const classes = opts.labels.length;
  const matching = probe.filter((o) => o.dims.length === 2 && o.dims[1] === classes);
  if (matching.length === 0) {
    const shapes = probe.map((o) => `${o.name} [${o.dims.join(', ')}]`).join(', ');
    throw Errors.InvalidRequest(`No output of the model has one score per label (${classes} labels; outputs: ${shapes}).`, 'Check that the labels file has one line per class, in the order of the model outputs.');
  }
  const chosen = matching[0]!;
  if (chosen.type !== 'float32') throw Errors.InvalidRequest(`The model's output ${chosen.name} holds ${chosen.type} values; Kennel serves float32 outputs.`, 'Export the model with a float32 output (cast it in the exporting code).');
  const output = looksLikeProbabilities(chosen.values, classes) ? 'probabilities' : 'logits';
  let outputName = chosen.name;
  if (output === 'logits') {
    const g = new GraphBuilder(model);
    outputName = g.op('Softmax', [chosen.name], [{ name: 'axis', int: 1 }], model.freshName(IMPORTED_PROBABILITIES));
    model.outputs = [{ name: outputName, elemType: 1, shape: ['batch', classes] }];
  } else {
    model.outputs = [{ name: chosen.name, elemType: 1, shape: ['batch', classes] }];
  }
  model.pruneTo(model.outputs);
  const served = model.serialize();
  // the registered graph must run as it will be served: batched, one probabilities output
  await probeOutputs(served, input.name, preprocess);

  const card: ModelCard = {
    labels: opts.labels,
    preprocess,
    inputName: input.name,
    outputName,
    temperature: 1,
    source: 'imported',
    lineage: { file: basename(file), sha256: sha256(bytes), output, softmaxAppended: output === 'logits' },
  };
  return { model: await registerModel(ws, name, served, card), output, softmaxAppended: output === 'logits' };
}

interface ProbedOutput {
  name: string;
  dims: number[];
  type: string;
  values: Float32Array;
}

/** Runs the graph on a batch of two different images (mid-grey and a gradient) and returns every output. */
async function probeOutputs(onnx: Uint8Array, inputName: string, spec: PreprocessSpec): Promise<ProbedOutput[]> {
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(onnx, { graphOptimizationLevel: 'basic' });
  } catch (e) {
    throw Errors.InvalidRequest(`ONNX Runtime could not load the model: ${errorMessage(e).split('\n')[0]}`, 'Check that the file is a valid ONNX image classifier.');
  }
  try {
    const shape = inputShape(spec, 2);
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    const half = data.length / 2;
    for (let i = half; i < data.length; i++) data[i] = ((i % 97) / 97 - 0.5) * 2;
    let result: ort.InferenceSession.OnnxValueMapType;
    try {
      result = await session.run({ [inputName]: new ort.Tensor('float32', data, shape) });
    } catch (e) {
      throw Errors.InvalidRequest(
        `The model did not run on a batch of two ${spec.layout} ${spec.size}x${spec.size} images: ${errorMessage(e).split('\n')[0]}`,
        'Pass --input-size (and --layout) matching the model; if it only accepts batch size 1, re-export it with a dynamic batch axis (torch.onnx.export(..., dynamic_axes={"input": {0: "batch"}})).',
      );
    }
    return Object.entries(result).map(([name, t]) => ({ name, dims: [...t.dims], type: t.type, values: t.type === 'float32' ? (t.data as Float32Array) : new Float32Array(0) }));
  } finally {
    await session.release();
  }
}

/** Probabilities lie in [0, 1] and each row sums to 1; logits of two different images almost never do. */
export function looksLikeProbabilities(values: Float32Array, classes: number): boolean {
  if (values.length === 0 || values.length % classes !== 0) return false;
  for (let r = 0; r < values.length / classes; r++) {
    let sum = 0;
    for (let c = 0; c < classes; c++) {
      const v = values[r * classes + c]!;
      if (!(v >= 0 && v <= 1)) return false;
      sum += v;
    }
    if (Math.abs(sum - 1) > 1e-3) return false;
  }
  return true;
}
