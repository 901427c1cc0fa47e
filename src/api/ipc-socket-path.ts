/**
 * The IPC socket path: claiming it (a stale file left by a crashed node is removed, a live owner
 * refuses) and its length limit. The listener itself is `listenIpc` in ipc-server.ts.
 */
import { lstat, unlink } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { RingkvError } from '../util/errors.js';

/** Is something accepting connections on this socket path? */
function probeSocket(path: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ path });
    const t = setTimeout(() => {
      s.destroy();
      resolve(true); // it exists and did not refuse: assume a live but busy owner
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(t);
      s.destroy();
      resolve(true);
    });
    s.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(t);
      s.destroy();
      if (e.code === 'ECONNREFUSED' || e.code === 'ENOENT') resolve(false);
      else if (e.code === 'EAGAIN') resolve(true); // backlog full: very much alive
      else reject(e);
    });
  });
}

/** Remove a stale socket file left by a crashed node; refuse if a live server still answers on it. */
export async function claimSocketPath(path: string): Promise<void> {
  let st;
  try {
    st = await lstat(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  if (!st.isSocket()) throw new RingkvError('conflict', `${path} exists and is not a socket; refusing to replace it`);
  if (await probeSocket(path, 1000)) throw new RingkvError('conflict', `another ringkv node owns ${path}`);
  try {
    await unlink(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

// sun_path is 108 bytes on Linux (104 on macOS) including the terminating NUL.
export const MAX_SOCKET_PATH_BYTES = process.platform === 'linux' ? 107 : 103;
