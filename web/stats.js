// vnrit viewer: the connection statistics overlay. Once a second, while shown, it reads
// RTCPeerConnection.getStats() and prints connection state, round-trip time, frames per
// second, bitrate, resolution, codec and decoder, and packet loss. Only this module reads
// getStats; the latest numbers are also kept in `last` for tests and the console.

const PERIOD_MS = 1000;

/** The toggleable overlay. */
export class StatsOverlay {
  /**
   * @param {HTMLElement} el the #stats element (textContent only)
   * @param {() => RTCPeerConnection|null} pc the live peer connection, if any
   */
  constructor(el, pc) {
    this.el = el;
    this.pc = pc;
    this.timer = 0;
    this.prev = null; // {bytes, t} of the last sample
    /** The latest sample (see #sample), or null. */
    this.last = null;
  }

  get visible() {
    return !this.el.hidden;
  }

  /** Shows or hides the overlay; sampling runs only while shown. */
  set visible(on) {
    this.el.hidden = !on;
    clearInterval(this.timer);
    this.timer = 0;
    this.prev = null;
    if (on) {
      this.el.textContent = 'collecting statistics…';
      this.#tick();
      this.timer = setInterval(() => this.#tick(), PERIOD_MS);
    }
  }

  async #tick() {
    const pc = this.pc();
    if (!pc) {
      this.el.textContent = 'not connected';
      this.prev = null;
      return;
    }
    let report;
    try {
      report = await pc.getStats();
    } catch {
      return; // closed between the check and the call
    }
    const s = this.#sample(pc, report);
    this.last = s;
    if (this.visible) this.el.textContent = format(s);
  }

  #sample(pc, report) {
    let video = null;
    let pair = null;
    const byId = new Map();
    report.forEach((r) => {
      byId.set(r.id, r);
      if (r.type === 'inbound-rtp' && r.kind === 'video') video = r;
      if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') pair = r;
    });
    const now = performance.now();
    const bytes = video ? video.bytesReceived || 0 : 0;
    let kbps = 0;
    if (this.prev && now > this.prev.t && bytes >= this.prev.bytes) {
      kbps = ((bytes - this.prev.bytes) * 8) / (now - this.prev.t); // bits per ms = kbit/s
    }
    this.prev = { bytes, t: now };
    const codec = video && video.codecId ? byId.get(video.codecId) : null;
    const lost = video ? Math.max(0, video.packetsLost || 0) : 0;
    const received = video ? video.packetsReceived || 0 : 0;
    return {
      state: pc.connectionState,
      rttMs: pair && pair.currentRoundTripTime != null ? pair.currentRoundTripTime * 1000 : null,
      fps: video ? video.framesPerSecond || 0 : 0,
      kbps,
      width: video ? video.frameWidth || 0 : 0,
      height: video ? video.frameHeight || 0 : 0,
      codec: codec ? codec.mimeType.replace(/^video\//, '') : '',
      decoder: video ? video.decoderImplementation || '' : '',
      lost,
      lossPct: received + lost ? (100 * lost) / (received + lost) : 0,
    };
  }
}

function format(s) {
  const rtt = s.rttMs == null ? '–' : `${s.rttMs.toFixed(0)} ms`;
  const rate = s.kbps >= 1000 ? `${(s.kbps / 1000).toFixed(2)} Mbit/s` : `${s.kbps.toFixed(0)} kbit/s`;
  return [
    `state       ${s.state}`,
    `rtt         ${rtt}`,
    `fps         ${s.fps.toFixed(0)}`,
    `bitrate     ${rate}`,
    `resolution  ${s.width ? `${s.width}×${s.height}` : '–'}`,
    `codec       ${s.codec || '–'}${s.decoder ? ` (${s.decoder})` : ''}`,
    `lost        ${s.lost} packets (${s.lossPct.toFixed(2)} %)`,
  ].join('\n');
}
