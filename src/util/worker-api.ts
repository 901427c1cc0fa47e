/**
 * A worker's comlink API whose calls fail when the worker dies (the shard and hints actors' control
 * planes, issue 12). comlink matches an answer to its call by id and otherwise waits forever: a
 * worker that exits (a crash, `terminate()`) would leave every caller hanging. So this keeps the
 * calls in flight, and whoever watches the worker (its 'error' and 'exit' events) fails them all
 * with `failAll`; a call made after that fails at once with the same error.
 */
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { wrap, type Remote } from 'comlink';
import { portEndpoint } from './comlink-port.js';

export class WorkerApi<Api> {
  private readonly inFlight = new Set<(e: Error) => void>();
  private readonly remote: Remote<Api>;
  private failure: Error | undefined;

  private constructor(private readonly port: MessagePort) {
    this.remote = wrap<Api>(portEndpoint(port));
  }

  /**
   * A dedicated channel for a worker's API: `workerPort` goes to the worker (in its workerData, and
   * in the Worker's transferList), which exposes the API on it with `expose(api, portEndpoint(port))`.
   */
  static channel<Api>(): { api: WorkerApi<Api>; workerPort: MessagePort } {
    const { port1, port2 } = new MessageChannel();
    return { api: new WorkerApi<Api>(port1), workerPort: port2 };
  }

  /** Calls sent and not answered yet (callers bound it: it is part of their queue depth). */
  get size(): number {
    return this.inFlight.size;
  }

  /** One call on the remote API; rejected with the worker's failure if it dies before answering. */
  call<T>(fn: (api: Remote<Api>) => Promise<T>): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<T>((resolve, reject) => {
      this.inFlight.add(reject);
      fn(this.remote).then(
        (v) => {
          this.inFlight.delete(reject);
          resolve(v);
        },
        (e: unknown) => {
          this.inFlight.delete(reject);
          reject(e instanceof Error ? e : new Error(String(e)));
        },
      );
    });
  }

  /** The worker died: fail every call in flight, and every later one, with `e` (the first failure wins). */
  failAll(e: Error): void {
    this.failure ??= e;
    const rejects = [...this.inFlight];
    this.inFlight.clear();
    for (const reject of rejects) reject(this.failure);
  }

  /** Close this side of the channel (after the worker is done with it). */
  close(): void {
    this.port.close();
  }
}
