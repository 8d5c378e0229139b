// What the page says about the microphone, in plain words, pure: why it could not open, the
// server's microphone errors, the state line and the button's label.

import type { MicMode } from './micprotocol';
import type { MicState } from './micstate';
import type { Transport } from './transport';

export const INSECURE_TEXT =
  "Browsers only allow the microphone on https:// or http://localhost — see the README, 'Talking to the avatar over https'.";

/** Why the microphone did not open: a getUserMedia/AudioContext failure, by its DOMException name. */
export function micOpenErrorText(e: unknown): string {
  const name = typeof e === 'object' && e !== null && 'name' in e ? String((e as { name: unknown }).name) : '';
  const message = e instanceof Error ? e.message : String(e);
  switch (name) {
    case 'NotAllowedError':
    case 'PermissionDeniedError':
    case 'SecurityError':
      return 'The microphone is blocked for this page. Allow it in the browser (the icon at the left of the address bar, or the site settings), then click the microphone again.';
    case 'NotFoundError':
    case 'DevicesNotFoundError':
    case 'OverconstrainedError':
      return 'No microphone was found. Connect one (or choose one in your system sound settings) and try again.';
    case 'NotReadableError':
    case 'TrackStartError':
      return 'The microphone is in use by another app, or the system would not let the browser use it. Close the other app and try again.';
    case 'InsecureContext':
      return INSECURE_TEXT;
    default:
      return `The microphone could not be opened: ${message || name || 'unknown error'}.`;
  }
}

/**
 * A server error about the microphone in plain words, or null when `code` is not one of them.
 * `sttNote` is hello's `stt_note`, when there was one.
 */
export function micServerErrorText(code: string, message: string, sttNote?: string): string | null {
  switch (code) {
    case 'stt_not_configured':
      return `This server cannot listen: it has no speech recognizer. ${sttNote ?? message}`.trim();
    case 'stt_failed':
      return `Sorry, that was lost — the speech recognizer failed (${message}). Please say it again.`;
    case 'nothing_heard':
      return "No words were recognized in what you said. Please try again, a little closer to the microphone.";
    case 'bad_audio':
      return `The server could not use a piece of microphone audio (${message}).`;
    default:
      return null;
  }
}

/** What the mic button does when the server has no speech recognizer. */
export function noSttText(stt: string | undefined, note: string | undefined): string {
  if (stt === undefined) return 'This server does not take microphone input (it is older than this page).';
  return `Talking needs a speech recognizer on the server, and this one has none. ${note ?? 'Set STT_BASE_URL (and STT_API_KEY).'}`.trim();
}

/** The line next to the level meter. */
export function micStateText(state: MicState, mode: MicMode, open: boolean, playback: Transport | null): string {
  switch (state) {
    case 'hearing':
      return 'hearing you…';
    case 'heard':
      return 'heard you — thinking…';
    case 'listening':
      if (mode === 'hands_free' && playback === 'hls') return 'listening… (over HLS your voice cannot interrupt the avatar)';
      return 'listening…';
    case 'off':
      if (open && mode === 'push_to_talk') return 'hold the mic button or Space to talk';
      return '';
  }
}

/** The mic button's accessible label. */
export function micButtonLabel(mode: MicMode, state: MicState, open: boolean): string {
  if (mode === 'push_to_talk') return open ? 'Hold to talk (or hold Space)' : 'Hold to talk (or hold Space); the first press asks for the microphone';
  return state === 'off' ? 'Turn the microphone on' : 'Turn the microphone off';
}
