import { describe, expect, it } from 'vitest';
import { VerifiedTokens } from '../src/auth/token-cache.js';

describe('the verified-token cache', () => {
  const now = 1_800_000_000_000;
  const exp = (ms: number) => Math.floor((now + ms) / 1000);

  it('answers a token it verified, until the token expires', () => {
    const cache = new VerifiedTokens();
    cache.set('t1', { sub: 'a', exp: exp(30_000) }, now);
    expect(cache.get('t1', now + 1000)?.sub).toBe('a');
    expect(cache.get('t1', now + 30_000)).toBeUndefined();
  });

  it('never keeps an entry past 60 s, however long the token lives', () => {
    const cache = new VerifiedTokens();
    cache.set('t1', { sub: 'a', exp: exp(3_600_000) }, now);
    expect(cache.get('t1', now + 59_000)?.sub).toBe('a');
    expect(cache.get('t1', now + 60_000)).toBeUndefined();
  });

  it('does not remember an expired token or one without exp', () => {
    const cache = new VerifiedTokens();
    cache.set('old', { sub: 'a', exp: exp(-1000) }, now);
    cache.set('none', { sub: 'b' }, now);
    expect(cache.get('old', now)).toBeUndefined();
    expect(cache.get('none', now)).toBeUndefined();
  });

  it('is bounded: the least recently used token goes first', () => {
    const cache = new VerifiedTokens(2);
    cache.set('a', { sub: 'a', exp: exp(30_000) }, now);
    cache.set('b', { sub: 'b', exp: exp(30_000) }, now);
    cache.get('a', now);
    cache.set('c', { sub: 'c', exp: exp(30_000) }, now);
    expect(cache.get('b', now)).toBeUndefined();
    expect(cache.get('a', now)?.sub).toBe('a');
    expect(cache.get('c', now)?.sub).toBe('c');
  });
});
