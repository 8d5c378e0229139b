import { describe, expect, it } from 'vitest';
import {
  controlMessage,
  encode,
  logMessage,
  MAX_LOG_CHARS,
  parseServerMessage,
  portraitMessage,
  portraitResetMessage,
  promptMessage,
  sessionUrl,
  shownMessage,
} from '../../src/protocol';

const ok = (raw: string) => {
  const r = parseServerMessage(raw);
  if (!r.ok) throw new Error(`expected ok, got ${r.error}`);
  return r.message;
};
const bad = (raw: string) => {
  const r = parseServerMessage(raw);
  if (r.ok) throw new Error(`expected failure, got ${JSON.stringify(r.message)}`);
  return r.error;
};

describe('parseServerMessage', () => {
  it('parses the hello from the spec', () => {
    const m = ok(
      '{"type":"hello","session_id":"abc123","playlist":"/hls/abc123/index.m3u8","version":"0.1.0","stream":{"width":512,"height":512,"fps":25,"segment_ms":1800},"llm":"none","tts":"none"}',
    );
    expect(m).toEqual({
      type: 'hello',
      session_id: 'abc123',
      playlist: '/hls/abc123/index.m3u8',
      version: '0.1.0',
      stream: { width: 512, height: 512, fps: 25, segment_ms: 1800 },
      llm: 'none',
      tts: 'none',
    });
  });

  it('reads every field the server puts in hello, video generator and its note included', () => {
    const m = ok(
      '{"type":"hello","session_id":"s","playlist":"/hls/s/index.m3u8","version":"0.1.0","stream":{"width":512,"height":512,"fps":25,"segment_ms":1800,"audio_sample_rate":22050},"llm":"none","tts":"local","video_generator":"builtin","generator_note":"INFINITETALK_BIN not found"}',
    );
    expect(m).toEqual({
      type: 'hello',
      session_id: 's',
      playlist: '/hls/s/index.m3u8',
      version: '0.1.0',
      stream: { width: 512, height: 512, fps: 25, segment_ms: 1800, audio_sample_rate: 22050 },
      llm: 'none',
      tts: 'local',
      video_generator: 'builtin',
      generator_note: 'INFINITETALK_BIN not found',
    });
  });

  it('ignores unknown fields', () => {
    const m = ok('{"type":"hello","session_id":"x","playlist":"/p.m3u8","future":{"a":1},"stream":{"fps":30,"codec":"avc1"}}');
    expect(m).toEqual({ type: 'hello', session_id: 'x', playlist: '/p.m3u8', stream: { fps: 30 } });
  });

  it('reads the WebRTC fields of hello: WHEP endpoint, ICE servers, server clock', () => {
    const m = ok(
      '{"type":"hello","session_id":"s","playlist":"/p.m3u8","whep":"/whep/s","server_time_ms":1700000000123,' +
        '"ice_servers":[{"urls":["stun:s.example.org:3478"]},{"urls":["turn:t.example.org"],"username":"u","credential":"c"},{"urls":"not-a-list"},7]}',
    );
    expect(m).toEqual({
      type: 'hello',
      session_id: 's',
      playlist: '/p.m3u8',
      whep: '/whep/s',
      server_time_ms: 1700000000123,
      ice_servers: [{ urls: ['stun:s.example.org:3478'] }, { urls: ['turn:t.example.org'], username: 'u', credential: 'c' }],
    });
  });

  it('rejects a hello without session_id or playlist', () => {
    expect(bad('{"type":"hello","playlist":"/p.m3u8"}')).toMatch(/session_id/);
    expect(bad('{"type":"hello","session_id":"x"}')).toMatch(/playlist/);
    expect(bad('{"type":"hello","session_id":5,"playlist":"/p"}')).toMatch(/session_id/);
  });

  it('parses every status stage, with and without note', () => {
    for (const stage of ['idle', 'thinking', 'speaking', 'complete', 'error']) {
      expect(ok(JSON.stringify({ type: 'status', stage }))).toEqual({ type: 'status', stage });
    }
    expect(ok('{"type":"status","stage":"thinking","note":"asking llm"}')).toEqual({
      type: 'status',
      stage: 'thinking',
      note: 'asking llm',
    });
  });

  it('rejects an unknown stage', () => {
    expect(bad('{"type":"status","stage":"dancing"}')).toMatch(/stage/);
    expect(bad('{"type":"status"}')).toMatch(/stage/);
  });

  it('parses on_screen messages and encodes shown', () => {
    expect(ok('{"type":"on_screen","turn":3,"on_screen_ms":5850.5}')).toEqual({ type: 'on_screen', turn: 3, on_screen_ms: 5850.5 });
    expect(bad('{"type":"on_screen","turn":3}')).toMatch(/on_screen_ms/);
    expect(encode(shownMessage(3))).toBe('{"type":"shown","turn":3}');
  });

  it('parses error messages', () => {
    expect(ok('{"type":"error","code":"bad_message","message":"expected JSON"}')).toEqual({
      type: 'error',
      code: 'bad_message',
      message: 'expected JSON',
    });
    expect(ok('{"type":"error","message":"no code"}')).toEqual({ type: 'error', code: 'error', message: 'no code' });
    expect(bad('{"type":"error","code":"x"}')).toMatch(/message/);
    expect(ok('{"type":"error","code":"rate_limited","message":"slow down","retry_after_ms":1500}')).toEqual({
      type: 'error',
      code: 'rate_limited',
      message: 'slow down',
      retry_after_ms: 1500,
    });
    expect(ok('{"type":"error","code":"rate_limited","message":"m","retry_after_ms":-1}')).toEqual({
      type: 'error',
      code: 'rate_limited',
      message: 'm',
    });
  });

  it('parses transcripts; the server sends no "final" and none is invented', () => {
    expect(ok('{"type":"transcript","text":"Hello there","start_ms":0,"end_ms":1200}')).toEqual({
      type: 'transcript',
      text: 'Hello there',
      start_ms: 0,
      end_ms: 1200,
    });
    expect(ok('{"type":"transcript","text":"Hel","final":false}')).toEqual({ type: 'transcript', text: 'Hel' });
    expect(ok('{"type":"transcript","text":"Hi"}')).not.toHaveProperty('final');
    expect(bad('{"type":"transcript"}')).toMatch(/text/);
  });

  it('parses metrics in the server\'s one (flat) shape only', () => {
    // fields the server's TurnMetrics does not have are not metrics
    expect(ok('{"type":"metrics","rtf":0.4,"queue":2,"gpu":{"util":93},"list":[1]}')).toEqual({
      type: 'metrics',
      values: {},
    });
    // a "values" wrapper is not a second shape
    expect(ok('{"type":"metrics","values":{"turn":2,"first_text_ms":12,"interrupted":true}}')).toEqual({
      type: 'metrics',
      values: {},
    });
  });

  it('reads the LLM and external-generator fields of metrics', () => {
    const m = ok(
      '{"type":"metrics","turn":2,"first_token_ms":80.5,"first_text_ms":90,"interrupted":false,"generator_windows":3,"builtin_windows":1}',
    );
    expect(m).toEqual({
      type: 'metrics',
      turn: 2,
      first_token_ms: 80.5,
      first_text_ms: 90,
      interrupted: false,
      generator_windows: 3,
      builtin_windows: 1,
      values: { turn: 2, first_token_ms: 80.5, first_text_ms: 90, interrupted: false, generator_windows: 3, builtin_windows: 1 },
    });
  });

  it('parses the transcript from the spec, with turn and program date times', () => {
    expect(
      ok(
        '{"type":"transcript","turn":1,"text":"Hello there, nice to meet you.","start_ms":51840,"end_ms":53912,"start_pdt_ms":1795000851840,"end_pdt_ms":1795000853912}',
      ),
    ).toEqual({
      type: 'transcript',
      turn: 1,
      text: 'Hello there, nice to meet you.',
      start_ms: 51840,
      end_ms: 53912,
      start_pdt_ms: 1795000851840,
      end_pdt_ms: 1795000853912,
    });
    // wrong types are dropped, not trusted
    expect(ok('{"type":"transcript","text":"x","turn":"1","start_pdt_ms":"soon"}')).toEqual({
      type: 'transcript',
      text: 'x',
    });
  });

  it('parses the metrics from the spec into typed turn timings', () => {
    const m = ok(
      '{"type":"metrics","turn":1,"first_text_ms":0.2,"first_audio_ms":31.5,"first_frame_ms":33.0,"first_segment_ms":95.1,"complete_ms":2710.4,"interrupted":false}',
    );
    expect(m).toMatchObject({
      type: 'metrics',
      turn: 1,
      first_text_ms: 0.2,
      first_audio_ms: 31.5,
      first_frame_ms: 33,
      first_segment_ms: 95.1,
      complete_ms: 2710.4,
      interrupted: false,
    });
    if (m.type !== 'metrics') throw new Error('not metrics');
    expect(m.values).toEqual({
      turn: 1,
      first_text_ms: 0.2,
      first_audio_ms: 31.5,
      first_frame_ms: 33,
      first_segment_ms: 95.1,
      complete_ms: 2710.4,
      interrupted: false,
    });
  });

  it('leaves timings a turn never reached absent', () => {
    const m = ok('{"type":"metrics","turn":3,"first_text_ms":1.5,"complete_ms":40,"interrupted":true}');
    expect(m).toEqual({
      type: 'metrics',
      turn: 3,
      first_text_ms: 1.5,
      complete_ms: 40,
      interrupted: true,
      values: { turn: 3, first_text_ms: 1.5, complete_ms: 40, interrupted: true },
    });
    expect(m).not.toHaveProperty('first_segment_ms');
  });

  it('reads the audio sample rate from hello.stream', () => {
    const m = ok(
      '{"type":"hello","session_id":"s","playlist":"/hls/s/index.m3u8","stream":{"width":512,"height":512,"fps":25,"segment_ms":1800,"audio_sample_rate":22050}}',
    );
    expect(m).toMatchObject({ stream: { audio_sample_rate: 22050, segment_ms: 1800 } });
  });

  it('passes unknown message types through as "unknown"', () => {
    expect(ok('{"type":"viseme","id":3}')).toEqual({ type: 'unknown', rawType: 'viseme', data: { type: 'viseme', id: 3 } });
  });

  it('rejects non-JSON, non-objects and missing type', () => {
    expect(bad('hello')).toBe('not JSON');
    expect(bad('')).toBe('not JSON');
    expect(bad('[1,2]')).toBe('not a JSON object');
    expect(bad('null')).toBe('not a JSON object');
    expect(bad('"str"')).toBe('not a JSON object');
    expect(bad('{"kind":"hello"}')).toBe('missing "type"');
    expect(bad('{"type":7}')).toBe('missing "type"');
  });
});

describe('client messages', () => {
  it('builds log, prompt and control messages', () => {
    expect(JSON.parse(encode(logMessage('warn', 'stall')))).toEqual({ type: 'log', level: 'warn', message: 'stall' });
    expect(JSON.parse(encode(promptMessage('hi\nthere')))).toEqual({ type: 'prompt', text: 'hi\nthere' });
    expect(JSON.parse(encode(controlMessage('interrupt')))).toEqual({ type: 'control', action: 'interrupt' });
    expect(JSON.parse(encode(controlMessage('stop')))).toEqual({ type: 'control', action: 'stop' });
    expect(JSON.parse(encode(controlMessage('start')))).toEqual({ type: 'control', action: 'start' });
  });

  it('truncates very long log lines', () => {
    const m = logMessage('error', 'x'.repeat(MAX_LOG_CHARS + 500));
    expect(m.type === 'log' && m.message.length).toBe(MAX_LOG_CHARS + 1);
  });

  it('derives the session URL from the page origin', () => {
    expect(sessionUrl({ protocol: 'http:', host: '127.0.0.1:8080' })).toBe('ws://127.0.0.1:8080/session');
    expect(sessionUrl({ protocol: 'https:', host: 'talk.example' })).toBe('wss://talk.example/session');
  });
});

describe('portraits', () => {
  const hello = (extra: string) => `{"type":"hello","session_id":"s","playlist":"/p.m3u8"${extra}}`;

  it('reads the portrait mode and size limit from hello, ignoring unknown modes and bad limits', () => {
    expect(ok(hello(',"portraits":"session","portrait_max_bytes":2097152'))).toMatchObject({ portraits: 'session', portrait_max_bytes: 2097152 });
    expect(ok(hello(',"portraits":"default"'))).toMatchObject({ portraits: 'default' });
    expect(ok(hello(',"portraits":"off"'))).toMatchObject({ portraits: 'off' });
    const odd = ok(hello(',"portraits":"always","portrait_max_bytes":-4'));
    expect(odd).not.toHaveProperty('portraits');
    expect(odd).not.toHaveProperty('portrait_max_bytes');
    expect(ok(hello(',"portrait_max_bytes":1.5'))).not.toHaveProperty('portrait_max_bytes');
    expect(ok(hello(''))).not.toHaveProperty('portraits');
  });

  it('parses every portrait state', () => {
    expect(ok('{"type":"portrait","state":"checking"}')).toEqual({ type: 'portrait', state: 'checking' });
    expect(ok('{"type":"portrait","state":"reset"}')).toEqual({ type: 'portrait', state: 'reset' });
    expect(ok('{"type":"portrait","state":"applied","width":512,"height":512,"default":true,"notes":["mouth open",3,""]}')).toEqual({
      type: 'portrait',
      state: 'applied',
      width: 512,
      height: 512,
      default: true,
      notes: ['mouth open'],
    });
    expect(ok('{"type":"portrait","state":"applied","width":512,"height":512}')).toMatchObject({ default: false, notes: [] });
    expect(ok('{"type":"portrait","state":"refused","reason":"landmark 3 is outside the image"}')).toEqual({
      type: 'portrait',
      state: 'refused',
      reason: 'landmark 3 is outside the image',
    });
    expect(ok('{"type":"portrait","state":"refused"}')).toMatchObject({ reason: 'the server refused the photo' });
    expect(bad('{"type":"portrait","state":"applied","width":512}')).toMatch(/missing width or height/);
    expect(bad('{"type":"portrait","state":"dancing"}')).toBe('portrait: unknown state "dancing"');
  });

  /** A face whose points are all inside 512² with the eyes left/right and the mouth below. */
  const points = (): [number, number][] =>
    Array.from({ length: 68 }, (_, i) => {
      if (i >= 36 && i <= 41) return [200 + i, 200];
      if (i >= 42 && i <= 47) return [300 + i, 200];
      if (i >= 48) return [256 + (i % 5), 330 + (i % 3) / 3];
      return [100 + i * 4, 150 + (i % 7) * 20];
    });

  it('builds the portrait message with landmarks rounded to 1/100 px', () => {
    const pts = points();
    pts[0] = [10.123456, 20.98765];
    const m = JSON.parse(encode(portraitMessage('/9j/4AAQ', pts, 512, 512)));
    expect(m.type).toBe('portrait');
    expect(m.image).toBe('/9j/4AAQ');
    expect(m.landmarks).toHaveLength(68);
    expect(m.landmarks[0]).toEqual([10.12, 20.99]);
    expect(Object.keys(m).sort()).toEqual(['image', 'landmarks', 'type']);
    expect(JSON.parse(encode(portraitResetMessage()))).toEqual({ type: 'portrait_reset' });
  });

  it('refuses to build a portrait message from bad points or bad base64', () => {
    expect(() => portraitMessage('/9j/4AAQ', points().slice(1), 512, 512)).toThrow(/expected 68 landmarks/);
    const out = points();
    out[3] = [600, 10];
    expect(() => portraitMessage('/9j/4AAQ', out, 512, 512)).toThrow(/outside the 512×512 picture/);
    expect(() => portraitMessage('data:image/jpeg;base64,/9j/4AAQ', points(), 512, 512)).toThrow(/standard base64/);
    expect(() => portraitMessage('/9j/4AA', points(), 512, 512)).toThrow(/standard base64/);
  });
});
