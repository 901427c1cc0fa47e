/**
 * The cluster secret: where it comes from, and "protected mode" when there is none.
 *
 * Every peer-port connection (nodes and remote clients) proves the secret. A node started without
 * one uses the public development secret, so it must not be reachable from other hosts: like
 * Redis's protected mode, it listens on loopback only and refuses any other address, saying how to
 * set a secret. The HTTP API has no authentication of its own, so the same rule covers it, and with
 * a secret, HTTP requests from other hosts must carry it (`Authorization: Bearer <secret>`).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** What a node without a configured secret uses: public, so such a node listens on loopback only. */
export const DEV_SECRET = 'ringkv-dev-secret';

/** The environment variable a secret may come from (for nodes and for the CLI's client commands). */
export const SECRET_ENV = 'RINGKV_SECRET';

/** A new random secret: 32 bytes, base64url (43 characters). */
export function generateSecret(): string {
  return randomBytes(32).toString('base64url');
}

export class SecretFileError extends Error {}

/** The secret kept in `file` (surrounding whitespace, e.g. a final newline, is not part of it). */
export function readSecretFile(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new SecretFileError(`cannot read secret file ${file}: ${(e as Error).message}`);
  }
  const secret = text.trim();
  if (secret === '') throw new SecretFileError(`secret file ${file} is empty`);
  return secret;
}

/** Does `host` (an address to listen on, or a peer's address) name this machine's loopback only? */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h === '::1') return true;
  const v4 = /^(?:::ffff:)?(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(h);
  return v4 !== null && v4[1] === '127' && v4.slice(1).every((o) => Number(o) <= 255);
}

/** The refusal a node without a secret gives for a non-loopback listen address. */
export function protectedModeMessage(what: 'peer port' | 'HTTP API', address: string): string {
  const risk = what === 'peer port' ? 'read and write data and join the cluster as a node' : 'read and write data';
  return (
    `refusing to listen on ${address} (${what}) without a cluster secret: anyone who can reach it could ${risk}. ` +
    `Set a secret (\`ringkv secret\` prints a new one) with --secret-file FILE, ` +
    `the ${SECRET_ENV} environment variable, or cluster.secret / cluster.secretFile in the config file; ` +
    `or listen on 127.0.0.1 only. See "Securing a node" in the README.`
  );
}
