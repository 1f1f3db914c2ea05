// vnrit viewer: the input wire format, version 3, page side (the table at the top of
// src/input/wire/mod.rs). This is the only module that knows it: every page->server message is
// built here, every server->page message is parsed here. A message is one JSON array whose
// first element names its type; positions are normalised to the picture, [0, 1].
// The session carries the text (the 'input' data channel, else the signalling WebSocket).

/** The input protocol version this page speaks. */
export const PROTOCOL_VERSION = 3;
/** Longest `code` or `key` field the server takes, in characters sent. */
const MAX_KEY_FIELD = 32;
/** Largest clipboard text the server takes, in bytes of UTF-8. */
export const MAX_CLIPBOARD_BYTES = 60000;
/** Largest text the type-text action takes, in bytes of UTF-8 (sent in several messages). */
export const MAX_TYPE_BYTES = 65536;
/** UTF-16 units per `tx` message: even escaped, a chunk stays under the server's 64 KiB. */
const TYPE_CHUNK_UNITS = 8000;
/** Largest wheel movement in one message, in notches. */
const MAX_WHEEL = 100;

const out = (msg) => JSON.stringify(msg);
const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
/** Positions to 1/100 000 of the picture: finer than any screen's pixel. */
const position = (v) => Math.round(clamp(v, 0, 1) * 1e5) / 1e5;
/** Wheel notches to 1/100. */
const notches = (v) => Math.round(clamp(v, -MAX_WHEEL, MAX_WHEEL) * 100) / 100;

/** `["v",n]`: the protocol version this page speaks (first message on a new channel). */
export const hello = () => out(['v', PROTOCOL_VERSION]);

/** `["kd"|"ku",code,key]`: KeyboardEvent.code and .key down or up. */
export const key = (code, key, down) =>
  out([down ? 'kd' : 'ku', code.slice(0, MAX_KEY_FIELD), key.slice(0, MAX_KEY_FIELD)]);

/** The position `move` sends for (x, y): clamped to the picture and rounded. */
export const movePosition = (x, y) => [position(x), position(y)];

/** `["m",x,y]`: the pointer to the normalised picture position (x, y). */
export const move = (x, y) => out(['m', ...movePosition(x, y)]);

/** `["mr",dx,dy]`: a relative move (pointer lock), in picture widths and heights. */
export const moveBy = (dx, dy) => out(['mr', clamp(dx, -1, 1), clamp(dy, -1, 1)]);

/** `["bd"|"bu",b]`: X button `b` (1 left, 2 middle, 3 right, 8 back, 9 forward) down or up. */
export const button = (b, down) => out([down ? 'bd' : 'bu', b]);

/** `["w",dx,dy]`: wheel notches (positive = down/right); null when it rounds to nothing. */
export function wheel(dx, dy) {
  const [x, y] = [notches(dx), notches(dy)];
  return x || y ? out(['w', x, y]) : null;
}

/** `["ra"]`: release every key and button this viewer holds. */
export const releaseAll = () => out(['ra']);

/** Bytes of UTF-8 in `text`. */
export const utf8Bytes = (text) => new TextEncoder().encode(text).length;

/** `["cb",text]`: the desktop's clipboard (the server refuses more than MAX_CLIPBOARD_BYTES). */
export const clipboard = (text) => out(['cb', text]);

/** `["ci","image/png",base64]`: a PNG image for the desktop's CLIPBOARD (version 2). */
export const clipboardImage = (base64) => out(['ci', 'image/png', base64]);

/** Largest `ci` image, and bytes per chunk-stream part (version 3, clipstream.js). */
export const MAX_IMAGE_BYTES = 45000;
export const CHUNK_BYTES = 45000;
/** `["cbb",id,type,size]`, `["cbp",id,seq,base64]`, `["cbe",id]`: a chunk stream. */
export const chunkBegin = (id, type, size) => out(['cbb', id, type, size]);
export const chunkPart = (id, seq, base64) => out(['cbp', id, seq, base64]);
export const chunkEnd = (id) => out(['cbe', id]);

/**
 * `["tx",text]` messages that type `text` (version 2), in order: several when it is long,
 * never splitting a surrogate pair.
 * @param {string} text
 * @returns {string[]}
 */
export function typeText(text) {
  const msgs = [];
  for (let i = 0; i < text.length; ) {
    let end = Math.min(text.length, i + TYPE_CHUNK_UNITS);
    if (end < text.length && /[\uD800-\uDBFF]/.test(text[end - 1])) end -= 1;
    msgs.push(out(['tx', text.slice(i, end)]));
    i = end;
  }
  return msgs;
}

/** `["txc"]`: cancel what this viewer's `tx` messages still have to type (version 2). */
export const cancelTyping = () => out(['txc']);

/** Whether `msg` (built here) may go out while this page does not have control. */
export const allowedWithoutControl = (msg) => msg === releaseAll() || msg.startsWith('["v"');

/** Whether `msg` (built here) presses a key or a button. */
export const isPress = (msg) => /^\["(kd|bd)"/.test(msg);

/** Whether `msg` (built here) is a release-all. */
export const isReleaseAll = (msg) => msg === releaseAll();

/**
 * Parses one server->page message.
 * @param {string} text
 * @returns {{type: 'cp', x: number, y: number}
 *   | {type: 'cs', shape: {serial: number, w: number, h: number, hx: number, hy: number, sw: number, sh: number, rgba: string|null}}
 *   | {type: 'cb', text: string} | {type: 'ci', mime: string, base64: string}
 *   | {type: 'err', message: string} | {type: 'v', version: number, maxClipboard: number}
 *   | {type: 'cbb'|'cbp'|'cbe', id: number, a: any, b: any} | null}
 *   null when it is not a message of a type this page knows (a newer server's: ignored)
 */
export function parse(text) {
  let m;
  try {
    m = JSON.parse(text);
  } catch {
    return null;
  }
  if (!Array.isArray(m)) return null;
  switch (m[0]) {
    case 'cp':
      return { type: 'cp', x: Number(m[1]), y: Number(m[2]) };
    case 'cs': {
      const [, serial, w, h, hx, hy, sw, sh, rgba] = m;
      return {
        type: 'cs',
        shape: { serial, w, h, hx, hy, sw: sw || 1, sh: sh || 1, rgba: typeof rgba === 'string' ? rgba : null },
      };
    }
    case 'cb':
      return typeof m[1] === 'string' ? { type: 'cb', text: m[1] } : null;
    case 'ci':
      return typeof m[2] === 'string' ? { type: 'ci', mime: String(m[1]), base64: m[2] } : null;
    case 'err':
      return { type: 'err', message: String(m[1] ?? 'error') };
    case 'v':
      return { type: 'v', version: Number(m[1]) || 1, maxClipboard: Number(m[2]) || 0 };
    case 'cbb':
    case 'cbp':
    case 'cbe':
      return { type: m[0], id: m[1], a: m[2], b: m[3] };
    default:
      return null;
  }
}
