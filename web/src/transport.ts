// Which transport plays the stream: WebRTC (WHEP, sub-second) by default, HLS when WebRTC is
// off on the server, missing in the browser, forced away with ?transport=hls, or did not
// connect in time. Pure: the page asks, this decides.

export type Transport = 'webrtc' | 'hls';

/** WebRTC gets this long from hello to its first decoded frame before the page plays HLS. */
export const WEBRTC_CONNECT_TIMEOUT_MS = 4000;

/** `?transport=webrtc|hls` in the page's URL, or null (automatic). Anything else is ignored. */
export function forcedTransport(search: string): Transport | null {
  const v = new URLSearchParams(search).get('transport')?.trim().toLowerCase();
  return v === 'webrtc' || v === 'hls' ? v : null;
}

export interface TransportFacts {
  /** from the URL (`forcedTransport`) */
  forced: Transport | null;
  /** the session's hello carried a WHEP endpoint (the server has WebRTC on) */
  whep: boolean;
  /** the browser has RTCPeerConnection */
  rtcSupported: boolean;
  /** why WebRTC failed earlier in this page (it is not tried again unless forced) */
  failedBefore: string | null;
}

export interface TransportChoice {
  transport: Transport;
  /** why not WebRTC, for the page's transport indicator; null when WebRTC is chosen */
  reason: string | null;
}

export function chooseTransport(f: TransportFacts): TransportChoice {
  if (f.forced === 'hls') return { transport: 'hls', reason: 'chosen in the URL' };
  if (!f.whep) return { transport: 'hls', reason: 'WebRTC is off on the server' };
  if (!f.rtcSupported) return { transport: 'hls', reason: 'this browser has no WebRTC' };
  if (f.failedBefore && f.forced !== 'webrtc') return { transport: 'hls', reason: f.failedBefore };
  return { transport: 'webrtc', reason: null };
}

/** The label the page shows for what plays. */
export function transportLabel(t: Transport | null, reason: string | null): string {
  if (t === null) return '';
  if (t === 'webrtc') return 'WebRTC';
  return reason ? `HLS (${reason})` : 'HLS';
}
