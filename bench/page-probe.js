// vnrit bench: init script injected into every viewer page (before the page's own modules).
// It keeps every RTCPeerConnection the page makes (for getStats) and, for each frame the
// <video> presents (requestVideoFrameCallback), reads the time code that
// examples/timecode.rs draws and records (presentation wall-clock time - drawn time).
// The layout constants mirror examples/timecode.rs. Results live in window.__bench.
(() => {
  const BLOCK = 24;
  const ORIGIN_X = 48;
  const ORIGIN_Y = 48;
  const BITS = 48;
  const START = [1, 0, 1, 0];
  const STOP = [0, 1, 1, 0];
  const SCREEN_W = 1920; // the X screen the code was drawn on
  const ROW = START.length + BITS + STOP.length;
  const MAX_SKEW_MS = 10000;

  const bench = {
    lat: [], // ms, one per presented frame with a new, valid code
    toReceive: [], // ms, last packet received - drawn (capture wait, encode, send, network)
    afterReceive: [], // ms, presented - last packet received (jitter buffer, decode, render)
    presented: 0, // frames presented (rVFC callbacks)
    decoded: 0, // frames whose code passed every check
    repeats: 0, // valid code equal to the previous frame's
    bad: 0, // guards or inverted row did not match, or code outside +-10 s
    lastCode: null,
    // Reading the time code back costs the page a canvas draw and read per frame, which
    // competes with vnrit for the two cores: the bench turns it on only for its latency row.
    probing: true,
    reset() {
      this.lat = [];
      this.toReceive = [];
      this.afterReceive = [];
      this.presented = this.decoded = this.repeats = this.bad = 0;
    },
  };
  window.__bench = bench;

  const pcs = [];
  window.__pcs = pcs;
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Native {
    constructor(...args) {
      super(...args);
      pcs.push(this);
    }
  };

  /** Sums of inbound video counters (framesDecoded, decode and jitter-buffer time) over live connections. */
  window.__videoStats = async () => {
    const t = { framesDecoded: 0, totalDecodeTime: 0, jitterBufferDelay: 0, jitterBufferEmittedCount: 0 };
    for (const pc of pcs) {
      if (pc.connectionState === 'closed') continue;
      const report = await pc.getStats();
      report.forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video') for (const k of Object.keys(t)) t[k] += s[k] || 0;
      });
    }
    return t;
  };
  window.__framesDecoded = async () => (await window.__videoStats()).framesDecoded;

  function decode(g, scale) {
    const w = Math.round(ROW * BLOCK * scale);
    const h = Math.round(2 * BLOCK * scale);
    const px = g.getImageData(0, 0, w, h).data;
    const half = Math.max(1, Math.round(4 * scale));
    const bit = (col, row) => {
      const cx = Math.round((col + 0.5) * BLOCK * scale);
      const cy = Math.round((row + 0.5) * BLOCK * scale);
      let sum = 0;
      let n = 0;
      for (let y = cy - half; y < cy + half; y++) {
        for (let x = cx - half; x < cx + half; x++) {
          const i = (y * w + x) * 4;
          sum += (px[i] + px[i + 1] + px[i + 2]) / 3;
          n++;
        }
      }
      return sum / n >= 128 ? 1 : 0;
    };
    for (let row = 0; row < 2; row++) {
      for (let i = 0; i < START.length; i++) if (bit(i, row) !== START[i]) return null;
      for (let i = 0; i < STOP.length; i++) if (bit(START.length + BITS + i, row) !== STOP[i]) return null;
    }
    let value = 0;
    for (let i = 0; i < BITS; i++) {
      const b = bit(START.length + i, 0);
      if (b === bit(START.length + i, 1)) return null; // second row must be the inverse
      value = value * 2 + b;
    }
    return value;
  }

  function start(video) {
    const canvas = document.createElement('canvas');
    let g = null;
    let scale = 1;
    const onFrame = (now, meta) => {
      const presentedAt = performance.timeOrigin + now;
      bench.presented++;
      if (bench.probing && video.videoWidth) {
        scale = video.videoWidth / SCREEN_W;
        const w = Math.round(ROW * BLOCK * scale);
        const h = Math.round(2 * BLOCK * scale);
        if (canvas.width !== w || canvas.height !== h || !g) {
          canvas.width = w;
          canvas.height = h;
          g = canvas.getContext('2d', { willReadFrequently: true });
        }
        g.drawImage(video, ORIGIN_X * scale, ORIGIN_Y * scale, w, h, 0, 0, w, h);
        const code = decode(g, scale);
        if (code === null || Math.abs(code - Date.now()) > MAX_SKEW_MS) {
          bench.bad++;
        } else {
          bench.decoded++;
          if (code === bench.lastCode) bench.repeats++;
          else {
            bench.lat.push(presentedAt - code);
            if (meta && meta.receiveTime) {
              bench.toReceive.push(performance.timeOrigin + meta.receiveTime - code);
              bench.afterReceive.push(now - meta.receiveTime);
            }
          }
          bench.lastCode = code;
        }
      }
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  }

  document.addEventListener('DOMContentLoaded', () => {
    const video = document.getElementById('screen');
    if (video && video.requestVideoFrameCallback) start(video);
  });
})();
