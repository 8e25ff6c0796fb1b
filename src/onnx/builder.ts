import { OnnxModel, type Attr } from './model.js';

/**
 * A small graph builder for graphs Kennel writes itself (head training steps, evaluation,
 * model export): each op call returns its fresh output tensor name.
 */
export class GraphBuilder {
  private counter = 0;
  constructor(readonly model: OnnxModel = OnnxModel.create(17)) {}

  input(name: string, shape: Array<number | string>): string {
    this.model.inputs.push({ name, elemType: 1, shape });
    return name;
  }

  output(tensor: string, name = tensor, shape?: Array<number | string>): string {
    const out = name === tensor ? tensor : this.op('Identity', [tensor], [], name);
    this.model.outputs.push({ name: out, elemType: 1, shape });
    return out;
  }

  scalar(value: number): string {
    const name = this.model.freshName(`c${this.counter++}`);
    this.model.addInitializer(name, Float32Array.of(value), []);
    return name;
  }

  ints(values: number[]): string {
    const name = this.model.freshName(`i${this.counter++}`);
    this.model.addInitializer(name, BigInt64Array.from(values.map(BigInt)), [values.length]);
    return name;
  }

  weight(name: string, data: Float32Array, dims: number[]): string {
    this.model.addInitializer(name, data, dims);
    return name;
  }

  op(type: string, inputs: string[], attrs: Attr[] = [], name?: string): string {
    const out = name ?? this.model.freshName(`${type.toLowerCase()}${this.counter++}`);
    this.model.addNode(type, inputs, [out], attrs);
    return out;
  }

  add = (a: string, b: string) => this.op('Add', [a, b]);
  sub = (a: string, b: string) => this.op('Sub', [a, b]);
  mul = (a: string, b: string) => this.op('Mul', [a, b]);
  div = (a: string, b: string) => this.op('Div', [a, b]);
}
