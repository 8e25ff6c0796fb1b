import { Errors } from '../../src/core/index.ts';
import type { EndpointClient, EndpointResult } from '../../src/functions/index.ts';

/** An endpoint client that answers fixed predictions and records every call (no model needed). */
export class FakeEndpoints implements EndpointClient {
  readonly calls: Array<{ endpoint: string; bytes: number; contentType: string; topK?: number }> = [];

  async invoke(endpoint: string, body: Uint8Array, contentType: string, opts: { topK?: number } = {}): Promise<EndpointResult> {
    this.calls.push({ endpoint, bytes: body.length, contentType, topK: opts.topK });
    if (endpoint === 'missing') throw Errors.NotFound(`Endpoint ${endpoint} was not found.`);
    const labels = ['Beagle', 'Basenji', 'Boxer', 'Collie', 'Dalmatian', 'Golden_retriever', 'Pug'];
    return { predictions: labels.map((label, index) => ({ label, index, score: (labels.length - index) / 28 })).slice(0, opts.topK ?? 5), model: `${endpoint}-model@1`, variant: 'primary' };
  }
}
