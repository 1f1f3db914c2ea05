// vnrit e2e: a tiny stand-in server that serves web/ from disk. Without `onSocket` it refuses
// the signalling WebSocket and records every attempt, so tests can check the page's reconnect
// schedule without the real server; with `onSocket` it hands accepted sockets to the test.

import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { join, normalize } from 'node:path';
import { WebSocketServer } from 'ws';
import { ROOT } from './harness.mjs';

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css' };

/**
 * Starts the stand-in on 127.0.0.1 (random port).
 * @param {{apiStatus?: number, onSocket?: (ws: import('ws').WebSocket) => void}} [opts]
 *   apiStatus: answered on /api/stats and on refused /ws upgrades; onSocket: accept /ws
 * @returns {Promise<{base: string, wsAttempts: number[], close: () => Promise<void>}>}
 */
export async function startStaticServer({ apiStatus = 404, onSocket } = {}) {
  const wss = onSocket ? new WebSocketServer({ noServer: true }) : null;
  const webDir = join(ROOT, 'web');
  const wsAttempts = [];
  const server = createServer(async (req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    if (path === '/api/stats' || path === '/ws') {
      res.writeHead(apiStatus, { 'content-type': 'text/plain' }).end('not here\n');
      return;
    }
    const file = normalize(path === '/' ? '/index.html' : path);
    const type = TYPES[file.slice(file.lastIndexOf('.'))];
    try {
      if (!type || file.includes('..')) throw new Error('not served');
      const body = await readFile(join(webDir, file));
      res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store' }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  server.on('upgrade', (req, socket) => {
    wsAttempts.push(Date.now());
    if (wss && new URL(req.url, 'http://x').pathname === '/ws') {
      wss.handleUpgrade(req, socket, Buffer.alloc(0), onSocket);
      return;
    }
    socket.end(`HTTP/1.1 ${apiStatus} Refused\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  return {
    base: `http://127.0.0.1:${port}`,
    wsAttempts,
    close: () =>
      new Promise((r) => {
        for (const client of wss?.clients ?? []) client.terminate();
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
