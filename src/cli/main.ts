import { Command, InvalidArgumentError, Option } from 'commander';
import { ConfigError, loadConfigFile, resolveConfig, type ConfigOverrides } from '../config/config.js';
import { generateSecret } from '../config/secret.js';
import { createLogger } from '../log/logger.js';
import { startNode, StartupAborted } from '../node/node.js';
import { StorageError } from '../storage/db.js';
import { RingkvError } from '../util/errors.js';
import { registerLocalCluster } from './local-cluster.js';
import { registerStatus } from './status.js';
import { registerDataCommands } from './data-commands.js';
import { registerBench } from './bench.js';
import { registerRepair } from './repair.js';
import { registerCrdtCommands } from './crdt-commands.js';
import { registerQueryCommands } from './query-commands.js';
import { registerMovementCommands } from './movements.js';
import { gcFlagsMissing, NODE_PROCESS_FLAGS } from './process-flags.js';

/** How long a clean shutdown may take before the process exits anyway. */
const SHUTDOWN_TIMEOUT_MS = 15_000;

function intArg(name: string) {
  return (v: string): number => {
    if (!/^\d+$/.test(v)) throw new InvalidArgumentError(`${name} must be a positive integer`);
    return Number(v);
  };
}

const program = new Command();
program.name('ringkv').description('ringkv: a masterless, always-writeable distributed key-value store').version('0.1.0');

program
  .command('start')
  .description('start a node')
  .option('--config <file>', 'JSON config file (flags override it)')
  .option('--data <dir>', 'data directory (default ./data)')
  .option('--http <host:port>', 'HTTP API address (default 127.0.0.1:7070)')
  .option('--peer <host:port>', 'peer (gossip/replication) address (default 127.0.0.1:7000)')
  .option('--ipc <path>', 'IPC socket path (default <data>/ringkv.sock)')
  .option('--shards <n>', 'shard worker threads (fixed per data directory)', intArg('--shards'))
  .option('--node-id <id>', 'node id (default: generated once and kept in the data directory)')
  .option('--seeds <list>', 'comma-separated seed peers HOST:PORT,... to join a cluster', (v: string) => v.split(',').map((s) => s.trim()).filter(Boolean))
  .option('--secret <secret>', 'cluster secret (visible to other local users in the process list: prefer --secret-file or $RINGKV_SECRET)')
  .option('--secret-file <file>', 'read the cluster secret from this file (e.g. one written by `ringkv secret > FILE`)')
  .option('--cluster-name <name>', 'cluster name (overrides cluster.name); peers of another cluster are refused')
  .option('--rack <rack>', 'rack name (replicas are spread over racks)')
  .option('--replace <node-id>', 'on an empty data directory: take the place (tokens) of this dead node and stream its data')
  .addOption(new Option('--log-format <fmt>', 'log format').choices(['json', 'pretty', 'auto']))
  .option('--log-level <level>', 'log level (debug, info, warn, error)')
  .option('--test-mode', 'enable fault-injection endpoints for tests (never in production)')
  .action(async (opts: Record<string, unknown>) => {
    let config;
    try {
      const file = typeof opts['config'] === 'string' ? loadConfigFile(opts['config']) : undefined;
      const o: ConfigOverrides = {};
      if (opts['data'] !== undefined) o.dataDir = opts['data'] as string;
      if (opts['http'] !== undefined) o.http = opts['http'] as string;
      if (opts['peer'] !== undefined) o.peer = opts['peer'] as string;
      if (opts['ipc'] !== undefined) o.ipc = opts['ipc'] as string;
      if (opts['shards'] !== undefined) o.shards = opts['shards'] as number;
      if (opts['nodeId'] !== undefined) o.nodeId = opts['nodeId'] as string;
      if (opts['seeds'] !== undefined) o.seeds = opts['seeds'] as string[];
      if (opts['secret'] !== undefined) o.secret = opts['secret'] as string;
      if (opts['secretFile'] !== undefined) o.secretFile = opts['secretFile'] as string;
      if (opts['clusterName'] !== undefined) o.clusterName = opts['clusterName'] as string;
      if (opts['rack'] !== undefined) o.rack = opts['rack'] as string;
      if (opts['replace'] !== undefined) o.replace = opts['replace'] as string;
      if (opts['logFormat'] !== undefined) o.logFormat = opts['logFormat'] as 'json';
      if (opts['logLevel'] !== undefined) o.logLevel = opts['logLevel'] as string;
      if (opts['testMode'] === true) o.testMode = true;
      config = resolveConfig(file, o, process.env);
    } catch (e) {
      if (e instanceof ConfigError) {
        process.stderr.write(`ringkv: ${e.message}\n`);
        process.exit(2);
      }
      throw e;
    }
    const log = createLogger({ level: config.log.level, format: config.log.format });
    const missing = gcFlagsMissing();
    if (missing.length > 0) log.info({ missing }, 'started without the node flags ringkv measures best with (bin/ringkv.js and npm start pass them): node ' + NODE_PROCESS_FLAGS.join(' ') + ' bin/ringkv.js start ...');
    if (config.testMode) log.warn('TEST MODE: fault-injection endpoints are enabled');
    // Signals are handled from the first moment: a signal during startup aborts it (startNode closes
    // what it had started, at once even while waiting for seeds, and we exit 0), a second signal
    // exits at once, and a shutdown that hangs is cut after SHUTDOWN_TIMEOUT_MS.
    const startup = new AbortController();
    let node: Awaited<ReturnType<typeof startNode>> | undefined;
    let stopping: string | undefined;
    const shutdown = (): void => {
      const timer = setTimeout(() => {
        log.error({ timeoutMs: SHUTDOWN_TIMEOUT_MS }, 'shutdown did not finish in time; exiting');
        process.exit(1);
      }, SHUTDOWN_TIMEOUT_MS);
      timer.unref();
      node!.close().then(
        () => process.exit(0),
        (e: unknown) => {
          log.error({ err: e }, 'shutdown failed');
          process.exit(1);
        },
      );
    };
    const onSignal = (sig: string): void => {
      if (stopping) {
        log.warn({ signal: sig }, 'second signal: exiting now');
        process.exit(130);
      }
      stopping = sig;
      log.info({ signal: sig }, 'signal received');
      if (node) shutdown();
      else {
        // The same bound as a shutdown: undoing a half-done startup must not hang either.
        setTimeout(() => {
          log.error({ timeoutMs: SHUTDOWN_TIMEOUT_MS }, 'aborting the startup did not finish in time; exiting');
          process.exit(1);
        }, SHUTDOWN_TIMEOUT_MS).unref();
        startup.abort(sig);
      }
    };
    process.on('SIGINT', () => onSignal('SIGINT'));
    process.on('SIGTERM', () => onSignal('SIGTERM'));
    try {
      // A decommissioned node stops once it has left the ring.
      const onLeft = (): void => {
        if (stopping) return;
        stopping = 'left the ring';
        log.info('decommissioned: this node left the ring; stopping');
        if (node) shutdown();
      };
      node = await startNode(config, log, { signal: startup.signal, onLeft });
      if (stopping) shutdown();
    } catch (e) {
      if (e instanceof StartupAborted) {
        log.info(`${e.message}; stopped`);
        process.exit(0);
      }
      if (e instanceof StorageError || e instanceof ConfigError || e instanceof RingkvError) {
        log.error(e.message);
        process.stderr.write(`ringkv: ${e.message}\n`);
        process.exit(2);
      }
      const err = e as NodeJS.ErrnoException;
      if (err.code === 'EADDRINUSE') {
        process.stderr.write(`ringkv: address in use: ${err.message}\n`);
        process.exit(2);
      }
      if (/lock/i.test(err.message ?? '')) {
        process.stderr.write(`ringkv: data directory is in use by another process: ${err.message}\n`);
        process.exit(2);
      }
      throw e;
    }
  });

program
  .command('secret')
  .description('print a new random cluster secret (32 bytes, base64url): `ringkv secret > secret && chmod 600 secret`, then start nodes with --secret-file secret')
  .action(() => {
    console.log(generateSecret());
  });

registerLocalCluster(program);
registerStatus(program);
registerDataCommands(program);
registerBench(program);
registerRepair(program);
registerCrdtCommands(program);
registerQueryCommands(program);
registerMovementCommands(program);

await program.parseAsync(process.argv);
