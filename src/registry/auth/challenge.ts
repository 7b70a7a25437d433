/**
 * `WWW-Authenticate` parsing (RFC 7235 as registries use it): one or more challenges, each a scheme
 * followed by comma-separated `key=value` parameters whose values are tokens or quoted strings with
 * backslash escapes. Values may hold commas inside quotes (`scope="repository:a:pull,push"`).
 */
export interface Challenge {
  /** Lowercased scheme: `bearer`, `basic`, … */
  scheme: string;
  /** Lowercased parameter names. */
  params: Record<string, string>;
}

const TOKEN = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;

/** Parses every challenge in one or more header values (registries may send several headers). */
export function parseChallenges(headers: string | string[] | null | undefined): Challenge[] {
  if (headers === null || headers === undefined) return [];
  const out: Challenge[] = [];
  for (const h of Array.isArray(headers) ? headers : [headers]) out.push(...parseOne(h));
  return out;
}

function parseOne(s: string): Challenge[] {
  const out: Challenge[] = [];
  let i = 0;
  const skipWs = (): void => {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++;
  };
  const token = (): string => {
    const start = i;
    while (i < s.length && TOKEN.test(s[i]!)) i++;
    return s.slice(start, i);
  };
  let current: Challenge | undefined;
  while (i < s.length) {
    skipWs();
    if (s[i] === ',') {
      i++;
      continue;
    }
    const start = i;
    const word = token();
    if (word === '') {
      i++; // garbage: skip a character and go on
      continue;
    }
    skipWs();
    if (s[i] === '=' && current !== undefined) {
      i++;
      skipWs();
      let value = '';
      if (s[i] === '"') {
        i++;
        while (i < s.length && s[i] !== '"') {
          if (s[i] === '\\' && i + 1 < s.length) i++;
          value += s[i];
          i++;
        }
        i++; // closing quote
      } else {
        const vStart = i;
        while (i < s.length && s[i] !== ',' && s[i] !== ' ') i++;
        value = s.slice(vStart, i);
      }
      current.params[word.toLowerCase()] = value;
    } else {
      // A new challenge starts with a scheme (possibly followed by a token68, ignored here).
      current = { scheme: s.slice(start, start + word.length).toLowerCase(), params: {} };
      out.push(current);
    }
  }
  return out;
}

/** The challenge to answer: bearer before basic, as registries expect; else the first. */
export function pickChallenge(challenges: Challenge[]): Challenge | undefined {
  return challenges.find((c) => c.scheme === 'bearer') ?? challenges.find((c) => c.scheme === 'basic') ?? challenges[0];
}
