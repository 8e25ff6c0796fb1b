import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { addBackbone } from '../../src/backbones/index.js';
import { importDataset } from '../../src/data/index.js';
import { Classifier, NORMALIZATIONS, UINT8_INPUT, decodeRgb, sessionOptions, withUint8Input, type Device, type ModelSpec, type PreprocessSpec } from '../../src/inference/index.js';
import { toFloat16 } from '../../src/onnx/index.js';
import { getModel } from '../../src/registry/index.js';
import { openWorkspace } from '../../src/store/index.js';
import { PROBABILITIES_OUTPUT, train } from '../../src/training/index.js';
import { dequantize } from '../models/dequantize.js';
import { listSources } from './dataset.js';

/** ImageNet models' input: 224 x 224, NCHW, ImageNet normalisation (the ResNet50 and MobileNetV2 graphs). */
export const IMAGENET_SPEC: PreprocessSpec = { size: 224, cropFraction: 0.875, layout: 'NCHW', scale: NORMALIZATIONS.imagenet.scale, mean: [...NORMALIZATIONS.imagenet.mean] as [number, number, number], std: [...NORMALIZATIONS.imagenet.std] as [number, number, number] };

/** A fp32 probability gap under this between the two best classes is a near tie: any rounding may swap them. */
const NEAR_TIE = 0.01;

export interface AgreementRun {
  model: string;
  images: string;
  count: number;
  top1Agreement: number;
  /** images whose top-1 differs */
  disagreements: Array<{ image: string; fp32Gap: number }>;
  /** disagreements where fp32's two best classes were within NEAR_TIE of each other */
  nearTies: number;
  maxProbabilityDifference: number;
  meanProbabilityDifference: number;
  /**
   * The most fp16 moved the gap between the log-probabilities of fp32's two best classes (a logit
   * gap): what a near-tie rule must cover, at any confidence
   */
  maxTopTwoLogGapShift: number;
  /**
   * A Kennel classifier as precision auto serves it on the device when fp16 wins there: fp16, its
   * near ties run again in fp32 (ClassifierOptions.nearTies); its top-1 agreement with fp32 and
   * the share of images run twice
   */
  nearTiesInFp32?: { top1Agreement: number; rerun: number };
}

function softmax(x: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of x) max = Math.max(max, v);
  const e = Float64Array.from(x, (v) => Math.exp(v - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}

const best2 = (p: Float64Array): [number, number] => {
  let a = 0;
  let b = -1;
  for (let i = 1; i < p.length; i++) {
    if (p[i]! > p[a]!) [a, b] = [i, a];
    else if (b < 0 || p[i]! > p[b]!) b = i;
  }
  return [a, b];
};

interface AgreementModel {
  name: string;
  graph: Uint8Array;
  input: string;
  spec: PreprocessSpec;
  /** what the graph gives: logits (softmax taken here) or a Kennel classifier's probabilities */
  output: 'logits' | 'probabilities';
  /** a Kennel classifier's card, to load it as an endpoint does */
  card?: ModelSpec;
}

/**
 * What users deploy: a Kennel classifier (backbone and head in one graph, the head trained by
 * `kennel train` on breeds-mini's features, on the CPU in fp32) on the pretrained float
 * MobileNetV2. Its endpoint on a GPU runs the backbone in fp16 (the head stays float32).
 */
async function trainedClassifier(mobilenet: Uint8Array, breedsMini: string): Promise<AgreementModel> {
  const home = mkdtempSync(join(tmpdir(), 'kennel-bench-fp16-'));
  const ws = openWorkspace(home);
  try {
    writeFileSync(join(home, 'mobilenetv2.onnx'), mobilenet);
    await addBackbone(ws, join(home, 'mobilenetv2.onnx'), { name: 'mobilenetv2-float' });
    await importDataset(ws, breedsMini, { name: 'breeds' });
    const trained = await train(ws, { dataset: 'breeds', backbone: 'mobilenetv2-float', device: 'cpu', precision: 'fp32' }, {});
    const model = getModel(ws, trained.model);
    return {
      name: `Kennel classifier: pretrained MobileNetV2 + head trained on breeds-mini (${model.card.labels.length} breeds)`,
      graph: readFileSync(await ws.artifacts.localPath(model.onnxSha)),
      input: model.card.inputName,
      spec: model.card.preprocess,
      output: 'probabilities',
      card: model.card,
    };
  } finally {
    ws.close();
    rmSync(home, { recursive: true, force: true });
  }
}

/**
 * fp16 against fp32 on the shared images (real-photos, and breeds-mini where present), for each
 * model there is: the ResNet50 architecture given (random weights), MobileNetV2 dequantized from
 * the shared int8 file (a real pretrained network; its 1,000 ImageNet classes have many near
 * ties), and a Kennel classifier trained on that backbone (trainedClassifier: the top-1 users
 * see). The graphs are fed RGB bytes as Kennel feeds a GPU, and their class probabilities are
 * compared image by image.
 */
export async function fp16Agreement(o: { device: Device; shared: string; resnet: Uint8Array }): Promise<AgreementRun[]> {
  const sets = [
    { name: 'real-photos', dir: join(o.shared, 'data/real-photos') },
    { name: 'breeds-mini', dir: join(o.shared, 'data/breeds-mini') },
  ]
    .filter((s) => existsSync(s.dir))
    .map((s) => ({ name: s.name, files: listSources([s.dir]) }));
  const models: AgreementModel[] = [{ name: 'ResNet50 architecture, random weights', graph: o.resnet, input: 'input', spec: IMAGENET_SPEC, output: 'logits' }];
  const int8 = join(o.shared, 'models/mobilenetv2-12-int8.onnx');
  if (existsSync(int8)) {
    const mobilenet = dequantize(readFileSync(int8));
    models.push({ name: 'MobileNetV2, ImageNet (dequantized from the shared int8 file)', graph: mobilenet, input: 'input', spec: IMAGENET_SPEC, output: 'logits' });
    const breedsMini = join(o.shared, 'data/breeds-mini');
    if (existsSync(breedsMini)) models.push(await trainedClassifier(mobilenet, breedsMini));
  }
  const runs: AgreementRun[] = [];
  const options = sessionOptions({ device: o.device });
  for (const model of models) {
    const spec = model.spec;
    const per = spec.size * spec.size * 3;
    const probabilities = model.output === 'probabilities' ? (x: Float32Array) => Float64Array.from(x) : softmax;
    const bytesGraph = withUint8Input(model.graph, spec, model.input);
    const [full, half] = [await ort.InferenceSession.create(bytesGraph, options), await ort.InferenceSession.create(toFloat16(bytesGraph), options)];
    const outputName = full.outputNames.includes(PROBABILITIES_OUTPUT) ? PROBABILITIES_OUTPUT : full.outputNames[0]!;
    const settling = model.card && (await Classifier.load(model.graph, model.card, { device: o.device, precision: 'fp16', nearTies: 'fp32', bytesIn: true }));
    for (const set of sets) {
      const run: AgreementRun = { model: model.name, images: set.name, count: set.files.length, top1Agreement: 0, disagreements: [], nearTies: 0, maxProbabilityDifference: 0, meanProbabilityDifference: 0, maxTopTwoLogGapShift: 0 };
      let agree = 0;
      let settledAgree = 0;
      const rerunBefore = settling?.nearTiesRerun ?? 0;
      for (let b = 0; b < set.files.length; b += 32) {
        const batch = set.files.slice(b, b + 32);
        const input = new Uint8Array(batch.length * per);
        await Promise.all(batch.map(async (p, i) => input.set(await decodeRgb(p, spec), i * per)));
        const feeds = { [UINT8_INPUT]: new ort.Tensor('uint8', input, [batch.length, spec.size, spec.size, 3]) };
        const a = (await full.run(feeds))[outputName]!.data as Float32Array;
        const h = (await half.run(feeds))[outputName]!.data as Float32Array;
        const settled = settling && (await settling.run(input, batch.length));
        const classes = a.length / batch.length;
        for (let i = 0; i < batch.length; i++) {
          const [pa, ph] = [probabilities(a.subarray(i * classes, (i + 1) * classes)), probabilities(h.subarray(i * classes, (i + 1) * classes))];
          const [top, second] = best2(pa);
          if (settled && top === best2(Float64Array.from(settled.subarray(i * classes, (i + 1) * classes)))[0]) settledAgree++;
          const logGap = (p: Float64Array) => Math.log(Math.max(p[top]!, 1e-30)) - Math.log(Math.max(p[second]!, 1e-30));
          run.maxTopTwoLogGapShift = Math.max(run.maxTopTwoLogGapShift, Math.abs(logGap(pa) - logGap(ph)));
          if (top === best2(ph)[0]) agree++;
          else {
            const gap = pa[top]! - pa[second]!;
            run.disagreements.push({ image: batch[i]!.slice(o.shared.length + 1), fp32Gap: gap });
            if (gap < NEAR_TIE) run.nearTies++;
          }
          for (let c = 0; c < classes; c++) {
            const d = Math.abs(pa[c]! - ph[c]!);
            run.maxProbabilityDifference = Math.max(run.maxProbabilityDifference, d);
            run.meanProbabilityDifference += d / classes / set.files.length;
          }
        }
      }
      run.top1Agreement = agree / set.files.length;
      if (settling) run.nearTiesInFp32 = { top1Agreement: settledAgree / set.files.length, rerun: (settling.nearTiesRerun - rerunBefore) / set.files.length };
      runs.push(run);
    }
    await full.release();
    await half.release();
    await settling?.close();
  }
  return runs;
}

/** One line per run, for logs. */
export const describeAgreement = (r: AgreementRun): string =>
  `${r.model}, ${r.count} ${r.images}: top-1 agreement ${(r.top1Agreement * 100).toFixed(1)}% (${r.disagreements.length} differ, ${r.nearTies} of them near ties), largest probability difference ${r.maxProbabilityDifference.toExponential(2)}, largest shift of the two best classes' log-probability gap ${r.maxTopTwoLogGapShift.toFixed(3)}` +
  (r.nearTiesInFp32 ? `; with near ties run again in fp32 (as auto serves it): ${(r.nearTiesInFp32.top1Agreement * 100).toFixed(1)}%, ${(r.nearTiesInFp32.rerun * 100).toFixed(1)}% of images run twice` : '');
