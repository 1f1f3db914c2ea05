// vnrit viewer: one viewing session = one signalling WebSocket + one RTCPeerConnection.
// Speaks the contract in PROTOCOL.md: hello -> offer -> answer, trickle ICE both ways,
// keyframe requests, server error messages. A session never reconnects by itself; it ends
// once (onClosed) and the caller decides what comes next. After close() no callback fires.

/** Give up if the server has not said hello this long after the socket opened. */
const HELLO_TIMEOUT_MS = 10000;
/** Give up if the peer connection is not up this long after the offer was sent. */
const CONNECT_TIMEOUT_MS = 20000;
/** How long a 'disconnected' peer connection may take to come back by itself. */
const DISCONNECTED_GRACE_MS = 8000;
/**
 * While connected the server sends something at least every 2 s (a frame, a keep-alive
 * picture, an RTCP sender report), so this long with nothing received means the path from the
 * server is broken even if ICE still says connected (ICE's checks can pass on a path the media
 * no longer takes). The session then ends and the page reconnects, instead of showing a frozen
 * picture until the server gives up on it (about 30 s).
 */
const SILENCE_LIMIT_MS = 10000;
/** How often the silence watch samples the connection's byte counters. */
const SILENCE_CHECK_MS = 2000;

/**
 * @typedef {object} SessionHandlers
 * @property {(stream: MediaStream) => void} onTrack a remote track arrived (stream holds them all)
 * @property {() => void} onConnected the peer connection is up
 * @property {(message: string) => void} onServerError the server sent {"type":"error"}
 * @property {(text: string) => void} [onInput] an input wire message from the server (data
 *   channel, or {"type":"input","data":...} on the WebSocket)
 * @property {() => void} [onInputOpen] the 'input' data channel opened
 * @property {(hello: {control?: boolean, resize?: object, mic?: boolean, micReason?: string}) => void} [onHello]
 *   the server's hello (control: false = view-only; resize: present when the page may ask for
 *   its size; mic: this viewer may send its microphone, else micReason)
 * @property {(presence: object) => void} [onPresence] who is connected and who has control
 *   ({"type":"presence"}, control protocol v1: docs/web.md)
 * @property {(msg: {on: boolean, reason: string}) => void} [onMic] the microphone's state after a request
 * @property {(reason: string, info: {opened: boolean, serverReason: string, refused: string}) => void} onClosed the session ended;
 *   `opened` tells whether the WebSocket ever opened (false hints at auth or network trouble)
 *   `refused` is the server's reason when it refused the offer (no retry can help)
 */

/**
 * With `?codec=NAME` in the page's address (e.g. `vp8`), offers only that video codec
 * (for trying the VP8 stream in a browser that also has H.264). Unknown names are ignored.
 * @param {RTCRtpTransceiver} transceiver
 */
function preferCodec(transceiver) {
  const want = new URLSearchParams(location.search).get('codec');
  if (!want || typeof transceiver.setCodecPreferences !== 'function') return;
  const all = RTCRtpReceiver.getCapabilities?.('video')?.codecs ?? [];
  const picked = all.filter((c) => c.mimeType.toLowerCase() === `video/${want.toLowerCase()}`);
  if (picked.length) transceiver.setCodecPreferences(picked);
  else console.warn(`vnrit: this browser has no ${want} video; ?codec ignored`);
}

/** One connection attempt to the vnrit server. */
export class Session {
  /**
   * Opens the WebSocket right away.
   * @param {string} url the signalling WebSocket URL (ws:// or wss://, with ?token= if needed)
   * @param {SessionHandlers} handlers
   */
  constructor(url, handlers) {
    this.handlers = handlers;
    this.closed = false;
    this.opened = false;
    this.pc = null;
    /** The 'input' data channel (ordered), for input features; null until the offer exists. */
    this.input = null;
    this.stream = new MediaStream();
    this.remoteCandidates = [];
    this.remoteDescriptionSet = false;
    /** The offer went out (an error before the answer is then a refusal of it). */
    this.offerSent = false;
    /** The server's words when it refused the offer, else ''. */
    this.refused = '';
    /** A resize asked for before the offer went out (sent right after it). */
    this.heldResize = null;
    /** The audio transceiver (desktop audio in; the microphone out when sendrecv). */
    this.audio = null;
    this.timer = null;
    this.graceTimer = null;
    this.silenceTimer = null;

    this.ws = new WebSocket(url);
    this.ws.onopen = () => {
      if (this.closed) return;
      this.opened = true;
      this.#arm(HELLO_TIMEOUT_MS, 'no hello from the server');
    };
    this.ws.onmessage = (ev) => {
      if (!this.closed) this.#onMessage(ev.data);
    };
    this.ws.onclose = (ev) => {
      if (this.closed) return;
      const why = ev.reason || (this.opened ? 'connection to the server closed' : 'cannot reach the server');
      this.serverReason = ev.reason || '';
      this.close(why);
    };
  }

  /**
   * Sends one input wire message: on the 'input' data channel when it is open, else inside
   * the WebSocket as {"type":"input","data":text}.
   * @param {string} text
   * @returns {boolean} false when neither is open (the message is dropped)
   */
  sendInput(text) {
    if (this.closed) return false;
    if (this.input && this.input.readyState === 'open') {
      this.input.send(text);
      return true;
    }
    if (this.ws.readyState !== WebSocket.OPEN) return false;
    this.#send({ type: 'input', data: text });
    return true;
  }

  /** Input bytes queued but not yet sent (data channel, else WebSocket), for pacing. */
  inputBacklog() {
    if (this.input && this.input.readyState === 'open') return this.input.bufferedAmount;
    return this.ws && this.ws.readyState === WebSocket.OPEN ? this.ws.bufferedAmount : 0;
  }

  /**
   * Asks the server to set the desktop to `width`x`height` device pixels (resize message v1;
   * send it only to a server whose hello offered `resize`).
   * @returns {boolean} false when the socket is not open
   */
  sendResize(width, height, dpr) {
    if (this.closed || this.ws.readyState !== WebSocket.OPEN) return false;
    const msg = { type: 'resize', v: 1, width, height, dpr };
    // Asked before the offer (the hello's own request): it goes right after the offer, so an
    // error that comes before the answer can only be the offer's.
    if (this.offerSent) this.#send(msg);
    else this.heldResize = msg;
    return true;
  }

  /**
   * Asks the server to turn this viewer's microphone on or off; the answer comes as onMic.
   * @param {boolean} on
   * @returns {boolean} false when the socket is not open
   */
  sendMic(on) {
    if (this.closed || this.ws.readyState !== WebSocket.OPEN) return false;
    this.#send({ type: 'mic', on });
    return true;
  }

  /** The sender of the audio transceiver (for the microphone), if negotiated sendrecv. */
  audioSender() {
    return this.audio?.sender ?? null;
  }

  /** Asks the server for an IDR frame (e.g. after a long freeze). */
  requestKeyframe() {
    this.#send({ type: 'keyframe' });
  }

  /**
   * Ends the session: closes the socket and the peer connection, then reports onClosed once.
   * @param {string} [reason]
   */
  close(reason = 'closed') {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    clearTimeout(this.graceTimer);
    clearInterval(this.silenceTimer);
    this.ws.onopen = this.ws.onmessage = this.ws.onclose = null;
    if (this.ws.readyState <= WebSocket.OPEN) this.ws.close();
    if (this.pc) {
      this.pc.onicecandidate = this.pc.ontrack = this.pc.onconnectionstatechange = null;
      this.pc.close();
    }
    if (this.input) this.input.onmessage = this.input.onopen = null;
    this.handlers.onClosed(reason, {
      opened: this.opened,
      serverReason: this.serverReason ?? '',
      refused: this.refused ?? '',
    });
  }

  /** Sends a signalling message of the control protocol ({"type":"name"|"control",...}). */
  signal(msg) {
    this.#send(msg);
  }

  #send(msg) {
    if (!this.closed && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  #arm(ms, reason) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.close(reason), ms);
  }

  /** Runs an async step; a failure ends the session with the error's text. */
  #step(what, promise) {
    promise.catch((err) => this.close(`${what}: ${err && err.message ? err.message : err}`));
  }

  #onMessage(data) {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return; // not ours to fix; the server's own messages are always JSON
    }
    switch (msg && msg.type) {
      case 'hello':
        this.handlers.onHello?.(msg);
        if (!this.pc) this.#step('offer', this.#start(msg));
        break;
      case 'answer':
        this.#step('answer', this.#applyAnswer(msg.sdp));
        break;
      case 'candidate':
        this.#addRemoteCandidate(msg.candidate);
        break;
      case 'input':
        if (typeof msg.data === 'string') this.handlers.onInput?.(msg.data);
        break;
      case 'presence':
        this.handlers.onPresence?.(msg);
        break;
      case 'error':
        // Between the offer and the answer an error can only be the offer's (the hello's
        // resize request waits until the offer is out, see sendResize).
        if (this.offerSent && !this.remoteDescriptionSet) {
          // The offer was refused (no common codec, bad SDP): no answer will come, and
          // retrying cannot help. End here, so the reason is what the page shows.
          this.refused = String(msg.message ?? 'unknown error');
          this.close(`server: ${this.refused}`);
          break;
        }
        this.handlers.onServerError(String(msg.message ?? 'unknown error'));
        break;
      case 'mic':
        this.handlers.onMic?.({ on: msg.on === true, reason: typeof msg.reason === 'string' ? msg.reason : '' });
        break;
      default:
        break; // newer server, unknown message: ignore
    }
  }

  async #start(hello) {
    const iceServers = Array.isArray(hello.iceServers) ? hello.iceServers : [];
    // --ice-relay-only: the server says "relay" and the page must use TURN too.
    const iceTransportPolicy = hello.iceTransportPolicy === 'relay' ? 'relay' : 'all';
    const pc = new RTCPeerConnection({ iceServers, iceTransportPolicy });
    this.pc = pc;
    preferCodec(pc.addTransceiver('video', { direction: 'recvonly' }));
    // sendrecv when this viewer may send its microphone: the track goes on later with
    // replaceTrack, without renegotiating.
    this.audio = pc.addTransceiver('audio', { direction: hello.mic ? 'sendrecv' : 'recvonly' });
    this.input = pc.createDataChannel('input', { ordered: true });
    this.input.onopen = () => {
      if (!this.closed) this.handlers.onInputOpen?.();
    };
    this.input.onmessage = (ev) => {
      if (!this.closed && typeof ev.data === 'string') this.handlers.onInput?.(ev.data);
    };

    const early = [];
    pc.onicecandidate = (ev) => {
      const msg = { type: 'candidate', candidate: ev.candidate ? ev.candidate.toJSON() : null };
      if (this.offerSent) this.#send(msg);
      else early.push(msg);
    };
    pc.ontrack = (ev) => {
      // A remote desktop wants the newest frame now, not a smooth buffer: ask the browser to
      // keep its jitter buffer as small as it can (Chromium: jitterBufferTarget, in ms).
      if ('jitterBufferTarget' in ev.receiver) ev.receiver.jitterBufferTarget = 0;
      else if ('playoutDelayHint' in ev.receiver) ev.receiver.playoutDelayHint = 0;
      this.stream.addTrack(ev.track);
      this.handlers.onTrack(this.stream);
    };
    pc.onconnectionstatechange = () => this.#onConnectionState(pc.connectionState);

    await pc.setLocalDescription(await pc.createOffer());
    if (this.closed) return;
    this.#send({ type: 'offer', sdp: pc.localDescription.sdp });
    this.offerSent = true;
    if (this.heldResize) this.#send(this.heldResize);
    this.heldResize = null;
    early.forEach((m) => this.#send(m));
    this.#arm(CONNECT_TIMEOUT_MS, 'timed out connecting');
  }

  async #applyAnswer(sdp) {
    if (!this.pc || this.remoteDescriptionSet) return;
    await this.pc.setRemoteDescription({ type: 'answer', sdp });
    this.remoteDescriptionSet = true;
    const queued = this.remoteCandidates.splice(0);
    for (const c of queued) await this.#applyCandidate(c);
  }

  #addRemoteCandidate(candidate) {
    if (this.remoteDescriptionSet) this.#applyCandidate(candidate);
    else this.remoteCandidates.push(candidate);
  }

  async #applyCandidate(candidate) {
    if (this.closed) return;
    try {
      // null/absent = end of candidates; an empty init signals that to the browser.
      await this.pc.addIceCandidate(candidate ?? { candidate: '' });
    } catch (err) {
      // One bad candidate must not end the session; ICE goes on with the others.
      console.warn('vnrit: ignored a remote ICE candidate:', err && err.message);
    }
  }

  /**
   * Ends the session once nothing has arrived from the server for SILENCE_LIMIT_MS. Counts the
   * payload bytes of every candidate pair (ICE checks are not counted): the server may send on
   * another pair than the one this browser selected (webrtc-rs keeps the first pair nominated).
   */
  #watchSilence() {
    if (this.silenceTimer) return;
    let last = -1;
    let since = performance.now();
    this.silenceTimer = setInterval(async () => {
      let bytes = 0;
      try {
        (await this.pc.getStats()).forEach((r) => {
          if (r.type === 'candidate-pair') bytes += r.bytesReceived || 0;
        });
      } catch {
        return; // closed meanwhile
      }
      if (this.closed) return;
      const now = performance.now();
      if (bytes !== last) {
        last = bytes;
        since = now;
      } else if (now - since >= SILENCE_LIMIT_MS) {
        this.close(`nothing received from the server for ${Math.round((now - since) / 1000)} s`);
      }
    }, SILENCE_CHECK_MS);
  }

  #onConnectionState(state) {
    if (this.closed) return;
    switch (state) {
      case 'connected':
        clearTimeout(this.timer);
        clearTimeout(this.graceTimer);
        this.#watchSilence();
        this.handlers.onConnected();
        break;
      case 'disconnected':
        clearTimeout(this.graceTimer);
        this.graceTimer = setTimeout(() => this.close('connection lost'), DISCONNECTED_GRACE_MS);
        break;
      case 'failed':
        this.close('connection failed');
        break;
      case 'closed':
        this.close('connection closed');
        break;
      default:
        break;
    }
  }
}
