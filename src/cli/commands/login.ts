import { resolve } from 'node:path';
import { login, loginHost, logout } from '../../registry/login.js';
import { parseTimeoutSeconds, setRegistryTimeout } from '../../registry/timeout.js';
import { OciToolError } from '../../util/errors.js';
import { readStdinSecret } from '../registry-args.js';
import { defineCommand } from '../command.js';

const authfileOption = { type: 'string', describe: 'the docker config file to write (default: $DOCKER_CONFIG/config.json, else ~/.docker/config.json)' } as const;

export const loginCommand = defineCommand({
  command: 'login <host>',
  describe: 'Check credentials against a registry, then store them in the docker config (or the credential helper it names) for every tool that reads it',
  builder: (y) =>
    y
      .positional('host', { type: 'string', demandOption: true, describe: 'registry host, e.g. ghcr.io or localhost:5000 (docker.io for Docker Hub)' })
      .option('username', { alias: 'u', type: 'string', nargs: 1, describe: 'user name' })
      .option('password', { alias: 'p', type: 'string', nargs: 1, describe: 'password or token (visible to other users in the process list: prefer --password-stdin)' })
      .option('password-stdin', { type: 'boolean', default: false, describe: 'read the password or token from stdin' })
      .option('insecure', { type: 'boolean', default: false, describe: 'allow plain HTTP and unverified TLS (loopback hosts may use HTTP anyway)' })
      .option('authfile', authfileOption)
      .option('timeout', { type: 'string', describe: 'seconds the registry may take to answer' }),
  run: async (args, out, ctx) => {
    // Everything about the flags is decided before the registry hears from us.
    const host = loginHost(args.host);
    if (args.username === undefined || args.username === '') throw new OciToolError('USAGE', 'login: --username (-u) is required');
    if (args.password !== undefined && args['password-stdin']) throw new OciToolError('USAGE', 'login: give --password or --password-stdin, not both');
    if (args.password === undefined && !args['password-stdin']) throw new OciToolError('USAGE', 'login: --password-stdin (or -p PASSWORD) is required');
    if (args.timeout !== undefined) {
      const seconds = parseTimeoutSeconds(args.timeout);
      if (seconds === undefined) throw new OciToolError('USAGE', `--timeout ${args.timeout}: expected a number of seconds, e.g. --timeout 30`);
      setRegistryTimeout(seconds);
    }
    if (args.password !== undefined) out.warn('a password given with -p is visible to other users of this machine; use --password-stdin');
    const password = args.password ?? (await readStdinSecret());
    if (password === '') throw new OciToolError('USAGE', 'login: the password is empty');
    const where = await login(host, { username: args.username, password, source: args.password !== undefined ? '--password' : '--password-stdin' }, {
      insecure: args.insecure,
      signal: ctx.signal,
      ...(args.authfile !== undefined ? { file: resolve(args.authfile) } : {}),
    });
    out.info(`login succeeded: ${host} (credentials stored ${'file' in where ? `in ${where.file}` : `with ${where.helper}`})`);
  },
});

export const logoutCommand = defineCommand({
  command: 'logout <host>',
  describe: 'Remove the stored credentials for a registry (from the docker config, or through its credential helper)',
  builder: (y) =>
    y
      .positional('host', { type: 'string', demandOption: true, describe: 'registry host, as given to login' })
      .option('authfile', authfileOption),
  run: async (args, out) => {
    const host = loginHost(args.host);
    const erased = await logout(host, args.authfile !== undefined ? { file: resolve(args.authfile) } : {});
    out.info(erased ? `removed the credentials for ${host}` : `not logged in to ${host}`);
  },
});
