import { loginHost } from '../../registry/login.js';
import { OciToolError } from '../../util/errors.js';
import { registryOpen, registryOptions } from '../registry-args.js';
import { defineCommand } from '../command.js';

export default defineCommand({
  command: 'catalog <host>',
  describe: "List a registry's repositories (the _catalog API, every page), one a line",
  builder: (y) =>
    registryOptions(
      y
        .positional('host', { type: 'string', demandOption: true, describe: 'registry host, e.g. localhost:5000' })
        .option('max', { type: 'number', describe: 'stop after this many repositories (default: all, up to 1,000,000)' }),
    ),
  run: async (args, out, ctx) => {
    const host = loginHost(args.host);
    if (args.max !== undefined && (!Number.isSafeInteger(args.max) || args.max < 1)) throw new OciToolError('USAGE', `--max ${String(args.max)}: expected a positive whole number`);
    const opened = await registryOpen(args);
    const [{ resolveCredentials }, { RegistryHttp }, { listRepositories }] = await Promise.all([
      import('../../registry/auth/credentials.js'),
      import('../../registry/http.js'),
      import('../../registry/tags.js'),
    ]);
    ctx.signal.throwIfAborted();
    const credential = await resolveCredentials(host, opened.credential);
    const http = new RegistryHttp(host, { insecure: opened.insecure, ...(credential ? { credential } : {}) });
    let repositories = await listRepositories(http, args.max !== undefined ? { maxTags: Number.MAX_SAFE_INTEGER, pageSize: Math.min(args.max, 1000) } : {});
    if (args.max !== undefined) repositories = repositories.slice(0, args.max);
    for (const r of repositories) out.item('repository', { host, repository: r }, r);
    return { printed: true, fields: { host, count: repositories.length } };
  },
});
