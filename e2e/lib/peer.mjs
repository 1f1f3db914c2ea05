// vnrit e2e: a reference signalling server for the page, built from a Node WebSocket (the
// stand-in in static.mjs) and a second Chromium page as its WebRTC engine. It follows
// PROTOCOL.md like vnrit does (hello, answer, trickle candidates), sends a canvas painted one
// colour plus a tone as the audio track, and records what the page sent, so the page can be tested before and apart from
// the Rust server.

import { waitFor } from './harness.mjs';

/** Runs inside the engine page: answers offers with a painted canvas, one pc per session id. */
function engineScript() {
  const canvas = document.createElement('canvas');
  canvas.width = 320;
  canvas.height = 240;
  const g = canvas.getContext('2d');
  let colour = '#000000';
  setInterval(() => {
    g.fillStyle = colour;
    g.fillRect(0, 0, canvas.width, canvas.height);
  }, 40);
  const stream = canvas.captureStream(25);
  // A quiet 440 Hz tone as the audio track, like the server's later desktop audio.
  try {
    const ac = new AudioContext();
    const osc = ac.createOscillator();
    const gain = ac.createGain();
    gain.gain.value = 0.05;
    const dest = ac.createMediaStreamDestination();
    osc.connect(gain).connect(dest);
    osc.start();
    stream.addTrack(dest.stream.getAudioTracks()[0]);
  } catch (err) {
    window.engineAudioError = String(err);
  }
  const pcs = new Map();
  window.engine = {
    setColour: (c) => {
      colour = c;
    },
    async answer(id, sdp) {
      const pc = new RTCPeerConnection({ iceServers: [] });
      pcs.set(id, pc);
      pc.onicecandidate = (ev) => window.engineCandidate(id, ev.candidate ? ev.candidate.toJSON() : null);
      await pc.setRemoteDescription({ type: 'offer', sdp });
      stream.getTracks().forEach((t) => pc.addTrack(t, stream));
      const answer = await pc.createAnswer();
      await pc.setLocalDescription(answer);
      return answer.sdp; // without candidates: they trickle
    },
    async addCandidate(id, candidate) {
      await pcs.get(id).addIceCandidate(candidate ?? { candidate: '' });
    },
    state: (id) => pcs.get(id)?.connectionState ?? 'none',
  };
}

/**
 * A signalling endpoint for `startStaticServer({onSocket})` backed by a Chromium page.
 * `sessions` records, per accepted socket, every message the page sent.
 * @param {import('playwright-core').Browser} browser
 */
export async function startReferencePeer(browser) {
  const engine = await browser.newPage();
  const sockets = new Map();
  const sessions = [];
  await engine.exposeFunction('engineCandidate', (id, candidate) => {
    const s = sessions[id];
    s.sentCandidates += 1;
    if (!s.answered) s.candidatesBeforeAnswer += 1;
    sockets.get(id)?.send(JSON.stringify({ type: 'candidate', candidate }));
  });
  await engine.goto('about:blank');
  await engine.evaluate(engineScript);

  /** Handles one page WebSocket: hello, then answers its offer, relays candidates. */
  function onSocket(ws) {
    const id = sessions.length;
    const session = { id, received: [], answered: false, sentCandidates: 0, candidatesBeforeAnswer: 0, ws };
    sessions.push(session);
    sockets.set(id, ws);
    ws.on('close', () => sockets.delete(id));
    ws.on('message', async (data) => {
      const msg = JSON.parse(String(data));
      session.received.push(msg);
      try {
        if (msg.type === 'offer') {
          const sdp = await engine.evaluate(([i, s]) => window.engine.answer(i, s), [id, msg.sdp]);
          // Hold the answer until a candidate went out first, so the page must queue it.
          await waitFor(() => session.sentCandidates > 0, { timeoutMs: 3000, what: 'a first candidate' }).catch(() => {});
          session.answered = true;
          ws.send(JSON.stringify({ type: 'answer', sdp }));
        } else if (msg.type === 'candidate') {
          await engine.evaluate(([i, c]) => window.engine.addCandidate(i, c), [id, msg.candidate ?? null]);
        }
      } catch (err) {
        session.error = err.message;
      }
    });
    ws.send(JSON.stringify({ type: 'hello', version: 1, iceServers: [] }));
  }

  return {
    onSocket,
    sessions,
    setColour: (c) => engine.evaluate((x) => window.engine.setColour(x), c),
    state: (id) => engine.evaluate((i) => window.engine.state(i), id),
    close: () => engine.close(),
  };
}
