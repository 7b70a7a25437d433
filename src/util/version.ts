import { readFileSync } from 'node:fs';

let cached: string | undefined;

/** The version in ocitool's package.json (two folders up from src/x, dist/x and dist/bundle alike). */
export function ocitoolVersion(): string {
  if (cached === undefined) {
    try {
      cached = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string }).version ?? 'unknown';
    } catch {
      cached = 'unknown';
    }
  }
  return cached;
}
