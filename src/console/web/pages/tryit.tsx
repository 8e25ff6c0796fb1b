import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, useApi } from '../api';
import { Bars } from '../charts';
import { ms, pct } from '../format';
import { Card, Empty, ErrorBox, Facts, Field, Link, Loaded, Loading, Logo, Page, Select } from '../ui';
import type { Endpoint } from './endpoints';

interface Answer {
  predictions: Array<{ label: string; index: number; score: number }>;
  model: string;
  variant: string;
  replica: string;
  latencyMs: number;
  source?: { url: string; contentType: string; bytes: number; fetchMs: number };
  /** the heat map of the best class over the photo as the model saw it (asked with ?explain=true) */
  explanation?: { format: 'png'; data: string; class: string; method: 'cam' | 'occlusion'; exact: boolean; cost: string };
}

/** Classify a photo (dropped, chosen, or fetched from a URL by the daemon's SSRF-safe fetcher) with an endpoint. */
export function TryIt(props: { endpoint?: string }) {
  const state = useApi<{ endpoints: Endpoint[] }>('/api/endpoints');
  return (
    <Page title="Try it" subtitle="Drop or choose a dog photo, or paste an image URL, and see the top-5 breeds.">
      <Loaded state={state}>
        {({ endpoints }) =>
          endpoints.length === 0 ? (
            <Card>
              <Empty title="There is no endpoint to ask yet.">
                <p>
                  <Link to="/endpoints">Create an endpoint</Link> for a model first.
                </p>
              </Empty>
            </Card>
          ) : (
            <Classifier endpoints={endpoints} initial={props.endpoint} />
          )
        }
      </Loaded>
    </Page>
  );
}

function Classifier(props: { endpoints: Endpoint[]; initial?: string }) {
  const [endpoint, setEndpoint] = useState(props.endpoints.find((e) => e.name === props.initial)?.name ?? props.endpoints[0]!.name);
  const [url, setUrl] = useState('');
  const [preview, setPreview] = useState<string | undefined>();
  const [dragging, setDragging] = useState(false);
  const [busy, setBusy] = useState(false);
  const [answer, setAnswer] = useState<(Answer & { roundTripMs: number }) | undefined>();
  const [error, setError] = useState<ApiError | undefined>();
  const [explain, setExplain] = useState(true);
  useEffect(() => () => preview && URL.revokeObjectURL(preview), [preview]);
  // on a phone the answer is below the photo: bring it into view
  useEffect(() => {
    if (answer || error) document.getElementById('answer')?.scrollIntoView({ block: 'nearest' });
  }, [answer, error]);

  const classify = async (body: Blob | { url: string }) => {
    setBusy(true);
    setError(undefined);
    setAnswer(undefined);
    const t = performance.now();
    try {
      const a = await api<Answer>('POST', `/api/endpoints/${encodeURIComponent(endpoint)}/invocations${explain ? '?explain=true' : ''}`, body);
      setAnswer({ ...a, roundTripMs: performance.now() - t });
    } catch (e) {
      setError(e as ApiError);
    } finally {
      setBusy(false);
    }
  };
  const pick = (file: File | undefined) => {
    if (!file) return;
    if (!file.type.startsWith('image/') && file.type !== '') {
      setError(new ApiError(`${file.name} is not an image (${file.type}).`, 400, 'not_image', 'Choose a JPEG, PNG, WebP, GIF, TIFF or AVIF photo.'));
      return;
    }
    setPreview(URL.createObjectURL(file));
    void classify(file);
  };
  const selected = props.endpoints.find((e) => e.name === endpoint);
  return (
    <div class="tryit">
      <Card title="Image">
        <Field label="Endpoint">
          <Select
            name="endpoint"
            value={endpoint}
            options={props.endpoints.map((e) => [e.name, `${e.name} (${e.variants.map((v) => v.model).join(', ')})${e.status !== 'in_service' ? ` · ${e.status.replace(/_/g, ' ')}` : ''}`])}
            onChange={setEndpoint}
          />
        </Field>
        <div
          class={`drop ${dragging ? 'over' : ''}`}
          onDragOver={(e) => {
            e.preventDefault();
            setDragging(true);
          }}
          onDragLeave={() => setDragging(false)}
          onDrop={(e) => {
            e.preventDefault();
            setDragging(false);
            pick(e.dataTransfer?.files[0]);
          }}
        >
          {preview ? <img src={preview} alt="The photo being classified" /> : <Logo class="drop-icon" />}
          <label class="button primary">
            Choose a photo
            <input type="file" name="photo" accept="image/*" class="sr-only" onChange={(e) => pick(e.currentTarget.files?.[0])} />
          </label>
          <span class="hint">or drop one here</span>
        </div>
        <label class="check">
          <input type="checkbox" name="explain" checked={explain} onChange={(e) => setExplain(e.currentTarget.checked)} /> Show where the model looked (a heat map of the top breed)
        </label>
        <form
          class="url-form"
          onSubmit={(e) => {
            e.preventDefault();
            setPreview(undefined);
            void classify({ url: url.trim() });
          }}
        >
          <Field label="…or an image URL" hint="Fetched by the daemon: https only, public addresses only, 10 MiB at most" wide>
            <input type="url" name="url" placeholder="https://example.com/dog.jpg" required value={url} onInput={(e) => setUrl(e.currentTarget.value)} />
          </Field>
          <button type="submit" disabled={busy}>
            Classify URL
          </button>
        </form>
      </Card>
      <Card title="Top-5 breeds">
        <div id="answer" aria-live="polite" aria-busy={busy}>
          {busy && <Loading label="Classifying…" />}
          {error && <ErrorBox error={error} />}
          {!busy && !error && !answer && <Empty title={selected?.status === 'in_service' ? 'Choose a photo to see what the model thinks.' : `Endpoint ${endpoint} is ${selected?.status.replace(/_/g, ' ')}: the first answer may take a moment.`} />}
          {answer && (
            <>
              <p class="top-breed">
                <span class="muted">Most likely</span> <strong id="top-breed">{answer.predictions[0]?.label}</strong> <span class="score">{pct(answer.predictions[0]?.score)}</span>
              </p>
              <Bars
                title="Scores"
                max={1}
                format={(v) => pct(v)}
                rows={answer.predictions.map((p) => ({ key: p.label, label: p.label, parts: [{ value: p.score, series: 0, name: p.label }] }))}
              />
              {answer.explanation && (
                <figure class="explanation">
                  <img id="explanation" src={`data:image/png;base64,${answer.explanation.data}`} alt={`Where the model saw ${answer.explanation.class}: a heat map over the photo as the model saw it`} />
                  <figcaption class="muted">
                    {answer.explanation.method === 'cam' ? 'Class activation map (exact for this model): red where the photo speaks for ' : 'Occlusion sensitivity (this model has no exact map; 49 extra passes): red where hiding the photo lowers '}
                    {answer.explanation.class}. The photo is shown resized and centre-cropped, as the model saw it.
                  </figcaption>
                </figure>
              )}
              <Facts
                items={[
                  ['Latency', `${ms(answer.latencyMs)} in the endpoint, ${ms(answer.roundTripMs)} from this browser`],
                  ['Model', `${answer.model} (variant ${answer.variant}, replica ${answer.replica})`],
                  ...(answer.source ? ([['Fetched', `${answer.source.url} (${answer.source.contentType}, ${Math.round(answer.source.bytes / 1024)} KiB in ${ms(answer.source.fetchMs)})`]] as Array<[string, string]>) : []),
                ]}
              />
            </>
          )}
        </div>
      </Card>
    </div>
  );
}
