/**
 * Structured cluster events: one info-level log line each, with `event` naming what happened and the
 * facts as fields, so `ringkv` logs tell the cluster's story without debug level and a log pipeline
 * can select them by `event` (e.g. `jq 'select(.event == "node.down")'`).
 *
 * Names are `area.what`; add new ones to EventName (range movements will add `range.*` steps).
 */
import type { Logger } from './logger.js';

export type EventName =
  /** The failure detector's verdict flipped: `{ peer, phi }`. */
  | 'node.up'
  | 'node.down'
  /** A new ring was published: `{ digest, nodes, tokens }`. */
  | 'ring.published'
  /** A hint replay pass to `target` started / ended: `{ target, pending }` / `{ target, sent, failed, expired, ms, error }`. */
  | 'hints.replay.start'
  | 'hints.replay.end'
  /** A repair session ended: its report's counters, `{ trigger, ... }`. */
  | 'repair.session'
  /** Range movement steps (join, decommission, removenode): `{ range, from, to, step, ... }`. */
  | `range.${string}`;

/** Scalar fields only, so every event stays one short line. */
export type EventFields = Record<string, string | number | boolean | null | undefined | readonly string[]>;

/** Log one structured event at info level: `{"event":"node.down","peer":"n3","phi":9.1,"msg":"node.down"}`. */
export function logEvent(log: Logger, event: EventName, fields: EventFields = {}): void {
  log.info({ event, ...fields }, event);
}
