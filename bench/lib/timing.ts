import { cpuUsage } from 'node:process';

export interface Timed<T> {
  value: T;
  seconds: number;
  /** CPU time of this process (all threads) over the same interval */
  cpuSeconds: number;
}

/**
 * Wall and CPU time of one async call. cpuSeconds / seconds is how many cores the process got:
 * on a shared machine a low figure means other work took the CPU, not that the code idled.
 */
export async function timed<T>(fn: () => Promise<T>): Promise<Timed<T>> {
  const cpu0 = cpuUsage();
  const t0 = performance.now();
  const value = await fn();
  const seconds = (performance.now() - t0) / 1000;
  const cpu = cpuUsage(cpu0);
  return { value, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
}

/** Calls `step` (which returns the work units it did) until `minSeconds` have passed, after `warmup` calls. */
export async function repeatFor(minSeconds: number, step: () => Promise<number>, warmup = 1): Promise<{ units: number; calls: number; seconds: number; cpuSeconds: number }> {
  for (let i = 0; i < warmup; i++) await step();
  const r = await timed(async () => {
    let units = 0;
    let calls = 0;
    const t0 = performance.now();
    do {
      units += await step();
      calls++;
    } while ((performance.now() - t0) / 1000 < minSeconds);
    return { units, calls };
  });
  return { ...r.value, seconds: r.seconds, cpuSeconds: r.cpuSeconds };
}

/** cores' worth of CPU the process used: cpuSeconds / seconds */
export const coresUsed = (t: { seconds: number; cpuSeconds: number }): number => (t.seconds > 0 ? t.cpuSeconds / t.seconds : 0);
