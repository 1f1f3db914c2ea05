// vnrit viewer: large clipboard contents as chunk streams (protocol v3, docs/protocol.md;
// the messages are wire.js's).

import * as wire from './wire.js';

export function toBase64(bytes) {
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}

export const fromBase64 = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));

let nextId = 1;
let sending = 0;

// Sends `bytes` of `type` as a stream, waiting while backlog() (unsent bytes) is over 1 MiB;
// refused() says why the server refused it meanwhile. Null when sent, else why not.
export async function sendStream(send, backlog, type, bytes, progress, refused) {
  const id = nextId++;
  sending = id;
  if (!send(wire.chunkBegin(id, type, bytes.length))) return 'not connected, or no control';
  for (let seq = 0, at = 0; at < bytes.length; seq++, at += wire.CHUNK_BYTES) {
    for (const since = Date.now(); backlog() > 1 << 20; ) {
      if (Date.now() - since > 30000) return 'stalled';
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    if (sending !== id) return 'replaced by a newer copy';
    const why = refused();
    if (why) return why;
    if (!send(wire.chunkPart(id, seq, toBase64(bytes.subarray(at, at + wire.CHUNK_BYTES))))) return 'connection lost';
    progress(Math.min(bytes.length, at + wire.CHUNK_BYTES));
  }
  return send(wire.chunkEnd(id)) ? null : 'connection lost';
}

/** Puts the server's streams back together. */
export class StreamReceiver {
  constructor(onContent, onError) {
    Object.assign(this, { onContent, onError, s: null });
  }

  /** One parsed `cbb` (a: type, b: size), `cbp` (a: seq, b: base64) or `cbe`. */
  handle({ type, id, a, b }) {
    if (type === 'cbb') {
      const ok = Number.isSafeInteger(b) && b > 0 && b <= 256 * 1024 * 1024;
      this.s = ok ? { id, kind: String(a), buf: new Uint8Array(b), at: 0, seq: 0 } : null;
      return;
    }
    const s = this.s;
    if (!s || s.id !== id) return;
    if (type === 'cbe') {
      this.s = null;
      if (s.at === s.buf.length) this.onContent(s.kind, s.buf);
      else this.onError(`${s.at} of ${s.buf.length} bytes arrived`);
      return;
    }
    let bytes = null;
    try {
      bytes = typeof b === 'string' ? fromBase64(b) : null;
    } catch {}
    if (a !== s.seq || !bytes || s.at + bytes.length > s.buf.length) {
      this.s = null;
      this.onError(`part ${a} out of order or too large`);
      return;
    }
    s.buf.set(bytes, s.at);
    s.at += bytes.length;
    s.seq += 1;
  }
}
