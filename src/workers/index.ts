/**
 * The workers area: one task interface, three ways to run tasks. Inline (this process, one at a
 * time), a local pool of worker processes, or BullMQ on Redis with `kennel worker` processes on
 * any number of machines, sharing an S3 artifact store (or one KENNEL_HOME over a network file system). Areas define task types (see
 * src/training/tasks.ts) and submit them through an Engine.
 *
 * The Redis backend is imported on demand, so commands that never use a queue do not load
 * BullMQ.
 */
import { availableParallelism } from 'node:os';
import type { ArtifactStore } from '../store/index.js';
import type { Engine, WorkerInfo } from './engine.js';
import { InlineEngine } from './inline.js';
import { LocalPool } from './local-pool.js';
import { localWorkers } from './presence.js';
import type { RedisConnection, RedisWorker, RedisWorkerOptions } from './redis.js';
export { PoisonedTaskError, type Backend, type Engine, type TaskDone, type TaskEvent, type WorkerInfo } from './engine.js';
export { defineTask, registerTaskTypes, requireArtifacts, runnableModule, type Task, type TaskType } from './task.js';
export { InlineEngine } from './inline.js';
export { LocalPool } from './local-pool.js';
export { parseQueueUrl } from './queue-url.js';
export type { RedisConnection } from './redis.js';
export interface EngineOptions {
  /** local worker processes, or tasks in flight on Redis; 1 without a queue runs in this process */
  instances: number;
  /** redis:// URL: run tasks on `kennel worker` processes through BullMQ */
  queue?: string;
  home: string;
  artifacts: ArtifactStore;
  /** modules that define the task types to run (each exports `tasks`) */
  taskModules: string[];
  /** execution provider the tasks use, for `workers list` */
  device: string;
  /** tasks one inline engine (one instance, no queue) runs at once; default 1 */
  inlineConcurrency?: number;
}

/** The engine for a run: Redis when a queue is given, else local processes for more than one instance, else inline. */
export async function createEngine(o: EngineOptions): Promise<Engine> {
  if (o.queue) {
    const { RedisEngine } = await import('./redis.js');
    return new RedisEngine({ url: o.queue, concurrency: o.instances });
  }
  if (o.instances > 1) return new LocalPool({ workers: o.instances, home: o.home, taskModules: o.taskModules, device: o.device });
  return new InlineEngine({ home: o.home, artifacts: o.artifacts, threads: availableParallelism(), taskModules: o.taskModules, concurrency: o.inlineConcurrency });
}

/** Starts a `kennel worker` on a Redis queue; it runs until closed. */
export async function startRedisWorker(o: RedisWorkerOptions): Promise<RedisWorker> {
  const { RedisWorker } = await import('./redis.js');
  return RedisWorker.start(o);
}

/** A Redis connection for another area's BullMQ queues (asynchronous inference), with the workers' URL checks and reconnection rules. */
export async function openRedis(url: string): Promise<RedisConnection> {
  const { openRedis } = await import('./redis.js');
  return openRedis(url);
}

/** Live workers: local pools of this workspace, plus the workers of a queue when one is given. */
export async function listWorkers(o: { home: string; queue?: string }): Promise<WorkerInfo[]> {
  const local = localWorkers(o.home);
  if (!o.queue) return local;
  const { listRedisWorkers } = await import('./redis.js');
  return [...local, ...(await listRedisWorkers(o.queue))];
}
