/**
 * Progress of long-running background work that the dashboard draws as bars and /metrics exports
 * as gauges. Hint replay and repair report through their services; range streaming registers a
 * provider (MovementManager.streamProgress, src/streaming/manager.ts).
 */

/** One range-streaming session with one peer, as the elasticity work will report it. */
export interface StreamProgress {
  /** Stable id of the movement this stream belongs to (e.g. `join-<node>-<generation>`). */
  id: string;
  /** join | decommission | removenode | replace | … */
  operation: string;
  peer: string;
  direction: 'in' | 'out';
  bytesDone: number;
  bytesTotal: number;
  rangesDone: number;
  rangesTotal: number;
}

/** Called at scrape time and once a second while a dashboard is open: must be cheap and synchronous. */
export type StreamingProvider = () => readonly StreamProgress[];

export const NO_STREAMS: StreamingProvider = () => [];
