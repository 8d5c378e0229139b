// The access token (when the server has ACCESS_TOKEN set): taken from the URL fragment
// (#token=…) or typed into the page's form, kept for the tab (sessionStorage), checked with
// GET /api/access, and added to the session socket URL and the player's requests.

export interface AccessInfo {
  token_required: boolean;
  /** null when no token was presented (or none is required) */
  token_valid: boolean | null;
  playback_token_required: boolean;
}

const STORAGE_KEY = 'talkstream.token';

/** The token in a URL fragment like `#token=abc` (other fragment parameters are kept). */
export function tokenFromHash(hash: string): { token: string | null; rest: string } {
  const params = new URLSearchParams(hash.replace(/^#/, ''));
  const token = params.get('token');
  params.delete('token');
  const rest = params.toString();
  return { token: token && token.trim() ? token.trim() : null, rest: rest ? `#${rest}` : '' };
}

/** `url` with the token as a `token` query parameter (the WebSocket cannot carry headers). */
export function withToken(url: string, token: string | null): string {
  if (!token) return url;
  const sep = url.includes('?') ? '&' : '?';
  return `${url}${sep}token=${encodeURIComponent(token)}`;
}

/** Read /api/access's answer; anything unexpected counts as "no token needed". */
export function parseAccessInfo(v: unknown): AccessInfo {
  const o = (typeof v === 'object' && v !== null ? v : {}) as Record<string, unknown>;
  return {
    token_required: o.token_required === true,
    token_valid: typeof o.token_valid === 'boolean' ? o.token_valid : null,
    playback_token_required: o.playback_token_required === true,
  };
}

/** What the page should do before connecting. */
export function accessStep(info: AccessInfo, token: string | null): 'connect' | 'ask' | 'wrong' {
  if (!info.token_required) return 'connect';
  if (!token) return 'ask';
  return info.token_valid === true ? 'connect' : 'wrong';
}

export class TokenStore {
  constructor(private readonly storage: Pick<Storage, 'getItem' | 'setItem' | 'removeItem'> | null) {}

  get(): string | null {
    try {
      return this.storage?.getItem(STORAGE_KEY) ?? null;
    } catch {
      return null;
    }
  }

  set(token: string | null): void {
    try {
      if (token) this.storage?.setItem(STORAGE_KEY, token);
      else this.storage?.removeItem(STORAGE_KEY);
    } catch {
      /* storage disabled: the token lives only in this page */
    }
  }
}

/** Ask the server whether a token is needed and whether `token` is right. */
export async function fetchAccess(token: string | null): Promise<AccessInfo> {
  const headers: Record<string, string> = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  const resp = await fetch('api/access', { headers, cache: 'no-store' });
  if (resp.status === 429) throw new Error(await resp.text());
  if (!resp.ok) return parseAccessInfo({});
  return parseAccessInfo(await resp.json());
}
