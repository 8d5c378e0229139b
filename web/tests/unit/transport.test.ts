import { describe, expect, it } from 'vitest';
import { chooseTransport, forcedTransport, transportLabel, type TransportFacts } from '../../src/transport';

const base: TransportFacts = { forced: null, whep: true, rtcSupported: true, failedBefore: null };

describe('transport choice', () => {
  it('reads ?transport= from the URL, ignoring anything else', () => {
    expect(forcedTransport('?transport=hls')).toBe('hls');
    expect(forcedTransport('?a=1&transport=WebRTC')).toBe('webrtc');
    expect(forcedTransport('?transport=rtmp')).toBeNull();
    expect(forcedTransport('')).toBeNull();
  });

  it('prefers WebRTC when the server and the browser have it', () => {
    expect(chooseTransport(base)).toEqual({ transport: 'webrtc', reason: null });
  });

  it('plays HLS when WebRTC cannot work, and says why', () => {
    expect(chooseTransport({ ...base, whep: false }).reason).toBe('WebRTC is off on the server');
    expect(chooseTransport({ ...base, rtcSupported: false }).transport).toBe('hls');
    expect(chooseTransport({ ...base, forced: 'hls' })).toEqual({ transport: 'hls', reason: 'chosen in the URL' });
  });

  it('does not retry WebRTC after it failed, unless the URL forces it', () => {
    const failed = { ...base, failedBefore: 'WebRTC did not connect' };
    expect(chooseTransport(failed)).toEqual({ transport: 'hls', reason: 'WebRTC did not connect' });
    expect(chooseTransport({ ...failed, forced: 'webrtc' }).transport).toBe('webrtc');
    // forcing WebRTC cannot conjure it on a server without it
    expect(chooseTransport({ ...base, forced: 'webrtc', whep: false }).transport).toBe('hls');
  });

  it('labels what plays', () => {
    expect(transportLabel('webrtc', null)).toBe('WebRTC');
    expect(transportLabel('hls', null)).toBe('HLS');
    expect(transportLabel('hls', 'WebRTC is off on the server')).toBe('HLS (WebRTC is off on the server)');
    expect(transportLabel(null, null)).toBe('');
  });
});
