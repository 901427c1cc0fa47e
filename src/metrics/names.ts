/**
 * Prometheus naming rules for every metric ringkv exports (https://prometheus.io/docs/practices/naming/),
 * checked when a metric is registered, so a badly named metric fails the node's start (and the unit
 * test) instead of reaching a dashboard.
 */

export type MetricKind = 'counter' | 'gauge' | 'histogram' | 'summary';

export const METRIC_PREFIX = 'ringkv_';

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
/** Suffixes Prometheus itself appends to histogram and summary series. */
const RESERVED_SUFFIXES = ['_bucket', '_count', '_sum'];
/** Units that are not base units: Prometheus wants seconds and bytes. */
const NON_BASE_UNITS = /(^|_)(ms|millis|milliseconds|us|micros|microseconds|ns|nanoseconds|minutes|hours|days|kb|kib|mb|mib|gb|gib|kilobytes|megabytes|gigabytes|percent)(_|$)/;
/** A time or size word without its base unit at the end, e.g. `_latency` or `_duration` alone. */
const TIME_WORDS = /(^|_)(latency|duration|time|delay|lag|age|uptime)$/;

/**
 * What is wrong with a metric name (empty when nothing): the `ringkv_` prefix, lowercase snake
 * case, `_total` exactly on counters, base units (seconds, bytes), no reserved suffixes, and valid
 * label names (`le` is reserved for histogram buckets, `quantile` for summaries).
 */
export function metricNameProblems(name: string, kind: MetricKind, labelNames: readonly string[] = []): string[] {
  const out: string[] = [];
  if (!NAME.test(name)) out.push(`${name}: not a valid Prometheus metric name`);
  if (!name.startsWith(METRIC_PREFIX)) out.push(`${name}: must start with ${METRIC_PREFIX}`);
  if (name !== name.toLowerCase()) out.push(`${name}: must be lowercase snake_case`);
  if (name.includes(':')) out.push(`${name}: colons are reserved for recording rules`);
  if (/__/.test(name) || name.endsWith('_')) out.push(`${name}: empty word (double or trailing underscore)`);
  if (kind === 'counter' && !name.endsWith('_total')) out.push(`${name}: a counter's name must end in _total`);
  if (kind !== 'counter' && name.endsWith('_total')) out.push(`${name}: only counters end in _total`);
  for (const s of RESERVED_SUFFIXES) if (name.endsWith(s)) out.push(`${name}: ${s} is a suffix Prometheus adds itself`);
  if (NON_BASE_UNITS.test(name)) out.push(`${name}: use base units (seconds, bytes)`);
  const stem = name.replace(/_total$/, '');
  if (TIME_WORDS.test(stem)) out.push(`${name}: say the unit (…_seconds)`);
  for (const l of labelNames) {
    if (!LABEL.test(l)) out.push(`${name}: label ${JSON.stringify(l)} is not a valid label name`);
    if (l.startsWith('__')) out.push(`${name}: label ${l}: names starting with __ are reserved`);
    if (l === 'le' && kind === 'histogram') out.push(`${name}: label le is reserved for histogram buckets`);
    if (l === 'quantile' && kind === 'summary') out.push(`${name}: label quantile is reserved for summaries`);
  }
  return out;
}
