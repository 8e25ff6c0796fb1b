import { readFile } from 'node:fs/promises';
import { GraphBuilder, OnnxModel } from '../onnx/index.js';
import { executionProviders, type Device } from './devices.js';
import { keptGraph, loadMeasured, saveMeasured, type ModelGraph, type Precision } from './precision.js';
import { inputShape, inputSize, type PreprocessSpec } from './preprocess.js';

/** The input of a graph made by withUint8Input: decoded RGB bytes, [batch, size, size, 3]. */
export const UINT8_INPUT = 'image_rgb_u8';
/** The version of withUint8Input's output that remembered digests (ModelFeed.remember) hold: raised when it changes. */
const UINT8_INPUT_VERSION = 1;

/**
 * The same graph taking decoded RGB bytes (NHWC uint8) instead of normalised floats: Cast,
 * (pixel * scale - mean) / std as one multiply-add per channel (normalizeInto's arithmetic), and
 * a Transpose for NCHW models, all inside the graph. On a GPU this uploads a quarter of the bytes
 * and leaves the host nothing to do per pixel (measured in bench:gpu: raw ResNet50 on WebGPU,
 * 935 -> 1,199 images/s at batch 32 on an H100).
 */
export function withUint8Input(graph: Uint8Array, spec: PreprocessSpec, inputName: string): Uint8Array {
  const model = OnnxModel.parse(graph);
  const g = new GraphBuilder(model);
  model.inputs = model.inputs.filter((i) => i.name !== inputName);
  model.inputs.push({ name: UINT8_INPUT, elemType: 2, shape: ['batch', spec.size, spec.size, 3] });
  const scale = g.weight(model.freshName('input_scale'), Float32Array.from(spec.std, (sd) => spec.scale / sd), [3]);
  const shift = g.weight(model.freshName('input_shift'), Float32Array.from(spec.mean, (m, c) => -m / spec.std[c]!), [3]);
  const nhwc = g.add(g.mul(g.op('Cast', [UINT8_INPUT], [{ name: 'to', int: 1 }]), scale), shift);
  if (spec.layout === 'NCHW') g.op('Transpose', [nhwc], [{ name: 'perm', ints: [0, 3, 1, 2] }], inputName);
  else g.op('Identity', [nhwc], [], inputName);
  model.toposort();
  return model.serialize();
}

/**
 * How a model session is fed: the RGB bytes of a withUint8Input graph (a GPU's default: a quarter
 * of the upload, no per-pixel work on the host) or normalised floats in the spec's layout. The
 * one place the classifier and the feature extractor get their graph, input shapes and buffers.
 */
export class ModelFeed {
  constructor(
    readonly spec: PreprocessSpec,
    /** whether the session takes RGB bytes rather than normalised floats */
    readonly bytes: boolean,
  ) {}

  /** Bytes when a GPU runs `device`, floats on the CPU, unless `bytes` is given. */
  static for(spec: PreprocessSpec, device: Device | undefined, bytes?: boolean): ModelFeed {
    return new ModelFeed(spec, bytes ?? executionProviders(device ?? 'cpu')[0] !== 'cpu');
  }

  /**
   * The graph to open (a file as it is, for floats) and the name of the input it takes. `known`:
   * the sha256 of `model` and the session's provider and precision. Where an earlier session on
   * this machine opened the byte-input graph of the same model (remember) and its fp16
   * conversion is kept (keptGraph), that, without reading or converting the model: for a ResNet50
   * extractor, 100 MB read, rewritten and hashed again at every opening.
   */
  async graph(model: string | Uint8Array, inputName: string, known?: { digest: string; provider: string; precision: Precision }): Promise<{ graph: ModelGraph; inputName: string }> {
    if (!this.bytes) return { graph: model, inputName };
    const derived = known && loadMeasured(this.derivedKey(known.digest, inputName));
    const prepared = typeof derived === 'string' ? keptGraph(derived, known!.provider, known!.precision) : undefined;
    if (prepared) return { graph: prepared, inputName: UINT8_INPUT };
    return { graph: withUint8Input(typeof model === 'string' ? await readFile(model) : model, this.spec, inputName), inputName: UINT8_INPUT };
  }

  /** Remembers `digest`, the sha256 of the byte-input graph made of the model whose sha256 is `source` (as a session opened it), for graph(). */
  remember(source: string, inputName: string, digest: string): void {
    if (this.bytes && loadMeasured(this.derivedKey(source, inputName)) !== digest) saveMeasured(this.derivedKey(source, inputName), digest);
  }

  private derivedKey(source: string, inputName: string): string {
    return `bytes input v${UINT8_INPUT_VERSION} ${source} ${inputName} ${JSON.stringify(this.spec)}`;
  }

  /** The session's input shape for `n` images. */
  shape(n: number): number[] {
    return this.bytes ? [n, this.spec.size, this.spec.size, 3] : inputShape(this.spec, n);
  }

  /** An empty input for `n` images. */
  allocate(n: number): Float32Array | Uint8Array {
    const size = n * inputSize(this.spec);
    return this.bytes ? new Uint8Array(size) : new Float32Array(size);
  }

  /** Throws unless `input` is what this feed takes (`who`: the class, for the message). */
  check(input: Float32Array | Uint8Array, who: string): void {
    if (input instanceof Uint8Array !== this.bytes) throw new Error(`this ${who} takes ${this.bytes ? 'RGB bytes' : 'normalised floats'}`);
  }
}
