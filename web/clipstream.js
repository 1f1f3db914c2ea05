// vnrit viewer: clipboard contents too large for one message, as chunk streams (input wire
// format version 3, see src/input/wire/mod.rs and docs/protocol.md):
//   ["cbb",id,type,size]  begin: `size` bytes of `type` ('text/plain' UTF-8, 'image/png')
//   ["cbp",id,seq,base64] part `seq` (0, 1, ...) of at most CHUNK_BYTES bytes
//   ["cbe",id]            end
// One stream at a time each way: a new `cbb` cancels the one before. Sending paces itself to
// the transport (data channel or WebSocket), so megabytes are never queued at once.

/** The first input protocol version with chunk streams. */
export const CHUNK_VERSION = 3;
/** Bytes of content per part (the server's CHUNK_BYTES; base64 of it fits in a message). */
export const CHUNK_BYTES = 45000;
/** Largest text sent as one `cb` message, in UTF-8 bytes (the server's MAX_CLIPBOARD_BYTES). */
export const MAX_SMALL_TEXT = 60000;
/** Largest image sent as one `ci` message, in bytes (the server's MAX_IMAGE_BYTES). */
export const MAX_SMALL_IMAGE = 45000;
/** Largest stream the page accepts from a server (the server's own ceiling). */
const MAX_RECEIVE = 256 * 1024 * 1024;
/** Unsent bytes on the transport beyond which sending waits. */
const BACKLOG_BYTES = 1024 * 1024;
/** How often a waiting sender looks at the backlog again, in ms. */
const BACKLOG_POLL_MS = 10;
/** How long a sender waits for the backlog to drain before giving up, in ms. */
const BACKLOG_TIMEOUT_MS = 30000;

/** Base64 of `bytes` (in slices: String.fromCharCode takes a bounded number of arguments). */
export function toBase64(bytes) {
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(bin);
}

/** The bytes of base64 text. */
export function fromBase64(b64) {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

let nextId = 1;
/** The stream being sent (a newer one stops it). */
let sending = 0;

/**
 * Sends `bytes` as a chunk stream.
 * @param {(text: string) => boolean} send delivers one message; false when nothing is connected
 * @param {() => number} backlog bytes the transport has not sent yet
 * @param {string} type 'text/plain' or 'image/png'
 * @param {Uint8Array} bytes
 * @param {(sent: number) => void} [progress] bytes sent so far, after each part
 * @param {() => string|null} [refused] why the server refused the stream meanwhile, if it did
 * @returns {Promise<string|null>} null when all was sent, else why not
 */
export async function sendStream(send, backlog, type, bytes, progress, refused) {
  const id = nextId++;
  sending = id;
  if (!send(JSON.stringify(['cbb', id, type, bytes.length]))) return 'not connected, or this viewer has no control';
  for (let seq = 0, at = 0; at < bytes.length; seq++, at += CHUNK_BYTES) {
    const since = Date.now();
    while (backlog() > BACKLOG_BYTES) {
      if (Date.now() - since > BACKLOG_TIMEOUT_MS) return 'the connection stalled';
      await new Promise((resolve) => setTimeout(resolve, BACKLOG_POLL_MS));
    }
    if (sending !== id) return 'replaced by a newer copy';
    const why = refused?.();
    if (why) return why;
    const part = toBase64(bytes.subarray(at, at + CHUNK_BYTES));
    if (!send(JSON.stringify(['cbp', id, seq, part]))) return 'the connection was lost';
    progress?.(Math.min(bytes.length, at + CHUNK_BYTES));
  }
  if (!send(JSON.stringify(['cbe', id]))) return 'the connection was lost';
  return null;
}

/** Puts chunk streams from the server back together. */
export class StreamReceiver {
  /**
   * @param {(type: string, bytes: Uint8Array) => void} onContent a whole content arrived
   * @param {(why: string) => void} onError a stream was broken (nothing of it is kept)
   */
  constructor(onContent, onError) {
    this.onContent = onContent;
    this.onError = onError;
    this.current = null;
  }

  /**
   * Takes one `cbb`, `cbp` or `cbe` message.
   * @param {string} type the message type
   * @param {any[]} args its fields after the type
   */
  handle(type, args) {
    const [id] = args;
    if (type === 'cbb') {
      const [, kind, size] = args;
      this.current = null;
      if (!Number.isSafeInteger(size) || size < 1 || size > MAX_RECEIVE) return;
      this.current = { id, kind: String(kind), buf: new Uint8Array(size), at: 0, seq: 0 };
      return;
    }
    const s = this.current;
    if (!s || s.id !== id) return;
    if (type === 'cbp') {
      const [, seq, b64] = args;
      let bytes = null;
      try {
        bytes = typeof b64 === 'string' ? fromBase64(b64) : null;
      } catch {
        bytes = null;
      }
      if (seq !== s.seq || !bytes || s.at + bytes.length > s.buf.length) {
        this.#fail(`part ${seq} is out of order or too large`);
        return;
      }
      s.buf.set(bytes, s.at);
      s.at += bytes.length;
      s.seq += 1;
    } else if (type === 'cbe') {
      this.current = null;
      if (s.at !== s.buf.length) this.onError(`${s.at} of ${s.buf.length} bytes arrived`);
      else this.onContent(s.kind, s.buf);
    }
  }

  #fail(why) {
    this.current = null;
    this.onError(why);
  }
}
