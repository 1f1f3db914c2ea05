// vnrit viewer: the microphone button. Sends this browser's microphone into the desktop: the
// server says in its hello whether this viewer may (a controlling viewer on a server with
// PulseAudio); getUserMedia needs a secure page (HTTPS or localhost). Turning it on asks the
// server for the one microphone ({"type":"mic","on":true}), and once granted puts the track
// on the session's audio sender (negotiated sendrecv up front, so no renegotiation); turning
// it off, or the session ending, removes the track, stops it and tells the server.

/** The microphone button and its state (`state`: off, starting, on; `reason`: last refusal). */
export class MicControl {
  /**
   * @param {HTMLButtonElement} button
   * @param {{error: (text: string) => void, note: (text: string) => void}} status
   * @param {() => import('./signal.js').Session|null} session
   */
  constructor(button, status, session) {
    this.button = button;
    this.status = status;
    this.session = session;
    this.state = 'off';
    this.reason = '';
    /** @type {MediaStreamTrack|null} */
    this.track = null;
    this.pending = null;
    button.addEventListener('click', () => {
      if (this.state === 'off') this.on();
      else if (this.state === 'on') this.off();
    });
    this.#available(false, 'connecting…');
  }

  /** The server's hello: whether this viewer may send its microphone, and why not. */
  hello(hello) {
    if (!window.isSecureContext || !navigator.mediaDevices?.getUserMedia) {
      this.#available(false, 'the microphone needs a secure page: open vnrit over HTTPS (or on localhost)');
    } else if (!hello.mic) {
      this.#available(false, hello.micReason || 'this server has no microphone');
    } else {
      this.#available(true, '');
    }
  }

  /** The server's answer to a mic request. */
  serverSays(msg) {
    const waiting = this.pending;
    this.pending = null;
    if (waiting) waiting(msg);
    else if (!msg.on && this.state === 'on') this.#stop(msg.reason || 'microphone off');
  }

  async on() {
    const session = this.session();
    if (!session) return;
    this.#set('starting');
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true } });
    } catch (err) {
      this.#refused(`microphone refused by the browser: ${err.message || err.name}`);
      return;
    }
    this.track = stream.getAudioTracks()[0] ?? null;
    const answer = await new Promise((resolve) => {
      this.pending = resolve;
      if (!session.sendMic(true)) resolve({ on: false, reason: 'not connected' });
    });
    if (!answer.on || session !== this.session()) {
      this.#refused(`microphone: ${answer.reason || 'refused by the server'}`);
      return;
    }
    try {
      await session.audioSender()?.replaceTrack(this.track);
    } catch (err) {
      session.sendMic(false);
      this.#refused(`microphone: ${err.message}`);
      return;
    }
    this.#set('on');
    this.status.note('microphone on: the desktop hears you');
  }

  off() {
    const session = this.session();
    session?.audioSender()?.replaceTrack(null).catch(() => {});
    session?.sendMic(false);
    this.#stop('microphone off');
  }

  /** The session ended: the server let go of the microphone already. */
  sessionEnded() {
    this.pending?.({ on: false, reason: 'the connection ended' });
    this.pending = null;
    if (this.track) this.#stop('');
    this.#available(false, 'connecting…');
  }

  #stop(note) {
    this.track?.stop();
    this.track = null;
    this.#set('off');
    if (note) this.status.note(note);
  }

  #refused(text) {
    this.reason = text;
    this.#stop('');
    this.status.error(text);
  }

  #set(state) {
    this.state = state;
    this.button.setAttribute('aria-pressed', String(state === 'on'));
    this.button.disabled = state === 'starting' || this.button.dataset.unavailable === 'true';
    const label = state === 'on' ? 'Turn the microphone off' : 'Send your microphone to the desktop';
    this.button.setAttribute('aria-label', label);
    if (this.button.dataset.unavailable !== 'true') this.button.title = label;
  }

  #available(yes, why) {
    this.button.dataset.unavailable = String(!yes);
    this.reason = why;
    this.button.title = yes ? 'Send your microphone to the desktop' : `Microphone unavailable: ${why}`;
    this.#set(this.state === 'on' && yes ? 'on' : 'off');
  }
}
