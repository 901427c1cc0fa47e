/**
 * comlink over a worker_threads MessagePort. comlink speaks the DOM's MessagePort interface
 * (addEventListener with `{ data }` events); Node's ports emit 'message' with the data itself.
 * This is comlink's own node adapter (dist/esm/node-adapter.mjs), typed for our strict build.
 */
import type { MessagePort, TransferListItem } from 'node:worker_threads';
import type { Endpoint } from 'comlink';

type Listener = Parameters<Endpoint['addEventListener']>[1];
interface HandlerObject {
  handleEvent(ev: { data: unknown }): void;
}

export function portEndpoint(port: MessagePort): Endpoint {
  const listeners = new WeakMap<object, (data: unknown) => void>();
  return {
    postMessage: (message: unknown, transfer?: Parameters<Endpoint['postMessage']>[1]) => port.postMessage(message, transfer as unknown as TransferListItem[] | undefined),
    addEventListener: (_type: string, h: Listener) => {
      const l = (data: unknown): void => {
        if (typeof h === 'function') (h as (ev: { data: unknown }) => void)({ data });
        else (h as unknown as HandlerObject).handleEvent({ data });
      };
      port.on('message', l);
      listeners.set(h as object, l);
    },
    removeEventListener: (_type: string, h: Listener) => {
      const l = listeners.get(h as object);
      if (!l) return;
      port.off('message', l);
      listeners.delete(h as object);
    },
    start: () => port.start(),
  };
}
