import { describe, expect, it } from 'vitest';
import { parseChallenges, pickChallenge } from './challenge.js';

describe('parseChallenges', () => {
  it('reads distribution\'s bearer challenge with a quoted scope holding commas', () => {
    const h = 'Bearer realm="https://auth.example.test/token",service="registry.example.test",scope="repository:library/ubuntu:pull,push"';
    expect(parseChallenges(h)).toEqual([
      { scheme: 'bearer', params: { realm: 'https://auth.example.test/token', service: 'registry.example.test', scope: 'repository:library/ubuntu:pull,push' } },
    ]);
  });

  it('reads basic, several challenges in one header, spaces and escapes', () => {
    expect(parseChallenges('Basic realm="Registry Realm"')).toEqual([{ scheme: 'basic', params: { realm: 'Registry Realm' } }]);
    const many = parseChallenges('Basic realm="a", Bearer realm="https://t.test/token" , service=svc, error="insufficient_scope"');
    expect(many).toEqual([
      { scheme: 'basic', params: { realm: 'a' } },
      { scheme: 'bearer', params: { realm: 'https://t.test/token', service: 'svc', error: 'insufficient_scope' } },
    ]);
    expect(parseChallenges('Bearer realm="a\\"b"')[0]!.params.realm).toBe('a"b');
    expect(parseChallenges(['Basic realm=x', 'BEARER Realm=y'])).toEqual([
      { scheme: 'basic', params: { realm: 'x' } },
      { scheme: 'bearer', params: { realm: 'y' } },
    ]);
  });

  it('prefers bearer, then basic', () => {
    expect(pickChallenge(parseChallenges('Negotiate, Basic realm=x, Bearer realm=y'))?.scheme).toBe('bearer');
    expect(pickChallenge(parseChallenges('Negotiate, Basic realm=x'))?.scheme).toBe('basic');
    expect(pickChallenge([])).toBeUndefined();
    expect(parseChallenges(undefined)).toEqual([]);
  });
});
