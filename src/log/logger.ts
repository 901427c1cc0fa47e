import { pino, type Logger } from 'pino';

export type { Logger };
export type LogFormat = 'json' | 'pretty' | 'auto';

/**
 * Structured logs: one JSON object per line (for collectors) or a readable coloured mode for people
 * at a terminal. `auto` picks pretty only when stdout is a TTY, so logs piped to files stay JSON.
 */
export function createLogger(opts: { level: string; format: LogFormat; nodeId?: string }): Logger {
  const pretty = opts.format === 'pretty' || (opts.format === 'auto' && process.stdout.isTTY === true);
  const base = opts.nodeId ? { node: opts.nodeId } : {};
  if (pretty) {
    return pino({
      level: opts.level,
      base,
      transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } },
    });
  }
  return pino({ level: opts.level, base, timestamp: pino.stdTimeFunctions.isoTime });
}
