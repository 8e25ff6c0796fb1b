/**
 * Minimal protobuf wire-format codec: just enough to read and write ONNX ModelProto
 * without generated code. Unknown fields are kept as raw bytes so a round trip is lossless.
 */

export const enum WireType {
  Varint = 0,
  Fixed64 = 1,
  Bytes = 2,
  Fixed32 = 5,
}

export interface Field {
  field: number;
  wire: WireType;
  /** varint value (bigint keeps int64 exact) */
  int?: bigint;
  /** length-delimited payload, or the 4/8 raw bytes of a fixed field */
  bytes?: Uint8Array;
}

export function readFields(buf: Uint8Array): Field[] {
  const out: Field[] = [];
  let pos = 0;
  const varint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (pos >= buf.length) throw new Error('truncated protobuf varint');
      const b = buf[pos++]!;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
  };
  while (pos < buf.length) {
    const key = Number(varint());
    const field = key >>> 3;
    const wire = (key & 7) as WireType;
    switch (wire) {
      case WireType.Varint:
        out.push({ field, wire, int: varint() });
        break;
      case WireType.Bytes: {
        const len = Number(varint());
        if (pos + len > buf.length) throw new Error('truncated protobuf field');
        out.push({ field, wire, bytes: buf.subarray(pos, pos + len) });
        pos += len;
        break;
      }
      case WireType.Fixed64:
        out.push({ field, wire, bytes: buf.subarray(pos, pos + 8) });
        pos += 8;
        break;
      case WireType.Fixed32:
        out.push({ field, wire, bytes: buf.subarray(pos, pos + 4) });
        pos += 4;
        break;
      default:
        throw new Error(`unsupported protobuf wire type ${wire as number}`);
    }
  }
  return out;
}

const textDecoder = new TextDecoder();
const textEncoder = new TextEncoder();

export const str = (f: Field): string => textDecoder.decode(f.bytes);

/** Decodes a repeated int64 field that may be packed or not. */
export function int64s(fields: Field[], field: number): bigint[] {
  const out: bigint[] = [];
  for (const f of fields) {
    if (f.field !== field) continue;
    if (f.wire === WireType.Varint) out.push(f.int!);
    else if (f.wire === WireType.Bytes) for (const g of readPackedVarints(f.bytes!)) out.push(g);
  }
  return out;
}

function readPackedVarints(buf: Uint8Array): bigint[] {
  const out: bigint[] = [];
  let pos = 0;
  while (pos < buf.length) {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const b = buf[pos++]!;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) break;
      shift += 7n;
    }
    out.push(result);
  }
  return out;
}

/** Growable byte writer. */
export class Writer {
  private chunks: Uint8Array[] = [];
  private scratch = new Uint8Array(16);
  length = 0;

  private push(b: Uint8Array): this {
    this.chunks.push(b);
    this.length += b.length;
    return this;
  }

  private varint(v: bigint): this {
    // negative int64 values are encoded as 10-byte two's complement
    let x = v < 0n ? (1n << 64n) + v : v;
    let n = 0;
    do {
      let b = Number(x & 0x7fn);
      x >>= 7n;
      if (x > 0n) b |= 0x80;
      this.scratch[n++] = b;
    } while (x > 0n);
    return this.push(this.scratch.slice(0, n));
  }

  private key(field: number, wire: WireType): this {
    return this.varint(BigInt((field << 3) | wire));
  }

  int(field: number, v: number | bigint): this {
    return this.key(field, WireType.Varint).varint(BigInt(v));
  }

  bytes(field: number, b: Uint8Array): this {
    return this.key(field, WireType.Bytes).varint(BigInt(b.length)).push(b);
  }

  string(field: number, s: string): this {
    return this.bytes(field, textEncoder.encode(s));
  }

  /** Embeds another writer's message: its chunks are taken as they are, so nesting copies nothing until finish(). */
  message(field: number, w: Writer): this {
    this.key(field, WireType.Bytes).varint(BigInt(w.length));
    for (const c of w.chunks) this.push(c);
    return this;
  }

  float(field: number, v: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    return this.key(field, WireType.Fixed32).push(b);
  }

  packedInts(field: number, values: Array<number | bigint>): this {
    const inner = new Writer();
    for (const v of values) inner.varint(BigInt(v));
    return this.bytes(field, inner.finish());
  }

  /** Re-emits a field read by readFields unchanged. */
  raw(f: Field): this {
    this.key(f.field, f.wire);
    if (f.wire === WireType.Varint) return this.varint(f.int!);
    if (f.wire === WireType.Bytes) return this.varint(BigInt(f.bytes!.length)).push(f.bytes!);
    return this.push(f.bytes!);
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.length);
    let pos = 0;
    for (const c of this.chunks) {
      out.set(c, pos);
      pos += c.length;
    }
    return out;
  }
}
