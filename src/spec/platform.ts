import { OciToolError } from '../util/errors.js';
import type { Platform } from './types.js';

const ARCH_FROM_NODE: Record<string, string> = { x64: 'amd64', ia32: '386', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64', loong64: 'loong64', mips: 'mips', mipsel: 'mipsle' };

/**
 * Parses `os/arch[/variant]` (e.g. `linux/arm64/v8`), aliases normalised (aarch64 → arm64). A variant
 * given is kept, even one that matching treats as the default (arm64/v8): what is recorded in a
 * config or an index entry is what was asked for.
 */
export function parsePlatform(s: string): Platform {
  const parts = s.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => p === '')) {
    throw new OciToolError('USAGE', `invalid platform "${s}": expected OS/ARCH[/VARIANT]`);
  }
  const [os, architecture, variant] = parts as [string, string, string | undefined];
  const p = normalizePlatform(variant === undefined ? { os, architecture } : { os, architecture, variant });
  if (variant !== undefined && p.variant === undefined) p.variant = /^\d+$/.test(variant) ? `v${variant}` : variant;
  return p;
}

/**
 * A comma list of platforms (`linux/amd64,linux/arm64/v8`), each parsed as parsePlatform does; `what`
 * names the list in messages. Empty items and a platform given twice are usage errors.
 */
export function parsePlatforms(s: string, what = '--platform'): Platform[] {
  const out: Platform[] = [];
  for (const item of s.split(',').map((x) => x.trim())) {
    if (item === '') throw new OciToolError('USAGE', `${what} ${s}: an empty platform in the list`);
    const p = parsePlatform(item);
    if (out.some((q) => formatPlatform(q) === formatPlatform(p))) throw new OciToolError('USAGE', `${what} ${s}: ${formatPlatform(p)} is listed twice`);
    out.push(p);
  }
  return out;
}

export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter((x) => x !== undefined && x !== '').join('/');
}

/** Normalises aliases the way containerd's platforms package does (aarch64 → arm64, x86_64 → amd64…). */
export function normalizePlatform(p: Platform): Platform {
  let { architecture, variant } = p;
  const os = p.os.toLowerCase();
  architecture = architecture.toLowerCase();
  if (architecture === 'x86_64' || architecture === 'x86-64') architecture = 'amd64';
  if (architecture === 'aarch64') architecture = 'arm64';
  if (architecture === 'armhf') { architecture = 'arm'; variant = 'v7'; }
  if (architecture === 'armel') { architecture = 'arm'; variant = 'v6'; }
  if (architecture === 'arm64' && (variant === '8' || variant === 'v8')) variant = undefined;
  if (architecture === 'amd64' && variant === 'v1') variant = undefined;
  if (architecture === 'arm' && variant !== undefined && /^\d$/.test(variant)) variant = `v${variant}`;
  const out: Platform = { ...p, os, architecture };
  if (variant === undefined) delete out.variant; else out.variant = variant;
  return out;
}

/** The platform of this machine (linux containers are assumed on every host OS but Windows). */
export function hostPlatform(): Platform {
  const architecture = ARCH_FROM_NODE[process.arch] ?? process.arch;
  const os = process.platform === 'win32' ? 'windows' : 'linux';
  return architecture === 'arm' ? { os, architecture, variant: 'v7' } : { os, architecture };
}

/** Node's process.platform and process.arch for an OCI platform (npm's `os` and `cpu` fields use them). */
export function nodePlatformOf(p: Platform): { os: string; cpu: string } {
  const arch = Object.entries(ARCH_FROM_NODE).find(([, oci]) => oci === p.architecture)?.[0] ?? p.architecture;
  return { os: p.os === 'windows' ? 'win32' : p.os, cpu: arch };
}

/** Whether `p` is this machine's platform (a variant, when given, must be the host's). */
export const isHostPlatform = (p: Platform): boolean => platformMatches(p, hostPlatform());

/** Whether `candidate` satisfies the wanted platform (os and architecture equal; variant if wanted). */
export function platformMatches(want: Platform, candidate: Platform | undefined): boolean {
  if (candidate === undefined) return false;
  const w = normalizePlatform(want);
  const c = normalizePlatform(candidate);
  if (w.os !== c.os || w.architecture !== c.architecture) return false;
  if (w.variant !== undefined && w.variant !== (c.variant ?? defaultVariant(c.architecture))) return false;
  if (w['os.version'] !== undefined && w['os.version'] !== c['os.version']) return false;
  return true;
}

function defaultVariant(arch: string): string | undefined {
  return arch === 'arm64' ? 'v8' : arch === 'arm' ? 'v7' : undefined;
}
