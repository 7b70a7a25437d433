/**
 * Deleting from a registry. A manifest is deleted by digest (`DELETE /v2/NAME/manifests/DIGEST`: the
 * registry drops every tag that names it too). A tag is deleted alone: by `DELETE …/manifests/TAG`
 * where the registry supports it (OCI distribution 1.1), else as regctl does it: the tag is pointed
 * at a throwaway manifest of its own, which is then deleted by digest, so that other tags naming the
 * same image keep it. Distribution answers 405 to every DELETE unless `storage.delete.enabled`: that
 * is found out before anything is changed, and said in one line.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { digestOf } from '../digest/digest.js';
import { MediaType } from '../spec/media-types.js';
import type { Descriptor } from '../spec/types.js';
import { OciToolError } from '../util/errors.js';
import { RegistryError } from './errors.js';
import { isValidDigest } from '../digest/digest.js';
import { isValidTag } from '../reference/docker-name.js';
import { isOciToolError } from '../util/errors.js';
import type { RegistryStore } from './store.js';

const EMPTY_JSON = Buffer.from('{}');
const EMPTY_DESCRIPTOR: Descriptor = { mediaType: 'application/vnd.oci.empty.v1+json', digest: digestOf(EMPTY_JSON), size: EMPTY_JSON.length };

/** The scopes a delete needs (token servers grant `delete` apart from push). */
const deleteScopes = (store: RegistryStore): string[] => [`repository:${store.repository}:pull,push,delete`];

function deletionDisabled(store: RegistryStore, what: string): OciToolError {
  return new OciToolError('REGISTRY', `${store.host}: ${what}: the registry does not allow deleting (405; distribution allows it with storage.delete.enabled)`);
}

/** DELETE of a manifest by digest or tag; the status (202/200 done, 405 disabled, others: not done). */
async function deleteRequest(store: RegistryStore, reference: string, what: string, signal?: AbortSignal): Promise<number> {
  if (!isValidDigest(reference) && !isValidTag(reference)) throw new OciToolError('INVALID_REFERENCE', `${store.name}: ${JSON.stringify(reference.slice(0, 80))} is neither a tag nor a digest`);
  const res = await store.http.request('DELETE', `/v2/${store.repository}/manifests/${reference}`, {
    scopes: deleteScopes(store),
    what,
    // 400/404/405 are answers to look at, not failures to retry (a 404 for an unknown manifest is still one).
    ok: (st) => (st >= 200 && st < 300) || st === 400 || st === 405 || (st === 404 && !reference.startsWith('sha256:')),
    ...(signal ? { signal } : {}),
  });
  await res.cancel();
  return res.status;
}

/** Deletes the manifest `digest` (and the tags that name it). */
export async function deleteManifest(store: RegistryStore, digest: string, signal?: AbortSignal): Promise<void> {
  const what = `delete of manifest ${digest} in ${store.repository}`;
  const status = await deleteRequest(store, digest, what, signal);
  if (status === 405) throw deletionDisabled(store, what);
  if (status >= 300) throw new RegistryError(`${store.host}: ${what}: the registry refused (${status})`, status, []);
}

/** Deletes `tag` alone; the manifest it named (what it was). Other tags of that manifest stay. */
export async function deleteTag(store: RegistryStore, tag: string, signal?: AbortSignal): Promise<Descriptor> {
  const was = await store.resolve(tag);
  const what = `delete of tag ${tag} in ${store.repository}`;
  const status = await deleteRequest(store, tag, what, signal);
  if (status === 405) throw deletionDisabled(store, what);
  if (status >= 200 && status < 300) {
    // Believed only when the tag is gone and the image it named is still there (a registry that took
    // the tag for its manifest would have deleted every sibling tag with it: said, not hidden).
    const still = await namedBy(store, tag);
    if (still === undefined) {
      if ((await namedBy(store, was.digest)) === undefined) throw new OciToolError('REGISTRY', `${store.host}: ${what}: the registry deleted the image ${was.digest} with the tag (and so every tag naming it)`);
      return was;
    }
    if (still.digest !== was.digest) throw new OciToolError('REGISTRY', `${store.host}: ${what}: the tag now names ${still.digest}, not ${was.digest}: another writer moved it; nothing deleted`);
    // It said yes and did nothing: the placeholder way, below.
  }
  // No tag deletion here (distribution 2.8 takes the tag for a malformed digest: 400 DIGEST_INVALID).
  if (!(await store.exists(EMPTY_DESCRIPTOR))) await store.push(EMPTY_DESCRIPTOR, Readable.from([EMPTY_JSON]));
  const placeholder = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      artifactType: 'application/vnd.ocitool.deleted-tag',
      config: EMPTY_DESCRIPTOR,
      layers: [],
      // Its own digest, whatever else the repository holds: deleting it takes nothing else along.
      annotations: { 'dev.ocitool.deleted-tag': `${tag} ${randomBytes(16).toString('hex')}` },
    }),
  );
  const desc: Descriptor = { mediaType: MediaType.OciManifest, digest: digestOf(placeholder), size: placeholder.length };
  await store.push(desc, Readable.from([placeholder]), signal ? { signal } : {});
  await store.tag(desc, tag);
  try {
    // Not cut short by Ctrl-C: the tag names the placeholder until this is done.
    await deleteManifest(store, desc.digest);
    const left = await namedBy(store, tag);
    if (left !== undefined) throw new OciToolError('REGISTRY', `${store.host}: ${what}: the registry answered the delete but the tag still names ${left.digest}`);
  } catch (err) {
    // The tag must not be left on the placeholder: back to what it named, or said.
    const restored = await store.tag(was, tag).then(() => true, () => false);
    if (!restored) throw new OciToolError('REGISTRY', `${(err as Error).message}; and putting the tag back on ${was.digest} failed: ${tag} may name an empty placeholder (${desc.digest})`, { cause: err });
    throw err;
  }
  return was;
}

/** What `reference` names in the repository now, or undefined when nothing. */
async function namedBy(store: RegistryStore, reference: string): Promise<Descriptor | undefined> {
  try {
    return await store.resolve(reference);
  } catch (err) {
    if (isOciToolError(err, 'NOT_FOUND')) return undefined;
    throw err;
  }
}
